/** The gpu.js backend: kernels for cpu, webasm, headlessgl and webgl2 gpu.js modes, and awaited kernels on webgpu. */
export { GpuBackend, GpuStorage, GPU_MODES, resolveGpuMode } from './backend.js';
export type { ConcreteGpuMode, GpuBackendOptions } from './backend.js';
export { isModeSupported, isWebGpuAvailable, runsOn } from './gpujs.js';
export type { DeviceBuffer, GpuMode } from './gpujs.js';
export { ASYNC_METHODS, AsyncGpuBackend, AsyncGpuStorage, asyncOf } from './async-backend.js';
export type { AsyncBackend, AsyncKernels, AsyncMethod } from './async-backend.js';
export { QueuedGpuBackend, QueuedGpuStorage } from './queued-backend.js';
export { MlpTowerSession } from './inference.js';
export type { BagFieldWeights, DenseLayerWeights, MlpTowerWeights, TowerBatch } from './inference.js';
export { MAX_GPU_ELEMENTS } from './launch-args.js';
