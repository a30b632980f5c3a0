/**
 * The core: tensors, reverse-mode autodiff, ops, nn modules, optimizers and gradient checks.
 * Generic: nothing here knows about CTR models.
 */
export {
  Tensor,
  RowSparseGrad,
  noGrad,
  enableGrad,
  isGradEnabled,
  tidy,
  registerOp,
  listOps,
  listDerivedOps,
  registerDerivedOp,
  type DerivedOpDefinition,
  getOp,
  apply,
  coalesce,
  groupIndices,
  addGradients,
  type Gradient,
  type OpDefinition,
  type BackwardContext,
  type ForwardResult,
  type TensorOptions,
  type TidyResult,
  type GraphNode,
} from './tensor.js';
export * from './ops/index.js';
export { withTracer, markTraced, activeTracer, type Tracer } from './trace.js';
export {
  compileStep,
  derive,
  dynamic,
  dynamicBuffer,
  hostRef,
  DynamicBuffer,
  type HostArray,
  guard,
  isRecording,
  COMPILE_STEP_DEFAULTS,
  type CompiledStep,
  type CompiledStepStats,
  type CompileStepOptions,
  type StepMode,
} from './capture.js';
import './tensor-methods.js';
export type { TensorLike, MatmulOptions, BagInput } from './ops/index.js';
export type { SegmentTerms, SparseLive } from './sparse-grad.js';
export { FUSION_DEFAULTS, fusions, setFusions, type Fusions } from './fusion.js';
export { Rng } from './random.js';
export * as init from './init.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck.js';
export { tensor, zeros, ones, scalar, type Nested } from './creation.js';
