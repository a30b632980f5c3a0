/**
 * What every method of the paper's Table 2 looks like to a trainer: a module that scores
 * pCTR, pCVR and pCTCVR for any batch, and a loss for one batch of impressions that hides
 * the method's own row selection, sampling and weighting. One loop trains them all:
 *
 *   const opt = new optim.Adam(method.parameters(), { lr });
 *   for (const batch of batches) trainStep(method, opt, batch);
 */
import {
  bceWithLogits,
  div,
  maximum,
  mean,
  mul,
  nn,
  noGrad,
  optim,
  reshape,
  Rng,
  sum,
  Tensor,
  tidy,
} from '../../core/index.js';

const { clipGradNorm } = optim;
import type { DType } from '../../kernels/index.js';
import { createBaseModel, type BaseModel, type BaseModelOptions } from '../base/base-model.js';
import { SharedEmbedding } from '../embedding.js';
import { labelTensor, type CvrPredictions } from '../esmm.js';
import { validateBatch, type Batch, type Schema } from '../schema.js';

/** One batch's loss, its named terms, and how many rows each term saw. */
export interface MethodLoss {
  /** The scalar to back-propagate. */
  loss: Tensor;
  /** Named terms (already weighted) summing to `loss`. */
  parts: Record<string, Tensor>;
  /** Rows behind each term (e.g. the CVR term of BASE sees the clicked rows only). */
  rows: Record<string, number>;
}

/** Host copies of a method's predictions. */
export interface HostPredictions {
  pctr: Float32Array;
  pcvr: Float32Array;
  pctcvr: Float32Array;
}

/** Settings every method shares. */
export interface MethodCommonOptions {
  /** Check each batch against the schema before use (default true); each batch object is checked once. */
  validate?: boolean;
  /** Seed of the method's sampling (AMAN, UNBIAS); initial weights are seeded by the model options. */
  seed?: number;
}

/** A method of Table 2: scoring, a per-batch loss, and the parameters to optimise. */
export abstract class CvrMethod extends nn.Module {
  /** Method name, e.g. `esmm` or `aman`. */
  abstract readonly method: string;
  /** The schema the method was built for. */
  abstract readonly schema: Schema;
  /** pCTR, pCVR and pCTCVR ([batch] each) for every row. */
  abstract forward(batch: Batch): CvrPredictions;
  /** The method's loss on one batch of impressions, with its own row selection or sampling inside. */
  abstract lossFor(batch: Batch): MethodLoss;

  /** State of the method's own sampling (empty when it samples nothing), saved in checkpoints so a resumed run draws the same rows. */
  samplingState(): number[] {
    return [];
  }

  /** Restore {@link CvrMethod.samplingState}. */
  restoreSamplingState(state: readonly number[]): void {
    if (state.length > 0) throw new Error(`${this.method}: has no sampling state to restore`);
  }

  private readonly checked = new WeakSet<Batch>();
  protected validate = true;

  /** The scalar loss of {@link CvrMethod.lossFor}. */
  loss(batch: Batch): Tensor {
    return this.lossFor(batch).loss;
  }

  /** Scores on the host, in evaluation mode and without recording the graph. */
  predict(batch: Batch): HostPredictions {
    const wasTraining = this.training;
    this.eval();
    try {
      const result: HostPredictions[] = [];
      // tidy frees the scoring graph's tensors at once on device backends; only host copies leave.
      tidy(() =>
        noGrad(() => {
          const p = this.forward(batch);
          result.push({
            pctr: Float32Array.from(p.pctr.toArray()),
            pcvr: Float32Array.from(p.pcvr.toArray()),
            pctcvr: Float32Array.from(p.pctcvr.toArray()),
          });
        }),
      );
      return result[0];
    } finally {
      this.train(wasTraining);
    }
  }

  /**
   * {@link CvrMethod.predict} on any backend, including one that reads only asynchronously
   * (webgpu): the scoring pass is queued whole and its three outputs are awaited.
   */
  async predictAsync(batch: Batch): Promise<HostPredictions> {
    const wasTraining = this.training;
    this.eval();
    let p: { pctr: Tensor; pcvr: Tensor; pctcvr: Tensor };
    try {
      p = tidy(() =>
        noGrad(() => {
          const { pctr, pcvr, pctcvr } = this.forward(batch);
          return { pctr, pcvr, pctcvr };
        }),
      );
    } finally {
      this.train(wasTraining);
    }
    try {
      const [pctr, pcvr, pctcvr] = await Promise.all([p.pctr.data(), p.pcvr.data(), p.pctcvr.data()]);
      return { pctr: Float32Array.from(pctr), pcvr: Float32Array.from(pcvr), pctcvr: Float32Array.from(pctcvr) };
    } finally {
      p.pctr.dispose();
      p.pcvr.dispose();
      p.pctcvr.dispose();
    }
  }

