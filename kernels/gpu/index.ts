/** The gpu.js backend: kernels for cpu, webasm, headlessgl and webgl2 gpu.js modes. */
export { GpuBackend, GpuStorage, GPU_MODES, resolveGpuMode } from './backend.js';
export type { ConcreteGpuMode, GpuBackendOptions } from './backend.js';
export { isModeSupported, runsOn } from './gpujs.js';
export type { GpuMode } from './gpujs.js';
