/**
 * The wasm backend: tensors live in one WebAssembly memory (see `arena.ts`) and float32
 * kernels run as WebAssembly SIMD generated in `kernels.ts`.
 *
 * What runs where, for float32:
 * - wasm: GEMM (all layouts, batched), unary and affine/axpby, binary ops whose broadcast
 *   folds into a [rows, cols] view (same shape, bias rows, per-row and scalar operands),
 *   reduceSum over leading or trailing axes, gatherRows, embeddingBag, segmentSumRows,
 *   scatterAddRows, prelu and its backward, the BCE kernels, adam and sparseAdam.
 * - host loops over the arena's views (rarely hot, documented fallbacks): general
 *   broadcasts and reductions, permute, reduceMaxLast, softmaxLast (reference code);
 *   copyBlock (row runs with `copyWithin`); fill and copy (typed-array natives).
 * float64 (gradient checks) runs the reference kernels over the arena's Float64Array view.
 */
import type {
  AdamHyper,
  Backend,
  BagMode,
  BinaryOp,
  DType,
  FloatArray,
  MatmulGeometry,
  Storage,
  UnaryOp,
} from '../backend.js';
import { HostStorage, ReferenceBackend } from '../reference.js';
import { stridesOf } from '../shape-util.js';
import { Arena, WasmStorage, type ArenaStats } from './arena.js';
import { kernelModule, MATH_UNARY, SIMD_BINARY, SIMD_UNARY, TILE_M, TILE_N, type KernelExports } from './kernels.js';

/** Options of {@link WasmBackend}. */
export interface WasmBackendOptions {
  /** Initial arena size in 64 KiB pages (it grows on demand). */
  initialPages?: number;
  /** Worker threads; accepted for interface compatibility, kernels currently run on one thread. */
  threads?: number;
}

