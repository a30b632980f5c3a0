/**
 * The wasm backend: tensors live in one WebAssembly memory (see `arena.ts`) and float32
 * kernels run as WebAssembly SIMD generated in `kernels.ts`.
 *
 * What runs where, for float32:
 * - wasm: GEMM (all layouts, batched), unary and affine/axpby, binary ops whose broadcast
 *   folds into a [rows, cols] view (same shape, bias rows, per-row and scalar operands),
 *   reduceSum over leading or trailing axes, gatherRows, embeddingBag, segmentSumRows,
 *   scatterAddRows, prelu and its backward, linearPrelu (the GEMM with a bias + PReLU epilogue)
 *   and its backward pass, the BCE kernels, adam, sparseAdam and sparseAdamSegments, copyBlock
 *   (vector moves per contiguous run, or memory.copy for long runs), fill and copy, and the
 *   arena's zeroing (memory.fill and memory.copy: on shared memory the typed-array natives are slow).
 * - host loops over the arena's views (rarely hot, documented fallbacks): general
 *   broadcasts and reductions, permute, reduceMaxLast, softmaxLast (reference code).
 * float64 (gradient checks) runs the reference kernels over the arena's Float64Array view.
 *
 * With `threads` > 1 the arena memory is shared and large float32 kernels are cut into
 * chunks that a {@link ThreadPool} spreads over worker threads (see `pool.ts`). Every cut
 * keeps each output element's arithmetic and summation order, so results are identical
 * to a single-threaded run. Kernels that accumulate into shared outputs (scatterAddRows,
 * the slope and bias gradients of preluBackward and linearPreluBackward, reductions) stay
 * serial; sparseAdam's rows are distinct and split like any row kernel.
 */
import type {
  AdamHyper,
  Backend,
  BagMode,
  DType,
  FloatArray,
  MatmulGeometry,
  RangeAccess,
  Storage,
} from '../backend.js';
import { defineKernels, kernelBase } from '../kernel-table.js';
import { checkRange, HostStorage, ReferenceBackend } from '../reference.js';
import { sameShape, stridesOf } from '../shape-util.js';
import { Arena, WasmStorage, type ArenaStats } from './arena.js';
import {
  kernelModule,
  MATH_IMPORTS,
  MATH_UNARY,
  relaxedSimdSupported,
  SIMD_BINARY,
  SIMD_UNARY,
  TILE_M,
  TILE_N,
  type SimdVariant,
} from './kernels.js';
import {
  argNames,
  argSpecs,
  checkLayout,
  LAYOUTS,
  type ArgSpec,
  type KernelArgs,
  type KernelName,
  type Layout,
  type SplitUnit,
} from './layouts.js';
import { CONTROL_BYTES, MAX_ARGS, MAX_CHUNKS, poolSupported, ThreadPool, type PoolStats } from './pool.js';

/** Options of {@link WasmBackend}. */
export interface WasmBackendOptions {
  /** Initial arena size in 64 KiB pages (it grows on demand). */
  initialPages?: number;
  /**
   * Threads that compute, the calling thread included: 1 runs everything on the caller;
   * `'auto'` (the default) picks {@link autoThreads}. Counts above 1 need Node's worker
   * threads; elsewhere the backend runs on one thread.
   */
  threads?: number | 'auto';
  /**
   * Stop cutting a kernel for a while when its parallel runs measure no faster than serial
   * ones (cores busy with other work); default true. Tests turn it off to always cut.
   */
  adaptive?: boolean;
  /** Work thresholds overriding {@link PARALLEL_MIN} (0 cuts every kernel, which tests use). */
  parallelMin?: Partial<ParallelThresholds>;
  /**
   * Which SIMD the kernels use (see {@link SimdVariant}): `'relaxed'` (relaxed SIMD's fused
   * multiply-add, an error where the runtime lacks it), `'plain'`, or `'auto'` (the default,
   * {@link DEFAULT_WASM_SIMD}): relaxed where {@link relaxedSimdSupported}, else plain.
   */
  simd?: WasmSimd;
}

/** The values of {@link WasmBackendOptions.simd}. */
export type WasmSimd = 'auto' | SimdVariant;

/** The default of {@link WasmBackendOptions.simd}. */
export const DEFAULT_WASM_SIMD: WasmSimd = 'auto';

const WASM_SIMD_VALUES: readonly WasmSimd[] = ['auto', 'relaxed', 'plain'];
const OPTION_KEYS = new Set<string>(['initialPages', 'threads', 'adaptive', 'parallelMin', 'simd']);

/** The runtime, as an error message names it. */
function runtimeName(): string {
  const versions = (globalThis as { process?: { versions?: { node?: string; v8?: string } } }).process?.versions;
  if (versions?.node) return `Node ${versions.node} (V8 ${versions.v8 ?? '?'})`;
  const agent = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent;
  return agent ? `this browser (${agent})` : 'this JavaScript runtime';
}

/** The variant `simd` asks for in this runtime; `'relaxed'` where unsupported is an error saying what to do. */
export function resolveSimd(simd: WasmSimd = DEFAULT_WASM_SIMD): SimdVariant {
  if (!WASM_SIMD_VALUES.includes(simd)) {
    throw new Error(`wasm backend: unknown simd '${String(simd)}'; expected ${WASM_SIMD_VALUES.join(', ')}`);
  }
  if (simd === 'plain') return 'plain';
  if (relaxedSimdSupported()) return 'relaxed';
  if (simd === 'auto') return 'plain';
  throw new Error(
    `wasm backend: simd 'relaxed' needs WebAssembly relaxed SIMD, which ${runtimeName()} does not enable. ` +
      'Node 20 enables it with `node --experimental-wasm-relaxed-simd`; Chromium 114+ and Node 22+ have it ' +
      "by default. Or pass simd: 'auto' (relaxed where supported, else plain) or 'plain'.",
  );
}

/** Work below which each family of kernels stays on the calling thread. */
export interface ParallelThresholds {
  /** GEMM multiply-adds (m·n·k). */
  gemm: number;
  /** Elements of a memory-bound SIMD kernel (unary, affine, binary, prelu, Adam). */
  simd: number;
  /** Elements of a kernel that calls host math per element (exp, sigmoid, BCE, pow). */
  math: number;
  /** Floats moved by a row kernel (gather, embedding bags, segment sums, matrix–vector). */
  rows: number;
}

/**
 * Work (in multiply-adds or element operations) below which a kernel stays on the calling
 * thread: waking a worker and meeting at the barrier costs a few microseconds, which
 * smaller kernels do not win back. Measured with `benchmarks/kernels-wasm.ts`.
 */
export const PARALLEL_MIN: Readonly<ParallelThresholds> = {
  gemm: 1 << 17,
  simd: 1 << 16,
  math: 1 << 12,
  rows: 1 << 15,
};

/**
 * What one element of the BCE kernels costs in units of the `math` threshold (one host-math
 * call): their f64 stable math calls exp and log1p several times. Measured by the kernel benchmark
 * against sigmoid (61 Melem/s): bceWithLogits 27, productBce 5. A batch of 1024 rows of the
 * product BCE takes about 0.3 ms on one thread, well worth cutting.
 */
