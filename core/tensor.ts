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
import { runBackward } from './backward.js';
import { noteUpload } from './capture.js';
import { isGradEnabled, noGrad, trackTensor, untrackTensor } from './scope.js';
import type { Gradient, RowSparseGrad } from './sparse-grad.js';
import { activeTracer } from './trace.js';

export { enableGrad, isGradEnabled, noGrad, tidy, type TidyResult } from './scope.js';
export { addGradients, coalesce, RowSparseGrad, type Gradient, type SparseLive } from './sparse-grad.js';
export { groupIndices } from './radix-sort.js';

/** Options when creating a tensor. */
export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  backend?: Backend;
}

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

/**
 * A derived op: a function written with registered ops (`mean` is `sum` then `affine`), so its
 * gradient is theirs and it has no rule of its own. It is registered so that the op suites cover
 * it like the ops it is made of: each needs a gradient-check case, and its graph may hold only `uses`.
 */
export interface DerivedOpDefinition {
  /** Registry key, the function's name, e.g. `mean`. */
  name: string;
  /** The registered ops it is written with. */
  uses: readonly string[];
}

const derivedRegistry = new Map<string, DerivedOpDefinition>();

/**
 * Register a derived op and return `fn` unchanged; `uses` names the registered ops it is written with.
 * @typeParam F - the op's function type, kept as it is.
 */
export function registerDerivedOp<F extends (...args: never[]) => Tensor | Tensor[]>(
  name: string,
  uses: readonly string[],
  fn: F,
): F {
  if (derivedRegistry.has(name) || registry.has(name)) throw new Error(`op '${name}' is already registered`);
  derivedRegistry.set(name, { name, uses: [...uses] });
  return fn;
}

/** Every registered derived op, in registration order. */
export function listDerivedOps(): readonly DerivedOpDefinition[] {
  return [...derivedRegistry.values()];
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
  const record = isGradEnabled() && op.backward !== undefined && inputs.some((t) => t.requiresGrad);
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
  private accumulated: Gradient | null = null;
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
    trackTensor(this);
  }

  /**
   * Accumulated dense gradient of a leaf after `backward()`, as `torch.Tensor.grad`; null
   * while none flowed, or while it is row-sparse (see {@link Tensor.sparseGrad}). Setting it
   * to null clears the gradient either way.
   */
  get grad(): Tensor | null {
    return this.accumulated instanceof Tensor ? this.accumulated : null;
  }
  set grad(g: Tensor | null) {
    this.accumulated = g;
  }

  /**
   * Accumulated row-sparse gradient of a leaf that only embedding lookups used (an embedding
   * table), as a sparse `.grad` in PyTorch; null otherwise. At most one of `grad` and
   * `sparseGrad` is set: a dense contribution makes the whole gradient dense.
   */
  get sparseGrad(): RowSparseGrad | null {
    const g = this.accumulated;
    return g === null || g instanceof Tensor ? null : g;
  }
  set sparseGrad(g: RowSparseGrad | null) {
    this.accumulated = g;
  }

  /** The accumulated gradient of either kind ({@link Tensor.grad} or {@link Tensor.sparseGrad}): what optimizers read. */
  get gradient(): Gradient | null {
    return this.accumulated;
  }
  set gradient(g: Gradient | null) {
    this.accumulated = g;
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
    noteUpload(values, out);
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
    untrackTensor(this);
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
   * Gradients accumulate into leaves' `.grad` (`.sparseGrad` for embedding tables); the graph is freed afterwards.
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
