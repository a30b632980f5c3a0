/**
 * Tensors and the reverse-mode autodiff engine.
 *
 * A {@link Tensor} is a shape, a dtype and a backend-owned flat buffer. Every
 * operation is an entry of the op registry: a `forward` that calls kernels, and
 * a `backward` (the gradient rule) written with other ops, so it runs on every
 * backend. When gradients are enabled and some input requires one, applying an
 * op records a node on the output; `backward()` walks those nodes in reverse
 * topological order, accumulates gradients into leaves and then drops the graph.
 */
import {
  getBackend,
  readsAsync,
  sameShape,
  sizeOf,
  type Backend,
  type DType,
  type FloatArray,
  type Storage,
} from '../kernels/index.js';
import { activeTracer } from './trace.js';

/** Options when creating a tensor. */
export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  backend?: Backend;
}

/**
 * A gradient that touches only some rows of a 2-D parameter, as produced by
 * embedding lookups. `rows` are distinct and `values[i]` is the gradient of row `rows[i]`.
 * Like PyTorch's sparse gradients, it never materialises the untouched rows.
 */
export class RowSparseGrad {
  constructor(
    /** Row indices, host-side (they come from input ids); distinct once coalesced. */
    readonly rows: Int32Array,
    /** Gradient rows, shape [rows.length, dim]. */
    readonly values: Tensor,
    /** Shape of the dense parameter, [numRows, dim]. */
    readonly denseShape: readonly number[],
    /** Whether `rows` are known distinct and ascending, so {@link coalesce} has nothing to do. */
    readonly coalesced = false,
  ) {}

  /** The equivalent dense gradient (allocates the whole parameter's size). */
  toDense(): Tensor {
    const dense = Tensor.zeros(this.denseShape, { dtype: this.values.dtype, backend: this.values.backend });
    this.values.backend.scatterAddRows(this.values.storage, this.denseShape[1], this.rows, dense.storage);
    return dense;
  }
}

/** A gradient flowing through the graph: dense, or row-sparse for embedding tables. */
export type Gradient = Tensor | RowSparseGrad;

/** What a gradient rule sees. */
export interface BackwardContext<A> {
  inputs: readonly Tensor[];
  output: Tensor;
  attrs: A;
  /** Whatever the forward chose to keep for the backward. */
  saved: readonly Tensor[];
  /** Which inputs need a gradient; a rule may skip the others (return null). */
  needsGrad: readonly boolean[];
}

/** Result of a forward: the output, and tensors to keep for the backward. */
export interface ForwardResult {
  output: Tensor;
  saved?: Tensor[];
}

/** One registered operation: forward with kernels, gradient rule with ops. */
export interface OpDefinition<A = unknown> {
  /** Registry key, e.g. `add`, `matmul`, `embeddingBag`. */
  name: string;
  /** How many tensor inputs it takes; `variadic` for one or more (concat). */
  arity: number | 'variadic';
  /** Compute the output with kernels (recording is off while it runs); optionally keep tensors for the backward. */
  forward(inputs: readonly Tensor[], attrs: A): ForwardResult;
  /**
   * Gradient rule: one gradient (or null) per input, given the output gradient.
   * Absent for ops that are not differentiable (comparisons, gradient helpers).
   */
  backward?(gradOutput: Tensor, context: BackwardContext<A>): (Gradient | null)[];
}

/** The tape entry an op leaves on its output: what the backward pass needs to run its gradient rule. */
export interface GraphNode {
  op: OpDefinition<unknown>;
  inputs: Tensor[];
  attrs: unknown;
  saved: Tensor[];
}

// ---------------------------------------------------------------------------
// Gradient mode and scopes

let gradEnabled = true;

/** Whether ops currently record the graph. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording the graph (as `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = before;
  }
}

/** Run `fn` with graph recording forced on. */
export function enableGrad<T>(fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = before;
  }
}

const scopes: Tensor[][] = [];

/** Values that {@link tidy} keeps: a tensor, or arrays / plain objects of them. */
export type TidyResult =
  | Tensor
  | RowSparseGrad
  | number
  | string
  | boolean
  | void
  | null
  | undefined
  | TidyResult[]
  | { [key: string]: TidyResult };

/**
 * Run `fn` and free every tensor it created except those it returns (as `tf.tidy`).
 * Device backends use it to keep memory flat across training steps; run a whole
 * step (forward, backward, optimizer) inside one scope so saved tensors outlive the backward.
 */
export function tidy<T extends TidyResult>(fn: () => T): T {
  const created: Tensor[] = [];
  scopes.push(created);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const keep = new Set<Tensor>();
  collectTensors(result, keep);
  const parent = scopes[scopes.length - 1];
  for (const t of created) {
    if (keep.has(t) || t.keepAlive) {
      parent?.push(t);
    } else {
      t.dispose();
    }
  }
  return result;
}

