/**
 * The asynchronous gpu.js backend: every kernel of {@link Backend} on gpu.js `webgpu`,
 * with each method returning a Promise.
 *
 * gpu.js webgpu kernels resolve their results (device buffers) through Promises and read
 * back through `mapAsync`, so the synchronous engine cannot drive them. This class steps
 * the very launch plans of the synchronous backend (`plans.ts`); only the launches and the
 * readback are awaited.
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
import { createGpu, isDeviceBuffer, isWebGpuAvailable, type DeviceBuffer } from './gpujs.js';
import { checkStorage, MAX_KERNEL_ELEMENTS } from './launch-args.js';
import { Launcher } from './launcher.js';
import { PLANS, upload, type Plan } from './plans.js';

/** Names of the {@link Backend} members that are kernels or storage operations (everything but name and dtype support). */
export type AsyncMethod = Exclude<
  { [K in keyof Backend]: Backend[K] extends (...args: never[]) => unknown ? K : never }[keyof Backend],
  'supportsDtype'
>;

/**
 * {@link Backend} with every kernel and storage operation returning a Promise of its synchronous result.
 * Each member is documented on {@link Backend}.
 * @useDeclaredType
 */
export type AsyncKernels = {
  [K in AsyncMethod]: (...args: Parameters<Backend[K]>) => Promise<ReturnType<Backend[K]>>;
};

/**
 * An asynchronous compute backend: the {@link Backend} contract with awaited results.
 * @useDeclaredType
 */
export type AsyncBackend = AsyncKernels & {
  /** Short name, e.g. `gpu:webgpu` or `async(reference)`. */
  readonly name: string;
  /** Whether tensors of this dtype can live here. */
  supportsDtype(dtype: DType): boolean;
  /** Release everything the backend holds. */
  dispose(): Promise<void>;
};

