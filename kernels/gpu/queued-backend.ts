/**
 * The webgpu backend of the synchronous engine: every `Backend` call returns at once
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
import type { AsyncReadBackend, BackendKernels, DType, FloatArray, KernelMethod, Storage } from '../backend.js';
import { snapshot } from './async-backend.js';
import { isWebGpuAvailable, type DeviceBuffer } from './gpujs.js';
import { checkStorage, MAX_KERNEL_ELEMENTS } from './launch-args.js';
import { readDeviceBuffer, webgpuLauncher, type Launcher } from './launcher.js';
import { PLANS, upload, type Plan } from './plans.js';
import { plannedKernels } from './surface.js';

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

/** gpu.js webgpu behind the synchronous `Backend` interface. Create with {@link QueuedGpuBackend.create}. */
export class QueuedGpuBackend extends plannedKernels<void>() implements BackendKernels, AsyncReadBackend {
  readonly name = 'gpu:webgpu';
  private readonly launcher: Launcher<DeviceBuffer>;
  private tail: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private queued = 0;

  /** Prefer {@link QueuedGpuBackend.create}, which also checks that an adapter answers. */
  constructor() {
    super();
    this.launcher = webgpuLauncher((s) => this.own(s));
  }

  /** Queues one kernel call (the kernel methods are generated from the plan table and land here). */
  override runKernel(name: KernelMethod, args: unknown[]): void {
    this.enqueue(PLANS[name] as (...a: unknown[]) => Plan, args.map(snapshot));
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
      values = await readDeviceBuffer(s.handle, s.size);
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

  /** Queues `plan(...args)`; `args` must already be copies of the caller's host values (the engine may reuse them). */
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
