/**
 * AITM (Xi, Chen, Liu, Wang, Zhou, Li, Han, Xia and Ye, "Modeling the Sequential Dependence
 * among Audience Multi-step Conversions with Multi-task Learning in Targeted Display
 * Advertising", KDD 2021): a tower per step of the funnel (impression → click → conversion) on
 * shared embeddings; the Adaptive Information Transfer (AIT) module passes what the click
 * tower learned to the conversion tower,
 *   p = ReLU(W_p z_click),   z_conv' = Σ_{u ∈ {p, z_conv}} w_u h1(u),
 *   w_u = softmax_u(⟨h2(u), h3(u)⟩ / √k),
 * and the conversion head predicts the end-to-end probability P(click ∧ conversion | impression).
 * Both heads are trained on every impression, with the behavioural expectation calibrator
 *   L = BCE(pCTR, click) + BCE(pCTCVR, click·conversion) + α · mean(max(pCTCVR − pCTR, 0)),
 * which penalises a conversion probability above the click probability (α = 0.6, towers
 * 128-64-32 and k = 32 as the paper's released code). pCVR is pCTCVR / pCTR, clipped to [0, 1].
 */
import {
  add,
  affine,
  clamp,
  concat,
  div,
  maximum,
  mean,
  mul,
  nn,
  relu,
  reshape,
  sigmoid,
  softmax,
  sub,
  sum,
  type Tensor,
} from '../../core/index.js';
import type { CvrPredictions } from '../esmm.js';
import type { TowerInput } from '../embedding.js';
import type { Batch, Schema } from '../schema.js';
import type { MethodLoss } from './method.js';
import { weightedBce } from './method.js';
import { ctcvrLabels } from '../esmm.js';
import { checks } from '../options.js';
import { registerMethod } from './registry.js';
import {
  checkSizes,
  TASK_WEIGHT_OPTIONS,
  type TaskWeightOptions,
  MultiTaskMethod,
  Trunk,
  type FrameContext,
  type MultiTaskOptions,
  type TaskLogits,
} from './multi-task.js';

/** Defaults of {@link AitmMethod}. */
export const AITM_DEFAULTS = {
  towerSizes: [128, 64, 32] as readonly number[],
  calibratorWeight: 0.6,
};

/** Options of {@link AitmMethod}; the training space is always the entire one. */
export interface AitmOptions extends Omit<MultiTaskOptions, 'trainingSpace'> {
  /** Sizes of each task tower (a base model's trunk); the last is the AIT width k. Default [128, 64, 32]. */
  towerSizes?: readonly number[];
  /** α, the weight of the behavioural expectation calibrator; default 0.6. */
  calibratorWeight?: number;
}

/** The Adaptive Information Transfer module: attention over the transferred and the own representation. */
export class AdaptiveInformationTransfer extends nn.Module {
  readonly value: nn.Linear;
  readonly key: nn.Linear;
  readonly query: nn.Linear;
  private readonly scale: number;

  constructor(ctx: FrameContext, width: number) {
    super();
    const o = { rng: ctx.rng.fork(), dtype: ctx.dtype };
    this.value = new nn.Linear(width, width, o);
    this.key = new nn.Linear(width, width, o);
    this.query = new nn.Linear(width, width, o);
    this.scale = 1 / Math.sqrt(width);
  }

  /** Mix the transferred `p` [batch, k] and the task's own `q` [batch, k] into [batch, k]. */
  forward(p: Tensor, q: Tensor): Tensor {
    const [b, k] = q.shape;
    const both = reshape(concat([p, q], 1), [2 * b, k]);
    // Rows are (p_0, q_0, p_1, q_1, ...) after the reshape of the [b, 2k] concat: one pass of each projection.
    const v = reshape(this.value.forward(both), [b, 2, k]);
    const score = sum(mul(this.key.forward(both), this.query.forward(both)), 1);
    const w = softmax(reshape(affine(score, this.scale, 0), [b, 2]));
    return sum(mul(v, reshape(w, [b, 2, 1])), 1);
  }
}

/** `aitm`: click and conversion towers linked by the AIT module, with the calibrator loss. */
export class AitmMethod extends MultiTaskMethod {
  readonly method = 'aitm';
  readonly ctrTower: Trunk;
  readonly cvrTower: Trunk;
  /** The transfer p = ReLU(W z_click). */
  readonly info: nn.Linear;
  readonly ait: AdaptiveInformationTransfer;
  readonly ctrHead: nn.Linear;
  readonly ctcvrHead: nn.Linear;
  readonly calibratorWeight: number;

