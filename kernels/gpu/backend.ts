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
 * carry; asking for that mode throws with the reason. Each kernel's launches are written
 * once in `plans.ts`; this backend steps them at once, `async-backend.ts` awaits them on
 * webgpu.
 *
 * A tensor of {@link MAX_KERNEL_ELEMENTS} elements or more, past what one kernel indexes
 * exactly, is held as blocks of {@link CHUNK_ELEMENTS}, each a storage of its own; storage,
 * elementwise, row and Adam kernels run once per block, the others refuse it by name.
 */
import type { Backend, DType, FloatArray, KernelMethod, Storage } from '../backend.js';
import { createGpu, isDeviceTexture, isModeSupported, type DeviceTexture, type GpuMode } from './gpujs.js';
import { CHUNK_ELEMENTS, MAX_KERNEL_ELEMENTS, checkStorage } from './launch-args.js';
import { Launcher } from './launcher.js';
import { PLANS, upload, type Plan } from './plans.js';
import { plannedKernels } from './surface.js';

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

/** Storage of the gpu backend: a texture or host array that kernels replace wholesale, or blocks of them. */
export class GpuStorage implements Storage {
  readonly dtype: DType = 'float32';
  constructor(
    readonly size: number,
    /** Current contents; null for empty buffers on device modes and for blocked tensors. */
    public handle: Float32Array | DeviceTexture | null,
    readonly owner: GpuBackend,
    /** The blocks of a tensor too large for one kernel, in order; null for a plain one. */
    readonly chunks: readonly GpuStorage[] | null = null,
  ) {}
}

/** gpu.js kernels behind the {@link Backend} interface; each kernel method is generated from its plan. */
export class GpuBackend extends plannedKernels<void>() implements Backend {
  /** The concrete gpu.js mode every kernel runs in. */
  readonly mode: ConcreteGpuMode;
  readonly name: string;
  private readonly launcher: Launcher<Float32Array | DeviceTexture>;
  private readonly onDevice: boolean;

  constructor(options: GpuBackendOptions = {}) {
    super();
    this.mode = resolveGpuMode(options.mode ?? 'auto');
    if (this.mode === 'webgpu') {
      throw new Error(
        'gpu backend: webgpu kernels return Promises in gpu.js, which the synchronous Backend interface cannot carry',
      );
    }
    if (!isModeSupported(this.mode)) throw new Error(`gpu backend: gpu.js mode '${this.mode}' is not available here`);
    this.name = `gpu:${this.mode}`;
    const onDevice = !HOST_MODES.has(this.mode);
    this.onDevice = onDevice;
    this.launcher = new Launcher<Float32Array | DeviceTexture>({
      gpu: createGpu(this.mode),
      mode: this.mode,
      empty: onDevice ? null : new Float32Array(0),
      own: (s) => this.own(s),
      accept: (result, key) => {
        if (onDevice) {
          if (!isDeviceTexture(result)) throw new Error(`gpu backend: kernel '${key}' returned no texture`);
          return result;
        }
        if (!(result instanceof Float32Array))
          throw new Error(`gpu backend: kernel '${key}' returned no float32 array`);
        return result;
      },
    });
  }

  /** Kernel launches so far, for tests and benchmarks. */
  get launches(): number {
    return this.launcher.launches;
  }

  supportsDtype(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /** Release every compiled kernel and the gpu.js context. */
  dispose(): void {
    this.launcher.dispose();
  }

  private own(s: Storage): GpuStorage {
    if (!(s instanceof GpuStorage) || s.owner !== this)
      throw new Error('gpu backend: storage belongs to another backend');
    return s;
  }

  /** @internal */
  override runKernel(name: KernelMethod, args: unknown[]): void {
    this.launcher.runSync((PLANS[name] as (...a: unknown[]) => Plan)(...args));
  }

  // ---- storage ----

  /** Unfilled storage of `size`, in blocks when one kernel cannot index it. */
  private make(size: number, handle: (n: number) => Float32Array | null): GpuStorage {
    if (size < MAX_KERNEL_ELEMENTS) return new GpuStorage(size, handle(size), this);
    const chunks: GpuStorage[] = [];
    for (let at = 0; at < size; at += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, size - at);
      chunks.push(new GpuStorage(n, handle(n), this));
    }
    return new GpuStorage(size, null, this, chunks);
  }

  alloc(size: number, dtype: DType): Storage {
    checkStorage(size, dtype);
    const s = this.make(size, (n) => (this.onDevice ? null : new Float32Array(n)));
    if (this.onDevice) this.fill(s, 0);
    return s;
  }
  fromArray(data: FloatArray, dtype: DType): Storage {
    checkStorage(data.length, dtype);
    const s = this.make(data.length, () => null);
    this.write(s, data);
    return s;
  }
  read(storage: Storage): Float32Array {
    const s = this.own(storage);
    if (s.chunks !== null) {
      const out = new Float32Array(s.size);
      let at = 0;
      for (const c of s.chunks) {
        out.set(this.read(c), at);
        at += c.size;
      }
      return out;
    }
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
    if (s.chunks !== null) {
      let at = 0;
      for (const c of s.chunks) {
        this.write(c, host.subarray(at, at + c.size));
        at += c.size;
      }
      return;
    }
    if (this.onDevice) this.launcher.runSync(upload(s, host));
    else this.launcher.assign(s, host);
  }
  free(storage: Storage): void {
    for (const c of this.own(storage).chunks ?? []) this.free(c);
    this.launcher.assign(storage, null);
  }
}
