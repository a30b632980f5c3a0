/**
 * The package's main entry (`import … from 'esmm-ts'`): the core's API at the top level,
 * and the kernels and the model zoo as namespaces. The sub-paths `esmm-ts/core`,
 * `esmm-ts/kernels` and `esmm-ts/models` expose each layer on its own. It lives with the
 * models because only the top layer may import every other. `serving` (ONNX export, the scoring
 * server) is also `esmm-ts/serving`.
 */
export * from '../core/index.js';
export * as kernels from '../kernels/index.js';
export * as models from './index.js';
export * as serving from './serving/index.js';
