/**
 * The ESMM tower (Ma et al., "Entire Space Multi-Task Model: An Effective Approach for
 * Estimating Post-Click Conversion Rate", SIGIR 2018): the field-wise pooled embeddings
 * concatenated, then an MLP (200-80, PReLU as in the reference code, ReLU selectable) to one logit.
 */
import type { Tensor } from '../../core/index.js';
import type { TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';
import { BaseModel, registerBaseModel, FieldsMlp, type BaseModelOptions, type InputDims } from './base-model.js';

/** The paper's tower: concat of field vectors → hidden layers → 1 logit. */
export class MlpTower extends BaseModel {
  readonly net: FieldsMlp;

  constructor(_schema: Schema, options: BaseModelOptions, inputDims: InputDims) {
    super(options);
    this.net = new FieldsMlp(inputDims, options);
  }

  forward(input: TowerInput): Tensor {
    // The input's one concatenation: towers sharing the embeddings share it and its lookups.
    return this.net.forward(input.concatenated());
  }
}

declare module './base-model.js' {
  interface BaseModelOptionsByName {
    mlp: BaseModelOptions;
  }
}

registerBaseModel('mlp', MlpTower, {
  summary: "the paper's tower: the fields' vectors concatenated, hidden layers, one logit (Ma et al., SIGIR 2018)",
  options: {},
  variants: [{}, { activation: 'relu' }],
});
