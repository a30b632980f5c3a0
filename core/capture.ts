/**
 * The captured step: record one eager training step as a flat program of kernel calls over
 * buffers it keeps, and replay that program for later inputs of the same shapes, with no tape,
 * no allocation and no op dispatch. See "The captured step" in docs/architecture.md.
 *
 * What a replay cannot take from the recording is the work that depends on the data: host
 * arrays derived from the inputs ({@link derive}), row-sparse gradients whose row count changes
 * with every batch, and optimizer scalars such as Adam's step ({@link dynamic}), and values read
 * back to decide something ({@link guard}). Those run again on every replay, in recorded order.
 */
import {
  getBackend,
  hasRangeAccess,
  readsAsync,
  sameShape,
  type Backend,
  type BackendKernels,
  type DType,
  type FloatArray,
  type Storage,
} from '../kernels/index.js';
import { setTrackHook, tidy, untrackTensor, type TidyResult } from './scope.js';
import { RowSparseGrad } from './sparse-grad.js';
import { Tensor } from './tensor.js';

/** A host array a kernel or an upload may take (ids, offsets, weights, labels). */
export type HostArray = Int32Array | Float32Array | Float64Array;

/**
 * Which arguments of each kernel it writes, and whether it overwrites them whole (then a replay
 * need not zero a buffer whose first use is that write); `whole` as a function decides from the
 * call's non-storage arguments. Typed by the kernel surface, so a new kernel fails to compile here
 * until it says what it writes.
 */
const WRITES: Record<
  keyof BackendKernels,
  { out: readonly number[]; whole: boolean | ((args: readonly unknown[]) => boolean) }
> = {
  fill: { out: [0], whole: true },
  copy: { out: [1], whole: true },
  unary: { out: [2], whole: true },
  affine: { out: [3], whole: true },
  axpby: { out: [4], whole: true },
  binary: { out: [5], whole: true },
  reduceSum: { out: [3], whole: true },
  reduceMaxLast: { out: [3], whole: true },
  permute: { out: [3], whole: true },
  // A block whose extent is the whole of `out` (a concat's gradient slices) overwrites it.
  copyBlock: { out: [3], whole: (a) => sameShape(a[6] as number[], a[4] as number[]) },
  matmul: { out: [2], whole: true },
  gatherRows: { out: [3], whole: true },
  embeddingBag: { out: [6], whole: true },
  segmentSumRows: { out: [5], whole: true },
  scatterAddRows: { out: [3], whole: false },
  prelu: { out: [3], whole: true },
  preluBackward: { out: [4, 5], whole: true },
  linearPrelu: { out: [7, 8], whole: true },
  linearPreluBackward: { out: [4, 5, 6], whole: true },
  softmaxLast: { out: [4], whole: true },
  bceWithLogits: { out: [2], whole: true },
  bceWithLogitsBackward: { out: [3], whole: true },
  productBce: { out: [3], whole: true },
  productBceBackward: { out: [4, 5], whole: true },
  adam: { out: [0, 2, 3], whole: false },
  sparseAdam: { out: [0, 1, 2], whole: false },
  sparseAdamSegments: { out: [0, 1, 2], whole: false },
};
const KERNELS = Object.keys(WRITES) as (keyof BackendKernels)[];

/**
 * Host arguments a kernel reads only through an offsets argument (`ids[offsets[b] .. offsets[b+1]]`),
 * never by their own length: an input array used only there (and in derive() or dynamic() work,
 * which run per batch) may change length between replays of one plan.
 */
const READ_THROUGH_OFFSETS: Partial<Record<keyof BackendKernels, { arrays: readonly number[]; offsets: number }>> = {
  embeddingBag: { arrays: [2, 4], offsets: 3 },
};

/** Where a replay finds a host array: in the current input, in a derived node's output, or a recorded constant. */
type Source =
  | { kind: 'input'; path: readonly string[] }
  | { kind: 'node'; node: number; key: string }
  | { kind: 'const'; copy: HostArray; hash: string };

type Arg = { storage: Storage } | { host: Source } | { value: unknown };

type Instr =
  | { kind: 'alloc'; storage: Storage }
  | { kind: 'kernel'; name: keyof BackendKernels; args: Arg[] }
  | { kind: 'write'; storage: Storage; source: Source | null }
  | { kind: 'dynamic'; label: string; run: () => void }
  | { kind: 'guard'; storage: Storage; check: (values: FloatArray) => boolean };

interface HostNode {
  label: string;
  inputs: (Source | null)[];
  fn: (...inputs: (HostArray | null)[]) => Record<string, unknown>;
  /** Lengths of array outputs and values of number outputs: a replay that derives others has new shapes. */
  shape: Record<string, number>;
}

/** A buffer whose size follows the data (rows of a sparse gradient), kept by a plan across replays. */
export class DynamicBuffer {
  /** The current buffer; null before the first {@link DynamicBuffer.ensure}. */
  storage: Storage | null = null;
  constructor(private readonly reuse: boolean) {}

