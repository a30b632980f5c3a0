/**
 * The `gpu` backend: every kernel of {@link Backend} as a gpu.js kernel.
 *
 * Storage stays where the mode computes: GL textures on `headlessgl`/`webgl2` (pipeline,
 * immutable results, deleted on free or overwrite) and float32 arrays on `cpu`/`webasm`,
 * whose pipeline results are plain arrays anyway. Only {@link GpuBackend.read} copies to
 * the host. Each kernel compiles once per (kind, loop-length class) and is resized with
 * `dynamicOutput`/`dynamicArguments`; a kernel that gpu.js silently moved to its cpu
 * fallback raises an error instead of returning slow-but-right values.
 *
 * `webgpu` kernels return Promises, which the synchronous {@link Backend} contract cannot
 * carry; asking for that mode throws with the reason. `async-backend.ts` awaits the same
 * kernel sources with the same host-side arguments (`launch-args.ts`) on webgpu.
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
import { bagScale } from '../reference.js';
import { broadcastStrides, stridesOf } from '../shape-util.js';
import {
  createGpu,
  isDeviceTexture,
  isModeSupported,
  runsOn,
  type CompiledKernel,
  type DeviceTexture,
  type GpuInstance,
  type GpuMode,
  type KernelArg,
} from './gpujs.js';
import { hostArray, inverseMap, loopClass, padded } from './launch-args.js';
import { HELPERS, MAX_RANK, SOURCES } from './sources.js';

/** A concrete gpu.js mode (what `auto` resolves to). */
export type ConcreteGpuMode = Exclude<GpuMode, 'auto'>;

/** Options of {@link GpuBackend}. */
export interface GpuBackendOptions {
  /** gpu.js mode; `auto` (the default) picks headlessgl, then webgl2, then webasm, then cpu. */
  mode?: string;
}

/** Modes that hold data in host arrays: pipeline results there are plain arrays. */
const HOST_MODES: ReadonlySet<ConcreteGpuMode> = new Set(['cpu', 'webasm']);

/** Synchronous modes, best first, as `auto` tries them. */
const AUTO_ORDER: readonly ConcreteGpuMode[] = ['headlessgl', 'webgl2', 'webasm', 'cpu'];

/** Every mode name the backend knows. */
export const GPU_MODES: readonly GpuMode[] = ['cpu', 'webasm', 'headlessgl', 'webgl2', 'webgpu', 'auto'];

/** The mode `auto` resolves to in this process. */
export function resolveGpuMode(mode: string = 'auto'): ConcreteGpuMode {
  if (!(GPU_MODES as readonly string[]).includes(mode)) {
    throw new Error(`gpu backend: unknown mode '${mode}'; expected one of ${GPU_MODES.join(', ')}`);
  }
  if (mode !== 'auto') return mode as ConcreteGpuMode;
  const found = AUTO_ORDER.find((m) => isModeSupported(m));
  return found ?? 'cpu';
}

/** Storage of the gpu backend: a texture or host array that kernels replace wholesale. */
export class GpuStorage implements Storage {
  readonly dtype: DType = 'float32';
  constructor(
    readonly size: number,
    /** Current contents; null only for empty buffers on device modes. */
    public handle: Float32Array | DeviceTexture | null,
    readonly owner: GpuBackend,
  ) {}
}

/** gpu.js kernels behind the {@link Backend} interface. */
export class GpuBackend implements Backend {
  /** The concrete gpu.js mode every kernel runs in. */
  readonly mode: ConcreteGpuMode;
  readonly name: string;
  private readonly gpu: GpuInstance;
  private readonly kernels = new Map<string, CompiledKernel>();
  private readonly onDevice: boolean;
  /** Kernel launches so far, for tests and benchmarks. */
  launches = 0;

  constructor(options: GpuBackendOptions = {}) {
    this.mode = resolveGpuMode(options.mode ?? 'auto');
    if (this.mode === 'webgpu') {
      throw new Error(
        'gpu backend: webgpu kernels return Promises in gpu.js, which the synchronous Backend interface cannot carry',
      );
    }
    if (!isModeSupported(this.mode)) throw new Error(`gpu backend: gpu.js mode '${this.mode}' is not available here`);
    this.name = `gpu:${this.mode}`;
    this.onDevice = !HOST_MODES.has(this.mode);
    this.gpu = createGpu(this.mode);
    for (const h of HELPERS) this.gpu.addFunction(h);
  }

