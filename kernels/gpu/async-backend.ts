/**
 * The asynchronous gpu.js backend: every kernel of {@link Backend} on gpu.js `webgpu`,
 * with each method returning a Promise.
 *
 * gpu.js webgpu kernels resolve their results (device buffers) through Promises and read
 * back through `mapAsync`, so the synchronous engine cannot drive them. This class runs
 * the very kernel sources of the synchronous backend (`sources.ts`) with the same host-side
 * argument shaping (`launch-args.ts`); only the launch and the readback are awaited.
 *
 * Calls are serialised on an internal queue: a method called before an earlier one settled
 * still runs after it, so a caller may issue a whole step without awaiting and await only
 * its reads. That is the shape a compiled, asynchronous training step needs: an engine that
 * records a step once (forward, backward, optimizer) can replay it here as one queue of
 * launches, or hand it to gpu.js `createPipeline` (a single command encoder on webgpu),
 * without changing a kernel. Nothing in the synchronous engine depends on this file.
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
  isDeviceBuffer,
  isWebGpuAvailable,
  runsOn,
  type CompiledKernel,
  type DeviceBuffer,
  type GpuInstance,
  type KernelArg,
} from './gpujs.js';
import { hostArray, inverseMap, loopClass, padded } from './launch-args.js';
import { HELPERS, MAX_RANK, SOURCES } from './sources.js';

/** Names of the {@link Backend} members that are kernels or storage operations (everything but name and dtype support). */
export type AsyncMethod = Exclude<
  { [K in keyof Backend]: Backend[K] extends (...args: never[]) => unknown ? K : never }[keyof Backend],
  'supportsDtype'
>;

/** {@link Backend} with every kernel and storage operation returning a Promise of its synchronous result. */
export type AsyncKernels = {
  [K in AsyncMethod]: (...args: Parameters<Backend[K]>) => Promise<ReturnType<Backend[K]>>;
};

/** An asynchronous compute backend: the {@link Backend} contract with awaited results. */
export interface AsyncBackend extends AsyncKernels {
  /** Short name, e.g. `gpu:webgpu` or `async(reference)`. */
  readonly name: string;
  /** Whether tensors of this dtype can live here. */
  supportsDtype(dtype: DType): boolean;
  /** Release everything the backend holds. */
  dispose(): Promise<void>;
}

/** Every asynchronous method, checked complete against {@link AsyncMethod} at compile time. */
export const ASYNC_METHODS = [
  'alloc', 'fromArray', 'read', 'write', 'free', 'fill', 'copy', 'unary', 'affine', 'axpby', 'binary',
  'reduceSum', 'reduceMaxLast', 'permute', 'copyBlock', 'matmul', 'gatherRows', 'embeddingBag',
  'segmentSumRows', 'scatterAddRows', 'prelu', 'preluBackward', 'softmaxLast', 'bceWithLogits',
  'bceWithLogitsBackward', 'productBce', 'productBceBackward', 'adam', 'sparseAdam',
] as const satisfies readonly AsyncMethod[];

// A method added to Backend but not listed above fails to compile here.
const methodsComplete: [Exclude<AsyncMethod, (typeof ASYNC_METHODS)[number]>] extends [never] ? true : never = true;
void methodsComplete;

/**
 * A synchronous backend behind the asynchronous contract, so one async model path can run
 * on the reference (or any) backend and be compared with webgpu on the same weights.
 */
export function asyncOf(backend: Backend): AsyncBackend {
  const out: Record<string, unknown> = {
    name: `async(${backend.name})`,
    supportsDtype: (dtype: DType) => backend.supportsDtype(dtype),
    dispose: async () => {},
  };
  for (const method of ASYNC_METHODS) {
    const fn = backend[method] as (...args: unknown[]) => unknown;
    out[method] = async (...args: unknown[]) => fn.apply(backend, args);
  }
  return out as unknown as AsyncBackend;
}

/** Storage of the async gpu backend: a webgpu buffer that kernels replace wholesale. */
export class AsyncGpuStorage implements Storage {
  readonly dtype: DType = 'float32';
  constructor(
    readonly size: number,
    /** Current contents; null only for empty buffers. */
    public handle: DeviceBuffer | null,
    readonly owner: AsyncGpuBackend,
  ) {}
}

/** gpu.js webgpu kernels behind the {@link AsyncBackend} contract. Create with {@link AsyncGpuBackend.create}. */
export class AsyncGpuBackend implements AsyncBackend {
  readonly name = 'gpu:webgpu';
  private readonly kernels = new Map<string, CompiledKernel>();
  private tail: Promise<unknown> = Promise.resolve();
  private emptyPlaceholder: DeviceBuffer | null = null;
  /** Kernel launches so far, for tests and benchmarks. */
  launches = 0;

