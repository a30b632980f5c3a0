/**
 * esmm-ts: tensors, autodiff and kernels (gpu.js, WebAssembly, plain TypeScript),
 * and a model zoo around ESMM. The sub-paths `esmm-ts/core`, `esmm-ts/kernels` and
 * `esmm-ts/models` expose each layer on its own.
 */
export * from './core/index.js';
export * as kernels from './kernels/index.js';
export * as models from './models/index.js';