  supportsDtype(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /** Release every compiled kernel and the gpu.js context. */
  dispose(): void {
    this.emptyPlaceholder?.delete();
    this.emptyPlaceholder = null;
    for (const k of this.kernels.values()) k.destroy?.();
    this.kernels.clear();
    this.gpu.destroy();
  }

  // ---- plumbing ----

  private own(s: Storage): GpuStorage {
    if (!(s instanceof GpuStorage) || s.owner !== this) throw new Error('gpu backend: storage belongs to another backend');
    return s;
  }

  private arg(s: Storage): KernelArg {
    // Only empty device buffers lack a handle; a placeholder of the same kind keeps argument types uniform.
    const h = this.own(s).handle;
    if (h === null) return this.placeholder();
    return h instanceof Float32Array && h.length === 0 ? new Float32Array(1) : h;
  }

  private emptyPlaceholder: DeviceTexture | null = null;

  /** A one-element device buffer standing in for empty inputs (their values are never read). */
  private placeholder(): DeviceTexture {
    if (!this.emptyPlaceholder) {
      const h = this.launch('upload', SOURCES.upload, 1, [new Float32Array(1)]);
      if (h === null || h instanceof Float32Array) throw new Error('gpu backend: placeholder is not a texture');
      this.emptyPlaceholder = h;
    }
    return this.emptyPlaceholder;
  }

  private kernel(key: string, source: string, loopMax: number): CompiledKernel {
    const full = `${key}|${loopMax}`;
    let k = this.kernels.get(full);
    if (!k) {
      k = this.gpu.createKernel(source, {
        output: [1],
        pipeline: true,
        immutable: true,
        dynamicOutput: true,
        dynamicArguments: true,
        loopMaxIterations: loopMax,
        precision: 'single',
        // GL would otherwise choose lowp/mediump from the texture size, too coarse for index math.
        tactic: 'precision',
      });
      this.kernels.set(full, k);
    }
    return k;
  }

  /** Run a kernel producing `size` values; returns the new handle (null for size 0). */
  private launch(
    key: string,
    source: string,
    size: number,
    args: KernelArg[],
    loopBound = 0,
  ): Float32Array | DeviceTexture | null {
    if (size === 0) return this.onDevice ? null : new Float32Array(0);
    const k = this.kernel(key, source, loopClass(loopBound));
    k.setOutput([size]);
    const result = k(...args);
    this.launches++;
    if (!runsOn(k, this.mode)) {
      const ran = `${k.kernel.constructor.name ?? '?'} (${k.kernel.constructor.mode ?? '?'})`;
      const reason = k.kernel.fallbackReason ?? 'unknown reason';
      throw new Error(`gpu backend: kernel '${key}' ran on ${ran} instead of '${this.mode}': ${reason}`);
    }
    if (this.onDevice) {
      if (!isDeviceTexture(result)) throw new Error(`gpu backend: kernel '${key}' returned no texture`);
      return result;
    }
    if (!(result instanceof Float32Array)) throw new Error(`gpu backend: kernel '${key}' returned no float32 array`);
    return result;
  }

  /** Replace the contents of `out`, releasing what it held. */
  private assign(out: Storage, handle: Float32Array | DeviceTexture | null): void {
    const o = this.own(out);
    const old = o.handle;
    o.handle = handle;
    if (old && old !== handle && !(old instanceof Float32Array)) old.delete();
  }

  private run(out: Storage, key: string, source: string, args: KernelArg[], loopBound = 0): void {
    this.assign(out, this.launch(key, source, out.size, args, loopBound));
  }

  // ---- storage ----

  alloc(size: number, dtype: DType): Storage {
    this.checkDtype(dtype);
    const s = new GpuStorage(size, this.onDevice ? null : new Float32Array(size), this);
    if (this.onDevice) this.fill(s, 0);
    return s;
  }
  fromArray(data: FloatArray, dtype: DType): Storage {
    this.checkDtype(dtype);
    const s = new GpuStorage(data.length, null, this);
    this.write(s, data);
    return s;
  }
  read(storage: Storage): Float32Array {
    const s = this.own(storage);
    const h = s.handle;
    if (h === null) return new Float32Array(s.size);
    if (h instanceof Float32Array) return h.slice();
    const values = h.toArray();
    if (!(values instanceof Float32Array)) throw new Error('gpu backend: texture read back as a non-float32 array');
    return values.length === s.size ? values : values.slice(0, s.size);
  }
  write(storage: Storage, data: ArrayLike<number>): void {
    const s = this.own(storage);
    if (data.length !== s.size) throw new Error(`write: ${data.length} values into a buffer of ${s.size}`);
    const host = Float32Array.from(data);
    if (!this.onDevice) {
      this.assign(s, host);
      return;
    }
    this.run(s, 'upload', SOURCES.upload, [host]);
  }
  free(storage: Storage): void {
    this.assign(storage, null);
  }

  private checkDtype(dtype: DType): void {
    if (dtype !== 'float32') throw new Error(`gpu backend: dtype ${dtype} is not supported (float32 only)`);
  }

  // ---- elementwise ----

  fill(out: Storage, value: number): void {
    this.run(out, 'fill', SOURCES.fill, [value]);
  }
  copy(src: Storage, out: Storage): void {
    // Not the 'upload' kernel: gpu.js switches kernel instances when an argument's type changes
    // (array vs texture), and the switched instances share one output texture. One type per key.
    this.run(out, 'copy', SOURCES.upload, [this.arg(src)]);
  }
  unary(op: UnaryOp, x: Storage, out: Storage): void {
    this.run(out, `unary:${op}`, SOURCES.unary(op), [this.arg(x)]);
  }
  affine(x: Storage, alpha: number, beta: number, out: Storage): void {
    this.run(out, 'affine', SOURCES.affine, [this.arg(x), alpha, beta]);
  }
  axpby(a: number, x: Storage, b: number, y: Storage, out: Storage): void {
    this.run(out, 'axpby', SOURCES.axpby, [a, this.arg(x), b, this.arg(y)]);
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
    if (a.size === out.size && b.size === out.size) {
      this.run(out, `binary:${op}`, SOURCES.binarySame(op), [this.arg(a), this.arg(b)]);
      return;
    }
    if (outShape.length > MAX_RANK) throw new Error(`gpu backend: rank ${outShape.length} > ${MAX_RANK}`);
    this.run(out, `broadcast:${op}`, SOURCES.binaryBroadcast(op), [
      this.arg(a),
      this.arg(b),
      padded(outShape),
      padded(broadcastStrides(aShape, outShape)),
      padded(broadcastStrides(bShape, outShape)),
      outShape.length,
    ]);
  }

  // ---- reductions and layout ----

  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage): void {
    if (shape.length > MAX_RANK) throw new Error(`gpu backend: rank ${shape.length} > ${MAX_RANK}`);
    const strides = stridesOf(shape);
    const kept = shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const red = shape.map((_, i) => i).filter((i) => axes.includes(i));
    const redCount = red.reduce((p, i) => p * shape[i], 1);
    this.run(
      out,
      'reduceSum',
      SOURCES.reduceSum,
      [
        this.arg(x),
        padded(kept.map((i) => shape[i])),
        padded(kept.map((i) => strides[i])),
        kept.length,
        padded(red.map((i) => shape[i])),
        padded(red.map((i) => strides[i])),
        red.length,
        redCount,
      ],
      redCount,
    );
  }
  reduceMaxLast(x: Storage, rows: number, cols: number, out: Storage): void {
    if (cols === 0) {
      this.fill(out, -Infinity);
      return;
    }
    this.run(out, 'reduceMaxLast', SOURCES.reduceMaxLast, [this.arg(x), cols], cols);
  }
  permute(x: Storage, shape: readonly number[], perm: readonly number[], out: Storage): void {
    if (shape.length > MAX_RANK) throw new Error(`gpu backend: rank ${shape.length} > ${MAX_RANK}`);
    const strides = stridesOf(shape);
    this.run(out, 'permute', SOURCES.permute, [
      this.arg(x),
      padded(perm.map((p) => shape[p])),
      padded(perm.map((p) => strides[p])),
      shape.length,
    ]);
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
    if (outShape.length > MAX_RANK) throw new Error(`gpu backend: rank ${outShape.length} > ${MAX_RANK}`);
    if (extent.some((e) => e === 0)) return;
    const sStr = stridesOf(srcShape);
    const srcBase = srcBegin.reduce((acc, b, d) => acc + b * sStr[d], 0);
    this.run(out, 'copyBlock', SOURCES.copyBlock, [
      this.arg(src),
      this.arg(out),
      padded(outShape),
      padded(outBegin),
      padded(extent),
      padded(sStr),
      outShape.length,
      srcBase,
    ]);
  }

