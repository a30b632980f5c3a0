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
import {
  STORAGE_METHODS,
  type Backend,
  type BackendKernels,
  type BackendMethod,
  type DType,
  type FloatArray,
  type KernelMethod,
  type Storage,
} from '../backend.js';
import { isWebGpuAvailable, type DeviceBuffer } from './gpujs.js';
import { checkStorage, MAX_KERNEL_ELEMENTS } from './launch-args.js';
import { readDeviceBuffer, webgpuLauncher, type Launcher } from './launcher.js';
import { KERNEL_METHODS, PLANS, upload, type Plan } from './plans.js';
import { plannedKernels } from './surface.js';

/** Names of the {@link Backend} members that are kernels or storage operations (everything but name and dtype support). */
export type AsyncMethod = BackendMethod;

/**
 * {@link Backend} with every kernel and storage operation returning a Promise of its synchronous result.
 * Each member is documented on {@link Backend}.
 * @useDeclaredType
 */
export type AsyncKernels = {
  [K in keyof Pick<Backend, AsyncMethod>]: (...args: Parameters<Backend[K]>) => Promise<ReturnType<Backend[K]>>;
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

/** Every asynchronous method: the storage operations, then the kernels of the plan table. */
export const ASYNC_METHODS: readonly AsyncMethod[] = [...STORAGE_METHODS, ...KERNEL_METHODS];

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

/**
 * gpu.js webgpu kernels behind the {@link AsyncBackend} contract; each kernel method is generated
 * from its plan and queues it. Create with {@link AsyncGpuBackend.create}.
 */
export class AsyncGpuBackend
  extends plannedKernels<Promise<void>>()
  // BackendKernels adds no constraint here (a method returning a Promise is one returning void);
  // it gives the API docs each kernel's documentation.
  implements BackendKernels, AsyncBackend
{
  readonly name = 'gpu:webgpu';
  private readonly launcher: Launcher<DeviceBuffer>;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor() {
    super();
    this.launcher = webgpuLauncher((s) => this.own(s));
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
   * Queues kernel `name`'s plan on `args`. Host inputs are copied first: the caller may reuse
   * its arrays (ids, shapes, optimizer hyperparameters) before the queued launches run.
   * @internal
   */
  override runKernel(name: KernelMethod, args: unknown[]): Promise<void> {
    const copied = args.map(snapshot);
    const plan = PLANS[name] as (...a: unknown[]) => Plan;
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
      return readDeviceBuffer(s.handle, s.size);
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
}

/** A copy of a host input (typed array, shape, plain options object); storages and numbers as they are. */
export function snapshot(value: unknown): unknown {
  if (value instanceof Int32Array || value instanceof Float32Array || value instanceof Float64Array)
    return value.slice();
  if (Array.isArray(value)) return [...value];
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    return { ...value };
  return value;
}
