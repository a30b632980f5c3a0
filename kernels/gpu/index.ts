/**
 * The gpu.js backend: kernels for cpu, webasm, headlessgl and webgl2 gpu.js modes, and awaited kernels on webgpu.
 * This is the entry `esmm-ts/kernels/gpu`; importing it loads gpu.js and registers the `gpu` backend.
 */
import { registerBackend } from '../index.js';
import { GpuBackend } from './backend.js';
import { QueuedGpuBackend } from './queued-backend.js';

// webgpu kernels finish after their calls return, so that mode is the queued backend (awaited reads only).
registerBackend('gpu', (options) => (options.mode === 'webgpu' ? new QueuedGpuBackend() : new GpuBackend(options)));

export { GpuBackend, GpuStorage, GPU_MODES, resolveGpuMode } from './backend.js';
export type { ConcreteGpuMode, GpuBackendOptions } from './backend.js';
export { isModeSupported, isWebGpuAvailable, runsOn, type CompiledKernel, type KernelArg } from './gpujs.js';
export type { DeviceBuffer, GpuMode } from './gpujs.js';
export { ASYNC_METHODS, AsyncGpuBackend, AsyncGpuStorage, asyncOf } from './async-backend.js';
export type { AsyncBackend, AsyncKernels, AsyncMethod } from './async-backend.js';
export { QueuedGpuBackend, QueuedGpuStorage } from './queued-backend.js';
export { MAX_GPU_ELEMENTS } from './launch-args.js';