  // ---- linear algebra ----

  matmul(a: Storage, b: Storage, out: Storage, g: MatmulGeometry): void {
    const { m, n, k } = g;
    if (k === 0) {
      this.fill(out, 0);
      return;
    }
    // Transposes and broadcast batches become strides, so one compiled kernel serves all eight layouts.
    const aR = g.transA ? 1 : k;
    const aC = g.transA ? m : 1;
    const bR = g.transB ? 1 : n;
    const bC = g.transB ? k : 1;
    this.run(
      out,
      'matmul',
      SOURCES.matmul,
      [this.arg(a), this.arg(b), m, n, k, g.batchA ? m * k : 0, aR, aC, g.batchB ? k * n : 0, bR, bC],
      k,
    );
  }

  // ---- rows and embeddings ----

  gatherRows(x: Storage, dim: number, ids: Int32Array, out: Storage): void {
    this.run(out, 'gatherRows', SOURCES.gatherRows, [this.arg(x), hostArray(ids), dim]);
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
    const batch = offsets.length - 1;
    const scales = new Float32Array(Math.max(1, batch));
    let longest = 0;
    for (let b = 0; b < batch; b++) {
      scales[b] = bagScale(weights, offsets[b], offsets[b + 1], mode);
      longest = Math.max(longest, offsets[b + 1] - offsets[b]);
    }
    const w = weights ? hostArray(weights) : hostArray(new Float32Array(ids.length).fill(1));
    this.run(
      out,
      'embeddingBag',
      SOURCES.embeddingBag,
      [this.arg(table), hostArray(ids), hostArray(offsets), w, scales, dim],
      longest,
    );
  }
  segmentSumRows(
    src: Storage,
    dim: number,
    segments: Int32Array,
    srcRows: Int32Array,
    scales: Float32Array | null,
    out: Storage,
  ): void {
    const segCount = Math.max(0, segments.length - 1);
    let longest = 0;
    for (let u = 0; u < segCount; u++) longest = Math.max(longest, segments[u + 1] - segments[u]);
    const s = scales ? hostArray(scales) : hostArray(new Float32Array(srcRows.length).fill(1));
    this.run(
      out,
      'segmentSumRows',
      SOURCES.segmentSumRows,
      [this.arg(src), hostArray(segments.length > 0 ? segments : [0]), hostArray(srcRows), s, dim, segCount],
      longest,
    );
  }
  scatterAddRows(values: Storage, dim: number, rows: Int32Array, out: Storage): void {
    if (rows.length === 0 || dim === 0) return;
    const inv = inverseMap(rows, out.size / dim);
    this.run(out, 'scatterAddRows', SOURCES.scatterAddRows, [this.arg(out), this.arg(values), inv, dim]);
  }

