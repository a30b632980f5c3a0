/**
 * One constructor for every method of the paper's Table 2:
 *
 *   const m = createModel({ method: 'aman', negativeRate: 0.2, schema, base: 'din', tower: { hidden: [200, 80] } });
 *   const opt = new optim.Adam(m.parameters(), { lr: 1e-3 });
 *   for (const batch of batches) trainStep(m, opt, batch);
 *   const { pctr, pcvr, pctcvr } = m.predict(testBatch);
 *
 * Every method is built from the same base model, tower options, embedding dims (from the
 * schema) and seed, so that comparisons differ only in the method.
 */
import type { DType } from '../kernels/index.js';
import type { BaseModelOptions } from './base/base-model.js';
// The built-in towers register themselves; a method can name any of them.
import './base/index.js';
import type { EsmmLossWeights } from './esmm.js';
import {
  AmanMethod,
  BaseMethod,
  OversamplingMethod,
  UnbiasMethod,
  type UnbiasAcceptance,
} from './methods/click-space.js';
import { DivisionMethod } from './methods/division.js';
import { EsmmMethod } from './methods/esmm-method.js';
import type { CvrMethod } from './methods/method.js';
import type { Schema } from './schema.js';

/** The methods of Table 2, in the paper's order. */
export const METHODS = ['base', 'aman', 'oversampling', 'unbias', 'division', 'esmm-ns', 'esmm'] as const;

/** A method of Table 2. */
export type MethodName = (typeof METHODS)[number];

/** Settings shared by every method. */
export interface CommonModelOptions {
  schema: Schema;
  /** Registered base model of every tower (default `mlp`). */
  base?: string;
  /** Options of every tower (default hidden [200, 80], PReLU). */
  tower?: BaseModelOptions;
  /** Seed of initial values and of the method's sampling (default 0). */
  seed?: number;
  dtype?: DType;
  /** Standard deviation of the embedding initialisation (default 0.01). */
  embeddingStd?: number;
  /** Check each batch against the schema (default true). */
  validate?: boolean;
}

/** Method-specific settings, discriminated by `method`. */
export type MethodSpec =
  | { method: 'esmm' | 'esmm-ns'; lossWeights?: EsmmLossWeights }
  | { method: 'base' }
  | { method: 'aman'; negativeRate?: number }
  | { method: 'oversampling'; factor?: number }
  | { method: 'unbias'; acceptance?: UnbiasAcceptance; minPctr?: number }
  | { method: 'division'; epsilon?: number };

/** Options of {@link createModel}. */
export type CreateModelOptions = CommonModelOptions & MethodSpec;

/** Build any method of Table 2 by name. */
export function createModel(options: CreateModelOptions): CvrMethod {
  const { schema, base, tower, seed, dtype, embeddingStd, validate } = options;
  const common = { base, tower, seed, dtype, embeddingStd, validate };
  switch (options.method) {
    case 'esmm':
    case 'esmm-ns':
      return new EsmmMethod(schema, {
        ...common,
        shareEmbeddings: options.method === 'esmm',
        lossWeights: options.lossWeights,
      });
    case 'base':
      return new BaseMethod(schema, common);
    case 'aman':
      return new AmanMethod(schema, { ...common, negativeRate: options.negativeRate });
    case 'oversampling':
      return new OversamplingMethod(schema, { ...common, factor: options.factor });
    case 'unbias':
      return new UnbiasMethod(schema, { ...common, acceptance: options.acceptance, minPctr: options.minPctr });
    case 'division':
      return new DivisionMethod(schema, { ...common, epsilon: options.epsilon });
    default: {
      const unknown: never = options;
      throw new Error(
        `createModel: unknown method '${String((unknown as { method: unknown }).method)}'; known: ${METHODS.join(', ')}`,
      );
    }
  }
}
