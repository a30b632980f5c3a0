/**
 * The click-space baselines of the paper's Table 2. Each pairs a CTR model trained on all
 * impressions with a CVR model of the same structure trained on rows chosen from the batch;
 * they differ only in that choice, and all score pCTCVR = pCTR × pCVR.
 *
 * - BASE: the clicked rows, labelled by conversion.
 * - AMAN (Pan et al., 2008, all-missing-as-negative): the clicked rows plus each unclicked row
 *   with probability `negativeRate` (10%, 20%, 50% or 100% in the paper), labelled 0.
 * - OVERSAMPLING (Weiss, 2004): the clicked rows, each converted one repeated `factor` times.
 * - UNBIAS (after Zhang et al., KDD 2016): the clicked rows thinned by rejection sampling
 *   with the CTR model's pCTR, see {@link UnbiasAcceptance}.
 */
import {
  add,
  affine,
  div,
  maximum,
  maxLast,
  minimum,
  mul,
  neg,
  noGrad,
  reshape,
  sigmoid,
  step,
  sub,
  Tensor,
  type Rng,
} from '../../core/index.js';
import type { CvrPredictions } from '../esmm.js';
import { selectRows, type Batch, type Schema } from '../schema.js';
import {
  CvrMethod,
  samplingRng,
  SingleTaskModel,
  weightedBce,
  type MethodCommonOptions,
  type MethodLoss,
  type SingleTaskOptions,
} from './method.js';
import { MODEL_DEFAULTS, registerMethod } from './registry.js';
import { checks } from '../options.js';

/** Rows of a batch that train the CVR model, with their labels. */
export interface RowSelection {
  rows: Int32Array;
  labels: Float32Array;
  /** Per-row weights of the CVR loss, kept on the device (UNBIAS's acceptance mask); absent: all 1. */
  weights?: Tensor;
}

/** Options of the click-space methods. */
export type ClickSpaceOptions = SingleTaskOptions & MethodCommonOptions;

/** The shared frame of BASE, AMAN, OVERSAMPLING and UNBIAS. */
export abstract class ClickSpaceMethod extends CvrMethod {
  readonly schema: Schema;
  /** The separately trained CTR model that supplies pCTR. */
  readonly ctrModel: SingleTaskModel;
  /** The CVR model, trained on {@link ClickSpaceMethod.selectRows}'s rows. */
  readonly cvrModel: SingleTaskModel;
  protected readonly rng: Rng;

  constructor(schema: Schema, options: ClickSpaceOptions = {}) {
    super();
    this.schema = schema;
    this.validate = options.validate ?? MODEL_DEFAULTS.validate;
    const seed = options.seed ?? MODEL_DEFAULTS.seed;
    // Both models have the same structure but their own initial values.
    this.ctrModel = new SingleTaskModel(schema, { ...options, seed });
    this.cvrModel = new SingleTaskModel(schema, { ...options, seed: seed + 1 });
    this.rng = samplingRng(seed);
  }

  /** The sampling generator's state (AMAN's negatives, UNBIAS's rejections). */
  override samplingState(): number[] {
    return this.rng.getState();
  }

  /** Restore the sampling generator. */
  override restoreSamplingState(state: readonly number[]): void {
    this.rng.setState(state);
  }

  /** Which rows of the batch train the CVR model, and their labels (may draw from the method's seeded generator). */
  abstract selectRows(batch: Batch): RowSelection;

  forward(batch: Batch): CvrPredictions {
    this.check(batch);
    const pctr = sigmoid(this.ctrModel.forward(batch));
    const pcvr = sigmoid(this.cvrModel.forward(batch));
    return { pctr, pcvr, pctcvr: mul(pctr, pcvr) };
  }

  lossFor(batch: Batch): MethodLoss {
    this.check(batch, true);
    const ctr = weightedBce(this.ctrModel.forward(batch), batch.click);
    const { rows, labels, weights } = this.selectRows(batch);
    // The models share no parameter, so one summed loss trains each exactly as if alone.
    if (rows.length === 0) return { loss: ctr, parts: { ctr }, rows: { ctr: batch.size, cvr: 0 } };
    const cvr = weightedBce(this.cvrModel.forward(selectRows(batch, rows)), labels, weights);
    return { loss: add(ctr, cvr), parts: { ctr, cvr }, rows: { ctr: batch.size, cvr: rows.length } };
  }
}

