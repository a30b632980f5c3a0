/**
 * ESCM² (Wang, Chang, Liu, Huang, Chen, Yu, Li and Chu, "ESCM²: Entire Space Counterfactual
 * Multi-Task Model for Post-Click Conversion Rate Estimation", SIGIR 2022): ESMM plus a
 * counterfactual CVR risk over the entire space, with the CTR tower's pCTR as the propensity ô
 * of a click (o = click, e = BCE(pCVR, conversion), N rows):
 *
 * - `ips`: R = (1/N) Σ o · e / ô;
 * - `dr`:  R = (1/N) Σ [ê + o · (e − ê) / ô], where an imputation tower predicts the error ê on
 *   every impression and learns it from the clicked ones with (1/N) Σ o · (e − ê)² / ô.
 *
 * L = L_CTR + λ_g · L_CTCVR + λ_c · R (+ the imputation loss for DR), all terms learned jointly.
 * ô is clipped below at `minPropensity` and carries no gradient: through 1/ô the risk would push
 * pCTR up on clicked rows with weights up to 1/floor², swamping the CTR loss (CTR AUC fell by
 * 8-15 points on the simulator when it did), so the CTR loss alone trains the propensity.
 * λ_c = λ_g = 0.5 as PaddleRec's reproduction of the paper.
 */
import {
  add,
  affine,
  bceWithLogits,
  div,
  logSigmoid,
  maximum,
  mean,
  mul,
  neg,
  noGrad,
  reshape,
  sigmoid,
  square,
  sub,
  type Tensor,
} from '../../core/index.js';
import { createBaseModel, type BaseModel } from '../base/base-model.js';
import { labelTensor } from '../esmm.js';
import type { TowerInput } from '../embedding.js';
import type { Batch, Schema } from '../schema.js';
import type { MethodLoss } from './method.js';
import { checks } from '../options.js';
import {
  MultiTaskMethod,
  TASK_WEIGHT_OPTIONS,
  taskLoss,
  type MultiTaskOptions,
  type TaskLogits,
} from './multi-task.js';
import { registerMethod, type MethodRegistration } from './registry.js';

/** How the counterfactual CVR risk is estimated. */
export type CounterfactualEstimator = 'ips' | 'dr';

/** Defaults of {@link Escm2Method}. */
export const ESCM2_DEFAULTS = {
  counterfactualWeight: 0.5,
  ctcvrWeight: 0.5,
  imputationWeight: 1,
  minPropensity: 0.01,
};

/** Options of {@link Escm2Method}; the towers are `base` models with `tower` options, as ESMM's. */
export interface Escm2Options extends Omit<MultiTaskOptions, 'trainingSpace' | 'cvrWeight'> {
  /** `ips` (default) or `dr`. */
  estimator?: CounterfactualEstimator;
  /** λ_c, the weight of the counterfactual risk; default 0.5. */
  counterfactualWeight?: number;
  /** λ_g, the weight of the CTCVR loss; default 0.5. */
  ctcvrWeight?: number;
  /** Weight of the DR imputation loss; default 1. */
  imputationWeight?: number;
  /** Floor of the propensity ô in 1/ô (clipping the inverse weights at 1/floor); default 0.01. */
  minPropensity?: number;
}

/** `escm2-ips` or `escm2-dr`: ESMM's towers and losses plus the counterfactual risk. */
export class Escm2Method extends MultiTaskMethod {
  readonly method: 'escm2-ips' | 'escm2-dr';
  readonly estimator: CounterfactualEstimator;
  readonly ctrTower: BaseModel;
  readonly cvrTower: BaseModel;
  /** DR only: predicts the CVR error ê ≥ 0 of every impression. */
  readonly imputationTower: BaseModel | null;
  readonly counterfactualWeight: number;
  readonly imputationWeight: number;
  readonly minPropensity: number;

  constructor(schema: Schema, options: Escm2Options = {}) {
    const estimator = options.estimator ?? 'ips';
    if (estimator !== 'ips' && estimator !== 'dr')
      throw new Error(`escm2: estimator must be 'ips' or 'dr', got '${String(estimator)}'`);
    const name = estimator === 'ips' ? 'escm2-ips' : 'escm2-dr';
    super(
      schema,
      { ...options, trainingSpace: 'entire', cvrWeight: options.ctcvrWeight ?? ESCM2_DEFAULTS.ctcvrWeight },
      name,
    );
    this.method = name;
    this.estimator = estimator;
    this.counterfactualWeight = options.counterfactualWeight ?? ESCM2_DEFAULTS.counterfactualWeight;
    this.imputationWeight = options.imputationWeight ?? ESCM2_DEFAULTS.imputationWeight;
    this.minPropensity = options.minPropensity ?? ESCM2_DEFAULTS.minPropensity;
    for (const [k, v] of [
      ['counterfactualWeight', this.counterfactualWeight],
      ['imputationWeight', this.imputationWeight],
    ] as const)
      if (!(Number.isFinite(v) && v >= 0)) throw new Error(`${name}: ${k} must be a finite number ≥ 0, got ${v}`);
    if (!(this.minPropensity > 0 && this.minPropensity <= 1))
      throw new Error(`${name}: minPropensity must lie in (0, 1], got ${this.minPropensity}`);
    const ctx = this.frameContext;
    const tower = (): BaseModel =>
      createBaseModel(ctx.base, schema, { ...ctx.tower, rng: ctx.rng.fork(), dtype: ctx.dtype }, ctx.dims);
    this.ctrTower = tower();
    this.cvrTower = tower();
    this.imputationTower = estimator === 'dr' ? tower() : null;
  }

