/**
 * The ESMM frame (Ma et al., SIGIR 2018): a CTR tower and a CVR tower over shared
 * embeddings, trained on the entire impression space with
 *   L = w_ctr · mean BCE(pCTR, click) + w_ctcvr · mean BCE(pCTR · pCVR, click · conversion)
 * and no direct CVR term. pCVR is never trained on its own, yet it is always exposed:
 * it is the quantity the paper sets out to estimate.
 */
import {
  add,
  affine,
  bceWithLogits,
  derive,
  mean,
  mul,
  nn,
  productBce,
  reshape,
  Rng,
  sigmoid,
  Tensor,
} from '../core/index.js';
import type { DType } from '../kernels/index.js';
import { createBaseModel, type AnyBaseModelOptions, type BaseModel } from './base/base-model.js';
import { SharedEmbedding, type TowerInput } from './embedding.js';
import { MODEL_DEFAULTS } from './methods/registry.js';
import type { Batch, Schema } from './schema.js';

/** The three probabilities every method scores, each of shape [batch]. */
export interface CvrPredictions {
  pctr: Tensor;
  pcvr: Tensor;
  pctcvr: Tensor;
}

/** ESMM's forward: logits of both towers and the three probabilities, each [batch]. */
export interface EsmmOutput extends CvrPredictions {
  ctrLogit: Tensor;
  cvrLogit: Tensor;
}

/** Weights of the two loss terms. */
export interface EsmmLossWeights {
  ctr?: number;
  ctcvr?: number;
}

/** Defaults of the frame: both loss terms weighted 1 and one embedding layer shared, as the paper. */
export const ESMM_DEFAULTS = {
  lossWeights: { ctr: 1, ctcvr: 1 },
  shareEmbeddings: true,
} as const;

/** The loss and its two terms (each already weighted). */
export interface EsmmLossParts {
  total: Tensor;
  ctr: Tensor;
  ctcvr: Tensor;
}

/** Which base model each tower is; one name for both, or one per tower. */
export type TowerBases = string | { ctr: string; cvr: string };

/** Options of {@link Esmm}. */
export interface EsmmOptions {
  /** Base model of the towers (default `MODEL_DEFAULTS.base`). */
  base?: TowerBases;
  /** Options of both towers (hidden sizes, activation, model-specific keys). */
  tower?: AnyBaseModelOptions;
  /** Options of one tower layered over `tower`, e.g. DIN's `attention` when only the CVR tower is DIN. */
  towers?: { ctr?: AnyBaseModelOptions; cvr?: AnyBaseModelOptions };
  /** Share one embedding layer between the towers; false is ESMM-NS. */
  shareEmbeddings?: boolean;
  lossWeights?: EsmmLossWeights;
  /** Seed of every initial value. */
  seed?: number;
  dtype?: DType;
  /** Standard deviation of the embedding initialisation (default 0.01). */
  embeddingStd?: number;
}

/** Labels as a tensor of the model's dtype and backend. */
export function labelTensor(values: ArrayLike<number>, like: { dtype: DType; backend: Tensor['backend'] }): Tensor {
  return Tensor.fromArray(values, [values.length], { dtype: like.dtype, backend: like.backend });
}

/**
 * Click · conversion labels of a batch, derived from it with {@link derive}, so that a captured
 * step derives them again for each batch instead of freezing the first batch's labels.
 */
export function ctcvrLabels(batch: Batch): Float32Array {
  return derive('ctcvrLabels', [batch.click, batch.conversion], (click, conversion) => {
    const labels = new Float32Array(click.length);
    for (let i = 0; i < click.length; i++) labels[i] = click[i] * conversion[i];
    return { labels };
  }).labels;
}

/** Entire Space Multi-Task Model: two towers of any registered base model. */
export class Esmm extends nn.Module {
  /** One layer when shared, else [CTR's, CVR's]. */
  readonly embeddings: SharedEmbedding[];
  readonly ctrTower: BaseModel;
  readonly cvrTower: BaseModel;
  readonly lossWeights: Required<EsmmLossWeights>;
  readonly schema: Schema;

  constructor(schema: Schema, options: EsmmOptions = {}) {
    super();
    this.schema = schema;
    const rng = new Rng(options.seed ?? MODEL_DEFAULTS.seed);
    const dtype = options.dtype ?? MODEL_DEFAULTS.dtype;
    const embedding = (): SharedEmbedding =>
      new SharedEmbedding(schema, { rng: rng.fork(), dtype, std: options.embeddingStd });
    this.embeddings =
      (options.shareEmbeddings ?? ESMM_DEFAULTS.shareEmbeddings) ? [embedding()] : [embedding(), embedding()];
    const base = options.base ?? MODEL_DEFAULTS.base;
    const [ctrBase, cvrBase] = typeof base === 'string' ? [base, base] : [base.ctr, base.cvr];
    const dims = this.embeddings[0].fieldDims();
    const towerOptions = (own: AnyBaseModelOptions | undefined): AnyBaseModelOptions => ({
      ...options.tower,
      ...own,
      rng: rng.fork(),
      dtype,
    });
    this.ctrTower = createBaseModel(ctrBase, schema, towerOptions(options.towers?.ctr), dims);
    this.cvrTower = createBaseModel(cvrBase, schema, towerOptions(options.towers?.cvr), dims);
    this.lossWeights = {
      ctr: options.lossWeights?.ctr ?? ESMM_DEFAULTS.lossWeights.ctr,
      ctcvr: options.lossWeights?.ctcvr ?? ESMM_DEFAULTS.lossWeights.ctcvr,
    };
  }

  /** The CTR tower's embedding layer. */
  get ctrEmbedding(): SharedEmbedding {
    return this.embeddings[0];
  }

  /** The CVR tower's embedding layer (the same object as the CTR one when shared). */
  get cvrEmbedding(): SharedEmbedding {
    return this.embeddings[this.embeddings.length - 1];
  }

  /** Whether both towers read one embedding layer. */
  get sharesEmbeddings(): boolean {
    return this.embeddings.length === 1;
  }

  /** Logits and probabilities for every row of the batch. */
  forward(batch: Batch): EsmmOutput {
    const ctrInput: TowerInput = this.ctrEmbedding.forward(batch);
    const cvrInput: TowerInput = this.sharesEmbeddings ? ctrInput : this.cvrEmbedding.forward(batch);
    const ctrLogit = reshape(this.ctrTower.forward(ctrInput), [batch.size]);
    const cvrLogit = reshape(this.cvrTower.forward(cvrInput), [batch.size]);
    const pctr = sigmoid(ctrLogit);
    const pcvr = sigmoid(cvrLogit);
    // Probabilities are multiplied, never logits.
    return { ctrLogit, cvrLogit, pctr, pcvr, pctcvr: mul(pctr, pcvr) };
  }

  /** Both weighted loss terms and their sum; `out` reuses a forward already run on this batch. */
  lossParts(batch: Batch, out: EsmmOutput = this.forward(batch)): EsmmLossParts {
    const like = out.ctrLogit;
    const click = labelTensor(batch.click, like);
    const ctr = affine(mean(bceWithLogits(out.ctrLogit, click)), this.lossWeights.ctr, 0);
    const ctcvr = affine(
      mean(productBce(out.ctrLogit, out.cvrLogit, labelTensor(ctcvrLabels(batch), like))),
      this.lossWeights.ctcvr,
      0,
    );
    return { total: add(ctr, ctcvr), ctr, ctcvr };
  }

  /** The ESMM loss (scalar). */
  loss(batch: Batch, out?: EsmmOutput): Tensor {
    return this.lossParts(batch, out).total;
  }
}
