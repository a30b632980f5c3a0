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
import { AitmMethod, type AitmOptions } from './methods/aitm.js';
import { Escm2Method, type Escm2Options } from './methods/escm2.js';
import type { CvrMethod } from './methods/method.js';
import { MmoeMethod, type MmoeOptions } from './methods/mmoe.js';
import type { MultiTaskOptions } from './methods/multi-task.js';
import { PleMethod, type PleOptions } from './methods/ple.js';
import { SharedBottomMethod, type SharedBottomOptions } from './methods/shared-bottom.js';
import type { Schema } from './schema.js';

/** The methods of Table 2, in the paper's order. */
export const METHODS = ['base', 'aman', 'oversampling', 'unbias', 'division', 'esmm-ns', 'esmm'] as const;

/** A method of the paper's Table 2. */
export type Table2MethodName = (typeof METHODS)[number];

/**
 * The multi-task frames beyond Table 2: shared-bottom, MMoE and PLE each trained the ESMM way
 * (entire space) and naively (`-naive`: CVR loss on clicked rows), AITM, and ESCM² (IPS, DR).
 */
export const MULTI_TASK_METHODS = [
  'shared-bottom',
  'shared-bottom-naive',
  'mmoe',
  'mmoe-naive',
  'ple',
  'ple-naive',
  'aitm',
  'escm2-ips',
  'escm2-dr',
] as const;

/** Every method `createModel` builds: Table 2's, then the multi-task frames. */
export const ALL_METHODS = [...METHODS, ...MULTI_TASK_METHODS] as const;

/** A method `createModel` builds. */
export type MethodName = (typeof ALL_METHODS)[number];

/** The `--suite mtl` comparison: Table 2's BASE, ESMM and ESMM-NS against the multi-task frames. */
export const MTL_SUITE: readonly MethodName[] = [
  'base',
  'esmm',
  'esmm-ns',
  'shared-bottom',
  'mmoe',
  'ple',
  'aitm',
  'escm2-ips',
  'escm2-dr',
];

/** A frame's own options: everything but the common settings and what the method name fixes. */
type OwnOptions<O> = Omit<O, keyof MultiTaskOptions | 'estimator'> &
  Pick<MultiTaskOptions, 'ctrWeight'> &
  ('cvrWeight' extends keyof O ? Pick<MultiTaskOptions, 'cvrWeight'> : unknown);

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
  | { method: 'division'; epsilon?: number }
  | ({ method: 'shared-bottom' | 'shared-bottom-naive' } & OwnOptions<SharedBottomOptions>)
  | ({ method: 'mmoe' | 'mmoe-naive' } & OwnOptions<MmoeOptions>)
  | ({ method: 'ple' | 'ple-naive' } & OwnOptions<PleOptions>)
  | ({ method: 'aitm' } & OwnOptions<AitmOptions>)
  | ({ method: 'escm2-ips' | 'escm2-dr' } & OwnOptions<Escm2Options>);

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
    case 'shared-bottom':
    case 'shared-bottom-naive':
      return new SharedBottomMethod(schema, { ...options, ...common, trainingSpace: spaceOf(options.method) });
    case 'mmoe':
    case 'mmoe-naive':
      return new MmoeMethod(schema, { ...options, ...common, trainingSpace: spaceOf(options.method) });
    case 'ple':
    case 'ple-naive':
      return new PleMethod(schema, { ...options, ...common, trainingSpace: spaceOf(options.method) });
    case 'aitm':
      return new AitmMethod(schema, { ...options, ...common });
    case 'escm2-ips':
    case 'escm2-dr':
      return new Escm2Method(schema, {
        ...options,
        ...common,
        estimator: options.method === 'escm2-ips' ? 'ips' : 'dr',
      });
    default: {
      const unknown: never = options;
      throw new Error(
        `createModel: unknown method '${String((unknown as { method: unknown }).method)}'; known: ${ALL_METHODS.join(', ')}`,
      );
    }
  }
}

function spaceOf(method: string): 'entire' | 'click' {
  return method.endsWith('-naive') ? 'click' : 'entire';
}