  // ---- fused nn kernels ----

  prelu(x: Storage, slope: Storage, channels: number, out: Storage): void {
    this.run(out, 'prelu', SOURCES.prelu, [this.arg(x), this.arg(slope), channels]);
  }
  preluBackward(
    x: Storage,
    slope: Storage,
    gradOut: Storage,
    channels: number,
    gradX: Storage,
    gradSlope: Storage,
  ): void {
    const rows = channels === 0 ? 0 : x.size / channels;
    // The slope gradient reads gradOut before gradX may overwrite it (they may not alias, but be safe).
    const slopeGrad = this.launch('preluGradSlope', SOURCES.preluGradSlope, gradSlope.size, [
      this.arg(x),
      this.arg(gradOut),
      channels,
      rows,
    ], rows);
    this.run(gradX, 'preluGradX', SOURCES.preluGradX, [this.arg(x), this.arg(slope), this.arg(gradOut), channels]);
    this.assign(gradSlope, slopeGrad);
  }
  softmaxLast(x: Storage, mask: Storage | null, rows: number, cols: number, out: Storage): void {
    if (rows === 0 || cols === 0) return;
    const masked = mask !== null;
    const tag = masked ? 'masked' : 'plain';
    const xa = this.arg(x);
    const ma: KernelArg[] = mask ? [this.arg(mask)] : [];
    // Row statistics first, so each output cell is one exp and one divide.
    const hi = this.launch(`softmaxMax:${tag}`, SOURCES.softmaxMax(masked), rows, [xa, ...ma, cols], cols);
    const hiArg = hi as KernelArg;
    const total = this.launch(`softmaxSum:${tag}`, SOURCES.softmaxSum(masked), rows, [xa, ...ma, hiArg, cols], cols);
    const totalArg = total as KernelArg;
    try {
      this.run(out, `softmaxNorm:${tag}`, SOURCES.softmaxNormalize(masked), [xa, ...ma, hiArg, totalArg, cols]);
    } finally {
      if (hi && !(hi instanceof Float32Array)) hi.delete();
      if (total && !(total instanceof Float32Array)) total.delete();
    }
  }
  bceWithLogits(logits: Storage, labels: Storage, out: Storage): void {
    this.run(out, 'bce', SOURCES.bce, [this.arg(logits), this.arg(labels)]);
  }
  bceWithLogitsBackward(logits: Storage, labels: Storage, gradOut: Storage, out: Storage): void {
    this.run(out, 'bceBackward', SOURCES.bceBackward, [this.arg(logits), this.arg(labels), this.arg(gradOut)]);
  }
  productBce(a: Storage, b: Storage, labels: Storage, out: Storage): void {
    this.run(out, 'productBce', SOURCES.productBce, [this.arg(a), this.arg(b), this.arg(labels)]);
  }
  productBceBackward(
    a: Storage,
    b: Storage,
    labels: Storage,
    gradOut: Storage,
    gradA: Storage,
    gradB: Storage,
  ): void {
    const [aa, ba, ya, ga] = [this.arg(a), this.arg(b), this.arg(labels), this.arg(gradOut)];
    const da = this.launch('productBceGrad', SOURCES.productBceGrad, gradA.size, [aa, ba, ya, ga]);
    const db = this.launch('productBceGrad', SOURCES.productBceGrad, gradB.size, [ba, aa, ya, ga]);
    this.assign(gradA, da);
    this.assign(gradB, db);
  }