/** Every asynchronous method, checked complete against {@link AsyncMethod} at compile time. */
export const ASYNC_METHODS = [
  'alloc',
  'fromArray',
  'read',
  'write',
  'free',
  'fill',
  'copy',
  'unary',
  'affine',
  'axpby',
  'binary',
  'reduceSum',
  'reduceMaxLast',
  'permute',
  'copyBlock',
  'matmul',
  'gatherRows',
  'embeddingBag',
  'segmentSumRows',
  'scatterAddRows',
  'prelu',
  'preluBackward',
  'softmaxLast',
  'bceWithLogits',
  'bceWithLogitsBackward',
  'productBce',
  'productBceBackward',
  'adam',
  'sparseAdam',
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
  private readonly launcher: Launcher<DeviceBuffer>;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor() {
    this.launcher = new Launcher<DeviceBuffer>({
      gpu: createGpu('webgpu'),
      mode: 'webgpu',
      empty: null,
      own: (s) => this.own(s),
      accept: (result, key) => {
        if (!isDeviceBuffer(result)) throw new Error(`gpu backend: kernel '${key}' returned no webgpu buffer`);
        return result;
      },
    });
  }

  /** A backend on gpu.js webgpu; rejects when no adapter answers (not just when `navigator.gpu` is missing). */
  static async create(): Promise<AsyncGpuBackend> {
    if (!(await isWebGpuAvailable())) throw new Error('gpu backend: no webgpu adapter is available here');
    return new AsyncGpuBackend();
  }

  /** Kernel launches so far, for tests and benchmarks. */
  get launches(): number {
    return this.launcher.launches;
  }

  supportsDtype(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /** Release every compiled kernel and the gpu.js instance, after queued work settles. */
  dispose(): Promise<void> {
    return this.enqueue(async () => this.launcher.dispose());
  }

  // ---- plumbing ----

  /** Runs `op` after every earlier call settled; a failed call does not block later ones. */
  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const next = this.tail.then(op, op);
    this.tail = next.catch(() => undefined);
    return next;
  }

  /**
   * Queues `plan` on `args`. Host inputs are copied first: the caller may reuse its arrays
   * (ids, shapes, optimizer hyperparameters) before the queued launches run.
   */
  private run<A extends unknown[]>(plan: (...args: A) => Plan, ...args: A): Promise<void> {
    const copied = args.map(snapshot) as A;
    return this.enqueue(() => this.launcher.runAsync(plan(...copied)));
  }

  private own(s: Storage): AsyncGpuStorage {
    if (!(s instanceof AsyncGpuStorage) || s.owner !== this)
      throw new Error('gpu backend: storage belongs to another backend');
    return s;
  }

  // ---- storage ----

  /** Queues {@link Backend.alloc}: a zero-filled buffer. */
  alloc(size: number, dtype: DType): Promise<Storage> {
    return this.enqueue(async () => {
      checkStorage(size, dtype, MAX_KERNEL_ELEMENTS);
      const s = new AsyncGpuStorage(size, null, this);
      await this.launcher.runAsync(PLANS.fill(s, 0));
      return s;
    });
  }
  /** Queues {@link Backend.fromArray}; `data` is copied at once. */
  fromArray(data: FloatArray, dtype: DType): Promise<Storage> {
    const host = Float32Array.from(data);
    return this.enqueue(async () => {
      checkStorage(host.length, dtype, MAX_KERNEL_ELEMENTS);
      const s = new AsyncGpuStorage(host.length, null, this);
      await this.launcher.runAsync(upload(s, host));
      return s;
    });
  }
  /** Queues {@link Backend.read}: the only readback, mapped asynchronously. */
  read(storage: Storage): Promise<Float32Array> {
    return this.enqueue(async () => {
      const s = this.own(storage);
      if (s.handle === null) return new Float32Array(s.size);
      const values = await s.handle.toArray();
      if (!(values instanceof Float32Array)) throw new Error('gpu backend: buffer read back as a non-float32 array');
      return values.length === s.size ? values.slice() : values.slice(0, s.size);
    });
  }
  /** Queues {@link Backend.write}; `data` is copied at once. */
  write(storage: Storage, data: ArrayLike<number>): Promise<void> {
    const host = Float32Array.from(data);
    return this.enqueue(async () => {
      const s = this.own(storage);
      if (host.length !== s.size) throw new Error(`write: ${host.length} values into a buffer of ${s.size}`);
      await this.launcher.runAsync(upload(s, host));
    });
  }
  /** Queues {@link Backend.free}. */
  free(storage: Storage): Promise<void> {
    return this.enqueue(async () => this.launcher.assign(storage, null));
  }

  // ---- kernels: the launches are in plans.ts ----

  /** Queues {@link Backend.fill}. */
  fill(out: Storage, value: number): Promise<void> {
    return this.run(PLANS.fill, out, value);
  }
  /** Queues {@link Backend.copy}. */
  copy(src: Storage, out: Storage): Promise<void> {
    return this.run(PLANS.copy, src, out);
  }
  /** Queues {@link Backend.unary}. */
  unary(op: UnaryOp, x: Storage, out: Storage): Promise<void> {
    return this.run(PLANS.unary, op, x, out);
  }
  /** Queues {@link Backend.affine}. */
  affine(x: Storage, alpha: number, beta: number, out: Storage): Promise<void> {
    return this.run(PLANS.affine, x, alpha, beta, out);
  }
  /** Queues {@link Backend.axpby}. */
  axpby(a: number, x: Storage, b: number, y: Storage, out: Storage): Promise<void> {
    return this.run(PLANS.axpby, a, x, b, y, out);
  }
  /** Queues {@link Backend.binary}. */
  binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    out: Storage,
    outShape: readonly number[],
  ): Promise<void> {
    return this.run(PLANS.binary, op, a, aShape, b, bShape, out, outShape);
  }
  /** Queues {@link Backend.reduceSum}. */
  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage): Promise<void> {
    return this.run(PLANS.reduceSum, x, shape, axes, out);
  }
  /** Queues {@link Backend.reduceMaxLast}. */
  reduceMaxLast(x: Storage, rows: number, cols: number, out: Storage): Promise<void> {
    return this.run(PLANS.reduceMaxLast, x, rows, cols, out);
  }
  /** Queues {@link Backend.permute}. */
  permute(x: Storage, shape: readonly number[], perm: readonly number[], out: Storage): Promise<void> {
    return this.run(PLANS.permute, x, shape, perm, out);
  }
  /** Queues {@link Backend.copyBlock}. */
  copyBlock(
    src: Storage,
    srcShape: readonly number[],
    srcBegin: readonly number[],
    out: Storage,
    outShape: readonly number[],
    outBegin: readonly number[],
    extent: readonly number[],
  ): Promise<void> {
    return this.run(PLANS.copyBlock, src, srcShape, srcBegin, out, outShape, outBegin, extent);
  }
  /** Queues {@link Backend.matmul}. */
  matmul(a: Storage, b: Storage, out: Storage, g: MatmulGeometry): Promise<void> {
    return this.run(PLANS.matmul, a, b, out, g);
  }
  /** Queues {@link Backend.gatherRows}. */
  gatherRows(x: Storage, dim: number, ids: Int32Array, out: Storage): Promise<void> {
    return this.run(PLANS.gatherRows, x, dim, ids, out);
  }
  /** Queues {@link Backend.embeddingBag}. */
  embeddingBag(
    table: Storage,
    dim: number,
    ids: Int32Array,
    offsets: Int32Array,
    weights: Float32Array | null,
    mode: BagMode,
    out: Storage,
  ): Promise<void> {
    return this.run(PLANS.embeddingBag, table, dim, ids, offsets, weights, mode, out);
  }
  /** Queues {@link Backend.segmentSumRows}. */
  segmentSumRows(
    src: Storage,
    dim: number,
    segments: Int32Array,
    srcRows: Int32Array,
    scales: Float32Array | null,
    out: Storage,
  ): Promise<void> {
    return this.run(PLANS.segmentSumRows, src, dim, segments, srcRows, scales, out);
  }
  /** Queues {@link Backend.scatterAddRows}. */
  scatterAddRows(values: Storage, dim: number, rows: Int32Array, out: Storage): Promise<void> {
    return this.run(PLANS.scatterAddRows, values, dim, rows, out);
  }
  /** Queues {@link Backend.prelu}. */
  prelu(x: Storage, slope: Storage, channels: number, out: Storage): Promise<void> {
    return this.run(PLANS.prelu, x, slope, channels, out);
  }
  /** Queues {@link Backend.preluBackward}. */
  preluBackward(
    x: Storage,
    slope: Storage,
    gradOut: Storage,
    channels: number,
    gradX: Storage,
    gradSlope: Storage,
  ): Promise<void> {
    return this.run(PLANS.preluBackward, x, slope, gradOut, channels, gradX, gradSlope);
  }
  /** Queues {@link Backend.softmaxLast}. */
  softmaxLast(x: Storage, mask: Storage | null, rows: number, cols: number, out: Storage): Promise<void> {
    return this.run(PLANS.softmaxLast, x, mask, rows, cols, out);
  }
  /** Queues {@link Backend.bceWithLogits}. */
  bceWithLogits(logits: Storage, labels: Storage, out: Storage): Promise<void> {
    return this.run(PLANS.bceWithLogits, logits, labels, out);
  }
  /** Queues {@link Backend.bceWithLogitsBackward}. */
  bceWithLogitsBackward(logits: Storage, labels: Storage, gradOut: Storage, out: Storage): Promise<void> {
    return this.run(PLANS.bceWithLogitsBackward, logits, labels, gradOut, out);
  }
  /** Queues {@link Backend.productBce}. */
  productBce(a: Storage, b: Storage, labels: Storage, out: Storage): Promise<void> {
    return this.run(PLANS.productBce, a, b, labels, out);
  }
  /** Queues {@link Backend.productBceBackward}. */
  productBceBackward(
    a: Storage,
    b: Storage,
    labels: Storage,
    gradOut: Storage,
    gradA: Storage,
    gradB: Storage,
  ): Promise<void> {
    return this.run(PLANS.productBceBackward, a, b, labels, gradOut, gradA, gradB);
  }
  /** Queues {@link Backend.adam}. */
  adam(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamHyper): Promise<void> {
    return this.run(PLANS.adam, param, grad, m, v, h);
  }
  /** Queues {@link Backend.sparseAdam}. */
  sparseAdam(
    param: Storage,
    m: Storage,
    v: Storage,
    dim: number,
    rows: Int32Array,
    gradRows: Storage,
    h: AdamHyper,
  ): Promise<void> {
    return this.run(PLANS.sparseAdam, param, m, v, dim, rows, gradRows, h);
  }
}

/** A copy of a host input (typed array, shape, plain options object); storages and numbers as they are. */
function snapshot(value: unknown): unknown {
  if (value instanceof Int32Array || value instanceof Float32Array || value instanceof Float64Array)
    return value.slice();
  if (Array.isArray(value)) return [...value];
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    return { ...value };
  return value;
}
