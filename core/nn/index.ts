/** Neural-network building blocks. *
 * @module
 */
export { Module, parameter, isParameter, type StateDictValue } from './module.js';
export {
  Layer,
  Linear,
  PReLU,
  ReLU,
  Sigmoid,
  Dropout,
  Sequential,
  Embedding,
  EmbeddingBag,
  mlp,
  type LayerOptions,
  type MlpOptions,
} from './layers.js';