  /** A buffer of exactly `size` elements: the previous one when it fits, else a new one. */
  ensure(backend: Backend, size: number, dtype: DType): Storage {
    const s = this.storage;
    if (this.reuse && s && s.size === size && s.dtype === dtype) return s;
    if (this.reuse && s) backend.free(s);
    this.storage = backend.alloc(size, dtype);
    return this.storage;
  }
}

let active: Recording | null = null;
/** Ids of buffers that outlive a recording (parameters, optimizer state), for comparing recordings. */
const stableIds = new WeakMap<Storage, number>();
let nextStableId = 0;

function fnv(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return (h >>> 0).toString(16);
}

function isStorage(v: unknown): v is Storage {
  return v !== null && typeof v === 'object' && 'size' in v && 'dtype' in v && !Array.isArray(v);
}

function isHostArray(a: unknown): a is HostArray {
  return a instanceof Int32Array || a instanceof Float32Array || a instanceof Float64Array;
}

/** One eager step being recorded: its program, the buffers it made, and what makes it unreplayable. */
class Recording {
  readonly program: Instr[] = [];
  readonly nodes: HostNode[] = [];
  /** Buffers made during the step (static ones the program reuses). */
  readonly owned = new Set<Storage>();
  /** Buffers made inside dynamic work: their size follows the data, so no static kernel may use them. */
  readonly dynamicOwned = new Set<Storage>();
  /** Static buffers that dynamic work reads or writes: the program does not show those uses. */
  readonly dynamicUses = new Set<Storage>();
  readonly buffers: DynamicBuffer[] = [];
  readonly tracked: Tensor[] = [];
  readonly leaves = new Set<Tensor>();
  /** Every gradient tensor accumulated into a leaf during the step (owned like any temporary). */
  readonly gradients = new Set<Tensor>();
  private readonly inputIndex = new Map<HostArray, readonly string[]>();
  private readonly derivedIndex = new Map<HostArray, { node: number; key: string }>();
  /** Set once something makes this step unreplayable. */
  reason: string | null = null;
  depth = 0;
  inDynamic = 0;
  allowRead = 0;
  private restore: (() => void) | null = null;

  constructor(
    readonly backend: Backend,
    input: object,
  ) {
    indexInput(input, [], this.inputIndex);
    envOf(this).input = input;
  }

  source(a: HostArray): Source {
    const path = this.inputIndex.get(a);
    if (path) return { kind: 'input', path };
    const d = this.derivedIndex.get(a);
    if (d) return { kind: 'node', ...d };
    const copy = a.slice();
    return { kind: 'const', copy, hash: `${a.constructor.name}:${a.length}:${fnv(new Uint8Array(copy.buffer))}` };
  }

  addNode(node: HostNode, outputs: Record<string, unknown>): void {
    const k = this.nodes.length;
    this.nodes.push(node);
    envOf(this).nodes[k] = outputs;
    for (const [key, v] of Object.entries(outputs)) if (isHostArray(v)) this.derivedIndex.set(v, { node: k, key });
  }

  fail(reason: string): void {
    this.reason ??= reason;
  }

  /** Route the backend's methods through the recorder until {@link Recording.stop}. */
  start(): void {
    const be = this.backend as unknown as Record<string, (...a: unknown[]) => unknown>;
    const originals = new Map<string, (...a: unknown[]) => unknown>();
    const wrap = (name: string, record: (orig: (...a: unknown[]) => unknown, a: unknown[]) => unknown): void => {
      const orig = be[name];
      originals.set(name, orig);
      be[name] = (...a: unknown[]): unknown => {
        if (this.depth > 0) return orig.apply(be, a);
        this.depth++;
        try {
          return record(orig, a);
        } finally {
          this.depth--;
        }
      };
    };
    const usedInDynamic = (a: readonly unknown[]): void => {
      for (const v of a) if (isStorage(v) && !this.dynamicOwned.has(v)) this.dynamicUses.add(v);
    };
    for (const name of KERNELS) {
      wrap(name, (orig, a) => {
        if (this.inDynamic === 0) this.recordKernel(name, a);
        else usedInDynamic(a);
        return orig.apply(be, a);
      });
    }
    const allocated = (s: Storage): Storage => {
      if (this.inDynamic > 0) this.dynamicOwned.add(s);
      else {
        this.owned.add(s);
        this.program.push({ kind: 'alloc', storage: s });
      }
      return s;
    };
    wrap('alloc', (orig, a) => allocated(orig.apply(be, a) as Storage));
    wrap('fromArray', (orig, a) => {
      const s = allocated(orig.apply(be, a) as Storage);
      if (this.inDynamic === 0)
        this.program.push({ kind: 'write', storage: s, source: this.source(a[0] as HostArray) });
      return s;
    });
    wrap('write', (orig, a) => {
      const s = a[0] as Storage;
      if (this.inDynamic > 0) usedInDynamic(a);
      else {
        if (this.dynamicOwned.has(s)) this.fail('a host write into a buffer whose size follows the data');
        const data = a[1];
        this.program.push({
          kind: 'write',
          storage: s,
          source: isHostArray(data) ? this.source(data) : this.source(Float64Array.from(data as ArrayLike<number>)),
        });
      }
      return orig.apply(be, a);
    });
    wrap('read', (orig, a) => {
      if (this.inDynamic > 0) usedInDynamic(a);
      if (this.inDynamic === 0 && this.allowRead === 0)
        this.fail(
          'the step reads a value back (item, toArray or data) outside guard(): the host work that depends on it cannot be replayed',
        );
      return orig.apply(be, a);
    });
    wrap('free', (orig, a) => {
      const s = a[0] as Storage;
      // Buffers made during the step belong to the recording; it frees them when it is discarded.
      if (this.owned.has(s) || this.dynamicOwned.has(s)) return undefined;
      return orig.apply(be, a);
    });
    this.restore = () => {
      for (const name of originals.keys()) delete be[name];
    };
    setTrackHook((t) => {
      this.tracked.push(t);
      if (t.backend !== this.backend)
        this.fail(`the step makes tensors on backend '${t.backend.name}' while '${this.backend.name}' is recorded`);
    });
  }