const BCE_COST = 2;

/**
 * What one element of a lazy Adam row update costs in units of the `rows` threshold (one float of a
 * gathered row): it reads and writes the row of the parameter and of both moments, scattered over
 * tables far larger than the caches, and takes a square root and a division. A batch's rows of one
 * table (1,020 rows of 18) took 0.2-0.27 ms on one thread, where a gather of as many floats takes 0.06.
 */
const SPARSE_ADAM_COST = 4;
const PRODUCT_BCE_COST = 12;

/**
 * A batched product whose items have at most this many multiply-adds (m·n·k) runs as one
 * batchedSmallGemm call rather than a packed GEMM or vector kernel per item: below it the calls and
 * the packing cost more than the arithmetic (DIN's per-row [1, 10]·[10, 18] pooling: 180).
 */
const SMALL_BATCHED_GEMM = 4096;

/**
 * Bytes of packed A rows one serial GEMM call streams past each B panel. The panels loop outside the
 * row tiles, so all of packed A is read once per panel: a whole DIN unit layer's A (10,240 rows of
 * k = 80, 3.3 MB) no longer fits in L2 and came from L3 once per panel; blocks of rows keep it in L2.
 * (Threaded runs already cut rows into chunks of this order.)
 */
const SERIAL_A_BLOCK = 128 * 1024;

/** Rows per block of a serial GEMM: a multiple of the tile height whose packed A fits {@link SERIAL_A_BLOCK}. */
function serialRowBlock(m: number, k: number): number {
  const rows = Math.max(TILE_M, Math.floor(SERIAL_A_BLOCK / (4 * k) / TILE_M) * TILE_M);
  return Math.min(rows, Math.ceil(m / TILE_M) * TILE_M);
}

/**
 * Longest k of one pass of an Aᵀ·B product (see gemmBlocked): 2048 rows keep a B panel (64 KiB) and
 * the A panels of a layer's weight gradient in L2. Measured on the DIN unit's 40×80 gradient over
 * 10,240 rows: 31 GFLOP/s in one pass, 43 in blocks of 1024 or 2048.
 */
const K_BLOCK = 2048;

/**
 * The thread count `'auto'` resolves to: 2 where the runtime supports the pool, the
 * machine has more than one core and one of them is idle (the one-minute load average,
 * where the OS reports one, leaves a core free), else 1. A second thread only pays on a
 * core nobody else wants: on a saturated machine two threads measured no faster than
 * one. More than two were not measured, so `'auto'` does not go beyond two.
 */
export function autoThreads(): number {
  if (!poolSupported()) return 1;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const os = proc?.getBuiltinModule?.('node:os') as
    { availableParallelism?: () => number; cpus?: () => unknown[]; loadavg?: () => number[] } | undefined;
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const cores = os?.availableParallelism?.() ?? os?.cpus?.().length ?? nav?.hardwareConcurrency ?? 1;
  // This thread accounts for one unit of load; another half unit still leaves a core mostly free.
  const load = os?.loadavg?.()[0] ?? 0;
  return cores > 1 && load < cores - 0.5 ? 2 : 1;
}

function resolveThreads(t: number | 'auto' | undefined): number {
  if (t === undefined || t === 'auto') return autoThreads();
  if (!Number.isFinite(t) || t <= 1 || !poolSupported()) return 1;
  return Math.min(Math.floor(t), MAX_CHUNKS);
}

const BAG_MODE: Record<BagMode, number> = { sum: 0, mean: 1, sqrtn: 2 };
const wasmUnary = new Set<string>([...SIMD_UNARY, ...MATH_UNARY]);
const mathUnary = new Set<string>(MATH_UNARY);
const wasmBinary = new Set<string>([...SIMD_BINARY, 'pow']);

/** How a broadcast binary op folds into the `[rows, cols]` form of the wasm kernel. */
export interface BroadcastPlan {
  rows: number;
  cols: number;
  aRow: number;
  aSplat: boolean;
  bRow: number;
  bSplat: boolean;
}

/**
 * Split the output dims into leading and trailing groups so that each operand is, in
 * each group, either fully present or fully broadcast. Null when no split works
 * (e.g. [N,1,M] against [1,K,M]); those go to the generic path.
 */
export function planBroadcast(
  aShape: readonly number[],
  bShape: readonly number[],
  outShape: readonly number[],
): BroadcastPlan | null {
  const rank = outShape.length;
  const pad = (s: readonly number[]): number[] => [...Array<number>(rank - s.length).fill(1), ...s];
  const a = pad(aShape);
  const b = pad(bShape);
  const all = (x: number[], from: number, to: number, pred: (d: number, o: number) => boolean): boolean => {
    for (let d = from; d < to; d++) if (!pred(x[d], outShape[d])) return false;
    return true;
  };
  const full = (d: number, o: number): boolean => d === o;
  const bcast = (d: number): boolean => d === 1;
  // The earliest split gives the longest rows, i.e. the longest SIMD loops.
  for (let s = 0; s <= rank; s++) {
    let rows = 1;
    let cols = 1;
    for (let d = 0; d < s; d++) rows *= outShape[d];
    for (let d = s; d < rank; d++) cols *= outShape[d];
    const side = (x: number[]): { row: number; splat: boolean } | null => {
      const trailFull = all(x, s, rank, full);
      const trailB = all(x, s, rank, bcast);
      const leadFull = all(x, 0, s, full);
      const leadB = all(x, 0, s, bcast);
      if (!(trailFull || trailB) || !(leadFull || leadB)) return null;
      const splat = !trailFull;
      return { row: leadFull ? (splat ? 1 : cols) : 0, splat };
    };
    const pa = side(a);
    const pb = side(b);
    if (pa && pb) return { rows, cols, aRow: pa.row, aSplat: pa.splat, bRow: pb.row, bSplat: pb.splat };
  }
  return null;
}

/**
 * A broadcast that {@link planBroadcast} cannot fold, split off its leading dims where both
 * operands are full (e.g. [B, L, H] + [B, 1, H], DIN's per-row term added at every position):
 * the kernel's [rows, cols] plan then runs once per leading index. Null when no such split helps.
 */
export function planOuterBroadcast(
  aShape: readonly number[],
  bShape: readonly number[],
  outShape: readonly number[],
): { outer: number; aStep: number; bStep: number; outStep: number; plan: BroadcastPlan } | null {
  const rank = outShape.length;
  const pad = (s: readonly number[]): number[] => [...Array<number>(rank - s.length).fill(1), ...s];
  const a = pad(aShape);
  const b = pad(bShape);
  let outer = 1;
  for (let s = 1; s < rank; s++) {
    if (a[s - 1] !== outShape[s - 1] || b[s - 1] !== outShape[s - 1]) return null;
    outer *= outShape[s - 1];
    const plan = planBroadcast(a.slice(s), b.slice(s), outShape.slice(s));
    if (!plan) continue;
    const size = (x: readonly number[]): number => x.slice(s).reduce((p, d) => p * d, 1);
    return { outer, aStep: size(a), bStep: size(b), outStep: size(outShape), plan };
  }
  return null;
}

