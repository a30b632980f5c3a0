/**
 * DIVISION: separately trained CTR and CTCVR models (same structure, each on every
 * impression), with pCVR recovered as pCTCVR / pCTR clipped to [0, 1].
 */
import { add, clamp, div, maximum, sigmoid } from '../../core/index.js';
import { ctcvrLabels, type CvrPredictions } from '../esmm.js';
import type { Batch, Schema } from '../schema.js';
import {
  CvrMethod,
  SingleTaskModel,
  weightedBce,
  type MethodCommonOptions,
  type MethodLoss,
  type SingleTaskOptions,
} from './method.js';
import { MODEL_DEFAULTS, registerMethod } from './registry.js';
import { checks } from '../options.js';

/** DIVISION's own option. */
export interface DivisionOwnOptions {
  /** Floor on pCTR in the division, against 0/0. */
  epsilon?: number;
}

/** Options of {@link DivisionMethod}. */
export interface DivisionOptions extends SingleTaskOptions, MethodCommonOptions, DivisionOwnOptions {}

/** Defaults of DIVISION: a pCTR floor far below any rate the data can show. */
export const DIVISION_DEFAULTS = { epsilon: 1e-7 } as const;

/** DIVISION: pCVR = clip(pCTCVR / pCTR, 0, 1). */
export class DivisionMethod extends CvrMethod {
  readonly method = 'division';
  readonly schema: Schema;
  readonly ctrModel: SingleTaskModel;
  readonly ctcvrModel: SingleTaskModel;
  readonly epsilon: number;

  constructor(schema: Schema, options: DivisionOptions = {}) {
    super();
    this.schema = schema;
    this.validate = options.validate ?? MODEL_DEFAULTS.validate;
    const seed = options.seed ?? MODEL_DEFAULTS.seed;
    this.ctrModel = new SingleTaskModel(schema, { ...options, seed });
    this.ctcvrModel = new SingleTaskModel(schema, { ...options, seed: seed + 1 });
    this.epsilon = options.epsilon ?? DIVISION_DEFAULTS.epsilon;
  }

  forward(batch: Batch): CvrPredictions {
    this.check(batch);
    const pctr = sigmoid(this.ctrModel.forward(batch));
    const pctcvr = sigmoid(this.ctcvrModel.forward(batch));
    const pcvr = clamp(div(pctcvr, maximum(pctr, this.epsilon)), 0, 1);
    return { pctr, pcvr, pctcvr };
  }

  lossFor(batch: Batch): MethodLoss {
    this.check(batch, true);
    const labels = ctcvrLabels(batch);
    const ctr = weightedBce(this.ctrModel.forward(batch), batch.click);
    const ctcvr = weightedBce(this.ctcvrModel.forward(batch), labels);
    return { loss: add(ctr, ctcvr), parts: { ctr, ctcvr }, rows: { ctr: batch.size, ctcvr: batch.size } };
  }
}

declare module './registry.js' {
  interface MethodOptionsByName {
    division: DivisionOwnOptions;
  }
}

registerMethod('division', (o) => new DivisionMethod(o.schema, o), {
  summary: 'separate CTR and CTCVR models, pCVR = pCTCVR / pCTR clipped to [0, 1] (Table 2)',
  options: {
    epsilon: { help: 'floor on pCTR in the division', default: DIVISION_DEFAULTS.epsilon, check: checks.number(0, 1) },
  },
});
