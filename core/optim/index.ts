/** Optimizers (`optim.Adam`, `optim.SGD`, `optim.SparseAdam`) and gradient clipping. *
 * @module
 */
export { Optimizer, type OptimizerState } from './optimizer.js';
export { Adam, SparseAdam, type AdamOptions, type AdamSlot } from './adam.js';
export { SGD, type SgdOptions } from './sgd.js';
export { clipGradNorm, squaredSum } from './clip.js';