const BAG_MODE: Record<BagMode, number> = { sum: 0, mean: 1, sqrtn: 2 };
const wasmUnary = new Set<string>([...SIMD_UNARY, ...MATH_UNARY]);
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
export function planBroadcast(aShape: readonly number[], bShape: readonly number[], outShape: readonly number[]): BroadcastPlan | null {
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

/** The WebAssembly SIMD backend. */
export class WasmBackend implements Backend {
  readonly name = 'wasm';
  /** The memory every tensor of this backend lives in. */
  readonly arena: Arena;
  private readonly k: KernelExports;
  private readonly ref = new ReferenceBackend();

  constructor(options: WasmBackendOptions = {}) {
    this.arena = new Arena(options.initialPages);
    const imports = {
      env: { memory: this.arena.memory },
      math: { exp: Math.exp, log: Math.log, log1p: Math.log1p, tanh: Math.tanh, pow: Math.pow },
    };
    this.k = new WebAssembly.Instance(kernelModule(), imports).exports as unknown as KernelExports;
  }

  supportsDtype(_dtype: DType): boolean {
    return true;
  }

  /** Allocation counters of the arena. */
  stats(): ArenaStats {
    return this.arena.stats();
  }

  // ---- storage ----
  private own(s: Storage): WasmStorage {
    if (!(s instanceof WasmStorage) || s.arena !== this.arena) throw new Error('wasm backend: storage belongs to another backend');
    if (!s.alive) throw new Error('wasm backend: storage was freed');
    return s;
  }

  /** A typed view of the storage's elements (valid until the memory next grows). */
  private view(s: Storage): FloatArray {
    const w = this.own(s);
    return w.dtype === 'float64'
      ? this.arena.f64.subarray(w.ptr >> 3, (w.ptr >> 3) + w.size)
      : this.arena.f32.subarray(w.ptr >> 2, (w.ptr >> 2) + w.size);
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
      if (a instanceof Int32Array) this.arena.i32.set(a, at >> 2);
      else this.arena.f32.set(a, at >> 2);
      ptrs.push(at);
      at += sizes[i];
    });
    return { ptrs };
  }

  alloc(size: number, dtype: DType): Storage {
    return this.arena.alloc(size, dtype);
  }
  fromArray(data: FloatArray, dtype: DType): Storage {
    const s = this.arena.alloc(data.length, dtype);
    this.view(s).set(data);
    return s;
  }
  read(storage: Storage): FloatArray {
    return this.view(storage).slice();
  }
  write(storage: Storage, data: ArrayLike<number>): void {
    const dst = this.view(storage);
    if (data.length !== dst.length) throw new Error(`write: ${data.length} values into a buffer of ${dst.length}`);
    dst.set(data);
  }
  free(storage: Storage): void {
    if (storage instanceof WasmStorage && storage.arena === this.arena) this.arena.free(storage);
  }

  // ---- elementwise ----
  fill(out: Storage, value: number): void {
    this.view(out).fill(value);
  }
  copy(src: Storage, out: Storage): void {
    const s = this.own(src);
    const bytes = s.size * (s.dtype === 'float64' ? 8 : 4);
    this.arena.u8.copyWithin(this.ptr(out), s.ptr, s.ptr + bytes);
  }
  unary(op: UnaryOp, x: Storage, out: Storage): void {
    if (x.dtype === 'float64' || !wasmUnary.has(op)) return this.ref.unary(op, this.host(x), this.host(out));
    this.k[`unary_${op}`](this.ptr(x), this.ptr(out), x.size);
  }
  affine(x: Storage, alpha: number, beta: number, out: Storage): void {
    if (x.dtype === 'float64') return this.ref.affine(this.host(x), alpha, beta, this.host(out));
    this.k.affine(this.ptr(x), this.ptr(out), x.size, alpha, beta);
  }
  axpby(a: number, x: Storage, b: number, y: Storage, out: Storage): void {
    if (x.dtype === 'float64') return this.ref.axpby(a, this.host(x), b, this.host(y), this.host(out));
    this.k.axpby(a, this.ptr(x), b, this.ptr(y), this.ptr(out), out.size);
  }
  binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    out: Storage,
    outShape: readonly number[],
  ): void {
    if (out.size === 0) return;
    const plan = a.dtype === 'float64' || !wasmBinary.has(op) ? null : planBroadcast(aShape, bShape, outShape);
    if (!plan) return this.ref.binary(op, this.host(a), aShape, this.host(b), bShape, this.host(out), outShape);
    this.k[`binary_${op}`](
      this.ptr(a), plan.aRow, plan.aSplat ? 1 : 0,
      this.ptr(b), plan.bRow, plan.bSplat ? 1 : 0,
      this.ptr(out), plan.rows, plan.cols,
    );
  }

  // ---- reductions and layout ----
  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage): void {
    if (x.dtype === 'float32') {
      // Drop size-1 dims, then look for [reduced..., kept...] or [kept..., reduced...].
      const dims = shape.map((d, i) => ({ d, r: axes.includes(i) })).filter(({ d }) => d !== 1);
      const firstKept = dims.findIndex(({ r }) => !r);
      const split = firstKept < 0 ? dims.length : firstKept;
      const prod = (from: number, to: number): number => dims.slice(from, to).reduce((p, { d }) => p * d, 1);
      if (dims.slice(split).every(({ r }) => !r)) {
        this.k.colSum(this.ptr(x), this.ptr(out), prod(0, split), prod(split, dims.length));
        return;
      }
      const firstReduced = dims.findIndex(({ r }) => r);
      if (dims.slice(firstReduced).every(({ r }) => r)) {
        this.k.rowSum(this.ptr(x), this.ptr(out), prod(0, firstReduced), prod(firstReduced, dims.length));
        return;
      }
    }
    this.ref.reduceSum(this.host(x), shape, axes, this.host(out));
  }
  reduceMaxLast(x: Storage, rows: number, cols: number, out: Storage): void {
    this.ref.reduceMaxLast(this.host(x), rows, cols, this.host(out));
  }
  permute(x: Storage, shape: readonly number[], perm: readonly number[], out: Storage): void {
    this.ref.permute(this.host(x), shape, perm, this.host(out));
  }
  copyBlock(
    src: Storage,
    srcShape: readonly number[],
    srcBegin: readonly number[],
    out: Storage,
    outShape: readonly number[],
    outBegin: readonly number[],
    extent: readonly number[],
  ): void {
    // Host code: the innermost extent is a contiguous run in both arrays, copied natively.
    const rank = extent.length;
    if (extent.some((e) => e === 0)) return;
    const s = this.own(src);
    const o = this.own(out);
    const view = s.dtype === 'float64' ? this.arena.f64 : this.arena.f32;
    const shift = s.dtype === 'float64' ? 3 : 2;
    if (rank === 0) {
      view[o.ptr >> shift] = view[s.ptr >> shift];
      return;
    }
    const sStr = stridesOf(srcShape);
    const oStr = stridesOf(outShape);
    let si = s.ptr >> shift;
    let oi = o.ptr >> shift;
    for (let d = 0; d < rank; d++) {
      si += srcBegin[d] * sStr[d];
      oi += outBegin[d] * oStr[d];
    }
    const run = extent[rank - 1];
    const index = new Array<number>(rank).fill(0);
    for (;;) {
      view.copyWithin(oi, si, si + run);
      let d = rank - 2;
      for (; d >= 0; d--) {
        index[d]++;
        si += sStr[d];
        oi += oStr[d];
        if (index[d] < extent[d]) break;
        si -= sStr[d] * extent[d];
        oi -= oStr[d] * extent[d];
        index[d] = 0;
      }
      if (d < 0) return;
    }
  }

  // ---- linear algebra ----
  matmul(a: Storage, b: Storage, out: Storage, g: MatmulGeometry): void {
    if (a.dtype === 'float64') return this.ref.matmul(this.host(a), this.host(b), this.host(out), g);
    const { m, n, k } = g;
    if (m === 0 || n === 0) return;
    const ap = this.ptr(a);
    const bp = this.ptr(b);
    const op = this.ptr(out);
    if (k === 0) {
      this.arena.u8.fill(0, op, op + g.batch * m * n * 4);
      return;
    }
    const vector = n === 1 || m === 1;
    const mPad = Math.ceil(m / TILE_M) * TILE_M;
    const nPad = Math.ceil(n / TILE_N) * TILE_N;
    const bBytes = nPad * k * 4;
    const scratch = vector ? 0 : this.arena.scratch(bBytes + mPad * k * 4 + 4 * TILE_M * TILE_N);
    const bPack = scratch;
    const aPack = scratch + bBytes;
    const tmp = aPack + mPad * k * 4;
    for (let bi = 0; bi < g.batch; bi++) {
      const aOff = ap + (g.batchA ? bi * m * k * 4 : 0);
      const bOff = bp + (g.batchB ? bi * k * n * 4 : 0);
      const oOff = op + bi * m * n * 4;
      if (n === 1) {
        // A vector B has the same memory in both layouts.
        if (!g.transA) this.k.dotRows(aOff, bOff, oOff, m, k);
        else this.k.axpyRows(aOff, bOff, oOff, k, m);
      } else if (m === 1) {
        if (g.transB) this.k.dotRows(bOff, aOff, oOff, n, k);
        else this.k.axpyRows(bOff, aOff, oOff, k, n);
      } else {
        // op(A)(i, p) at i*strideRow + p*strideK; op(B)(p, j) packed by columns j.
        if (bi === 0 || g.batchB) this.k.pack(bOff, bPack, n, TILE_N, k, g.transB ? k : 1, g.transB ? 1 : n);
        if (bi === 0 || g.batchA) this.k.pack(aOff, aPack, m, TILE_M, k, g.transA ? 1 : k, g.transA ? m : 1);
        this.k.gemmPacked(aPack, bPack, oOff, m, n, k, tmp);
      }
    }
  }

  // ---- rows and embeddings ----
  gatherRows(x: Storage, dim: number, ids: Int32Array, out: Storage): void {
    if (x.dtype === 'float64') return this.ref.gatherRows(this.host(x), dim, ids, this.host(out));
    const { ptrs } = this.upload([ids]);
    this.k.gatherRows(this.ptr(x), dim, ptrs[0], ids.length, this.ptr(out));
  }
  embeddingBag(
    table: Storage,
    dim: number,
    ids: Int32Array,
    offsets: Int32Array,
    weights: Float32Array | null,
    mode: BagMode,
    out: Storage,
  ): void {
    if (table.dtype === 'float64') {
      return this.ref.embeddingBag(this.host(table), dim, ids, offsets, weights, mode, this.host(out));
    }
    const { ptrs } = this.upload([ids, offsets, weights]);
    this.k.embeddingBag(this.ptr(table), dim, ptrs[0], ptrs[1], ptrs[2], BAG_MODE[mode], this.ptr(out), offsets.length - 1);
  }
  segmentSumRows(
    src: Storage,
    dim: number,
    segments: Int32Array,
    srcRows: Int32Array,
    scales: Float32Array | null,
    out: Storage,
  ): void {
    if (src.dtype === 'float64') return this.ref.segmentSumRows(this.host(src), dim, segments, srcRows, scales, this.host(out));
    const { ptrs } = this.upload([segments, srcRows, scales]);
    this.k.segmentSumRows(this.ptr(src), dim, ptrs[0], Math.max(0, segments.length - 1), ptrs[1], ptrs[2], this.ptr(out));
  }
  scatterAddRows(values: Storage, dim: number, rows: Int32Array, out: Storage): void {
    if (values.dtype === 'float64') return this.ref.scatterAddRows(this.host(values), dim, rows, this.host(out));
    const { ptrs } = this.upload([rows]);
    this.k.scatterAddRows(this.ptr(values), dim, ptrs[0], rows.length, this.ptr(out));
  }

  // ---- fused nn kernels ----
  prelu(x: Storage, slope: Storage, channels: number, out: Storage): void {
    if (x.dtype === 'float64') return this.ref.prelu(this.host(x), this.host(slope), channels, this.host(out));
    this.k.prelu(this.ptr(x), this.ptr(slope), this.ptr(out), x.size / channels, channels);
  }
  preluBackward(x: Storage, slope: Storage, gradOut: Storage, channels: number, gradX: Storage, gradSlope: Storage): void {
    if (x.dtype === 'float64') {
      return this.ref.preluBackward(this.host(x), this.host(slope), this.host(gradOut), channels, this.host(gradX), this.host(gradSlope));
    }
    this.k.preluBackward(this.ptr(x), this.ptr(slope), this.ptr(gradOut), this.ptr(gradX), this.ptr(gradSlope), x.size / channels, channels);
  }
  softmaxLast(x: Storage, mask: Storage | null, rows: number, cols: number, out: Storage): void {
    this.ref.softmaxLast(this.host(x), mask ? this.host(mask) : null, rows, cols, this.host(out));
  }
  bceWithLogits(logits: Storage, labels: Storage, out: Storage): void {
    if (logits.dtype === 'float64') return this.ref.bceWithLogits(this.host(logits), this.host(labels), this.host(out));
    this.k.bce(this.ptr(logits), this.ptr(labels), this.ptr(out), logits.size);
  }
  bceWithLogitsBackward(logits: Storage, labels: Storage, gradOut: Storage, out: Storage): void {
    if (logits.dtype === 'float64') {
      return this.ref.bceWithLogitsBackward(this.host(logits), this.host(labels), this.host(gradOut), this.host(out));
    }
    this.k.bceBackward(this.ptr(logits), this.ptr(labels), this.ptr(gradOut), this.ptr(out), logits.size);
  }
  productBce(a: Storage, b: Storage, labels: Storage, out: Storage): void {
    if (a.dtype === 'float64') return this.ref.productBce(this.host(a), this.host(b), this.host(labels), this.host(out));
    this.k.productBce(this.ptr(a), this.ptr(b), this.ptr(labels), this.ptr(out), a.size);
  }
  productBceBackward(a: Storage, b: Storage, labels: Storage, gradOut: Storage, gradA: Storage, gradB: Storage): void {
    if (a.dtype === 'float64') {
      return this.ref.productBceBackward(
        this.host(a), this.host(b), this.host(labels), this.host(gradOut), this.host(gradA), this.host(gradB),
      );
    }
    this.k.productBceBackward(
      this.ptr(a), this.ptr(b), this.ptr(labels), this.ptr(gradOut), this.ptr(gradA), this.ptr(gradB), a.size,
    );
  }

  // ---- optimizers ----
  /** The f64 constants both Adam kernels take, derived exactly as the reference derives them. */
  private adamArgs(h: AdamHyper): [number, number, number, number, number, number, number, number] {
    const c1 = 1 - Math.pow(h.beta1, h.step);
    const c2 = 1 - Math.pow(h.beta2, h.step);
    return [h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.eps, h.weightDecay, h.lr / c1, Math.sqrt(c2)];
  }
  adam(param: Storage, grad: Storage, m: Storage, v: Storage, hyper: AdamHyper): void {
    if (param.dtype === 'float64') return this.ref.adam(this.host(param), this.host(grad), this.host(m), this.host(v), hyper);
    this.k.adam(this.ptr(param), this.ptr(grad), this.ptr(m), this.ptr(v), param.size, ...this.adamArgs(hyper));
  }
  sparseAdam(param: Storage, m: Storage, v: Storage, dim: number, rows: Int32Array, gradRows: Storage, hyper: AdamHyper): void {
    if (param.dtype === 'float64') {
      return this.ref.sparseAdam(this.host(param), this.host(m), this.host(v), dim, rows, this.host(gradRows), hyper);
    }
    const { ptrs } = this.upload([rows]);
    this.k.sparseAdam(
      this.ptr(param), this.ptr(m), this.ptr(v), dim, ptrs[0], rows.length, this.ptr(gradRows), ...this.adamArgs(hyper),
    );
  }
}