  logits(input: TowerInput): TaskLogits {
    return {
      ctrLogit: reshape(this.ctrTower.forward(input), [input.size]),
      cvrLogit: reshape(this.cvrTower.forward(input), [input.size]),
    };
  }

  override lossFor(batch: Batch): MethodLoss {
    this.check(batch, true);
    const input = this.embedding.forward(batch);
    const logits = this.logits(input);
    const esmm = taskLoss(logits, batch, 'entire', this.ctrWeight, this.cvrWeight);
    const { ctrLogit, cvrLogit } = logits;
    // o / ô with ô = max(pCTR, floor), outside the graph: the propensity is the CTR tower's, trained by L_CTR.
    const click = labelTensor(batch.click, ctrLogit);
    const inverse = noGrad(() => div(click, maximum(sigmoid(ctrLogit), this.minPropensity)));
    const error = bceWithLogits(cvrLogit, labelTensor(batch.conversion, cvrLogit));
    const parts: Record<string, Tensor> = { ...esmm.parts };
    const rows: Record<string, number> = { ...esmm.rows, counterfactual: batch.size };
    let risk: Tensor;
    if (this.imputationTower) {
      // ê = softplus(logit) ≥ 0, as the error it imputes.
      const imputed = neg(logSigmoid(neg(reshape(this.imputationTower.forward(input), [batch.size]))));
      risk = mean(add(imputed, mul(inverse, sub(error, imputed))));
      parts.imputation = affine(mean(mul(inverse, square(sub(error, imputed)))), this.imputationWeight, 0);
      rows.imputation = batch.size;
    } else {
      risk = mean(mul(inverse, error));
    }
    parts.counterfactual = affine(risk, this.counterfactualWeight, 0);
    const loss = Object.values(parts).reduce((a, b) => add(a, b));
    return { loss, parts, rows };
  }
}

/** The own options of `escm2-ips` and `escm2-dr`. */
export type Escm2OwnOptions = Pick<
  Escm2Options,
  'counterfactualWeight' | 'ctcvrWeight' | 'imputationWeight' | 'minPropensity' | 'ctrWeight'
>;

declare module './registry.js' {
  interface MethodOptionsByName {
    'escm2-ips': Escm2OwnOptions;
    'escm2-dr': Escm2OwnOptions;
  }
}

const registration: MethodRegistration<Escm2OwnOptions> = {
  summary: 'ESMM plus the counterfactual CVR risk, inverse propensity weighted (Wang et al., SIGIR 2022)',
  options: {
    counterfactualWeight: {
      help: 'weight λ_c of the counterfactual CVR risk',
      default: ESCM2_DEFAULTS.counterfactualWeight,
      check: checks.number(0),
    },
    ctcvrWeight: { help: 'weight λ_g of the CTCVR loss', default: ESCM2_DEFAULTS.ctcvrWeight, check: checks.number(0) },
    imputationWeight: {
      help: 'weight of the imputation loss (DR)',
      default: ESCM2_DEFAULTS.imputationWeight,
      check: checks.number(0),
    },
    minPropensity: {
      help: 'floor of the propensity pCTR in 1 / pCTR',
      default: ESCM2_DEFAULTS.minPropensity,
      check: checks.number(1e-6, 1),
    },
    ctrWeight: TASK_WEIGHT_OPTIONS.ctrWeight,
  },
  // A floor of 1 makes the gradient-free weights o / ô constant, so the suites' finite differences see the
  // function the gradient is of; test/models-multi-task.test.ts checks the default floor on the CVR side.
  variants: [{ minPropensity: 1 }],
};
registerMethod('escm2-ips', (o) => new Escm2Method(o.schema, { ...o, estimator: 'ips' }), registration);
registerMethod('escm2-dr', (o) => new Escm2Method(o.schema, { ...o, estimator: 'dr' }), {
  ...registration,
  summary: 'ESMM plus the doubly robust counterfactual CVR risk with an imputation tower (Wang et al., SIGIR 2022)',
});