/** Argument names and specs of every layout, in parameter order, looked up once. */
const LAYOUT_NAMES = Object.fromEntries((Object.keys(LAYOUTS) as Layout[]).map((l) => [l, argNames(l)])) as Record<
  Layout,
  readonly string[]
>;
const LAYOUT_SPECS = Object.fromEntries((Object.keys(LAYOUTS) as Layout[]).map((l) => [l, argSpecs(l)])) as Record<
  Layout,
  readonly ArgSpec[]
>;

/**
 * The serial call of each layout, `(fn, a) => fn(a.x, a.out, …)` in parameter order, generated
 * once from the layout so that a call reads its named arguments with plain property loads and,
 * inlined, allocates nothing (a loop over the names measured about 0.5 µs more per call).
 */
const CALLERS = Object.fromEntries(
  (Object.keys(LAYOUTS) as Layout[]).map((l) => {
    // The names are identifiers from LAYOUTS, checked here before they become code.
    checkLayout(l);
    return [
      l,
      new Function(
        'fn',
        'a',
        `fn(${argNames(l)
          .map((n) => `a.${n}`)
          .join(', ')});`,
      ),
    ];
  }),
) as Record<Layout, (fn: (...args: number[]) => void, args: object) => void>;

/** The layout of exported kernel `name`: its own, or its family's for `unary_<op>` and `binary_<op>`. */
function layoutOf(name: string): Layout | undefined {
  const layout = name in LAYOUTS ? name : name.slice(0, name.indexOf('_'));
  return layout in LAYOUTS ? (layout as Layout) : undefined;
}

/** The f64 constants both Adam kernels take, derived exactly as the reference derives them. */
function adamArgs(h: AdamHyper) {
  const c1 = 1 - Math.pow(h.beta1, h.step);
  const c2 = 1 - Math.pow(h.beta2, h.step);
  const [beta1, beta2] = [h.beta1, h.beta2];
  const [eps, weightDecay, stepSize, sqrtC2] = [h.eps, h.weightDecay, h.lr / c1, Math.sqrt(c2)];
  return { beta1, oneMinusBeta1: 1 - beta1, beta2, oneMinusBeta2: 1 - beta2, eps, weightDecay, stepSize, sqrtC2 };
}

/** The value of argument `name` (of `spec`) for the chunk starting at `start` `unit`s into the call. */
function chunkArg(
  spec: ArgSpec,
  args: Readonly<Record<string, number>>,
  name: string,
  unit: SplitUnit,
  start: number,
): number {
  const v = args[name];
  if (unit === 'elems') {
    const e = spec.perElem;
    if (e === undefined || (e !== true && args[e.unless] !== 0)) return v;
    return v + 4 * start;
  }
  const r = spec.perRow;
  if (r === undefined) return v;
  return v + 4 * start * (typeof r === 'number' ? r : args[r]);
}

/** Pointers of the linear + PReLU epilogue of a GEMM (`gemmPrelu`). */
interface GemmEpilogueArgs {
  bias: number;
  slope: number;
  pre: number;
  /** The first row of the call in the whole product (a threaded chunk's offset). */
  row0: number;
  /** Consecutive rows per bias row. */
  group: number;
}

/** The WebAssembly SIMD backend. */
export class WasmBackend extends kernelBase() implements Backend, RangeAccess {
  readonly name = 'wasm';
  /** The memory every tensor of this backend lives in. */
  readonly arena: Arena;
  /** Threads that compute kernels, the calling thread included. */
  readonly threads: number;
  /** The SIMD variant of the kernels, on every thread. */
  readonly simd: SimdVariant;
  /** The module's exports: every kernel, taking the positional arguments of its layout. */
  private readonly k: Readonly<Record<string, (...args: number[]) => void>>;
  private readonly ref = new ReferenceBackend();
  private readonly pool: ThreadPool | null = null;
  /** Pool kernel ids by export name. */
  private readonly ids = new Map<string, number>();
  private readonly min: ParallelThresholds;
  /** Chunk boundaries of the job being cut (reused by every call). */
  private readonly cuts = new Int32Array(MAX_CHUNKS + 1);