  private constructor(private readonly gpu: GpuInstance) {
    for (const h of HELPERS) this.gpu.addFunction(h);
  }

  /** A backend on gpu.js webgpu; rejects when no adapter answers (not just when `navigator.gpu` is missing). */
  static async create(): Promise<AsyncGpuBackend> {
    if (!(await isWebGpuAvailable())) throw new Error('gpu backend: no webgpu adapter is available here');
    return new AsyncGpuBackend(createGpu('webgpu'));
  }

  supportsDtype(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /** Release every compiled kernel and the gpu.js instance, after queued work settles. */
  dispose(): Promise<void> {
    return this.enqueue(async () => {
      this.emptyPlaceholder?.delete();
      this.emptyPlaceholder = null;
      for (const k of this.kernels.values()) k.destroy?.();
      this.kernels.clear();
      this.gpu.destroy();
    });
  }

  // ---- plumbing ----

  /** Runs `op` after every earlier call settled; a failed call does not block later ones. */
  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const next = this.tail.then(op, op);
    this.tail = next.catch(() => undefined);
    return next;
  }

  private own(s: Storage): AsyncGpuStorage {
    if (!(s instanceof AsyncGpuStorage) || s.owner !== this) throw new Error('gpu backend: storage belongs to another backend');
    return s;
  }

  private async arg(s: Storage): Promise<KernelArg> {
    // Only empty buffers lack a handle; a one-element buffer keeps argument types uniform.
    return this.own(s).handle ?? (await this.placeholder());
  }

  private async args(...storages: Storage[]): Promise<KernelArg[]> {
    const out: KernelArg[] = [];
    for (const s of storages) out.push(await this.arg(s));
    return out;
  }

