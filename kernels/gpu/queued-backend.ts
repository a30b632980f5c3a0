/**
 * The webgpu backend of the synchronous engine: every {@link Backend} call returns at once
 * and queues its launches, and only an awaited read waits for the device.
 *
 * gpu.js webgpu kernels hand their results (device buffers) back through Promises, so a
 * kernel's output cannot exist when the synchronous call returns. A storage here is
 * therefore a slot that *will* hold a buffer: the call records the launch plan of
 * `plans.ts` (the same plans every gpu backend steps) on one promise chain, and the chain
 * fills the slots in call order. The unchanged engine thus records a whole training step
 * (forward, backward, Adam) without waiting; `await tensor.data()` (or
 * {@link QueuedGpuBackend.readAsync}) waits for the chain up to that read and maps the one
 * buffer it asks for. Nothing is read back mid-step. {@link QueuedGpuBackend.read} cannot
 * wait and says so.
 *
 * A launch that fails (a WebGPU validation error, a lost device) fails every later call
 * and read with that error, since the values after it would be wrong.
 */
import type { AsyncReadBackend, Backend, DType, FloatArray, Storage } from '../backend.js';
import { createGpu, isDeviceBuffer, isWebGpuAvailable, type DeviceBuffer } from './gpujs.js';
import { checkStorage, MAX_KERNEL_ELEMENTS } from './launch-args.js';
import { Launcher } from './launcher.js';
import { PLANS, upload, type KernelMethod, type Plan } from './plans.js';

/** Storage of the queued webgpu backend: the buffer that the queued launches put there so far. */
export class QueuedGpuStorage implements Storage {
  readonly dtype: DType = 'float32';
  constructor(
    readonly size: number,
    /** Contents once the queue has reached this point; null while empty or not yet computed. */
    public handle: DeviceBuffer | null,
    readonly owner: QueuedGpuBackend,
  ) {}
}

/** The kernels, each queued by {@link QueuedGpuBackend} from its plan. */
type QueuedKernels = Pick<Backend, KernelMethod>;

// Kernel methods are generated from PLANS in the constructor; this declares them on the class.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface QueuedGpuBackend extends QueuedKernels {}

/** gpu.js webgpu behind the synchronous {@link Backend} interface. Create with {@link QueuedGpuBackend.create}. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class QueuedGpuBackend implements AsyncReadBackend {
  readonly name = 'gpu:webgpu';
  private readonly launcher: Launcher<DeviceBuffer>;
  private tail: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private queued = 0;

  /** Prefer {@link QueuedGpuBackend.create}, which also checks that an adapter answers. */
  constructor() {
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
    const self = this as unknown as Record<KernelMethod, (...args: unknown[]) => void>;
    for (const name of Object.keys(PLANS) as KernelMethod[]) {
      const plan = PLANS[name] as (...args: unknown[]) => Plan;
      self[name] = (...args: unknown[]) => this.enqueue(plan, args.map(snapshot));
    }
  }

  /** A backend on gpu.js webgpu; rejects when no adapter answers (not just when `navigator.gpu` is missing). */
  static async create(): Promise<QueuedGpuBackend> {
    if (!(await isWebGpuAvailable())) throw new Error('gpu backend: no webgpu adapter is available here');
    return new QueuedGpuBackend();
  }

  /** Kernel launches run so far. */
  get launches(): number {
    return this.launcher.launches;
  }

  /** Calls queued and not yet run. */
  get pending(): number {
    return this.queued;
  }

  supportsDtype(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /** Resolves once every call so far has run on the device (rejects with the first failure). */
  async flush(): Promise<void> {
    await this.tail;
    if (this.failure) throw this.failure;
  }

  /** Release every compiled kernel and the gpu.js instance, once queued work has run. */
  async dispose(): Promise<void> {
    await this.tail;
    this.launcher.dispose();
  }

  // ---- storage ----

  alloc(size: number, dtype: DType): Storage {
    checkStorage(size, dtype, MAX_KERNEL_ELEMENTS);
    const s = new QueuedGpuStorage(size, null, this);
    this.enqueue(PLANS.fill, [s, 0]);
    return s;
  }

  fromArray(data: FloatArray, dtype: DType): Storage {
    checkStorage(data.length, dtype, MAX_KERNEL_ELEMENTS);
    const s = new QueuedGpuStorage(data.length, null, this);
    this.enqueue(upload, [s, Float32Array.from(data)]);
    return s;
  }

  /** Always throws: webgpu reads are asynchronous. Use `await tensor.data()` or {@link QueuedGpuBackend.readAsync}. */
  read(storage: Storage): FloatArray {
    this.own(storage);
    throw new Error(
      'gpu:webgpu: values can only be read asynchronously; use `await tensor.data()` instead of toArray()/item()',
    );
  }

  /** The values of `storage` once every call queued before this one has run: the only readback. */
  async readAsync(storage: Storage): Promise<Float32Array> {
    const s = this.own(storage);
    let values: Float32Array | null = null;
    this.later(async () => {
      if (s.handle === null) {
        values = new Float32Array(s.size);
        return;
      }
      const read = await s.handle.toArray();
      if (!(read instanceof Float32Array)) throw new Error('gpu backend: buffer read back as a non-float32 array');
      values = read.length === s.size ? read.slice() : read.slice(0, s.size);
    });
    await this.flush();
    return values as unknown as Float32Array;
  }

  write(storage: Storage, data: ArrayLike<number>): void {
    const s = this.own(storage);
    if (data.length !== s.size) throw new Error(`write: ${data.length} values into a buffer of ${s.size}`);
    this.enqueue(upload, [s, Float32Array.from(data)]);
  }

  /** Queues the release; never throws, since tensors are also freed by finalizers. */
  free(storage: Storage): void {
    if (storage instanceof QueuedGpuStorage && storage.owner === this)
      this.later(async () => this.launcher.assign(storage, null));
  }

  // ---- plumbing ----

  /** Queues `plan(...args)`; `args` must already be the caller's values copied (see {@link snapshot}). */
  private enqueue<A extends unknown[]>(plan: (...a: A) => Plan, args: A): void {
    this.check();
    this.later(() => this.launcher.runAsync(plan(...args)));
  }

  /** Runs `op` after everything queued so far, unless an earlier call failed. */
  private later(op: () => Promise<void>): void {
    this.queued++;
    this.tail = this.tail.then(async () => {
      this.queued--;
      if (this.failure) return;
      try {
        await op();
      } catch (e) {
        this.failure = e instanceof Error ? e : new Error(String(e));
      }
    });
  }

  /** Throws the first failure of a queued call, so later calls do not pile up on wrong values. */
  private check(): void {
    if (this.failure) throw new Error(`gpu:webgpu: an earlier queued kernel failed: ${this.failure.message}`);
  }

  private own(s: Storage): QueuedGpuStorage {
    if (!(s instanceof QueuedGpuStorage) || s.owner !== this)
      throw new Error('gpu backend: storage belongs to another backend');
    return s;
  }
}

/**
 * A copy of a host input (typed array, shape, plain options object); storages and numbers as
 * they are. The launches run later, and the engine may reuse its arrays in between.
 */
function snapshot(value: unknown): unknown {
  if (value instanceof Int32Array || value instanceof Float32Array || value instanceof Float64Array)
    return value.slice();
  if (Array.isArray(value)) return [...value];
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    return { ...value };
  return value;
}
