/**
 * What the multi-task frames (shared-bottom, MMoE, PLE, AITM, ESCM²) share: one embedding
 * layer, trunks built from any registered base model, dense towers over a trunk's output,
 * and the two training spaces that separate the frame from the supervision:
 *
 * - `entire` (ESMM's): BCE(pCTR, click) + BCE(pCTR · pCVR, click · conversion) over every impression;
 * - `click` (the naive one): BCE(pCTR, click) over every impression + BCE(pCVR, conversion) over clicked rows.
 */
import { add, affine, mean, mul, nn, productBce, reshape, Rng, sigmoid, Tensor } from '../../core/index.js';
import type { DType } from '../../kernels/index.js';
import { createBaseModel, type BaseModel, type BaseModelOptions } from '../base/base-model.js';
import { SharedEmbedding, type TowerInput } from '../embedding.js';
import { ctcvrLabels, labelTensor, type CvrPredictions } from '../esmm.js';
import type { Batch, Schema } from '../schema.js';
import { checks, type OptionSpec } from '../options.js';
import { CvrMethod, weightedBce, type MethodCommonOptions, type MethodLoss } from './method.js';
import {
  registerMethod,
  type MethodName,
  type MethodOptionsByName,
  type MethodRegistration,
  type ModelCommonOptions,
} from './registry.js';

/** Where the CVR task is supervised: ESMM's entire space (CTCVR) or the clicked rows only. */
export type TrainingSpace = 'entire' | 'click';

/** The training spaces, for validation and listings. */
export const TRAINING_SPACES: readonly TrainingSpace[] = ['entire', 'click'];

/** Settings every multi-task frame shares. */
export interface MultiTaskOptions extends MethodCommonOptions {
  /** Registered base model of the trunks (experts, shared bottom, AITM towers); default `mlp`. */
  base?: string;
  /** Options passed to every trunk's base model (activation, dropout, DIN's `attention`, ...); `hidden` is the frame's own. */
  tower?: BaseModelOptions;
  /** `entire` (default: CTCVR = CTR × CVR supervision, as ESMM) or `click` (CVR loss on clicked rows). */
  trainingSpace?: TrainingSpace;
  /** Weight of the CTR loss (default 1). */
  ctrWeight?: number;
  /** Weight of the CVR-side loss: CTCVR in the entire space, CVR in the click space (default 1). */
  cvrWeight?: number;
  dtype?: DType;
  /** Standard deviation of the embedding initialisation (default 0.01). */
  embeddingStd?: number;
}

/** Everything a frame's constructor needs to build its parts. */
export interface FrameContext {
  schema: Schema;
  rng: Rng;
  dtype: DType;
  base: string;
  tower: BaseModelOptions;
  /** Width of each field's vector from the embedding layer. */
  dims: ReadonlyMap<string, number>;
}

/** Check that a size list is non-empty positive integers; `what` names the option in the error. */
export function checkSizes(method: string, what: string, sizes: readonly number[], allowEmpty = false): void {
  if ((!allowEmpty && sizes.length === 0) || sizes.some((s) => !Number.isInteger(s) || s <= 0))
    throw new Error(
      `${method}: ${what} must be ${allowEmpty ? '' : 'a non-empty list of '}positive integers, got [${sizes.join(', ')}]`,
    );
}

