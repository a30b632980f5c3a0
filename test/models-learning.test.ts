/**
 * Learning tests: every registered method, and ESMM on every registered base model, trains on a
 * seeded synthetic task with one generic loop and must beat chance on the held-out rows by a stated
 * AUC margin. The lists come from the registries, so a new model or method file is trained here.
 */
import { describe, expect, it } from 'vitest';
import { optim } from '../core/index.js';
import {
  baseModelInfo,
  createModel,
  listBaseModels,
  listMethods,
  methodInfo,
  MODEL_DEFAULTS,
  trainStep,
  type CreateModelOptions,
  type CvrMethod,
  type LearningExpectation,
} from '../models/index.js';
import { loadRegistrations } from './helpers/registries.js';
import { auc, miniBatches, syntheticTask } from './models-fixtures.js';

await loadRegistrations();

const task = syntheticTask();
const batches = miniBatches(task.train, 500);
const EPOCHS = 10;
const LR = 0.01;
/** Required margin over chance (AUC 0.5) on held-out rows. */
const CVR_MARGIN = 0.15;
const CTCVR_MARGIN = 0.2;

function evaluate(method: CvrMethod): { ctr: number; cvr: number; ctcvr: number } {
  const { pctr, pcvr, pctcvr } = method.predict(task.test);
  const clicked: number[] = [];
  for (let i = 0; i < task.test.size; i++) if (task.test.click[i] === 1) clicked.push(i);
  return {
    ctr: auc(pctr, task.test.click),
    cvr: auc(
      clicked.map((i) => pcvr[i]),
      clicked.map((i) => task.test.conversion[i]),
    ),
    ctcvr: auc(pctcvr, task.test.conversion),
  };
}

/** The one loop that trains any method. */
function train(method: CvrMethod, epochs = EPOCHS): void {
  const opt = new optim.Adam(method.parameters(), { lr: LR });
  for (let epoch = 0; epoch < epochs; epoch++) for (const batch of batches) trainStep(method, opt, batch);
}

describe('every registered method learns the synthetic task', () => {
  it('has a learnable task (oracle AUCs)', () => {
    console.log('oracle', task.oracle, 'clicks', task.train.click.reduce((a, b) => a + b, 0) / task.train.size);
    expect(task.oracle.cvr).toBeGreaterThan(0.7);
  });
  for (const name of listMethods()) {
    // The first declared variant: the method's defaults unless it declares a more telling setting first.
    const variant = methodInfo(name).variants[0];
    it(`${name} ${JSON.stringify(variant)} beats chance`, () => {
      const method = createModel({
        ...variant,
        method: name,
        schema: task.schema,
        tower: { hidden: [32, 16] },
        seed: 1,
      } as CreateModelOptions);
      expectLearns(name, method, methodInfo(name).learning);
    });
  }
});

describe('ESMM learns with every registered base model', () => {
  for (const base of listBaseModels()) {
    // The method loop above already trains every method on the default base model.
    if (base === MODEL_DEFAULTS.base) continue;
    const variant = baseModelInfo(base).variants[0];
    it(`esmm + ${base} ${JSON.stringify(variant)}`, () => {
      const tower = { hidden: [32, 16], ...variant };
      expectLearns(`esmm+${base}`, createModel({ method: 'esmm', base, schema: task.schema, tower, seed: 1 }));
    });
  }
});

function expectLearns(label: string, method: CvrMethod, expectation?: LearningExpectation): void {
  const t0 = performance.now();
  train(method);
  const r = evaluate(method);
  console.log(label, r, `${(performance.now() - t0).toFixed(0)} ms`);
  // A method may declare other margins, with its reason, in its registration.
  expect(r.cvr, expectation?.reason).toBeGreaterThan(0.5 + (expectation?.cvrMargin ?? CVR_MARGIN));
  expect(r.ctcvr, expectation?.reason).toBeGreaterThan(0.5 + (expectation?.ctcvrMargin ?? CTCVR_MARGIN));
}
