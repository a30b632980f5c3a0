/** Serving: ONNX export by tracing, and the scoring server. */
export {
  exportOnnx,
  vocabularyHash,
  bagLengthDim,
  BATCH_DIM,
  ONNX_OPSET,
  ONNX_IR_VERSION,
  type ExportOnnxOptions,
  type ExportableModel,
} from './onnx-export.js';
export {
  registerOnnxEmitter,
  onnxEmitter,
  listOnnxEmitters,
  type OnnxEmitter,
  type EmitContext,
  type BagValues,
  type Dim,
  type SymDim,
  type SourceTag,
  type TracedAttr,
} from './onnx-emit.js';
export { readOnnxMetadata } from './onnx-proto.js';
export { toOnnxFeeds, type OnnxFeed } from './feeds.js';
export {
  parseScoreRequest,
  concatBatches,
  RequestError,
  IDENTITY_IDS,
  vocabularyIds,
  type IdMap,
  type ScoreRequest,
  type RequestLimits,
} from './request.js';
export {
  EagerEngine,
  OnnxRuntimeEngine,
  loadOnnxRuntime,
  type EngineName,
  type ScoringEngine,
  type OnnxRuntimeModule,
  type OnnxRuntimeEngineOptions,
} from './engine.js';
export {
  openServedModel,
  codeCommit,
  loadTrainedModel,
  onnxOptionsOf,
  type ServedModel,
  type TrainedModel,
  type TrainedModelConfig,
  type OpenModelOptions,
} from './model-files.js';
export {
  startServer,
  closeOnSignals,
  SERVER_DEFAULTS,
  type ServerOptions,
  type ScoringServer,
  type ServerStats,
} from './server.js';