  constructor(options: WasmBackendOptions = {}) {
    super();
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) {
        throw new Error(`wasm backend: unknown option '${key}'; expected one of ${[...OPTION_KEYS].join(', ')}`);
      }
    }
    this.simd = resolveSimd(options.simd);
    this.threads = resolveThreads(options.threads);
    this.min = { ...PARALLEL_MIN, ...options.parallelMin };
    const shared = this.threads > 1;
    this.arena = new Arena(options.initialPages, shared);
    const math: Record<string, (...args: number[]) => number> = {};
    for (const name of MATH_IMPORTS) math[name] = Math[name];
    // Workers instantiate this same compiled module, so every thread runs the same variant.
    const module = kernelModule(shared, this.simd);
    const exports = new WebAssembly.Instance(module, { env: { memory: this.arena.memory }, math }).exports;
    this.k = exports as unknown as Record<string, (...args: number[]) => void>;
    const { zeroBytes, copyBytes } = this.k;
    this.arena.useByteKernels(zeroBytes, copyBytes);
    for (const name of Object.keys(exports)) {
      if (layoutOf(name) === undefined) throw new Error(`wasm backend: kernel '${name}' has no layout in layouts.ts`);
    }
    if (shared) {
      const control = this.arena.allocBytes(CONTROL_BYTES).ptr;
      this.pool = new ThreadPool(this.threads, this.arena.memory, module, exports, control, options.adaptive ?? true);
      for (const name of Object.keys(exports))
        if (typeof exports[name] === 'function') this.ids.set(name, this.pool.fn(name));
    }
  }

  /** Stop the worker threads; later calls run on the calling thread. Safe to call twice. */
  dispose(): void {
    this.pool?.dispose();
  }

  /** Start the worker threads now (they otherwise start on the first large kernel) and resolve once they are ready. */
  async ready(): Promise<void> {
    await this.pool?.ready(this);
  }

  /** Counters of the worker pool (all zero with one thread). */
  poolStats(): PoolStats {
    return this.pool?.stats() ?? { workers: 0, ready: 0, workerChunks: 0 };
  }

  // ---- splitting kernels over the pool ----
  /**
   * The pool, when `work` is at least `min` and there is more than one thread. Workers
   * start on the first call that returns a pool.
   */
  private parallel(work: number, min: number, name: string): ThreadPool | null {
    return this.pool !== null && work >= min && this.pool.useful(this.ids.get(name) as number) ? this.pool : null;
  }

  /**
   * Cut `total` units into at most `chunks` ranges whose starts are multiples of `align`;
   * boundaries go to {@link cuts}. Returns the number of ranges.
   */
  private cut(total: number, chunks: number, align: number): number {
    const per = Math.ceil(total / chunks / align) * align;
    let used = 0;
    for (let start = 0; start < total; start += per) this.cuts[used++] = start;
    this.cuts[used] = total;
    return used;
  }

  /**
   * Runs kernel `name` of `layout` on `args`: at once on this thread, or, given a pool, cut
   * into chunks of `unit` (by default the unit of the layout's first count argument). Both
   * calls are built from the layout, so a kernel's arguments are named in one place. Kept
   * small so that it inlines into each caller.
   */
  private run<L extends Layout>(
    layout: L,
    args: KernelArgs<L>,
    pool: ThreadPool | null = null,
    name: KernelName<L> = layout as KernelName<L>,
    unit?: SplitUnit,
  ): void {
    if (pool === null) CALLERS[layout](this.k[name], args);
    else this.split(pool, layout, args, name, unit);
  }

  /** {@link run} cut over the pool: each chunk's pointers and count derived from the layout. */
  private split(pool: ThreadPool, layout: Layout, args: object, name: string, unit: SplitUnit | undefined): void {
    const named = args as Readonly<Record<string, number>>;
    const names = LAYOUT_NAMES[layout];
    const specs = LAYOUT_SPECS[layout];
    const by = unit ?? (specs.find((s) => s.count !== undefined)?.count as SplitUnit);
    const countAt = specs.findIndex((s) => s.count === by);
    const total = named[names[countAt]];
    const used =
      by === 'elems' ? this.cut(total, pool.chunks(Math.ceil(total / 16)), 16) : this.cut(total, pool.chunks(total), 1);
    for (let c = 0; c < used; c++) {
      const start = this.cuts[c];
      const row = c * MAX_ARGS;
      for (let i = 0; i < names.length; i++) pool.args[row + i] = chunkArg(specs[i], named, names[i], by, start);
      pool.args[row + countAt] = this.cuts[c + 1] - start;
    }
    pool.run(this.ids.get(name) as number, used, this);
  }

  /** Writes `args` as argument row `chunk` of the pool, for a job cut by hand (GEMM panels). */
  private chunkArgs<L extends Layout>(pool: ThreadPool, chunk: number, layout: L, args: KernelArgs<L>): void {
    const names = LAYOUT_NAMES[layout];
    const named = args as Readonly<Record<string, number>>;
    for (let i = 0; i < names.length; i++) pool.args[chunk * MAX_ARGS + i] = named[names[i]];
  }

  supportsDtype(_dtype: DType): boolean {
    return true;
  }

  /** Allocation counters of the arena. */
  stats(): ArenaStats {
    return this.arena.stats();
  }

  // ---- storage ----
  /** The storage, checked, with any deferred zeroing done: its bytes may be read. */
  private own(s: Storage): WasmStorage {
    const w = this.checked(s);
    if (w.pendingZero) this.arena.materialize(w);
    return w;
  }

  private checked(s: Storage): WasmStorage {
    if (!(s instanceof WasmStorage) || s.arena !== this.arena)
      throw new Error('wasm backend: storage belongs to another backend');
    if (!s.alive) throw new Error('wasm backend: storage was freed');
    return s;
  }

  /**
   * The pointer of an output the caller overwrites whole, so a deferred zeroing is skipped.
   * Take it after the inputs' pointers: an output may alias an input, which must be zeroed.
   */
  private outPtr(s: Storage): number {
    const w = this.checked(s);
    w.pendingZero = false;
    return w.ptr;
  }

  /** A typed view of the storage's elements (valid until the memory next grows). */
  private view(s: Storage, overwrite = false): FloatArray {
    const w = overwrite ? this.checked(s) : this.own(s);
    w.pendingZero = false;
    return w.dtype === 'float64'
      ? this.arena.f64.subarray(w.ptr >>> 3, (w.ptr >>> 3) + w.size)
      : this.arena.f32.subarray(w.ptr >>> 2, (w.ptr >>> 2) + w.size);
  }

  /** The storage wrapped for the reference kernels, which then work in place on the arena. */
  private host(s: Storage): HostStorage {
    return new HostStorage(this.view(s), s.dtype);
  }

  private ptr(s: Storage): number {
    return this.own(s).ptr;
  }

  /**
   * Copy host arrays into the scratch block, 16-byte aligned, and return their offsets
   * (0 for null). The scratch is taken before writing since enlarging it may grow memory.
   */
  private upload(arrays: readonly (Int32Array | Float32Array | null)[]): { ptrs: number[] } {
    let bytes = 0;
    const sizes = arrays.map((a) => (a ? Math.ceil((a.length * 4) / 16) * 16 : 0));
    for (const s of sizes) bytes += s;
    const base = this.arena.scratch(bytes);
    const ptrs: number[] = [];
    let at = base;
    arrays.forEach((a, i) => {
      if (!a) {
        ptrs.push(0);
        return;
      }
      if (a instanceof Int32Array) this.arena.i32.set(a, at >>> 2);
      else this.arena.f32.set(a, at >>> 2);
      ptrs.push(at);
      at += sizes[i];
    });
    return { ptrs };
  }

  alloc(size: number, dtype: DType): Storage {
    // Zeros on first read: outputs that a kernel overwrites whole are never zeroed.
    return this.arena.allocLazy(size, dtype);
  }
  fromArray(data: FloatArray, dtype: DType): Storage {
    const s = this.arena.allocLazy(data.length, dtype);
    this.view(s, true).set(data);
    return s;
  }
  read(storage: Storage): FloatArray {
    return this.view(storage).slice();
  }
  write(storage: Storage, data: ArrayLike<number>): void {
    const dst = this.view(storage, true);
    if (data.length !== dst.length) throw new Error(`write: ${data.length} values into a buffer of ${dst.length}`);
    dst.set(data);
  }
  readRange(storage: Storage, start: number, out: FloatArray): void {
    const src = this.view(storage);
    checkRange(start, out.length, src.length, 'readRange');
    out.set(src.subarray(start, start + out.length));
  }
  writeRange(storage: Storage, start: number, data: FloatArray): void {
    // Not an overwrite of the whole buffer: a deferred zeroing must happen first.
    const dst = this.view(storage);
    checkRange(start, data.length, dst.length, 'writeRange');
    dst.set(data, start);
  }
  free(storage: Storage): void {
    if (storage instanceof WasmStorage && storage.arena === this.arena) this.arena.free(storage);
  }

  /**
   * One GEMM on the pool: B packed by column panels, then row panels of the output, each
   * packing its own rows of A. Each chunk computes whole output elements in the serial
   * order, so the result matches the single-threaded one bit for bit.
   */
  private gemmParallel(
    pool: ThreadPool,
    aOff: number,
    bOff: number,
    oOff: number,
    g: MatmulGeometry,
    packB: boolean,
    bPack: number,
    aPack: number,
    tmp: number,
    epi: GemmEpilogueArgs | null = null,
  ): void {
    const { m, n, k } = g;
    if (packB) {
      const bRow = g.transB ? k : 1;
      const bK = g.transB ? 1 : n;
      const panels = Math.ceil(n / TILE_N);
      if (n * k >= this.min.gemm >> 2 && panels >= 2 && pool.useful(this.ids.get('pack') as number)) {
        const used = this.cut(panels, pool.chunks(panels, 2), 1);
        for (let c = 0; c < used; c++) {
          const j0 = this.cuts[c] * TILE_N;
          const j1 = Math.min(n, this.cuts[c + 1] * TILE_N);
          const panel = { src: bOff + 4 * j0 * bRow, dst: bPack + 4 * j0 * k, count: j1 - j0 };
          this.chunkArgs(pool, c, 'pack', { ...panel, width: TILE_N, k, strideRow: bRow, strideK: bK });
        }
        pool.run(this.ids.get('pack') as number, used, this);
      } else {
        this.run('pack', { src: bOff, dst: bPack, count: n, width: TILE_N, k, strideRow: bRow, strideK: bK });
      }
    }
    const aRow = g.transA ? 1 : k;
    const aK = g.transA ? m : 1;
    const tiles = Math.ceil(m / TILE_M);
    const used = this.cut(tiles, pool.chunks(tiles), 1);
    for (let c = 0; c < used; c++) {
      const i0 = this.cuts[c] * TILE_M;
      const i1 = Math.min(m, this.cuts[c + 1] * TILE_M);
      const panel = {
        aSrc: aOff + 4 * i0 * aRow,
        strideRow: aRow,
        strideK: aK,
        aPack: aPack + 4 * i0 * k,
        rows: i1 - i0,
        k,
        bPack,
        out: oOff + 4 * i0 * n,
        n,
        tmp: tmp + 4 * TILE_M * TILE_N * c,
      };
      if (epi) this.chunkArgs(pool, c, 'packGemmPrelu', { ...panel, ...epi, pre: epi.pre + 4 * i0 * n, row0: i0 });
      else this.chunkArgs(pool, c, 'packGemm', panel);
    }
    pool.run(this.ids.get(epi ? 'packGemmPrelu' : 'packGemm') as number, used, this);
  }

  /**
   * One packed product op(A)·op(B) into `out`, on the pool's threads (which pack their own A rows)
   * or here. `packB`/`packA` false reuse the panels an earlier product of the batch left in
   * `bPack`/`aPack` (a broadcast operand); the serial path alone can skip packing A.
   */
  private gemmOnce(
    pool: ThreadPool | null,
    aOff: number,
    bOff: number,
    oOff: number,
    g: MatmulGeometry,
    packB: boolean,
    packA: boolean,
    bPack: number,
    aPack: number,
    tmp: number,
    epi: GemmEpilogueArgs | null = null,
  ): void {
    if (pool) return this.gemmParallel(pool, aOff, bOff, oOff, g, packB, bPack, aPack, tmp, epi);
    const { m, n, k } = g;
    // op(A)(i, p) at i*strideRow + p*strideK; op(B)(p, j) packed by columns j.
    const [bRow, bK] = g.transB ? [k, 1] : [1, n];
    const [aRow, aK] = g.transA ? [1, m] : [k, 1];
    if (packB) this.run('pack', { src: bOff, dst: bPack, count: n, width: TILE_N, k, strideRow: bRow, strideK: bK });
    // A broadcast A (one matrix for every batch item) is packed whole once and reused by the later
    // items, so it is not cut into blocks, which would leave only the last block packed.
    const whole = !packA || (g.batch > 1 && !g.batchA);
    const block = whole ? Math.ceil(m / TILE_M) * TILE_M : serialRowBlock(m, k);
    for (let i0 = 0; i0 < m; i0 += block) {
      const count = Math.min(block, m - i0);
      if (packA) {
        const src = aOff + 4 * i0 * aRow;
        this.run('pack', { src, dst: aPack, count, width: TILE_M, k, strideRow: aRow, strideK: aK });
      }
      const out = oOff + 4 * i0 * n;
      if (!epi) this.run('gemmPacked', { aPack, bPack, out, m: count, n, k, tmp });
      else {
        const { bias, slope, group } = epi;
        const pre = epi.pre + 4 * i0 * n;
        this.run('gemmPrelu', { aPack, bPack, out, m: count, n, k, tmp, bias, slope, pre, row0: i0, group });
      }
    }
  }

  /**
   * Aᵀ·B with a long k (a weight gradient over many rows: DIN's attention unit sums over batch ×
   * sequence rows) in blocks of at most {@link K_BLOCK} rows: a whole-k panel of B no longer fits
   * in L2 and every A panel streamed past it came from L3. In this layout a block of k is a block
   * of rows of both operands, so each is the same product at an offset; the first block writes
   * `out` and each later one is added to it. Serial and threaded runs cut the same blocks, so
   * they still agree bit for bit.
   */
  private gemmBlocked(ap: number, bp: number, op: number, g: MatmulGeometry): void {
    const { m, n, k } = g;
    const blocks = Math.ceil(k / K_BLOCK);
    const kc = Math.ceil(k / blocks);
    const pool = this.parallel(m * n * k, this.min.gemm, 'packGemm');
    const bBytes = Math.ceil(n / TILE_N) * TILE_N * kc * 4;
    const aBytes = Math.ceil(m / TILE_M) * TILE_M * kc * 4;
    const tmpBytes = 4 * TILE_M * TILE_N * (pool ? MAX_CHUNKS : 1);
    const scratch = this.arena.scratch(bBytes + aBytes + tmpBytes + 4 * m * n);
    const [bPack, aPack, tmp] = [scratch, scratch + bBytes, scratch + bBytes + aBytes];
    const partial = tmp + tmpBytes;
    for (let p0 = 0; p0 < k; p0 += kc) {
      const kq = Math.min(kc, k - p0);
      const [aOff, bOff] = [ap + 4 * p0 * m, bp + 4 * p0 * n];
      const dst = p0 === 0 ? op : partial;
      this.gemmOnce(pool, aOff, bOff, dst, { ...g, k: kq }, true, true, bPack, aPack, tmp);
      if (p0 > 0) this.run('axpby', { a: 1, x: op, b: 1, y: partial, out: op, n: m * n });
    }
  }

  // The kernels, in a static block so that they reach the private helpers above.
  static {
    defineKernels(WasmBackend, {
      // ---- elementwise ----
      fill(out, value) {
        if (out.dtype === 'float64') this.view(out, true).fill(value);
        else this.run('fill', { out: this.outPtr(out), n: out.size, value });
      },
      copy(src, out) {
        const s = this.own(src);
        const bytes = s.size * (s.dtype === 'float64' ? 8 : 4);
        this.arena.copy(s.ptr, s.size === out.size ? this.outPtr(out) : this.ptr(out), bytes);
      },
      unary(op, x, out) {
        if (x.dtype === 'float64' || !wasmUnary.has(op)) return this.ref.unary(op, this.host(x), this.host(out));
        const name = `unary_${op}` as const;
        const pool = this.parallel(x.size, mathUnary.has(op) ? this.min.math : this.min.simd, name);
        this.run('unary', { x: this.ptr(x), out: this.outPtr(out), n: x.size }, pool, name);
      },
      affine(x, alpha, beta, out) {
        if (x.dtype === 'float64') return this.ref.affine(this.host(x), alpha, beta, this.host(out));
        const pool = this.parallel(x.size, this.min.simd, 'affine');
        this.run('affine', { x: this.ptr(x), out: this.outPtr(out), n: x.size, alpha, beta }, pool);
      },
      axpby(a, x, b, y, out) {
        if (x.dtype === 'float64') return this.ref.axpby(a, this.host(x), b, this.host(y), this.host(out));
        const pool = this.parallel(out.size, this.min.simd, 'axpby');
        this.run('axpby', { a, x: this.ptr(x), b, y: this.ptr(y), out: this.outPtr(out), n: out.size }, pool);
      },
      binary(op, a, aShape, b, bShape, out, outShape) {
        if (out.size === 0) return;
        const native = a.dtype !== 'float64' && wasmBinary.has(op);
        const plan = native ? planBroadcast(aShape, bShape, outShape) : null;
        const split = native && !plan ? planOuterBroadcast(aShape, bShape, outShape) : null;
        if (split) {
          // One kernel run per leading index, each a [rows, cols] broadcast of its own.
          const [ap, bp, op0] = [this.ptr(a), this.ptr(b), this.outPtr(out)];
          const { outer, aStep, bStep, outStep } = split;
          const { rows, cols, aRow, bRow } = split.plan;
          const [aSplat, bSplat] = [split.plan.aSplat ? 1 : 0, split.plan.bSplat ? 1 : 0];
          const fn = this.k[`binary_${op}`];
          for (let i = 0; i < outer; i++)
            fn(ap + 4 * i * aStep, aRow, aSplat, bp + 4 * i * bStep, bRow, bSplat, op0 + 4 * i * outStep, rows, cols);
          return;
        }
        if (!plan) return this.ref.binary(op, this.host(a), aShape, this.host(b), bShape, this.host(out), outShape);
        const args = {
          a: this.ptr(a),
          aRow: plan.aRow,
          aSplat: plan.aSplat ? 1 : 0,
          b: this.ptr(b),
          bRow: plan.bRow,
          bSplat: plan.bSplat ? 1 : 0,
          out: this.outPtr(out),
          rows: plan.rows,
          cols: plan.cols,
        };
        const name = `binary_${op}` as const;
        const pool = this.parallel(out.size, op === 'pow' ? this.min.math : this.min.simd, name);
        if (!pool || plan.rows >= pool.threads) return this.run('binary', args, pool, name, 'rows');
        // Few long rows: cut every row along its columns instead (splatted operands stay put).
        for (let r = 0; r < plan.rows; r++) {
          const row = { ...args, a: args.a + 4 * r * plan.aRow, b: args.b + 4 * r * plan.bRow, rows: 1 };
          this.run('binary', { ...row, out: args.out + 4 * r * plan.cols }, pool, name, 'elems');
        }
      },
      // ---- reductions and layout ----
      reduceSum(x, shape, axes, out) {
        if (x.dtype === 'float32') {
          // Drop size-1 dims, then look for [reduced..., kept...] or [kept..., reduced...].
          const dims = shape.map((d, i) => ({ d, r: axes.includes(i) })).filter(({ d }) => d !== 1);
          const firstKept = dims.findIndex(({ r }) => !r);
          const split = firstKept < 0 ? dims.length : firstKept;
          const prod = (from: number, to: number): number => dims.slice(from, to).reduce((p, { d }) => p * d, 1);
          if (dims.slice(split).every(({ r }) => !r)) {
            this.run('colSum', {
              x: this.ptr(x),
              out: this.ptr(out),
              outer: 1,
              rows: prod(0, split),
              cols: prod(split, dims.length),
            });
            return;
          }
          const firstReduced = dims.findIndex(({ r }) => r);
          if (dims.slice(firstReduced).every(({ r }) => r)) {
            const [rows, cols] = [prod(0, firstReduced), prod(firstReduced, dims.length)];
            this.run('rowSum', { x: this.ptr(x), out: this.ptr(out), rows, cols });
            return;
          }
          // [kept..., reduced..., kept...]: a column sum for each leading index, all in one call.
          const afterReduced = firstReduced + dims.slice(firstReduced).findIndex(({ r }) => !r);
          if (dims.slice(afterReduced).every(({ r }) => !r)) {
            this.run('colSum', {
              x: this.ptr(x),
              out: this.ptr(out),
              outer: prod(0, firstReduced),
              rows: prod(firstReduced, afterReduced),
              cols: prod(afterReduced, dims.length),
            });
            return;
          }
        }
        this.ref.reduceSum(this.host(x), shape, axes, this.host(out));
      },
      reduceMaxLast(x, rows, cols, out) {
        this.ref.reduceMaxLast(this.host(x), rows, cols, this.host(out));
      },
      permute(x, shape, perm, out) {
        this.ref.permute(this.host(x), shape, perm, this.host(out));
      },
      copyBlock(src, srcShape, srcBegin, out, outShape, outBegin, extent) {
        const rank = extent.length;
        if (extent.some((e) => e === 0)) return;
        const s = this.own(src);
        // A block as large as `out` overwrites it whole (a concat's gradient slices): no zeroing first.
        const whole = sameShape(extent, outShape);
        const o = whole ? this.checked(out) : this.own(out);
        if (whole) o.pendingZero = false;
        const bytes = s.dtype === 'float64' ? 8 : 4;
        const sStr = stridesOf(srcShape);
        const oStr = stridesOf(outShape);
        let sp = s.ptr;
        let op = o.ptr;
        for (let d = 0; d < rank; d++) {
          sp += srcBegin[d] * sStr[d] * bytes;
          op += outBegin[d] * oStr[d] * bytes;
        }
        // The run: the innermost extent, merged with outer dims while the dims inside are whole
        // in both arrays (then consecutive runs are adjacent in both).
        let run = rank === 0 ? 1 : extent[rank - 1];
        let d = rank - 1;
        while (d > 0 && extent[d] === srcShape[d] && extent[d] === outShape[d]) run *= extent[--d];
        const runBytes = run * bytes;
        if (d <= 0) {
          this.run('copyRuns', { src: sp, srcStride: 0, dst: op, dstStride: 0, runBytes, count: 1 });
          return;
        }
        // Dim d-1 is the run count of one kernel call; dims outside it are walked here.
        const count = extent[d - 1];
        const sRow = sStr[d - 1] * bytes;
        const oRow = oStr[d - 1] * bytes;
        const outer = d - 1;
        if (outer === 0) {
          this.run('copyRuns', { src: sp, srcStride: sRow, dst: op, dstStride: oRow, runBytes, count });
          return;
        }
        const index = new Array<number>(outer).fill(0);
        for (;;) {
          this.run('copyRuns', { src: sp, srcStride: sRow, dst: op, dstStride: oRow, runBytes, count });
          let q = outer - 1;
          for (; q >= 0; q--) {
            index[q]++;
            sp += sStr[q] * bytes;
            op += oStr[q] * bytes;
            if (index[q] < extent[q]) break;
            sp -= sStr[q] * extent[q] * bytes;
            op -= oStr[q] * extent[q] * bytes;
            index[q] = 0;
          }
          if (q < 0) return;
        }
      },
      // ---- linear algebra ----
      matmul(a, b, out, g) {
        if (a.dtype === 'float64') return this.ref.matmul(this.host(a), this.host(b), this.host(out), g);
        const { m, n, k } = g;
        if (m === 0 || n === 0) return;
        const ap = this.ptr(a);
        const bp = this.ptr(b);
        const op = this.outPtr(out);
        if (k === 0) {
          this.arena.zero(op, g.batch * m * n * 4);
          return;
        }
        if (g.batch > 1 && m * n * k <= SMALL_BATCHED_GEMM) {
          // Byte strides of op(A)(i, p) and op(B)(p, j) in each layout; a broadcast operand stays put.
          this.run('batchedSmallGemm', {
            a: ap,
            b: bp,
            out: op,
            batch: g.batch,
            m,
            n,
            k,
            aBatch: g.batchA ? 4 * m * k : 0,
            aRow: g.transA ? 4 : 4 * k,
            aK: g.transA ? 4 * m : 4,
            bBatch: g.batchB ? 4 * k * n : 0,
            bK: g.transB ? 4 : 4 * n,
            bCol: g.transB ? 4 * k : 4,
          });
          return;
        }
        const vector = n === 1 || m === 1;
        if (!vector && g.batch === 1 && g.transA && !g.transB && k > K_BLOCK) {
          this.gemmBlocked(ap, bp, op, g);
          return;
        }
        const mPad = Math.ceil(m / TILE_M) * TILE_M;
        const nPad = Math.ceil(n / TILE_N) * TILE_N;
        const bBytes = nPad * k * 4;
        const pool = vector ? null : this.parallel(m * n * k, this.min.gemm, 'packGemm');
        // One spill tile per chunk when the row panels run in parallel.
        const tmpBytes = 4 * TILE_M * TILE_N * (pool ? MAX_CHUNKS : 1);
        const scratch = vector ? 0 : this.arena.scratch(bBytes + mPad * k * 4 + tmpBytes);
        const bPack = scratch;
        const aPack = scratch + bBytes;
        const tmp = aPack + mPad * k * 4;
        for (let bi = 0; bi < g.batch; bi++) {
          const aOff = ap + (g.batchA ? bi * m * k * 4 : 0);
          const bOff = bp + (g.batchB ? bi * k * n * 4 : 0);
          const oOff = op + bi * m * n * 4;
          if (n === 1) {
            // A vector B has the same memory in both layouts.
            const rowsPool = g.transA ? null : this.parallel(m * k, this.min.rows, 'dotRows');
            if (!g.transA) this.run('dotRows', { x: aOff, v: bOff, out: oOff, rows: m, len: k }, rowsPool);
            else this.run('axpyRows', { x: aOff, coef: bOff, out: oOff, rows: k, len: m });
          } else if (m === 1) {
            if (g.transB) this.run('dotRows', { x: bOff, v: aOff, out: oOff, rows: n, len: k });
            else this.run('axpyRows', { x: bOff, coef: aOff, out: oOff, rows: k, len: n });
          } else {
            this.gemmOnce(pool, aOff, bOff, oOff, g, bi === 0 || g.batchB, bi === 0 || g.batchA, bPack, aPack, tmp);
          }
        }
      },
      // ---- rows and embeddings ----
      gatherRows(x, dim, ids, out) {
        if (x.dtype === 'float64') return this.ref.gatherRows(this.host(x), dim, ids, this.host(out));
        const { ptrs } = this.upload([ids]);
        const pool = this.parallel(ids.length * dim, this.min.rows, 'gatherRows');
        this.run('gatherRows', { x: this.ptr(x), dim, ids: ptrs[0], count: ids.length, out: this.outPtr(out) }, pool);
      },
      embeddingBag(table, dim, ids, offsets, weights, mode, out) {
        if (table.dtype === 'float64') {
          return this.ref.embeddingBag(this.host(table), dim, ids, offsets, weights, mode, this.host(out));
        }
        const { ptrs } = this.upload([ids, offsets, weights]);
        const bags = offsets.length - 1;
        const pool = bags > 1 ? this.parallel(ids.length * dim, this.min.rows, 'embeddingBag') : null;
        const lists = { ids: ptrs[0], offsets: ptrs[1], weights: ptrs[2] };
        this.run(
          'embeddingBag',
          { table: this.ptr(table), dim, ...lists, mode: BAG_MODE[mode], out: this.outPtr(out), batch: bags },
          pool,
        );
      },
      segmentSumRows(src, dim, segments, srcRows, scales, out) {
        if (src.dtype === 'float64')
          return this.ref.segmentSumRows(this.host(src), dim, segments, srcRows, scales, this.host(out));
        const { ptrs } = this.upload([segments, srcRows, scales]);
        const nseg = Math.max(0, segments.length - 1);
        const pool = nseg > 1 ? this.parallel(srcRows.length * dim, this.min.rows, 'segmentSumRows') : null;
        const args = { src: this.ptr(src), dim, segments: ptrs[0], nseg, srcRows: ptrs[1], scales: ptrs[2] };
        this.run('segmentSumRows', { ...args, out: this.ptr(out) }, pool);
      },
      scatterAddRows(values, dim, rows, out) {
        if (values.dtype === 'float64') return this.ref.scatterAddRows(this.host(values), dim, rows, this.host(out));
        const { ptrs } = this.upload([rows]);
        this.run('scatterAddRows', {
          values: this.ptr(values),
          dim,
          rows: ptrs[0],
          count: rows.length,
          out: this.ptr(out),
        });
      },
      // ---- fused nn kernels ----
      linearPrelu(x, weight, bias, slope, rows, channels, k, pre, out, biasRows) {
        const m = rows;
        const n = channels;
        const g: MatmulGeometry = { batch: 1, m, n, k, transA: false, transB: true, batchA: false, batchB: false };
        if (x.dtype === 'float64' || k === 0 || m === 1 || n === 1) {
          // The shapes the packed GEMM does not take (matmul's vector and empty cases) compose the
          // separate passes, which give the same values.
          if (x.dtype === 'float64') {
            const [h, w, b, s] = [x, weight, bias, slope].map((t) => this.host(t));
            return this.ref.linearPrelu(h, w, b, s, m, n, k, this.host(pre), this.host(out), biasRows);
          }
          this.matmul(x, weight, pre, g);
          const grouped = [biasRows, m / biasRows, n];
          this.binary('add', pre, grouped, bias, [biasRows, 1, n], pre, grouped);
          this.prelu(pre, slope, n, out);
          return;
        }
        if (m === 0 || n === 0) return;
        const mPad = Math.ceil(m / TILE_M) * TILE_M;
        const bBytes = Math.ceil(n / TILE_N) * TILE_N * k * 4;
        const pool = this.parallel(m * n * k, this.min.gemm, 'packGemmPrelu');
        const tmpBytes = 4 * TILE_M * TILE_N * (pool ? MAX_CHUNKS : 1);
        const bPack = this.arena.scratch(bBytes + mPad * k * 4 + tmpBytes);
        const aPack = bPack + bBytes;
        const tmp = aPack + mPad * k * 4;
        const epi = {
          bias: this.ptr(bias),
          slope: this.ptr(slope),
          pre: this.outPtr(pre),
          row0: 0,
          group: m / biasRows,
        };
        const [xp, wp, op] = [this.ptr(x), this.ptr(weight), this.outPtr(out)];
        this.gemmOnce(pool, xp, wp, op, g, true, true, bPack, aPack, tmp, epi);
      },
      linearPreluBackward(pre, slope, gradOut, channels, gradPre, gradSlope, gradBias, biasRows) {
        if (pre.dtype === 'float64') {
          const [p, s, g, gp, gs, gb] = [pre, slope, gradOut, gradPre, gradSlope, gradBias].map((t) => this.host(t));
          return this.ref.linearPreluBackward(p, s, g, channels, gp, gs, gb, biasRows);
        }
        const inputs = { pre: this.ptr(pre), slope: this.ptr(slope), g: this.ptr(gradOut) };
        const outputs = { gp: this.outPtr(gradPre), gs: this.outPtr(gradSlope), gb: this.outPtr(gradBias) };
        const rows = channels === 0 ? 0 : pre.size / channels;
        this.run('linearPreluBackward', { ...inputs, ...outputs, rows, channels, group: Math.max(1, rows / biasRows) });
      },
      prelu(x, slope, channels, out) {
        if (x.dtype === 'float64') return this.ref.prelu(this.host(x), this.host(slope), channels, this.host(out));
        const rows = x.size / channels;
        const pool = rows > 1 ? this.parallel(x.size, this.min.simd, 'prelu') : null;
        this.run('prelu', { x: this.ptr(x), slope: this.ptr(slope), out: this.outPtr(out), rows, channels }, pool);
      },
      preluBackward(x, slope, gradOut, channels, gradX, gradSlope) {
        if (x.dtype === 'float64') {
          return this.ref.preluBackward(
            this.host(x),
            this.host(slope),
            this.host(gradOut),
            channels,
            this.host(gradX),
            this.host(gradSlope),
          );
        }
        const inputs = { x: this.ptr(x), slope: this.ptr(slope), g: this.ptr(gradOut) };
        const outputs = { gx: this.outPtr(gradX), gs: this.outPtr(gradSlope) };
        this.run('preluBackward', { ...inputs, ...outputs, rows: x.size / channels, channels });
      },
      softmaxLast(x, mask, rows, cols, out) {
        this.ref.softmaxLast(this.host(x), mask ? this.host(mask) : null, rows, cols, this.host(out));
      },
      bceWithLogits(logits, labels, out) {
        if (logits.dtype === 'float64')
          return this.ref.bceWithLogits(this.host(logits), this.host(labels), this.host(out));
        const pool = this.parallel(logits.size * BCE_COST, this.min.math, 'bce');
        this.run('bce', { x: this.ptr(logits), y: this.ptr(labels), out: this.outPtr(out), n: logits.size }, pool);
      },
      bceWithLogitsBackward(logits, labels, gradOut, out) {
        if (logits.dtype === 'float64') {
          return this.ref.bceWithLogitsBackward(
            this.host(logits),
            this.host(labels),
            this.host(gradOut),
            this.host(out),
          );
        }
        const pool = this.parallel(logits.size * BCE_COST, this.min.math, 'bceBackward');
        const inputs = { x: this.ptr(logits), y: this.ptr(labels), g: this.ptr(gradOut) };
        this.run('bceBackward', { ...inputs, out: this.outPtr(out), n: logits.size }, pool);
      },
      productBce(a, b, labels, out) {
        if (a.dtype === 'float64')
          return this.ref.productBce(this.host(a), this.host(b), this.host(labels), this.host(out));
        const pool = this.parallel(a.size * PRODUCT_BCE_COST, this.min.math, 'productBce');
        const inputs = { a: this.ptr(a), b: this.ptr(b), y: this.ptr(labels) };
        this.run('productBce', { ...inputs, out: this.ptr(out), n: a.size }, pool);
      },
      productBceBackward(a, b, labels, gradOut, gradA, gradB) {
        if (a.dtype === 'float64') {
          return this.ref.productBceBackward(
            this.host(a),
            this.host(b),
            this.host(labels),
            this.host(gradOut),
            this.host(gradA),
            this.host(gradB),
          );
        }
        const pool = this.parallel(a.size * PRODUCT_BCE_COST, this.min.math, 'productBceBackward');
        const inputs = { a: this.ptr(a), b: this.ptr(b), y: this.ptr(labels), g: this.ptr(gradOut) };
        this.run('productBceBackward', { ...inputs, ga: this.ptr(gradA), gb: this.ptr(gradB), n: a.size }, pool);
      },
      adam(param, grad, m, v, hyper) {
        if (param.dtype === 'float64')
          return this.ref.adam(this.host(param), this.host(grad), this.host(m), this.host(v), hyper);
        const pool = this.parallel(param.size, this.min.simd, 'adam');
        const state = { p: this.ptr(param), g: this.ptr(grad), m: this.ptr(m), v: this.ptr(v) };
        this.run('adam', { ...state, n: param.size, ...adamArgs(hyper) }, pool);
      },
      sparseAdam(param, m, v, dim, rows, gradRows, hyper) {
        if (param.dtype === 'float64') {
          return this.ref.sparseAdam(
            this.host(param),
            this.host(m),
            this.host(v),
            dim,
            rows,
            this.host(gradRows),
            hyper,
          );
        }
        const { ptrs } = this.upload([rows]);
        // Rows are distinct, so chunks of rows update disjoint parts of param, m and v.
        const work = rows.length * dim * SPARSE_ADAM_COST;
        const pool = rows.length > 1 ? this.parallel(work, this.min.rows, 'sparseAdam') : null;
        const state = { p: this.ptr(param), m: this.ptr(m), v: this.ptr(v), dim };
        const grads = { rows: ptrs[0], count: rows.length, g: this.ptr(gradRows) };
        this.run('sparseAdam', { ...state, ...grads, ...adamArgs(hyper) }, pool);
      },
      sparseAdamSegments(param, m, v, dim, rows, src, segments, srcRows, scales, hyper) {
        if (param.dtype === 'float64') {
          const [p, mm, vv, ss] = [param, m, v, src].map((x) => this.host(x));
          return this.ref.sparseAdamSegments(p, mm, vv, dim, rows, ss, segments, srcRows, scales, hyper);
        }
        const { ptrs } = this.upload([rows, segments, srcRows, scales]);
        // As sparseAdam: distinct rows, so chunks of rows update disjoint parts of param, m and v.
        const pool =
          rows.length > 1
            ? this.parallel(
                (rows.length * SPARSE_ADAM_COST + srcRows.length) * dim,
                this.min.rows,
                'sparseAdamSegments',
              )
            : null;
        const state = { p: this.ptr(param), m: this.ptr(m), v: this.ptr(v), dim };
        const grads = { rows: ptrs[0], count: rows.length, src: this.ptr(src), segments: ptrs[1] };
        this.run(
          'sparseAdamSegments',
          { ...state, ...grads, srcRows: ptrs[2], scales: ptrs[3], ...adamArgs(hyper) },
          pool,
        );
      },
    });
  }
}