  /** Validate a batch once (when enabled); a loss also needs at least one row, since a mean over none is NaN. */
  protected check(batch: Batch, forLoss = false): void {
    if (forLoss && batch.size === 0) throw new Error(`${this.method}: cannot compute a loss on an empty batch`);
    if (!this.validate || this.checked.has(batch)) return;
    validateBatch(this.schema, batch);
    this.checked.add(batch);
  }
}

/** Options of a {@link SingleTaskModel}. */
export interface SingleTaskOptions {
  base?: string;
  tower?: BaseModelOptions;
  seed?: number;
  dtype?: DType;
  embeddingStd?: number;
}

/** One embedding layer and one tower: the separate CTR, CVR or CTCVR model of the baselines. */
export class SingleTaskModel extends nn.Module {
  readonly embedding: SharedEmbedding;
  readonly tower: BaseModel;

  constructor(schema: Schema, options: SingleTaskOptions = {}) {
    super();
    const rng = new Rng(options.seed ?? 0);
    const dtype = options.dtype ?? 'float32';
    this.embedding = new SharedEmbedding(schema, { rng: rng.fork(), dtype, std: options.embeddingStd });
    this.tower = createBaseModel(
      options.base ?? 'mlp',
      schema,
      { ...options.tower, rng: rng.fork(), dtype },
      this.embedding.fieldDims(),
    );
  }

  /** Logits [batch]. */
  forward(batch: Batch): Tensor {
    return reshape(this.tower.forward(this.embedding.forward(batch)), [batch.size]);
  }
}

/**
 * Mean BCE of logits against labels, or Σ wᵢ·BCEᵢ / Σ wᵢ with weights. Weights may be a
 * device tensor (e.g. an acceptance mask computed from predictions), so no value is read back.
 */
export function weightedBce(logits: Tensor, labels: ArrayLike<number>, weights?: ArrayLike<number> | Tensor): Tensor {
  const losses = bceWithLogits(logits, labelTensor(labels, logits));
  if (!weights) return mean(losses);
  if (weights instanceof Tensor) return div(sum(mul(losses, weights)), maximum(sum(weights), 1e-12));
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  return div(sum(mul(losses, labelTensor(weights, logits))), total > 0 ? total : 1);
}

/** Options of {@link trainStep}. */
export interface TrainStepOptions {
  /** Clip the global gradient norm to this value before the update. */
  clipNorm?: number;
}

/**
 * One optimisation step of any method: zero the gradients, the method's loss, backward,
 * update. Runs inside `tidy`, so a step's temporaries are freed on device backends, and
 * returns the step's loss as a scalar tensor: nothing is read back unless the caller
 * asks (`.item()`), which keeps a device backend's pipeline full.
 */
export function trainStep(
  method: CvrMethod,
  optimizer: optim.Optimizer,
  batch: Batch,
  options: TrainStepOptions = {},
): Tensor {
  return tidy(() => {
    optimizer.zeroGrad();
    const { loss } = method.lossFor(batch);
    loss.backward();
    if (options.clipNorm !== undefined) clipGradNorm(optimizer.params, options.clipNorm);
    optimizer.step();
    return loss;
  });
}

/**
 * {@link trainStep} awaited: the step is queued whole (on webgpu nothing waits until the
 * end), then its loss is read back. Returns the loss value. The way to train on a backend
 * that reads only asynchronously; on the others it equals `trainStep(...).item()`.
 */
export async function trainStepAsync(
  method: CvrMethod,
  optimizer: optim.Optimizer,
  batch: Batch,
  options: TrainStepOptions = {},
): Promise<number> {
  const loss = trainStep(method, optimizer, batch, options);
  try {
    return (await loss.data())[0];
  } finally {
    loss.dispose();
  }
}

/** A seeded generator for a method's sampling. */
export function samplingRng(seed: number | undefined): Rng {
  // Offset from the weight seed so that sampling and initialisation draw different streams.
  return new Rng(((seed ?? 0) ^ 0x5eed) >>> 0);
}
