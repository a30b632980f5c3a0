/**
 * A narrow, typed view of the parts of gpu.js this backend uses.
 *
 * gpu.js ships loose typings; everything that touches it goes through this file so
 * that the rest of the backend stays strictly typed.
 */
import gpujs from 'gpu.js';

/** gpu.js modes this backend can be asked for. `auto` picks the best synchronous one. */
export type GpuMode = 'cpu' | 'webasm' | 'headlessgl' | 'webgl2' | 'webgpu' | 'auto';

/** A device-resident result (GL texture or WebGPU buffer) as gpu.js returns it from a pipeline kernel. */
export interface DeviceTexture {
  /** Read the values back to the host (the only readback path). */
  toArray(): unknown;
  /** Release the device memory. */
  delete(): void;
}

/** Values a kernel accepts as one argument. */
export type KernelArg = number | Float32Array | DeviceTexture;

/** A compiled gpu.js kernel, as the backend uses it. */
export interface CompiledKernel {
  (...args: KernelArg[]): unknown;
  /** Size the next launch's output (dynamic output kernels). */
  setOutput(output: number[]): unknown;
  /** Release the compiled kernel (and, when asked, its canvas). */
  destroy?(removeCanvasReferences?: boolean): void;
  /** The kernel instance that actually runs; gpu.js swaps it on a silent fallback. */
  readonly kernel: {
    readonly constructor: { readonly mode?: string; readonly name?: string };
    readonly fallbackReason?: string | null;
  };
}

/** Settings passed to `createKernel`. */
export interface KernelSettings {
  output: number[];
  pipeline: boolean;
  immutable: boolean;
  dynamicOutput: boolean;
  dynamicArguments: boolean;
  loopMaxIterations: number;
  precision: 'single';
  tactic: 'precision';
  argumentTypes?: string[];
}

/** The slice of a gpu.js `GPU` instance in use here. */
export interface GpuInstance {
  createKernel(source: string, settings: KernelSettings): CompiledKernel;
  addFunction(source: string): unknown;
  destroy(): unknown;
}

interface GpuStatics {
  new (settings: { mode: string }): GpuInstance;
  readonly isHeadlessGLSupported: boolean;
  readonly isWebGL2Supported: boolean;
  readonly isWebGPUSupported: boolean;
  readonly isWebAssemblySupported: boolean;
  isWebGPUAvailable(): Promise<boolean>;
}

interface GpuModule {
  GPU: GpuStatics;
  Texture: abstract new (...args: never[]) => object;
  CPUKernel: object;
  WebAssemblyKernel: object;
  HeadlessGLKernel: object;
  WebGL2Kernel: object;
  WebGPUKernel: object;
  WebGPUBufferResult: abstract new (...args: never[]) => object;
}

const lib = gpujs as unknown as GpuModule;

/** Whether gpu.js reports `mode` as usable in this process (webgpu: only the API surface). */
export function isModeSupported(mode: Exclude<GpuMode, 'auto'>): boolean {
  switch (mode) {
    case 'cpu':
      return true;
    case 'webasm':
      return lib.GPU.isWebAssemblySupported;
    case 'headlessgl':
      return lib.GPU.isHeadlessGLSupported;
    case 'webgl2':
      return lib.GPU.isWebGL2Supported;
    case 'webgpu':
      return lib.GPU.isWebGPUSupported;
  }
}

/**
 * Whether a kernel actually runs on `mode`. GL kernels all report `mode === 'gpu'`, so the
 * kernel class itself is compared; that also catches gpu.js's silent cpu fallback.
 */
export function runsOn(kernel: CompiledKernel, mode: Exclude<GpuMode, 'auto'>): boolean {
  const expected = {
    cpu: lib.CPUKernel,
    webasm: lib.WebAssemblyKernel,
    headlessgl: lib.HeadlessGLKernel,
    webgl2: lib.WebGL2Kernel,
    webgpu: lib.WebGPUKernel,
  }[mode];
  return kernel.kernel.constructor === expected;
}

/** A new gpu.js instance pinned to one concrete mode. */
export function createGpu(mode: Exclude<GpuMode, 'auto'>): GpuInstance {
  return new lib.GPU({ mode });
}

/** A device-resident webgpu pipeline result; unlike a GL texture, its readback is a Promise. */
export interface DeviceBuffer {
  /** Read the values back to the host (maps a staging buffer, hence asynchronous). */
  toArray(): Promise<unknown>;
  /** Release the device memory (reference counted inside gpu.js). */
  delete(): void;
}

/** True for a gpu.js webgpu buffer (device-resident pipeline result of a webgpu kernel). */
export function isDeviceBuffer(value: unknown): value is DeviceBuffer {
  return value instanceof lib.WebGPUBufferResult;
}

/**
 * Whether a webgpu adapter actually answers here. `isModeSupported('webgpu')` only sees
 * `navigator.gpu`, which exists without an adapter (e.g. outside a secure context's GPU process).
 */
export async function isWebGpuAvailable(): Promise<boolean> {
  if (!lib.GPU.isWebGPUSupported) return false;
  return lib.GPU.isWebGPUAvailable();
}

/** True for a gpu.js texture (device-resident pipeline result). */
export function isDeviceTexture(value: unknown): value is DeviceTexture {
  return value instanceof lib.Texture;
}
