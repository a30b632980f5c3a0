/**
 * One constructor for every registered method, with the built-in base models and methods loaded:
 *
 *   const m = createModel({ method: 'aman', negativeRate: 0.2, schema, base: 'din', tower: { hidden: [200, 80] } });
 *   const opt = new optim.Adam(m.parameters(), { lr: TRAINER_DEFAULTS.lr });
 *   for (const batch of batches) trainStep(m, opt, batch);
 *   const { pctr, pcvr, pctcvr } = m.predict(testBatch);
 *
 * The registries live in `base/base-model.ts` and `methods/registry.ts`; this module only makes sure
 * the built-in entries have registered themselves before the first `createModel`.
 */
import './base/index.js';
import './methods/index.js';

export {
  createModel,
  listMethods,
  methodInfo,
  MODEL_DEFAULTS,
  type CreateModelOptions,
  type MethodName,
  type MethodSpec,
  type ModelCommonOptions,
} from './methods/registry.js';

/** The methods of the paper's Table 2, in its order (every registered method: `listMethods()`). */
export const TABLE2_METHODS = ['base', 'aman', 'oversampling', 'unbias', 'division', 'esmm-ns', 'esmm'] as const;

/** A method of the paper's Table 2. */
export type Table2MethodName = (typeof TABLE2_METHODS)[number];
