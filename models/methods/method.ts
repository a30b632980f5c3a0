/**
 * What every method of the paper's Table 2 looks like to a trainer: a module that scores
 * pCTR, pCVR and pCTCVR for any batch, and a loss for one batch of impressions that hides
 * the method's own row selection, sampling and weighting. One loop trains them all:
 *
 *   const opt = new optim.Adam(method.parameters(), { lr });
 *   for (const batch of batches) trainStep(method, opt, batch);
 */
import {
  add,
  bceWithLogits,
  coalesce,
  concat,
  derive,
  div,
  guard,
  maximum,
  mean,
  mul,
  nn,
  noGrad,
  optim,
  reshape,
  Rng,
  sqrt,
  sum,
  Tensor,
  tidy,
} from '../../core/index.js';

const { clipGradNorm } = optim;
import type { DType } from '../../kernels/index.js';
import { createBaseModel, type AnyBaseModelOptions, type BaseModel } from '../base/base-model.js';
import { SharedEmbedding } from '../embedding.js';
import { labelTensor, type CvrPredictions } from '../esmm.js';
import { validateBatch, type Batch, type Schema } from '../schema.js';
import { MODEL_DEFAULTS } from './registry.js';

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

  /**
   * Validate a batch for training, as the loss does: a captured step's replay runs kernels only, so
   * the Trainer calls this before each step to keep bad ids, shapes and labels a named error.
   */
  checkBatch(batch: Batch): void {
    this.check(batch, true);
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
  tower?: AnyBaseModelOptions;
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
    const rng = new Rng(options.seed ?? MODEL_DEFAULTS.seed);
    const dtype = options.dtype ?? MODEL_DEFAULTS.dtype;
    this.embedding = new SharedEmbedding(schema, { rng: rng.fork(), dtype, std: options.embeddingStd });
    this.tower = createBaseModel(
      options.base ?? MODEL_DEFAULTS.base,
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
  // The total is derived from the batch, so a captured step sums each batch's weights again.
  const host =
    weights instanceof Float32Array || weights instanceof Float64Array ? weights : Float64Array.from(weights);
  const { total } = derive('weightTotal', [host], (w) => {
    let t = 0;
    for (let i = 0; i < w.length; i++) t += w[i];
    return { total: Float64Array.of(t > 0 ? t : 1) };
  });
  const divisor = Tensor.fromArray(total, [], { dtype: logits.dtype, backend: logits.backend });
  return div(sum(mul(losses, labelTensor(host, logits))), divisor);
}

/** Options of {@link trainStep}. */
export interface TrainStepOptions {
  /** Clip the global gradient norm to this value before the update. */
  clipNorm?: number;
  /**
   * Check that the loss and the global gradient norm are finite before the update (default true).
   * The check reads one scalar back per step; `false` skips it, and a non-finite step then
   * corrupts the parameters silently.
   */
  checkFinite?: boolean;
}

/**
 * A step whose loss or gradient norm is NaN or ±Inf. Thrown by {@link trainStep} before the
 * optimizer runs, so no parameter and no optimizer state has changed.
 */
export class NonFiniteStepError extends Error {
  constructor(
    /** The step's loss. */
    readonly loss: number,
    /** The global L2 norm of the gradients. */
    readonly gradNorm: number,
    /** The first parameter (by name) with a non-finite gradient or value, if any. */
    readonly parameter: string | undefined,
    detail: string,
  ) {
    super(detail);
    this.name = 'NonFiniteStepError';
  }
}

/**
 * One optimisation step of any method: zero the gradients, the method's loss, backward,
 * update. Runs inside `tidy`, so a step's temporaries are freed on device backends, and
 * returns the step's loss as a scalar tensor. Before the update, the loss and the global
 * gradient norm are checked (one scalar read back): a non-finite one throws a
 * {@link NonFiniteStepError} and leaves parameters and optimizer state untouched.
 */
export function trainStep(
  method: CvrMethod,
  optimizer: optim.Optimizer,
  batch: Batch,
  options: TrainStepOptions = {},
): Tensor {
  return tidy(() => recordStep(method, optimizer, batch, options));
}

/**
 * {@link trainStep} for every backend, webgpu's included: the step's graph and backward are
 * queued, then the loss and the finite check's scalar are awaited together (the step's one
 * readback), and the update is queued after them without another read. A non-finite step
 * throws a {@link NonFiniteStepError} naming the loss or gradient norm and the parameter, as
 * `trainStep` does, with no parameter and no optimizer state changed. With
 * `checkFinite: false` the update is queued before the read.
 */
export async function trainStepAsync(
  method: CvrMethod,
  optimizer: optim.Optimizer,
  batch: Batch,
  options: TrainStepOptions = {},
): Promise<number> {
  const check = options.checkFinite !== false;
  // The loss and the finite check's scalar leave the device together: one read per step,
  // between backward and the update, so that a non-finite step is refused before it applies.
  const { readout, norm } = tidy(() => {
    optimizer.zeroGrad();
    const { loss } = method.lossFor(batch);
    loss.backward();
    const n = gradientNorm(optimizer.params, options, check);
    const health = check ? noGrad(() => (n ? add(loss.detach(), n) : loss.detach())) : null;
    if (!check) optimizer.step();
    const out = noGrad(() =>
      concat(
        [reshape(loss.detach(), [1]), ...(health ? [reshape(health, [1])] : []), ...(n ? [reshape(n, [1])] : [])],
        0,
      ),
    );
    // Gradients outlive this scope for the update queued after the read (coalesced ones included).
    return { readout: out, norm: n !== null, grads: optimizer.params.map((p) => p.gradient) };
  });
  let values: ArrayLike<number>;
  try {
    values = await readout.data();
  } finally {
    readout.dispose();
  }
  const loss = values[0];
  if (check && !Number.isFinite(values[1])) {
    const failure = describeNonFinite(method, loss, norm ? values[2] : 0, await readParameters(optimizer));
    optimizer.zeroGrad();
    throw failure;
  }
  if (check) tidy(() => optimizer.step());
  return loss;
}

/** One step's graph, backward, finite check (one scalar read before the update) and update. */
function recordStep(method: CvrMethod, optimizer: optim.Optimizer, batch: Batch, options: TrainStepOptions): Tensor {
  optimizer.zeroGrad();
  const { loss } = method.lossFor(batch);
  loss.backward();
  const check = options.checkFinite !== false;
  const norm = gradientNorm(optimizer.params, options, check);
  // loss + norm is finite exactly when both are (∞ and NaN survive any sum).
  const health = check ? noGrad(() => (norm ? add(loss.detach(), norm) : loss.detach())) : null;
  // guard() so that a captured step checks too: a replay whose check fails reruns the step eagerly.
  if (health && !guard(health, (v) => Number.isFinite(v[0]))) {
    const failure = describeNonFinite(method, loss.item(), norm ? norm.item() : 0, readParametersSync(optimizer));
    optimizer.zeroGrad();
    throw failure;
  }
  optimizer.step();
  return loss;
}

/** The norm the finite check reads: clipping's (which also clips), or the plain global norm, or none. */
function gradientNorm(params: readonly Tensor[], options: TrainStepOptions, check: boolean): Tensor | null {
  if (options.clipNorm !== undefined) return clipGradNorm(params, options.clipNorm);
  return check ? gradNorm(params) : null;
}

/** The global L2 norm of the current gradients, on the device (sparse ones coalesced once, as the optimizer will use them). */
function gradNorm(params: readonly Tensor[]): Tensor | null {
  return noGrad(() => {
    let total: Tensor | null = null;
    for (const p of params) {
      if (p.sparseGrad) p.sparseGrad = coalesce(p.sparseGrad);
      const g = p.gradient;
      if (!g) continue;
      const sq = optim.squaredSum(g);
      total = total ? add(total, sq) : sq;
    }
    return total ? sqrt(total) : null;
  });
}

/** Each optimised parameter's values and gradient values, read back for {@link describeNonFinite}. */
type ParameterValues = Map<Tensor, { value: ArrayLike<number>; grad: ArrayLike<number> | null }>;

function gradientValues(p: Tensor): Tensor | null {
  return p.grad ?? p.sparseGrad?.values ?? null;
}

function readParametersSync(optimizer: optim.Optimizer): ParameterValues {
  const out: ParameterValues = new Map();
  for (const p of optimizer.params) out.set(p, { value: p.toArray(), grad: gradientValues(p)?.toArray() ?? null });
  return out;
}

/** {@link readParametersSync} on a backend whose reads are asynchronous only (webgpu's). */
async function readParameters(optimizer: optim.Optimizer): Promise<ParameterValues> {
  const out: ParameterValues = new Map();
  for (const p of optimizer.params) {
    const g = gradientValues(p);
    out.set(p, { value: await p.data(), grad: g ? await g.data() : null });
  }
  return out;
}

/** Names the first parameter whose gradient (or value) is not finite; read back only on this failure path. */
function describeNonFinite(method: CvrMethod, loss: number, norm: number, read: ParameterValues): NonFiniteStepError {
  const names = new Map<Tensor, string>(method.namedParameters().map(([n, p]) => [p, n]));
  const finite = (values: ArrayLike<number>): boolean => {
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
    return true;
  };
  let parameter: string | undefined;
  let what = '';
  // A non-finite value is the cause of the non-finite gradients it spreads, so values are searched first.
  const inOrder = [...names.keys()].filter((p) => read.has(p));
  parameter = names.get(inOrder.find((p) => !finite(read.get(p)!.value))!);
  if (parameter !== undefined) what = 'value';
  else {
    parameter = names.get(
      inOrder.find((p) => {
        const g = read.get(p)!.grad;
        return g !== null && !finite(g);
      })!,
    );
    what = 'gradient';
  }
  let culprit = parameter !== undefined ? `; first non-finite ${what}: parameter '${parameter}'` : '';
  if (parameter === undefined) {
    // Every gradient is finite, yet their squared norm overflowed float32: name the largest.
    let largest = 0;
    for (const p of inOrder) {
      const values = read.get(p)!.grad;
      if (!values) continue;
      for (let i = 0; i < values.length; i++) {
        if (Math.abs(values[i]) > largest) [largest, parameter] = [Math.abs(values[i]), names.get(p)];
      }
    }
    if (parameter !== undefined)
      culprit = `; every gradient is finite but the squared norm overflows float32; the largest, ${largest.toExponential(2)}, is in parameter '${parameter}'`;
  }
  const subject = Number.isFinite(loss) ? `gradient norm is ${norm}` : `loss is ${loss}`;
  return new NonFiniteStepError(loss, norm, parameter, `non-finite step: ${subject}${culprit}`);
}

/** A seeded generator for a method's sampling. */
export function samplingRng(seed: number | undefined): Rng {
  // Offset from the weight seed so that sampling and initialisation draw different streams.
  return new Rng(((seed ?? MODEL_DEFAULTS.seed) ^ 0x5eed) >>> 0);
}