  stop(): void {
    active = null;
    setTrackHook(null);
    this.restore?.();
    this.restore = null;
  }

  private recordKernel(name: keyof BackendKernels, a: unknown[]): void {
    const args: Arg[] = a.map((v) => {
      if (isHostArray(v)) return { host: this.source(v) };
      if (isStorage(v)) {
        if (this.dynamicOwned.has(v))
          this.fail(
            `kernel '${name}' reads a buffer whose size follows the data (a row-sparse gradient's values) outside dynamic(): its row count changes with every batch`,
          );
        return { storage: v };
      }
      return { value: v };
    });
    this.program.push({ kind: 'kernel', name, args });
  }

  /**
   * The input paths whose lengths this recording does not depend on as far as its program shows:
   * arrays read only through offsets by kernels, by derive() nodes, by dynamic() work, or not at all.
   */
  lengthFree(input: object): Set<string> {
    const bound = new Set<string>();
    const bind = (x: Source | null): void => {
      if (x?.kind === 'input') bound.add(x.path.join('.'));
    };
    for (const ins of this.program) {
      if (ins.kind === 'write') bind(ins.source);
      else if (ins.kind === 'kernel') {
        const through = READ_THROUGH_OFFSETS[ins.name];
        ins.args.forEach((a, i) => {
          if ('host' in a && !through?.arrays.includes(i)) bind(a.host);
        });
      }
    }
    const free = new Set<string>();
    for (const path of inputLengths(input).keys()) if (!bound.has(path)) free.add(path);
    return free;
  }

  /** What two recordings must share to be the same step: instructions, buffer roles, constants, scalars. */
  signature(): string {
    const local = new Map<Storage, number>();
    const id = (s: Storage): string => {
      if (this.owned.has(s)) {
        if (!local.has(s)) local.set(s, local.size);
        return `t${local.get(s)}:${s.size}`;
      }
      if (!stableIds.has(s)) stableIds.set(s, nextStableId++);
      return `p${stableIds.get(s)}`;
    };
    const src = (s: Source | null): string =>
      s === null
        ? 'null'
        : s.kind === 'input'
          ? `in:${s.path.join('.')}`
          : s.kind === 'node'
            ? `n${s.node}.${s.key}`
            : s.hash;
    const lines = this.nodes.map((n) => `node ${n.label}(${n.inputs.map(src).join(',')}) ${JSON.stringify(n.shape)}`);
    for (const ins of this.program) {
      if (ins.kind === 'alloc') lines.push(`alloc ${id(ins.storage)}`);
      else if (ins.kind === 'write') lines.push(`write ${id(ins.storage)} ${src(ins.source)}`);
      else if (ins.kind === 'dynamic') lines.push(`dynamic ${ins.label}`);
      else if (ins.kind === 'guard') lines.push(`guard ${id(ins.storage)}`);
      else
        lines.push(
          `${ins.name}(${ins.args
            .map((x) => ('storage' in x ? id(x.storage) : 'host' in x ? src(x.host) : JSON.stringify(x.value)))
            .join(', ')})`,
        );
    }
    return lines.join('\n');
  }

  /** Free every buffer the recording made. */
  discard(): void {
    for (const s of this.owned) this.backend.free(s);
    for (const s of this.dynamicOwned) this.backend.free(s);
    for (const b of this.buffers) if (b.storage && !this.dynamicOwned.has(b.storage)) this.backend.free(b.storage);
    this.owned.clear();
    this.dynamicOwned.clear();
  }
}

/** Map every host array of the input object to its property path. */
function indexInput(value: unknown, path: string[], into: Map<HostArray, readonly string[]>): void {
  if (isHostArray(value)) {
    if (!into.has(value)) into.set(value, [...path]);
  } else if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const [k, v] of Object.entries(value)) indexInput(v, [...path, k], into);
  }
}

/**
 * The shapes of an input: array lengths and scalar values by path, except the lengths of the
 * paths in `free`; inputs with equal keys share a plan.
 */
function shapeKey(value: unknown, free: ReadonlySet<string> = NONE, path = ''): string {
  if (isHostArray(value)) return `${value.constructor.name}[${free.has(path) ? '*' : value.length}]`;
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object' && !ArrayBuffer.isView(value))
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}:${shapeKey(v, free, path === '' ? k : `${path}.${k}`)}`)
      .join(',')}}`;
  if (typeof value === 'function') return 'fn';
  return JSON.stringify(value) ?? String(value);
}
const NONE: ReadonlySet<string> = new Set();