  // ---- optimizers ----

  adam(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamHyper): void {
    const c1 = 1 - Math.pow(h.beta1, h.step);
    const c2 = 1 - Math.pow(h.beta2, h.step);
    const [pa, ga] = [this.arg(param), this.arg(grad)];
    // m and v read the old parameter (for weight decay), so all three are computed before any is replaced.
    const mNew = this.launch('adamM', SOURCES.adamM, m.size, [this.arg(m), ga, pa, h.beta1, h.weightDecay]);
    const vNew = this.launch('adamV', SOURCES.adamV, v.size, [this.arg(v), ga, pa, h.beta2, h.weightDecay]);
    if (mNew === null || vNew === null) return;
    const pNew = this.launch('adamP', SOURCES.adamP, param.size, [pa, mNew, vNew, h.lr / c1, Math.sqrt(c2), h.eps]);
    this.assign(m, mNew);
    this.assign(v, vNew);
    this.assign(param, pNew);
  }
  sparseAdam(
    param: Storage,
    m: Storage,
    v: Storage,
    dim: number,
    rows: Int32Array,
    gradRows: Storage,
    h: AdamHyper,
  ): void {
    if (rows.length === 0 || dim === 0) return;
    const c1 = 1 - Math.pow(h.beta1, h.step);
    const c2 = 1 - Math.pow(h.beta2, h.step);
    const inv = inverseMap(rows, param.size / dim);
    const [pa, ga] = [this.arg(param), this.arg(gradRows)];
    const mNew = this.launch('sparseAdamM', SOURCES.sparseAdamM, m.size, [this.arg(m), ga, pa, inv, dim, h.beta1, h.weightDecay]);
    const vNew = this.launch('sparseAdamV', SOURCES.sparseAdamV, v.size, [this.arg(v), ga, pa, inv, dim, h.beta2, h.weightDecay]);
    if (mNew === null || vNew === null) return;
    const pNew = this.launch('sparseAdamP', SOURCES.sparseAdamP, param.size, [
      pa,
      mNew,
      vNew,
      inv,
      dim,
      h.lr / c1,
      Math.sqrt(c2),
      h.eps,
    ]);
    this.assign(m, mNew);
    this.assign(v, vNew);
    this.assign(param, pNew);
  }
}