function collectTensors(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (value instanceof RowSparseGrad) into.add(value.values);
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, into);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) collectTensors(v, into);
}

const finalizer = new FinalizationRegistry<{ backend: Backend; storage: Storage }>(({ backend, storage }) => {
  backend.free(storage);
});

// ---------------------------------------------------------------------------
// Op registry

const registry = new Map<string, OpDefinition<never>>();

/** Add an op to the registry. Names are unique. */
export function registerOp<A>(definition: OpDefinition<A>): OpDefinition<A> {
  if (registry.has(definition.name)) throw new Error(`op '${definition.name}' is already registered`);
  registry.set(definition.name, definition as OpDefinition<never>);
  return definition;
}

/** Every registered op, in registration order. */
export function listOps(): readonly OpDefinition<unknown>[] {
  return [...registry.values()] as OpDefinition<unknown>[];
}

/** Look an op up by name. */
export function getOp(name: string): OpDefinition<unknown> {
  const op = registry.get(name);
  if (!op) throw new Error(`no op named '${name}'`);
  return op as OpDefinition<unknown>;
}

/** Apply an op: run its forward and, when recording, attach a graph node to the output. */
export function apply<A>(op: OpDefinition<A>, inputs: readonly Tensor[], attrs: A): Tensor {
  if (op.arity === 'variadic' ? inputs.length === 0 : inputs.length !== op.arity) {
    throw new Error(`${op.name}: expected ${op.arity} inputs, got ${inputs.length}`);
  }
  const backend = inputs[0]?.backend;
  for (const t of inputs) {
    t.assertAlive(op.name);
    if (t.backend !== backend)
      throw new Error(`${op.name}: inputs live on different backends (${backend?.name}, ${t.backend.name})`);
  }
  const record = gradEnabled && op.backward !== undefined && inputs.some((t) => t.requiresGrad);
  const { output, saved } = noGrad(() => op.forward(inputs, attrs));
  activeTracer()?.onApply(op as OpDefinition<unknown>, inputs, attrs, output);
  if (record) {
    output.requiresGrad = true;
    output.node = { op: op as OpDefinition<unknown>, inputs: [...inputs], attrs, saved: saved ?? [] };
  }
  return output;
}

// ---------------------------------------------------------------------------
// Tensor

let nextId = 0;

/** An n-dimensional array on a backend, optionally tracking gradients. */
export class Tensor {
  /** Unique id, handy for debugging graphs. */
  readonly id = nextId++;
  /** Whether gradients flow to (and, for leaves, accumulate in) this tensor. */
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf after `backward()`. */
  grad: Gradient | null = null;
  /** The op that produced this tensor, while the graph is alive. */
  node: GraphNode | null = null;
  /** Survive the end of a {@link tidy} scope (set on parameters and optimizer state). */
  keepAlive = false;
  private disposed = false;

  constructor(
    /** Backend-owned flat buffer. */
    readonly storage: Storage,
    /** Dimensions, row-major. */
    readonly shape: readonly number[],
    /** Backend that owns the storage. */
    readonly backend: Backend,
    requiresGrad = false,
  ) {
    if (sizeOf(shape) !== storage.size) {
      throw new Error(
        `tensor of shape [${shape.join(', ')}] needs ${sizeOf(shape)} elements, storage has ${storage.size}`,
      );
    }
    this.requiresGrad = requiresGrad;
    scopes[scopes.length - 1]?.push(this);
    finalizer.register(this, { backend, storage }, this);
  }