function clickedRows(batch: Batch): number[] {
  const rows: number[] = [];
  for (let i = 0; i < batch.size; i++) if (batch.click[i] === 1) rows.push(i);
  return rows;
}

function withConversionLabels(batch: Batch, rows: number[]): RowSelection {
  return { rows: Int32Array.from(rows), labels: Float32Array.from(rows, (r) => batch.conversion[r]) };
}

/** BASE: the CVR model learns from clicked rows only. */
export class BaseMethod extends ClickSpaceMethod {
  readonly method = 'base';
  selectRows(batch: Batch): RowSelection {
    return withConversionLabels(batch, clickedRows(batch));
  }
}

/** AMAN's own option. */
export interface AmanOwnOptions {
  /** Fraction of unclicked rows sampled as negatives (the paper tries 0.1, 0.2, 0.5, 1). */
  negativeRate?: number;
}

/** Options of {@link AmanMethod}. */
export interface AmanOptions extends ClickSpaceOptions, AmanOwnOptions {}

/**
 * Defaults of AMAN: 20% of the unclicked rows. The paper reports one AMAN row for its four rates
 * without saying which; 0.2 is what the Table 2 runs here have always used.
 */
export const AMAN_DEFAULTS = { negativeRate: 0.2 } as const;

/** AMAN: BASE plus a sample of unclicked rows as negatives. */
export class AmanMethod extends ClickSpaceMethod {
  readonly method = 'aman';
  readonly negativeRate: number;
  constructor(schema: Schema, options: AmanOptions = {}) {
    super(schema, options);
    this.negativeRate = options.negativeRate ?? AMAN_DEFAULTS.negativeRate;
    if (!(this.negativeRate >= 0 && this.negativeRate <= 1))
      throw new Error(`aman: negativeRate must be in [0, 1], got ${this.negativeRate}`);
  }
  selectRows(batch: Batch): RowSelection {
    const rows: number[] = [];
    for (let i = 0; i < batch.size; i++) {
      if (batch.click[i] === 1 || this.rng.bernoulli(this.negativeRate)) rows.push(i);
    }
    // Unclicked rows never convert, so their conversion label is already the 0 AMAN assigns.
    return withConversionLabels(batch, rows);
  }
}

/** OVERSAMPLING's own option. */
export interface OversamplingOwnOptions {
  /** Copies of each converted clicked row (the paper tries 2, 3, 5, 10). */
  factor?: number;
}

/** Options of {@link OversamplingMethod}. */
export interface OversamplingOptions extends ClickSpaceOptions, OversamplingOwnOptions {}

/** Defaults of OVERSAMPLING: 5 copies, the middle of the paper's 2, 3, 5, 10. */
export const OVERSAMPLING_DEFAULTS = { factor: 5 } as const;

/** OVERSAMPLING: BASE with each converted row repeated `factor` times. */
export class OversamplingMethod extends ClickSpaceMethod {
  readonly method = 'oversampling';
  readonly factor: number;
  constructor(schema: Schema, options: OversamplingOptions = {}) {
    super(schema, options);
    this.factor = options.factor ?? OVERSAMPLING_DEFAULTS.factor;
    if (!(Number.isInteger(this.factor) && this.factor >= 1))
      throw new Error(`oversampling: factor must be an integer ≥ 1, got ${this.factor}`);
  }
  selectRows(batch: Batch): RowSelection {
    const rows: number[] = [];
    for (const r of clickedRows(batch)) {
      const copies = batch.conversion[r] === 1 ? this.factor : 1;
      for (let c = 0; c < copies; c++) rows.push(r);
    }
    return withConversionLabels(batch, rows);
  }
}

/**
 * How UNBIAS accepts a clicked row given its pCTR p (from the CTR model, no gradient):
 * - `paper`: pCTR is the rejection probability, as the ESMM paper words it: accept with 1 − p.
 * - `inverse`: accept with min(1, p_min / p), the rejection-sampling form of the 1/p importance
 *   weight that maps the click space back onto the impression space; p_min is `minPctr`, or the
 *   smallest pCTR among the batch's clicked rows.
 */
export type UnbiasAcceptance = 'paper' | 'inverse';