/** Check a positive integer option. */
export function checkCount(method: string, what: string, n: number): void {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${method}: ${what} must be a positive integer, got ${n}`);
}

/**
 * A base model's trunk: the registered model built with `hidden` minus its last size as
 * hidden layers and the last size as its output, then the tower activation, so its output
 * is a hidden representation [batch, width] rather than a logit (an MLP expert of sizes
 * [256] is Linear(input, 256) → activation; a DIN expert attends first).
 */
export class Trunk extends nn.Module {
  readonly model: BaseModel;
  readonly activation: nn.Layer;
  readonly width: number;

  constructor(ctx: FrameContext, hidden: readonly number[]) {
    super();
    this.width = hidden[hidden.length - 1];
    this.model = createBaseModel(
      ctx.base,
      ctx.schema,
      { ...ctx.tower, hidden: hidden.slice(0, -1), outFeatures: this.width, rng: ctx.rng.fork(), dtype: ctx.dtype },
      ctx.dims,
    );
    this.activation =
      (ctx.tower.activation ?? 'prelu') === 'prelu'
        ? new nn.PReLU(this.width, 0.25, { dtype: ctx.dtype })
        : new nn.ReLU();
  }

  /** [batch, width]. */
  forward(input: TowerInput): Tensor {
    return this.activation.forward(this.model.forward(input));
  }
}

/** An MLP over a dense input with the frame's tower activation and dropout, on a generator stream of its own. */
export function frameMlp(
  ctx: FrameContext,
  inFeatures: number,
  hidden: readonly number[],
  outFeatures?: number,
): nn.Sequential {
  return nn.mlp(inFeatures, hidden, {
    activation: ctx.tower.activation ?? 'prelu',
    dropout: ctx.tower.dropout,
    outFeatures,
    rng: ctx.rng.fork(),
    dtype: ctx.dtype,
  });
}

/** A task tower over a dense representation: hidden layers, then one logit; returns [batch]. */
export class DenseTower extends nn.Module {
  readonly net: nn.Sequential;

  constructor(ctx: FrameContext, inFeatures: number, hidden: readonly number[]) {
    super();
    this.net = frameMlp(ctx, inFeatures, hidden, 1);
  }

  /** The tower's logit per row, [batch]. */
  forward(x: Tensor): Tensor {
    return reshape(this.net.forward(x), [x.shape[0]]);
  }
}

/** The two logits of a frame, each [batch]. */
export interface TaskLogits {
  ctrLogit: Tensor;
  cvrLogit: Tensor;
}

/**
 * A CTR/CVR multi-task frame over one shared embedding layer: subclasses map the embedded
 * batch to the two logits, and the training space decides the loss.
 */
export abstract class MultiTaskMethod extends CvrMethod {
  readonly schema: Schema;
  readonly embedding: SharedEmbedding;
  readonly trainingSpace: TrainingSpace;
  readonly ctrWeight: number;
  readonly cvrWeight: number;

  constructor(schema: Schema, options: MultiTaskOptions, name: string) {
    super();
    this.schema = schema;
    this.validate = options.validate ?? true;
    this.trainingSpace = options.trainingSpace ?? 'entire';
    if (!TRAINING_SPACES.includes(this.trainingSpace))
      throw new Error(
        `${name}: trainingSpace must be one of ${TRAINING_SPACES.join(', ')}, got '${String(this.trainingSpace)}'`,
      );
    this.ctrWeight = options.ctrWeight ?? 1;
    this.cvrWeight = options.cvrWeight ?? 1;
    for (const [k, v] of [
      ['ctrWeight', this.ctrWeight],
      ['cvrWeight', this.cvrWeight],
    ] as const)
      if (!(Number.isFinite(v) && v >= 0)) throw new Error(`${name}: ${k} must be a finite number ≥ 0, got ${v}`);
    const rng = new Rng(options.seed ?? 0);
    const dtype = options.dtype ?? 'float32';
    this.embedding = new SharedEmbedding(schema, { rng: rng.fork(), dtype, std: options.embeddingStd });
    this.frameContext = {
      schema,
      rng,
      dtype,
      base: options.base ?? 'mlp',
      tower: options.tower ?? {},
      dims: this.embedding.fieldDims(),
    };
  }

  /** For subclass constructors: the generator, dtype, base model and dims of every part. */
  protected readonly frameContext: FrameContext;

  /** The frame proper: embedded batch → both logits. */
  abstract logits(input: TowerInput): TaskLogits;

  forward(batch: Batch): CvrPredictions {
    this.check(batch);
    const { ctrLogit, cvrLogit } = this.logits(this.embedding.forward(batch));
    const pctr = sigmoid(ctrLogit);
    const pcvr = sigmoid(cvrLogit);
    return { pctr, pcvr, pctcvr: mul(pctr, pcvr) };
  }

  lossFor(batch: Batch): MethodLoss {
    this.check(batch, true);
    return taskLoss(
      this.logits(this.embedding.forward(batch)),
      batch,
      this.trainingSpace,
      this.ctrWeight,
      this.cvrWeight,
    );
  }
}

/**
 * A frame trained in either space whose two task towers read one representation width:
 * shared-bottom, MMoE and PLE. Subclasses build their experts, then {@link TwoTowerFrame.buildTowers},
 * and map the embedded batch to the two towers' inputs.
 */
export abstract class TwoTowerFrame extends MultiTaskMethod {
  readonly method: string;
  // Assigned by buildTowers after the subclass's own parts, so the generator draws in build order.
  declare readonly ctrTower: DenseTower;
  declare readonly cvrTower: DenseTower;

  /** `frame` is the entire-space name (`mmoe`); the click-space frame is named `mmoe-naive`. */
  constructor(schema: Schema, options: MultiTaskOptions, frame: string) {
    const method = frameName(frame, options.trainingSpace ?? 'entire');
    super(schema, options, method);
    this.method = method;
  }

  /** Both task towers, of hidden sizes `towers`, over a representation `width` wide. */
  protected buildTowers(width: number, towers: readonly number[]): void {
    checkSizes(this.method, 'towers', towers, true);
    const ctx = this.frameContext;
    Object.assign(this, { ctrTower: new DenseTower(ctx, width, towers), cvrTower: new DenseTower(ctx, width, towers) });
  }

  /** The representation each task tower reads, [batch, width] each. */
  protected abstract represent(input: TowerInput): { ctr: Tensor; cvr: Tensor };

  logits(input: TowerInput): TaskLogits {
    const { ctr, cvr } = this.represent(input);
    return { ctrLogit: this.ctrTower.forward(ctr), cvrLogit: this.cvrTower.forward(cvr) };
  }
}

/**
 * Registers a {@link TwoTowerFrame} in both training spaces: `frame` in the entire space (ESMM's supervision)
 * and `frame-naive` with the CVR loss on clicked rows; `label` names the frame in the naive one's summary.
 */
export function registerFrame<K extends MethodName>(
  frame: K,
  label: string,
  build: (options: ModelCommonOptions & MethodOptionsByName[K], space: TrainingSpace) => CvrMethod,
  registration: MethodRegistration<MethodOptionsByName[K]>,
): void {
  registerMethod(frame, (o) => build(o, 'entire'), { ...registration, learning: ENTIRE_SPACE_LEARNING });
  // Each frame declares `frame-naive` with the same options as `frame`.
  registerMethod(`${frame}-naive` as K, (o) => build(o, 'click'), {
    ...registration,
    summary: `${label} with the CVR loss on clicked rows only (the naive training space)`,
  });
}

/** The loss of two logits in a training space, each term weighted. */
export function taskLoss(
  { ctrLogit, cvrLogit }: TaskLogits,
  batch: Batch,
  space: TrainingSpace,
  ctrWeight = 1,
  cvrWeight = 1,
): MethodLoss {
  const ctr = affine(weightedBce(ctrLogit, batch.click), ctrWeight, 0);
  if (space === 'entire') {
    // Probabilities multiplied in log space (productBce), never logits.
    const ctcvr = affine(mean(productBce(ctrLogit, cvrLogit, labelTensor(ctcvrLabels(batch), ctrLogit))), cvrWeight, 0);
    return { loss: add(ctr, ctcvr), parts: { ctr, ctcvr }, rows: { ctr: batch.size, ctcvr: batch.size } };
  }
  let clicks = 0;
  for (let i = 0; i < batch.size; i++) clicks += batch.click[i];
  // The mean over clicked rows as a click-weighted mean over all rows: the frame runs once per batch.
  const cvr = affine(weightedBce(cvrLogit, batch.conversion, batch.click), cvrWeight, 0);
  return { loss: add(ctr, cvr), parts: { ctr, cvr }, rows: { ctr: batch.size, cvr: clicks } };
}

/** The loss weights every frame declares as its own options. */
export interface TaskWeightOptions {
  ctrWeight?: number;
  cvrWeight?: number;
}

/** Declarations of {@link TaskWeightOptions}, shared by the frames' registrations. */
export const TASK_WEIGHT_OPTIONS: { ctrWeight: OptionSpec<number>; cvrWeight: OptionSpec<number> } = {
  ctrWeight: { help: 'weight of the CTR loss', default: 1, check: checks.number(0) },
  cvrWeight: {
    help: 'weight of the CVR-side loss (CTCVR in the entire space, CVR on clicked rows naively)',
    default: 1,
    check: checks.number(0),
  },
};

/** Name of a frame trained in a space: `mmoe` or `mmoe-naive`. */
export function frameName(frame: string, space: TrainingSpace): string {
  return space === 'entire' ? frame : `${frame}-naive`;
}

/** What the learning suite may expect of a frame trained in the entire space. */
export const ENTIRE_SPACE_LEARNING = {
  cvrMargin: 0.05,
  reason:
    'CTCVR supervision pins down pCTR·pCVR, and on a shared trunk only weakly how it splits between the towers, ' +
    'so pCVR ranks the clicked rows less well than when trained on them (the -naive variant)',
};