  /** Element type. */
  get dtype(): DType {
    return this.storage.dtype;
  }
  /** Number of elements. */
  get size(): number {
    return this.storage.size;
  }
  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
    const backend = options.backend ?? getBackend();
    const dtype = options.dtype ?? 'float32';
    return new Tensor(backend.alloc(sizeOf(shape), dtype), [...shape], backend, options.requiresGrad ?? false);
  }

  /** A tensor holding `values` (copied), of the given shape. */
  static fromArray(values: ArrayLike<number>, shape: readonly number[], options: TensorOptions = {}): Tensor {
    const backend = options.backend ?? getBackend();
    const dtype = options.dtype ?? 'float32';
    if (values.length !== sizeOf(shape)) {
      throw new Error(`${values.length} values do not fill shape [${shape.join(', ')}] (${sizeOf(shape)} elements)`);
    }
    // fromArray copies into the backend's storage, so an array already of the right type is passed as is.
    const host: FloatArray =
      dtype === 'float64'
        ? values instanceof Float64Array
          ? values
          : Float64Array.from(values)
        : values instanceof Float32Array
          ? values
          : Float32Array.from(values);
    const out = new Tensor(backend.fromArray(host, dtype), [...shape], backend, options.requiresGrad ?? false);
    activeTracer()?.onFromArray(values, out);
    return out;
  }

  /** A scalar on the same backend and dtype as this tensor. */
  scalarLike(value: number): Tensor {
    return Tensor.fromArray([value], [], { dtype: this.dtype, backend: this.backend });
  }

  /** Throws if the tensor was disposed. */
  assertAlive(where: string): void {
    if (this.disposed)
      throw new Error(
        `${where}: tensor #${this.id} [${this.shape.join(', ')}] was disposed (freed by tidy or dispose)`,
      );
  }

  /** Free the storage now. Using the tensor afterwards is an error. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.node = null;
    finalizer.unregister(this);
    this.backend.free(this.storage);
  }

  /** Whether {@link dispose} was called. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Copy of the values, on the host. */
  toArray(): FloatArray {
    this.assertAlive('toArray');
    return this.backend.read(this.storage);
  }

  /**
   * Copy of the values, on the host, once the device has computed them. Works on every
   * backend; on one whose kernels complete after their calls return (webgpu) it is the
   * only way to read, and the work queued before it runs without any other wait.
   */
  async data(): Promise<FloatArray> {
    this.assertAlive('data');
    return readsAsync(this.backend) ? this.backend.readAsync(this.storage) : this.backend.read(this.storage);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item(): tensor has ${this.size} elements, shape [${this.shape.join(', ')}]`);
    return this.toArray()[0];
  }

  /** A tensor sharing nothing with the graph: same values (copied), no gradient history. */
  detach(): Tensor {
    const out = Tensor.zeros(this.shape, { dtype: this.dtype, backend: this.backend });
    this.backend.copy(this.storage, out.storage);
    return out;
  }

  /** Mark as requiring gradients (a leaf), chainable. */
  requireGrad(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }

  /**
   * Back-propagate from this tensor. A scalar needs no seed; any other tensor
   * takes an explicit `gradOutput` of its shape (as `torch.autograd.backward`).
   * Gradients accumulate into leaves' `.grad`; the graph is freed afterwards.
   */
  backward(gradOutput?: Tensor): void {
    if (!this.requiresGrad) throw new Error('backward(): tensor does not require grad');
    let seed: Tensor;
    if (gradOutput) {
      if (!sameShape(gradOutput.shape, this.shape)) {
        throw new Error(
          `backward(): seed shape [${gradOutput.shape.join(', ')}] differs from output [${this.shape.join(', ')}]`,
        );
      }
      seed = gradOutput;
    } else {
      if (this.size !== 1)
        throw new Error(
          `backward(): output has shape [${this.shape.join(', ')}]; pass a seed gradient for non-scalars`,
        );
      seed = Tensor.zeros(this.shape, { dtype: this.dtype, backend: this.backend });
      this.backend.fill(seed.storage, 1);
    }
    runBackward(this, seed);
  }

  /** A one-line description: shape, dtype, backend and whether it requires grad. */
  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, backend=${this.backend.name}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

// ---------------------------------------------------------------------------
// Backward pass

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: deep graphs (long training loops in one graph) must not overflow the stack.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [tensor, next] = top;
    const inputs = tensor.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1]++;
      const child = inputs[next];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(tensor);
    }
  }
  return order.reverse();
}

/** Sum of two gradients of one tensor. Sparse + sparse stays sparse (rows coalesced later). */
export function addGradients(a: Gradient, b: Gradient): Gradient {
  if (a instanceof RowSparseGrad && b instanceof RowSparseGrad) return concatSparse(a, b);
  const dense = a instanceof Tensor ? a : a.toDense();
  const other = b instanceof Tensor ? b : b.toDense();
  const out = Tensor.zeros(dense.shape, { dtype: dense.dtype, backend: dense.backend });
  dense.backend.axpby(1, dense.storage, 1, other.storage, out.storage);
  return out;
}

function concatSparse(a: RowSparseGrad, b: RowSparseGrad): RowSparseGrad {
  const dim = a.denseShape[1];
  const rows = new Int32Array(a.rows.length + b.rows.length);
  rows.set(a.rows);
  rows.set(b.rows, a.rows.length);
  const values = Tensor.zeros([rows.length, dim], { dtype: a.values.dtype, backend: a.values.backend });
  const be = values.backend;
  be.copyBlock(a.values.storage, a.values.shape, [0, 0], values.storage, values.shape, [0, 0], a.values.shape);
  be.copyBlock(
    b.values.storage,
    b.values.shape,
    [0, 0],
    values.storage,
    values.shape,
    [a.rows.length, 0],
    b.values.shape,
  );
  return coalesce(new RowSparseGrad(rows, values, a.denseShape));
}

/** Merge duplicate rows of a sparse gradient by summing them (as `torch.Tensor.coalesce`). */
export function coalesce(g: RowSparseGrad): RowSparseGrad {
  if (g.coalesced) return g;
  const { unique, segments, order } = groupIndices(g.rows);
  if (unique.length === g.rows.length && order.every((o, i) => o === i))
    return new RowSparseGrad(g.rows, g.values, g.denseShape, true);
  const dim = g.denseShape[1];
  const values = Tensor.zeros([unique.length, dim], { dtype: g.values.dtype, backend: g.values.backend });
  values.backend.segmentSumRows(g.values.storage, dim, segments, order, null, values.storage);
  return new RowSparseGrad(unique, values, g.denseShape, true);
}

// Reused by every call: a fresh 256 KiB array per training step would cost page faults.
const radixCounts = new Int32Array(1 << 16);

/**
 * Group equal indices: `unique` in ascending order, and for each unique value u the
 * positions order[segments[u] .. segments[u+1]) where it occurs, ascending. Host-side:
 * indices are input data. A stable LSD radix sort (two 16-bit passes) keeps this linear
 * in the batch, whatever the vocabulary size.
 */
export function groupIndices(indices: Int32Array): { unique: Int32Array; segments: Int32Array; order: Int32Array } {
  const n = indices.length;
  let order = new Int32Array(n);
  let scratch = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const counts = radixCounts;
  for (const shift of [0, 16]) {
    counts.fill(0);
    // Indices are non-negative row ids; `>>> shift & 0xffff` buckets them by one 16-bit digit.
    for (let i = 0; i < n; i++) counts[(indices[i] >>> shift) & 0xffff]++;
    let total = 0;
    for (let d = 0; d < counts.length; d++) {
      const c = counts[d];
      counts[d] = total;
      total += c;
    }
    for (let i = 0; i < n; i++) {
      const pos = order[i];
      scratch[counts[(indices[pos] >>> shift) & 0xffff]++] = pos;
    }
    [order, scratch] = [scratch, order];
  }
  let distinct = 0;
  for (let i = 0; i < n; i++) if (i === 0 || indices[order[i]] !== indices[order[i - 1]]) distinct++;
  const unique = new Int32Array(distinct);
  const segments = new Int32Array(distinct + 1);
  for (let i = 0, u = -1; i < n; i++) {
    if (i === 0 || indices[order[i]] !== indices[order[i - 1]]) {
      unique[++u] = indices[order[i]];
      segments[u] = i;
    }
  }
  segments[distinct] = n;
  return { unique, segments, order };
}

function runBackward(root: Tensor, seed: Tensor): void {
  const order = topologicalOrder(root);
  const grads = new Map<Tensor, Gradient>();
  grads.set(root, seed);
  noGrad(() => {
    for (const tensor of order) {
      const grad = grads.get(tensor);
      if (!grad) continue;
      const node = tensor.node;
      if (!node) {
        // A leaf: accumulate into .grad as PyTorch does across backward calls.
        tensor.grad = tensor.grad ? addGradients(tensor.grad, grad) : grad;
        markKept(tensor.grad);
        continue;
      }
      grads.delete(tensor);
      const denseGrad = grad instanceof Tensor ? grad : grad.toDense();
      const inputGrads = node.op.backward!(denseGrad, {
        inputs: node.inputs,
        output: tensor,
        attrs: node.attrs,
        saved: node.saved,
        needsGrad: node.inputs.map((t) => t.requiresGrad),
      });
      node.inputs.forEach((input, i) => {
        const g = inputGrads[i];
        if (!g || !input.requiresGrad) return;
        checkGradShape(node.op.name, input, g);
        const previous = grads.get(input);
        grads.set(input, previous ? addGradients(previous, g) : g);
      });
      // Free the graph as we go: the node's saved tensors are no longer needed.
      tensor.node = null;
    }
  });
}

function markKept(g: Gradient): void {
  if (g instanceof Tensor) g.keepAlive = true;
  else g.values.keepAlive = true;
}

function checkGradShape(op: string, input: Tensor, g: Gradient): void {
  const shape = g instanceof Tensor ? g.shape : g.denseShape;
  if (!sameShape(shape, input.shape)) {
    throw new Error(
      `gradient rule of '${op}' returned shape [${shape.join(', ')}] for an input of shape [${input.shape.join(', ')}]`,
    );
  }
}