/** UNBIAS's own options. */
export interface UnbiasOwnOptions {
  acceptance?: UnbiasAcceptance;
  /** p_min of the `inverse` acceptance (absent: the batch's smallest clicked-row pCTR). */
  minPctr?: number;
}

/** Options of {@link UnbiasMethod}. */
export interface UnbiasOptions extends ClickSpaceOptions, UnbiasOwnOptions {}

/** Defaults of UNBIAS: the acceptance as the ESMM paper words it. */
export const UNBIAS_DEFAULTS = { acceptance: 'paper' as UnbiasAcceptance } as const;

/** UNBIAS: clicked rows thinned by rejection sampling on pCTR. */
export class UnbiasMethod extends ClickSpaceMethod {
  readonly method = 'unbias';
  readonly acceptance: UnbiasAcceptance;
  readonly minPctr: number | undefined;
  constructor(schema: Schema, options: UnbiasOptions = {}) {
    super(schema, options);
    this.acceptance = options.acceptance ?? UNBIAS_DEFAULTS.acceptance;
    if (this.acceptance !== 'paper' && this.acceptance !== 'inverse')
      throw new Error(`unbias: unknown acceptance '${String(this.acceptance)}'`);
    this.minPctr = options.minPctr;
  }
  /** Acceptance probability of each clicked row, computed on the device from the CTR model's pCTR (no gradient). */
  acceptanceProbabilities(batch: Batch, clicked: number[]): Tensor {
    return noGrad(() => {
      const pctr = sigmoid(reshape(this.ctrModel.forward(selectRows(batch, clicked)), [clicked.length]));
      if (this.acceptance === 'paper') return affine(pctr, -1, 1);
      const floor = this.minPctr ?? neg(maxLast(neg(pctr)));
      return minimum(div(floor, maximum(pctr, 1e-12)), 1);
    });
  }
  /**
   * The clicked rows, each weighted 1 if accepted and 0 if rejected: the draw u < acceptance
   * is made on the device against uniforms from the method's generator, so pCTR is never read back.
   */
  selectRows(batch: Batch): RowSelection {
    const clicked = clickedRows(batch);
    const selection = withConversionLabels(batch, clicked);
    if (clicked.length === 0) return selection;
    const accept = this.acceptanceProbabilities(batch, clicked);
    const uniforms = Float32Array.from(clicked, () => this.rng.uniform());
    const u = Tensor.fromArray(uniforms, [clicked.length], { dtype: accept.dtype, backend: accept.backend });
    return { ...selection, weights: noGrad(() => step(sub(accept, u))) };
  }
}

declare module './registry.js' {
  interface MethodOptionsByName {
    base: Record<never, never>;
    aman: AmanOwnOptions;
    oversampling: OversamplingOwnOptions;
    unbias: UnbiasOwnOptions;
  }
}

registerMethod('base', (o) => new BaseMethod(o.schema, o), {
  summary: 'a CVR model trained on the clicked rows only, beside a CTR model (Table 2)',
  options: {},
});
registerMethod('aman', (o) => new AmanMethod(o.schema, o), {
  summary: 'BASE plus unclicked rows sampled as negatives (Pan et al., ICDM 2008)',
  options: {
    negativeRate: {
      help: 'fraction of unclicked rows sampled as negatives',
      default: AMAN_DEFAULTS.negativeRate,
      check: checks.number(0, 1),
    },
  },
});
registerMethod('oversampling', (o) => new OversamplingMethod(o.schema, o), {
  summary: 'BASE with each converted row repeated (Weiss, 2004)',
  options: {
    factor: { help: 'copies of each converted row', default: OVERSAMPLING_DEFAULTS.factor, check: checks.integer(1) },
  },
  variants: [{ factor: 3 }],
});
registerMethod('unbias', (o) => new UnbiasMethod(o.schema, o), {
  summary: 'BASE with clicked rows thinned by rejection sampling on pCTR (after Zhang et al., KDD 2016)',
  options: {
    acceptance: {
      help: "'paper' (accept with 1 - pCTR) or 'inverse' (accept with min(1, p_min / pCTR))",
      default: UNBIAS_DEFAULTS.acceptance,
      check: checks.oneOf(['paper', 'inverse']),
    },
    minPctr: { help: "p_min of the 'inverse' acceptance (absent: the batch's smallest)", check: checks.number(0, 1) },
  },
  variants: [{}, { acceptance: 'inverse' }],
});