/** The length of every host array of an input, by dotted path. */
function inputLengths(value: unknown, path = '', into = new Map<string, number>()): Map<string, number> {
  if (isHostArray(value)) into.set(path, value.length);
  else if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value))
    for (const [k, v] of Object.entries(value)) inputLengths(v, path === '' ? k : `${path}.${k}`, into);
  return into;
}

function atPath(root: unknown, path: readonly string[]): HostArray {
  let v = root as Record<string, unknown>;
  for (const k of path) v = v[k] as Record<string, unknown>;
  return v as unknown as HostArray;
}

// ---------------------------------------------------------------------------
// Hooks that data-dependent code calls; outside a recording each just runs its work now.

/** Whether a step is being recorded. */
export function isRecording(): boolean {
  return active !== null;
}

/**
 * A getter for a host array (ids, offsets) that work in {@link dynamic} reads: while recording,
 * it returns the array of the current replay's input (or derived node); otherwise the array itself.
 */
export function hostRef<T extends HostArray | null>(array: T): () => T {
  const rec = active;
  if (!rec || array === null) return () => array;
  const source = rec.source(array);
  return resolver(rec, source) as () => T;
}

function resolver(rec: Recording, source: Source): () => HostArray {
  if (source.kind === 'const') return () => source.copy;
  const env = envOf(rec);
  if (source.kind === 'input') return () => atPath(env.input, source.path);
  return () => env.nodes[source.node][source.key] as HostArray;
}

const envs = new WeakMap<Recording, { input: unknown; nodes: Record<string, unknown>[] }>();
function envOf(rec: Recording): { input: unknown; nodes: Record<string, unknown>[] } {
  let e = envs.get(rec);
  if (!e) {
    e = { input: null, nodes: [] };
    envs.set(rec, e);
  }
  return e;
}

/**
 * Host arrays computed from the step's input arrays (padded sequences, derived labels). `fn` must
 * depend only on `inputs`; a replay calls it again on the new input before any kernel runs, and a
 * result with other lengths (or other number fields) means new shapes, so the step is recorded again.
 */
export function derive<const I extends readonly (HostArray | null)[], O extends Record<string, unknown>>(
  label: string,
  inputs: I,
  fn: (...inputs: I) => O,
): O {
  const out = fn(...inputs);
  const rec = active;
  if (rec) {
    const shape: Record<string, number> = {};
    for (const [k, v] of Object.entries(out)) {
      if (isHostArray(v)) shape[k] = v.length;
      else if (typeof v === 'number') shape[k] = v;
    }
    rec.addNode(
      {
        label,
        inputs: inputs.map((a) => (a === null ? null : rec.source(a))),
        fn: fn as unknown as HostNode['fn'],
        shape,
      },
      out,
    );
  }
  return out;
}

/**
 * Work whose sizes or scalars follow the data (grouping ids, a sparse update, an optimizer's
 * step counter): run now, and, while recording, again at its place in every replay. It may call
 * kernels and read host arrays through {@link hostRef}; buffers it sizes come from {@link dynamicBuffer}.
 */
export function dynamic(label: string, run: () => void): void {
  const rec = active;
  if (!rec) {
    run();
    return;
  }
  rec.inDynamic++;
  try {
    run();
  } finally {
    rec.inDynamic--;
  }
  rec.program.push({ kind: 'dynamic', label, run });
}

/** A buffer for {@link dynamic} work: kept and resized by the plan while recording, a fresh one otherwise. */
export function dynamicBuffer(): DynamicBuffer {
  const b = new DynamicBuffer(active !== null);
  active?.buffers.push(b);
  return b;
}

/**
 * Read `tensor` and decide on the host (e.g. that a loss is finite). A replay reads it at the same
 * point; when `check` fails there, the replay stops (the updates come later in the step) and the
 * step runs eagerly instead, so it fails exactly as an eager step does.
 */
export function guard(tensor: Tensor, check: (values: FloatArray) => boolean): boolean {
  const rec = active;
  if (!rec) return check(tensor.toArray());
  rec.allowRead++;
  let values: FloatArray;
  try {
    values = tensor.toArray();
  } finally {
    rec.allowRead--;
  }
  rec.program.push({ kind: 'guard', storage: tensor.storage, check });
  return check(values);
}

/** Called by the backward pass for each leaf it accumulates into: a recording clears them at its end. */
export function noteLeaf(t: Tensor): void {
  const rec = active;
  if (!rec) return;
  rec.leaves.add(t);
  const g = t.gradient;
  if (g instanceof Tensor) rec.gradients.add(g);
  else if (g) for (const t of g.held) rec.gradients.add(t);
}