  private async placeholder(): Promise<DeviceBuffer> {
    if (!this.emptyPlaceholder) {
      const h = await this.launch('upload', SOURCES.upload, 1, [new Float32Array(1)]);
      if (h === null) throw new Error('gpu backend: placeholder launch produced nothing');
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
        tactic: 'precision',
      });
      this.kernels.set(full, k);
    }
    return k;
  }

  /** Run a kernel producing `size` values; resolves to the new buffer (null for size 0). */
  private async launch(key: string, source: string, size: number, args: KernelArg[], loopBound = 0): Promise<DeviceBuffer | null> {
    if (size === 0) return null;
    const k = this.kernel(key, source, loopClass(loopBound));
    k.setOutput([size]);
    const result: unknown = await k(...args);
    this.launches++;
    if (!runsOn(k, 'webgpu')) {
      const ran = `${k.kernel.constructor.name ?? '?'} (${k.kernel.constructor.mode ?? '?'})`;
      const reason = k.kernel.fallbackReason ?? 'unknown reason';
      throw new Error(`gpu backend: kernel '${key}' ran on ${ran} instead of 'webgpu': ${reason}`);
    }
    if (!isDeviceBuffer(result)) throw new Error(`gpu backend: kernel '${key}' returned no webgpu buffer`);
    return result;
  }

  /** Replace the contents of `out`, releasing what it held. */
  private assign(out: Storage, handle: DeviceBuffer | null): void {
    const o = this.own(out);
    const old = o.handle;
    o.handle = handle;
    if (old && old !== handle) old.delete();
  }

  private async run(out: Storage, key: string, source: string, args: KernelArg[], loopBound = 0): Promise<void> {
    this.assign(out, await this.launch(key, source, out.size, args, loopBound));
  }

  private checkDtype(dtype: DType): void {
    if (dtype !== 'float32') throw new Error(`gpu backend: dtype ${dtype} is not supported (float32 only)`);
  }

  // ---- storage ----

  alloc(size: number, dtype: DType): Promise<Storage> {
    return this.enqueue(async () => {
      this.checkDtype(dtype);
      const s = new AsyncGpuStorage(size, null, this);
      await this.run(s, 'fill', SOURCES.fill, [0]);
      return s;
    });
  }
  fromArray(data: FloatArray, dtype: DType): Promise<Storage> {
    const host = Float32Array.from(data);
    return this.enqueue(async () => {
      this.checkDtype(dtype);
      const s = new AsyncGpuStorage(host.length, null, this);
      await this.run(s, 'upload', SOURCES.upload, [host]);
      return s;
    });
  }
  read(storage: Storage): Promise<Float32Array> {
    return this.enqueue(async () => {
      const s = this.own(storage);
      if (s.handle === null) return new Float32Array(s.size);
      const values = await s.handle.toArray();
      if (!(values instanceof Float32Array)) throw new Error('gpu backend: buffer read back as a non-float32 array');
      return values.length === s.size ? values.slice() : values.slice(0, s.size);
    });
  }
  write(storage: Storage, data: ArrayLike<number>): Promise<void> {
    // Copied now: the caller may reuse its array before the queued upload runs.
    const host = Float32Array.from(data);
    return this.enqueue(async () => {
      const s = this.own(storage);
      if (host.length !== s.size) throw new Error(`write: ${host.length} values into a buffer of ${s.size}`);
      await this.run(s, 'upload', SOURCES.upload, [host]);
    });
  }
  free(storage: Storage): Promise<void> {
    return this.enqueue(async () => this.assign(storage, null));
  }

  // ---- elementwise ----

  fill(out: Storage, value: number): Promise<void> {
    return this.enqueue(() => this.run(out, 'fill', SOURCES.fill, [value]));
  }
  copy(src: Storage, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, 'copy', SOURCES.upload, await this.args(src)));
  }
  unary(op: UnaryOp, x: Storage, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, `unary:${op}`, SOURCES.unary(op), await this.args(x)));
  }
  affine(x: Storage, alpha: number, beta: number, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, 'affine', SOURCES.affine, [await this.arg(x), alpha, beta]));
  }
  axpby(a: number, x: Storage, b: number, y: Storage, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, 'axpby', SOURCES.axpby, [a, await this.arg(x), b, await this.arg(y)]));
  }
  binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    out: Storage,
    outShape: readonly number[],
  ): Promise<void> {
    return this.enqueue(async () => {
      const [aa, ba] = await this.args(a, b);
      if (a.size === out.size && b.size === out.size) {
        await this.run(out, `binary:${op}`, SOURCES.binarySame(op), [aa, ba]);
        return;
      }
      if (outShape.length > MAX_RANK) throw new Error(`gpu backend: rank ${outShape.length} > ${MAX_RANK}`);
      await this.run(out, `broadcast:${op}`, SOURCES.binaryBroadcast(op), [
        aa,
        ba,
        padded(outShape),
        padded(broadcastStrides(aShape, outShape)),
        padded(broadcastStrides(bShape, outShape)),
        outShape.length,
      ]);
    });
  }

  // ---- reductions and layout ----

  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage): Promise<void> {
    return this.enqueue(async () => {
      if (shape.length > MAX_RANK) throw new Error(`gpu backend: rank ${shape.length} > ${MAX_RANK}`);
      const strides = stridesOf(shape);
      const kept = shape.map((_, i) => i).filter((i) => !axes.includes(i));
      const red = shape.map((_, i) => i).filter((i) => axes.includes(i));
      const redCount = red.reduce((p, i) => p * shape[i], 1);
      await this.run(
        out,
        'reduceSum',
        SOURCES.reduceSum,
        [
          await this.arg(x),
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
    });
  }
  reduceMaxLast(x: Storage, rows: number, cols: number, out: Storage): Promise<void> {
    return this.enqueue(async () => {
      if (cols === 0) return this.run(out, 'fill', SOURCES.fill, [-Infinity]);
      await this.run(out, 'reduceMaxLast', SOURCES.reduceMaxLast, [await this.arg(x), cols], cols);
    });
  }
  permute(x: Storage, shape: readonly number[], perm: readonly number[], out: Storage): Promise<void> {
    return this.enqueue(async () => {
      if (shape.length > MAX_RANK) throw new Error(`gpu backend: rank ${shape.length} > ${MAX_RANK}`);
      const strides = stridesOf(shape);
      await this.run(out, 'permute', SOURCES.permute, [
        await this.arg(x),
        padded(perm.map((p) => shape[p])),
        padded(perm.map((p) => strides[p])),
        shape.length,
      ]);
    });
  }
  copyBlock(
    src: Storage,
    srcShape: readonly number[],
    srcBegin: readonly number[],
    out: Storage,
    outShape: readonly number[],
    outBegin: readonly number[],
    extent: readonly number[],
  ): Promise<void> {
    return this.enqueue(async () => {
      if (outShape.length > MAX_RANK) throw new Error(`gpu backend: rank ${outShape.length} > ${MAX_RANK}`);
      if (extent.some((e) => e === 0)) return;
      const sStr = stridesOf(srcShape);
      const srcBase = srcBegin.reduce((acc, b, d) => acc + b * sStr[d], 0);
      const [sa, oa] = await this.args(src, out);
      await this.run(out, 'copyBlock', SOURCES.copyBlock, [
        sa,
        oa,
        padded(outShape),
        padded(outBegin),
        padded(extent),
        padded(sStr),
        outShape.length,
        srcBase,
      ]);
    });
  }

  // ---- linear algebra ----

  matmul(a: Storage, b: Storage, out: Storage, g: MatmulGeometry): Promise<void> {
    return this.enqueue(async () => {
      const { m, n, k } = g;
      if (k === 0) return this.run(out, 'fill', SOURCES.fill, [0]);
      const aR = g.transA ? 1 : k;
      const aC = g.transA ? m : 1;
      const bR = g.transB ? 1 : n;
      const bC = g.transB ? k : 1;
      const [aa, ba] = await this.args(a, b);
      await this.run(out, 'matmul', SOURCES.matmul, [aa, ba, m, n, k, g.batchA ? m * k : 0, aR, aC, g.batchB ? k * n : 0, bR, bC], k);
    });
  }

  // ---- rows and embeddings ----

  gatherRows(x: Storage, dim: number, ids: Int32Array, out: Storage): Promise<void> {
    const idArg = hostArray(ids);
    return this.enqueue(async () => this.run(out, 'gatherRows', SOURCES.gatherRows, [await this.arg(x), idArg, dim]));
  }
  embeddingBag(
    table: Storage,
    dim: number,
    ids: Int32Array,
    offsets: Int32Array,
    weights: Float32Array | null,
    mode: BagMode,
    out: Storage,
  ): Promise<void> {
    const batch = offsets.length - 1;
    const scales = new Float32Array(Math.max(1, batch));
    let longest = 0;
    for (let b = 0; b < batch; b++) {
      scales[b] = bagScale(weights, offsets[b], offsets[b + 1], mode);
      longest = Math.max(longest, offsets[b + 1] - offsets[b]);
    }
    const w = weights ? hostArray(weights) : hostArray(new Float32Array(ids.length).fill(1));
    const [idArg, offArg] = [hostArray(ids), hostArray(offsets)];
    return this.enqueue(async () =>
      this.run(out, 'embeddingBag', SOURCES.embeddingBag, [await this.arg(table), idArg, offArg, w, scales, dim], longest),
    );
  }
  segmentSumRows(
    src: Storage,
    dim: number,
    segments: Int32Array,
    srcRows: Int32Array,
    scales: Float32Array | null,
    out: Storage,
  ): Promise<void> {
    const segCount = Math.max(0, segments.length - 1);
    let longest = 0;
    for (let u = 0; u < segCount; u++) longest = Math.max(longest, segments[u + 1] - segments[u]);
    const s = scales ? hostArray(scales) : hostArray(new Float32Array(srcRows.length).fill(1));
    const [segArg, rowArg] = [hostArray(segments.length > 0 ? segments : [0]), hostArray(srcRows)];
    return this.enqueue(async () =>
      this.run(out, 'segmentSumRows', SOURCES.segmentSumRows, [await this.arg(src), segArg, rowArg, s, dim, segCount], longest),
    );
  }
  scatterAddRows(values: Storage, dim: number, rows: Int32Array, out: Storage): Promise<void> {
    const rowsCopy = rows.slice();
    return this.enqueue(async () => {
      if (rowsCopy.length === 0 || dim === 0) return;
      const inv = inverseMap(rowsCopy, out.size / dim);
      const [oa, va] = await this.args(out, values);
      await this.run(out, 'scatterAddRows', SOURCES.scatterAddRows, [oa, va, inv, dim]);
    });
  }

  // ---- fused nn kernels ----

  prelu(x: Storage, slope: Storage, channels: number, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, 'prelu', SOURCES.prelu, [...(await this.args(x, slope)), channels]));
  }
  preluBackward(
    x: Storage,
    slope: Storage,
    gradOut: Storage,
    channels: number,
    gradX: Storage,
    gradSlope: Storage,
  ): Promise<void> {
    return this.enqueue(async () => {
      const rows = channels === 0 ? 0 : x.size / channels;
      const [xa, sa, ga] = await this.args(x, slope, gradOut);
      const slopeGrad = await this.launch('preluGradSlope', SOURCES.preluGradSlope, gradSlope.size, [xa, ga, channels, rows], rows);
      await this.run(gradX, 'preluGradX', SOURCES.preluGradX, [xa, sa, ga, channels]);
      this.assign(gradSlope, slopeGrad);
    });
  }
  softmaxLast(x: Storage, mask: Storage | null, rows: number, cols: number, out: Storage): Promise<void> {
    return this.enqueue(async () => {
      if (rows === 0 || cols === 0) return;
      const masked = mask !== null;
      const tag = masked ? 'masked' : 'plain';
      const xa = await this.arg(x);
      const ma: KernelArg[] = mask ? [await this.arg(mask)] : [];
      const hi = await this.launch(`softmaxMax:${tag}`, SOURCES.softmaxMax(masked), rows, [xa, ...ma, cols], cols);
      let total: DeviceBuffer | null = null;
      try {
        if (hi === null) return;
        total = await this.launch(`softmaxSum:${tag}`, SOURCES.softmaxSum(masked), rows, [xa, ...ma, hi, cols], cols);
        if (total === null) return;
        await this.run(out, `softmaxNorm:${tag}`, SOURCES.softmaxNormalize(masked), [xa, ...ma, hi, total, cols]);
      } finally {
        hi?.delete();
        total?.delete();
      }
    });
  }
  bceWithLogits(logits: Storage, labels: Storage, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, 'bce', SOURCES.bce, await this.args(logits, labels)));
  }
  bceWithLogitsBackward(logits: Storage, labels: Storage, gradOut: Storage, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, 'bceBackward', SOURCES.bceBackward, await this.args(logits, labels, gradOut)));
  }
  productBce(a: Storage, b: Storage, labels: Storage, out: Storage): Promise<void> {
    return this.enqueue(async () => this.run(out, 'productBce', SOURCES.productBce, await this.args(a, b, labels)));
  }
  productBceBackward(
    a: Storage,
    b: Storage,
    labels: Storage,
    gradOut: Storage,
    gradA: Storage,
    gradB: Storage,
  ): Promise<void> {
    return this.enqueue(async () => {
      const [aa, ba, ya, ga] = await this.args(a, b, labels, gradOut);
      const da = await this.launch('productBceGrad', SOURCES.productBceGrad, gradA.size, [aa, ba, ya, ga]);
      const db = await this.launch('productBceGrad', SOURCES.productBceGrad, gradB.size, [ba, aa, ya, ga]);
      this.assign(gradA, da);
      this.assign(gradB, db);
    });
  }

  // ---- optimizers ----

  adam(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamHyper): Promise<void> {
    const hyper = { ...h };
    return this.enqueue(async () => {
      const c1 = 1 - Math.pow(hyper.beta1, hyper.step);
      const c2 = 1 - Math.pow(hyper.beta2, hyper.step);
      const [pa, ga, ma, va] = await this.args(param, grad, m, v);
      // m and v read the old parameter (weight decay), so all three are computed before any is replaced.
      const mNew = await this.launch('adamM', SOURCES.adamM, m.size, [ma, ga, pa, hyper.beta1, hyper.weightDecay]);
      const vNew = await this.launch('adamV', SOURCES.adamV, v.size, [va, ga, pa, hyper.beta2, hyper.weightDecay]);
      if (mNew === null || vNew === null) return;
      const pNew = await this.launch('adamP', SOURCES.adamP, param.size, [pa, mNew, vNew, hyper.lr / c1, Math.sqrt(c2), hyper.eps]);
      this.assign(m, mNew);
      this.assign(v, vNew);
      this.assign(param, pNew);
    });
  }
  sparseAdam(
    param: Storage,
    m: Storage,
    v: Storage,
    dim: number,
    rows: Int32Array,
    gradRows: Storage,
    h: AdamHyper,
  ): Promise<void> {
    const hyper = { ...h };
    const rowsCopy = rows.slice();
    return this.enqueue(async () => {
      if (rowsCopy.length === 0 || dim === 0) return;
      const c1 = 1 - Math.pow(hyper.beta1, hyper.step);
      const c2 = 1 - Math.pow(hyper.beta2, hyper.step);
      const inv = inverseMap(rowsCopy, param.size / dim);
      const [pa, ga, ma, va] = await this.args(param, gradRows, m, v);
      const mNew = await this.launch('sparseAdamM', SOURCES.sparseAdamM, m.size, [ma, ga, pa, inv, dim, hyper.beta1, hyper.weightDecay]);
      const vNew = await this.launch('sparseAdamV', SOURCES.sparseAdamV, v.size, [va, ga, pa, inv, dim, hyper.beta2, hyper.weightDecay]);
      if (mNew === null || vNew === null) return;
      const pNew = await this.launch('sparseAdamP', SOURCES.sparseAdamP, param.size, [
        pa,
        mNew,
        vNew,
        inv,
        dim,
        hyper.lr / c1,
        Math.sqrt(c2),
        hyper.eps,
      ]);
      this.assign(m, mNew);
      this.assign(v, vNew);
      this.assign(param, pNew);
    });
  }
}