  constructor(schema: Schema, options: AitmOptions = {}) {
    super(schema, { ...options, trainingSpace: 'entire' }, 'aitm');
    const sizes = options.towerSizes ?? AITM_DEFAULTS.towerSizes;
    checkSizes('aitm', 'towerSizes', sizes);
    this.calibratorWeight = options.calibratorWeight ?? AITM_DEFAULTS.calibratorWeight;
    if (!(Number.isFinite(this.calibratorWeight) && this.calibratorWeight >= 0))
      throw new Error(`aitm: calibratorWeight must be a finite number ≥ 0, got ${this.calibratorWeight}`);
    const ctx = this.frameContext;
    const k = sizes[sizes.length - 1];
    this.ctrTower = new Trunk(ctx, sizes);
    this.cvrTower = new Trunk(ctx, sizes);
    this.info = new nn.Linear(k, k, { rng: ctx.rng.fork(), dtype: ctx.dtype });
    this.ait = new AdaptiveInformationTransfer(ctx, k);
    this.ctrHead = new nn.Linear(k, 1, { rng: ctx.rng.fork(), dtype: ctx.dtype });
    this.ctcvrHead = new nn.Linear(k, 1, { rng: ctx.rng.fork(), dtype: ctx.dtype });
  }

  /** The click logit and the end-to-end (click ∧ conversion) logit, each [batch]. */
  logits(input: TowerInput): TaskLogits {
    const zClick = this.ctrTower.forward(input);
    const zConv = this.ait.forward(relu(this.info.forward(zClick)), this.cvrTower.forward(input));
    return {
      ctrLogit: reshape(this.ctrHead.forward(zClick), [input.size]),
      // The second logit is AITM's conversion head: P(click ∧ conversion), not a post-click rate.
      cvrLogit: reshape(this.ctcvrHead.forward(zConv), [input.size]),
    };
  }

  override forward(batch: Batch): CvrPredictions {
    this.check(batch);
    const { ctrLogit, cvrLogit } = this.logits(this.embedding.forward(batch));
    const pctr = sigmoid(ctrLogit);
    const pctcvr = sigmoid(cvrLogit);
    return { pctr, pcvr: clamp(div(pctcvr, maximum(pctr, 1e-7)), 0, 1), pctcvr };
  }

  override lossFor(batch: Batch): MethodLoss {
    this.check(batch, true);
    const { ctrLogit, cvrLogit } = this.logits(this.embedding.forward(batch));
    const ctr = affine(weightedBce(ctrLogit, batch.click), this.ctrWeight, 0);
    const ctcvr = affine(weightedBce(cvrLogit, ctcvrLabels(batch)), this.cvrWeight, 0);
    const calibrator = affine(mean(relu(sub(sigmoid(cvrLogit), sigmoid(ctrLogit)))), this.calibratorWeight, 0);
    return {
      loss: add(add(ctr, ctcvr), calibrator),
      parts: { ctr, ctcvr, calibrator },
      rows: { ctr: batch.size, ctcvr: batch.size, calibrator: batch.size },
    };
  }
}

/** The own options of `aitm`. */
export type AitmOwnOptions = Pick<AitmOptions, 'towerSizes' | 'calibratorWeight'> & TaskWeightOptions;

declare module './registry.js' {
  interface MethodOptionsByName {
    aitm: AitmOwnOptions;
  }
}

registerMethod('aitm', (o) => new AitmMethod(o.schema, o), {
  summary:
    'click and conversion towers linked by adaptive information transfer, with a calibrator (Xi et al., KDD 2021)',
  options: {
    towerSizes: {
      help: 'sizes of each task tower; the last is the AIT width',
      default: AITM_DEFAULTS.towerSizes,
      check: checks.sizes,
    },
    calibratorWeight: {
      help: 'weight α of the behavioural expectation calibrator',
      default: AITM_DEFAULTS.calibratorWeight,
      check: checks.number(0),
    },
    ...TASK_WEIGHT_OPTIONS,
  },
  variants: [{ towerSizes: [8, 4] }],
});