/** Called by `Tensor.fromArray`: the values a recorded upload came from (before any dtype conversion). */
export function noteUpload(values: ArrayLike<number>, out: Tensor): void {
  const rec = active;
  if (!rec || rec.inDynamic > 0) return;
  for (let i = rec.program.length - 1; i >= 0; i--) {
    const ins = rec.program[i];
    if (ins.kind === 'write' && ins.storage === out.storage) {
      ins.source = rec.source(isHostArray(values) ? values : Float64Array.from(values));
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// The plan and compileStep

class ShapeChange extends Error {}
class GuardFailed extends Error {}

/** A recorded step, ready to replay. */
class Plan {
  private readonly run: (() => void)[] = [];
  /** Per offsets-read kernel call: its arrays and offsets, checked to agree before a replay runs anything. */
  private readonly bags: { arrays: (() => HostArray | null)[]; offsets: () => HostArray }[] = [];
  private readonly env: { input: unknown; nodes: Record<string, unknown>[] };

  constructor(
    private readonly rec: Recording,
    private readonly outputs: { storage: Storage; shape: readonly number[]; dtype: DType }[],
  ) {
    this.env = envOf(rec);
    const be = rec.backend;
    const keep = new Set([...rec.dynamicUses, ...outputs.map((o) => o.storage)]);
    const program = elideCopies(rec.program, rec.owned, keep);
    const firstUse = firstUses(program);
    for (const ins of program) {
      if (ins.kind === 'alloc') {
        if (firstUse.get(ins.storage) !== 'whole') {
          const s = ins.storage;
          this.run.push(() => be.fill(s, 0));
        }
      } else if (ins.kind === 'write') {
        const s = ins.storage;
        const get = ins.source ? resolver(rec, ins.source) : null;
        if (get) this.run.push(() => be.write(s, get()));
      } else if (ins.kind === 'dynamic') this.run.push(ins.run);
      else if (ins.kind === 'guard') {
        const { storage, check } = ins;
        this.run.push(() => {
          if (!check(be.read(storage))) throw new GuardFailed();
        });
      } else {
        // Looked up per call, so that a wrapper installed later (a profiler) sees replayed kernels too.
        const kernels = be as unknown as Record<string, (...a: unknown[]) => void>;
        const name = ins.name;
        const fn = (...a: unknown[]): void => kernels[name](...a);
        const args = ins.args.map((x) => ('storage' in x ? x.storage : 'value' in x ? x.value : null));
        const hosts = ins.args.flatMap((x, i) => ('host' in x ? [[i, resolver(rec, x.host)] as const] : []));
        const through = READ_THROUGH_OFFSETS[name];
        if (through) {
          const at = (i: number): (() => HostArray | null) => {
            const x = ins.args[i];
            return 'host' in x ? resolver(rec, x.host) : () => null;
          };
          const offsets = at(through.offsets);
          if ('host' in ins.args[through.offsets])
            this.bags.push({ arrays: through.arrays.map(at), offsets: offsets as () => HostArray });
        }
        if (hosts.length === 0) this.run.push(() => fn(...args));
        else
          this.run.push(() => {
            for (const [i, get] of hosts) args[i] = get();
            fn(...args);
          });
      }
    }
  }

  /** Derive the host arrays for `input`, then run every instruction. */
  replay(input: unknown): Tensor[] {
    const env = this.env;
    env.input = input;
    const nodes: Record<string, unknown>[] = [];
    const resolveNow = (s: Source): HostArray =>
      s.kind === 'input' ? atPath(input, s.path) : s.kind === 'node' ? (nodes[s.node][s.key] as HostArray) : s.copy;
    for (const node of this.rec.nodes) {
      const args = node.inputs.map((s) => (s === null ? null : resolveNow(s)));
      const out = node.fn(...args);
      for (const [k, n] of Object.entries(node.shape)) {
        const v = out[k];
        if ((isHostArray(v) ? v.length : v) !== n) throw new ShapeChange();
      }
      nodes.push(out);
      env.nodes = nodes;
    }
    env.nodes = nodes;
    // The arrays of a bag may change length between replays, so check what eager checks: that
    // offsets end at their length (else the eager step runs, and fails with its error).
    for (const { arrays, offsets } of this.bags) {
      const o = offsets();
      const end = o[o.length - 1];
      for (const get of arrays) {
        const a = get();
        if (a !== null && a.length !== end) throw new GuardFailed();
      }
    }
    for (const f of this.run) f();
    const be = this.rec.backend;
    return this.outputs.map(({ storage, shape, dtype }) => {
      const t = Tensor.zeros(shape, { dtype, backend: be });
      be.copy(storage, t.storage);
      return t;
    });
  }

  dispose(): void {
    this.rec.discard();
  }
}

/** `ins` with every use of buffer `from` made a use of `to`. */
function renamed(ins: Instr, from: Storage, to: Storage): Instr {
  if (ins.kind === 'kernel') {
    if (!ins.args.some((a) => 'storage' in a && a.storage === from)) return ins;
    return { ...ins, args: ins.args.map((a) => ('storage' in a && a.storage === from ? { storage: to } : a)) };
  }
  if ((ins.kind === 'alloc' || ins.kind === 'write' || ins.kind === 'guard') && ins.storage === from)
    return { ...ins, storage: to };
  return ins;
}

function uses(ins: Instr, s: Storage): boolean {
  if (ins.kind === 'kernel') return ins.args.some((a) => 'storage' in a && a.storage === s);
  return ins.kind !== 'dynamic' && ins.storage === s;
}

/**
 * The program without the copies that only move a value to a new buffer: a reshape copies (no tensor
 * shares a buffer, so that freeing one never frees another), but in a plan, where a copy's source is
 * never used again and its destination not before, whatever wrote the source can write the
 * destination instead. Only buffers of the step qualify, none that dynamic work touches (its uses
 * are not in the program) and none that the step returns.
 */
function elideCopies(program: readonly Instr[], owned: ReadonlySet<Storage>, keep: ReadonlySet<Storage>): Instr[] {
  let out = [...program];
  for (let c = 0; c < out.length; c++) {
    const ins = out[c];
    if (ins.kind !== 'kernel' || ins.name !== 'copy') continue;
    const [a, b] = ins.args;
    if (!('storage' in a) || !('storage' in b)) continue;
    const [src, dst] = [a.storage, b.storage];
    if (src === dst || src.size !== dst.size || src.dtype !== dst.dtype) continue;
    if (!owned.has(src) || !owned.has(dst) || keep.has(src) || keep.has(dst)) continue;
    const earlier = out.slice(0, c);
    // dst is only allocated before the copy; src is not used after it.
    if (earlier.some((x) => uses(x, dst) && !(x.kind === 'alloc' && x.storage === dst))) continue;
    if (out.slice(c + 1).some((x) => uses(x, src))) continue;
    const before = earlier.filter((x) => !(x.kind === 'alloc' && x.storage === dst)).map((x) => renamed(x, src, dst));
    out = [...before, ...out.slice(c + 1)];
    c = before.length - 1; // the next instruction after the removed copy
  }
  return out;
}

/** A block of a copyBlock's output: where it begins and its extent, per axis. */
interface Block {
  begin: readonly number[];
  extent: readonly number[];
}

function overlap(a: Block, b: Block): boolean {
  return a.begin.every((x, i) => x < b.begin[i] + b.extent[i] && b.begin[i] < x + a.extent[i]);
}

const volume = (b: Block): number => b.extent.reduce((n, e) => n * e, 1);

/**
 * For each buffer the step made: whether its first use overwrites it whole (else a replay zeroes it
 * first). Disjoint copyBlock writes that together cover a buffer before anything reads it (a concat's
 * parts) overwrite it whole too.
 */
function firstUses(program: readonly Instr[]): Map<Storage, 'whole' | 'other'> {
  const seen = new Map<Storage, 'whole' | 'other'>();
  // Buffers written so far only by disjoint copyBlocks that do not cover them yet: those blocks.
  const parts = new Map<Storage, { blocks: Block[]; covered: number }>();
  for (const ins of program) {
    if (ins.kind === 'write' && !seen.has(ins.storage)) seen.set(ins.storage, 'whole');
    else if ((ins.kind === 'write' || ins.kind === 'guard') && parts.delete(ins.storage)) continue;
    else if (ins.kind === 'guard' && !seen.has(ins.storage)) seen.set(ins.storage, 'other');
    // Work run per replay may read what it likes: a buffer it meets half written keeps its zeroing.
    else if (ins.kind === 'dynamic') parts.clear();
    else if (ins.kind === 'kernel') {
      const w = WRITES[ins.name];
      const values = ins.args.map((x) => ('value' in x ? x.value : undefined));
      const whole = typeof w.whole === 'function' ? w.whole(values) : w.whole;
      const reads = new Set<Storage>();
      ins.args.forEach((a, i) => {
        if ('storage' in a && !w.out.includes(i)) reads.add(a.storage);
      });
      // copyBlock(src, srcShape, srcBegin, out, outShape, outBegin, extent): a block of `out`.
      const block = (s: Storage, i: number): Block | null =>
        ins.name === 'copyBlock' && i === 3 && !reads.has(s)
          ? { begin: values[5] as number[], extent: values[6] as number[] }
          : null;
      ins.args.forEach((a, i) => {
        if (!('storage' in a)) return;
        const s = a.storage;
        const p = parts.get(s);
        if (p) {
          const b = block(s, i);
          if (!b || p.blocks.some((o) => overlap(o, b))) parts.delete(s);
          else {
            p.blocks.push(b);
            p.covered += volume(b);
            if (p.covered === s.size) {
              seen.set(s, 'whole');
              parts.delete(s);
            }
          }
          return;
        }
        if (seen.has(s)) return;
        const first = whole && w.out.includes(i) && !reads.has(s) ? 'whole' : 'other';
        seen.set(s, first);
        const b = first === 'other' ? block(s, i) : null;
        if (b) parts.set(s, { blocks: [b], covered: volume(b) });
      });
    }
  }
  return seen;
}

/** How a compiled step runs. */
export type StepMode = 'captured' | 'eager';

/** Options of {@link compileStep}. */
export interface CompileStepOptions {
  /** `captured` (default) records and replays; `eager` always runs the function, for comparison. */
  mode?: StepMode;
  /** Plans kept for different input shapes (the last batch of an epoch is often smaller); default 4. */
  maxPlans?: number;
  /**
   * Steps recorded in a row without a replay after which capture stops (input shapes that do not
   * repeat, such as batches of bags with varying lengths, gain nothing from it); default 16.
   */
  maxRecordingsWithoutReplay?: number;
}

/** Defaults of {@link compileStep}. */
export const COMPILE_STEP_DEFAULTS = {
  mode: 'captured' as StepMode,
  maxPlans: 4,
  maxRecordingsWithoutReplay: 16,
} as const;

/** What a compiled step did so far. */
export interface CompiledStepStats {
  /** Steps run by replaying a plan. */
  replays: number;
  /** Steps run eagerly while being recorded. */
  recordings: number;
  /** Steps run eagerly without recording (fallback, eager mode, or a guard that failed in a replay). */
  eager: number;
  /** Plans discarded because a derived host array changed shape. */
  rerecords: number;
}

/** A training step that replays a recorded plan where it can; see {@link compileStep}. */
export interface CompiledStep<I extends object, R extends Tensor | Tensor[] | Record<string, Tensor>> {
  (input: I): R;
  /** Why the step runs eagerly for good (null while capture is possible). */
  readonly fallbackReason: string | null;
  readonly stats: Readonly<CompiledStepStats>;
  /** Free every plan's buffers; the step keeps working (it records again). */
  dispose(): void;
}

/**
 * Compile a training step `step(input)` (forward, backward and optimizer update, returning
 * tensors such as the loss) into a replayable plan. Every host array in `input` (nested plain
 * objects of typed arrays and scalars) is an input slot; inputs whose array lengths and scalars
 * are equal share a plan, except for arrays that kernels read only through offsets (a bag's ids
 * and values): their lengths may vary between replays once two recordings of other lengths agree.
 *
 * A plan is made from a recorded eager step and used once a second recording of the same shapes
 * agrees with it, instruction by instruction (so a host array or scalar that silently followed
 * the data is caught, not frozen). Steps that create persistent state (an optimizer's first step)
 * are not used as recordings. Where a step cannot be replayed (it reads values back outside
 * {@link guard}, uses a data-sized buffer in a static kernel, recordings disagree, or the backend
 * keeps storage on a device), it runs eagerly for good and {@link CompiledStep.fallbackReason} says
 * why. Returned tensors are fresh copies. After a recorded or replayed step, parameters' gradients
 * are cleared (the plan owns their buffers).
 */
export function compileStep<I extends object, R extends Tensor | Tensor[] | Record<string, Tensor>>(
  step: (input: I) => R,
  options: CompileStepOptions = {},
): CompiledStep<I, R> {
  for (const k of Object.keys(options))
    if (!(k in COMPILE_STEP_DEFAULTS)) throw new Error(`compileStep: unknown option '${k}'`);
  const mode = options.mode ?? COMPILE_STEP_DEFAULTS.mode;
  if (mode !== 'captured' && mode !== 'eager')
    throw new Error(`compileStep: mode must be 'captured' or 'eager', got '${String(mode)}'`);
  const maxPlans = options.maxPlans ?? COMPILE_STEP_DEFAULTS.maxPlans;
  if (!(Number.isInteger(maxPlans) && maxPlans >= 1))
    throw new Error(`compileStep: maxPlans must be a positive integer, got ${maxPlans}`);
  const patience = options.maxRecordingsWithoutReplay ?? COMPILE_STEP_DEFAULTS.maxRecordingsWithoutReplay;
  if (!(Number.isInteger(patience) && patience >= 2))
    throw new Error(`compileStep: maxRecordingsWithoutReplay must be an integer ≥ 2, got ${patience}`);
  let sinceReplay = 0;
  /** Keyed by the input's shapes without the lengths of the plan's length-free paths (`free`). */
  const plans = new Map<string, { plan: Plan; shape: R; free: ReadonlySet<string> }>();
  const pending = new Map<string, { signature: string; misses: number; lengths: Map<string, number> }>();
  const stats: CompiledStepStats = { replays: 0, recordings: 0, eager: 0, rerecords: 0 };
  let fallbackReason: string | null = null;

  const eager = (input: I): R => {
    stats.eager++;
    return step(input);
  };

  const record = (input: I, backend: Backend): R => {
    stats.recordings++;
    sinceReplay++;
    const rec = new Recording(backend, input);
    let result: R;
    rec.start();
    active = rec;
    try {
      result = tidy(() => step(input) as TidyResult) as R;
    } catch (e) {
      rec.stop();
      finish(rec);
      rec.discard();
      throw e;
    } finally {
      rec.stop();
    }
    const persistent = finish(rec);
    const outs = outputTensors(result);
    const copies = outs.map((t) => t.detach());
    const returned = rebuild(result, copies);
    if (rec.reason) {
      fallbackReason = rec.reason;
      rec.discard();
      disposeAll();
      return returned;
    }
    if (persistent) {
      // It created state that outlives the step (an optimizer's first moments): not a steady step.
      rec.discard();
      return returned;
    }
    const signature = rec.signature();
    // Recordings are compared under a key without the lengths of the arrays the program reads
    // only through offsets (bags), so that batches of bags of other total lengths can agree.
    const candidates = rec.lengthFree(input);
    const key = shapeKey(input, candidates);
    const all = inputLengths(input);
    const lengths = new Map([...candidates].map((p) => [p, all.get(p)!]));
    const seen = pending.get(key);
    // Lengths that differ between two recordings whose programs agree are shown not to matter.
    const differ = [...candidates].filter((p) => seen !== undefined && seen.lengths.get(p) !== lengths.get(p));
    if (seen && seen.signature === signature) {
      pending.delete(key);
      // Only lengths that differed are freed: one that agreed might still be frozen in a scalar.
      const free = new Set(differ);
      const planKey = shapeKey(input, free);
      plans.get(planKey)?.plan.dispose();
      plans.delete(planKey);
      if (plans.size >= maxPlans) {
        const [oldest, p] = plans.entries().next().value as [string, { plan: Plan }];
        p.plan.dispose();
        plans.delete(oldest);
      }
      const plan = new Plan(
        rec,
        outs.map((t) => ({ storage: t.storage, shape: t.shape, dtype: t.dtype })),
      );
      plans.set(planKey, { plan, shape: result, free });
    } else {
      // Two recordings of other bag lengths may differ legitimately (a length that does matter):
      // only disagreement at equal lengths means a host value silently follows the data.
      const misses = seen ? seen.misses + (differ.length > 0 ? 0 : 1) : 0;
      rec.discard();
      if (misses >= 2) {
        fallbackReason = `two recordings of a step with the same input shapes differ: ${firstDifference(seen!.signature, signature)}`;
        disposeAll();
      } else {
        pending.delete(key);
        pending.set(key, { signature, misses, lengths });
        // Only the latest shapes can still repeat; the oldest signature goes first.
        if (pending.size > patience) pending.delete(pending.keys().next().value as string);
      }
    }
    if (fallbackReason === null && sinceReplay >= patience) {
      fallbackReason = `${sinceReplay} steps were recorded without one replay: the input shapes do not repeat (batches of varying lengths?), so capture gains nothing`;
      disposeAll();
    }
    return returned;
  };

  const disposeAll = (): void => {
    for (const { plan } of plans.values()) plan.dispose();
    plans.clear();
    pending.clear();
  };

  const compiled = ((input: I): R => {
    if (mode === 'eager' || fallbackReason !== null || active !== null) return eager(input);
    let key = '';
    let hit: { plan: Plan; shape: R } | undefined;
    for (const [k, p] of plans) {
      if (shapeKey(input, p.free) === k) {
        key = k;
        hit = p;
        break;
      }
    }
    if (hit) {
      try {
        const copies = hit.plan.replay(input);
        stats.replays++;
        sinceReplay = 0;
        return rebuild(hit.shape, copies);
      } catch (e) {
        if (e instanceof GuardFailed) return eager(input);
        if (!(e instanceof ShapeChange)) throw e;
        stats.rerecords++;
        hit.plan.dispose();
        plans.delete(key);
      }
    }
    const backend = findBackend();
    if (typeof backend === 'string') {
      fallbackReason = backend;
      return eager(input);
    }
    return record(input, backend);
  }) as CompiledStep<I, R>;
  Object.defineProperties(compiled, {
    fallbackReason: { get: () => fallbackReason },
    stats: { get: () => ({ ...stats }) },
    dispose: { value: disposeAll },
  });
  return compiled;
}

/** The backend a step runs on (the default one; a recording fails if tensors appear elsewhere), or why it cannot be recorded. */
function findBackend(): Backend | string {
  const be = getBackend();
  if (readsAsync(be)) return `backend '${be.name}' completes kernels asynchronously; capture needs a synchronous one`;
  if (!hasRangeAccess(be))
    return `backend '${be.name}' keeps storage on a device; capture supports host-memory backends (reference, wasm)`;
  return be;
}

/**
 * End of a recording: clear leaves' gradients (the recording owns their buffers), keep the
 * finalizer from freeing recorded buffers, and tell whether the step created persistent tensors.
 */
function finish(rec: Recording): boolean {
  const grads = rec.gradients;
  for (const leaf of rec.leaves) {
    const g = leaf.gradient;
    if (g instanceof Tensor) grads.add(g);
    else if (g instanceof RowSparseGrad) for (const t of g.held) grads.add(t);
    leaf.gradient = null;
  }
  let persistent = false;
  for (const t of rec.tracked) {
    if (t.isDisposed) continue;
    if (t.keepAlive && !grads.has(t)) {
      // Lives on as an ordinary tensor (e.g. optimizer state created on a first step).
      rec.owned.delete(t.storage);
      persistent = true;
      continue;
    }
    untrackTensor(t);
  }
  return persistent;
}

function outputTensors(r: Tensor | Tensor[] | Record<string, Tensor>): Tensor[] {
  if (r instanceof Tensor) return [r];
  if (Array.isArray(r)) return r;
  return Object.values(r);
}

function rebuild<R extends Tensor | Tensor[] | Record<string, Tensor>>(shape: R, copies: Tensor[]): R {
  if (shape instanceof Tensor) return copies[0] as R;
  if (Array.isArray(shape)) return copies as R;
  return Object.fromEntries(Object.keys(shape).map((k, i) => [k, copies[i]])) as R;
}

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    if (x[i] !== y[i]) return `instruction ${i}: '${x[i] ?? '(end)'}' then '${y[i] ?? '(end)'}'`;
  return 'no difference found';
}
