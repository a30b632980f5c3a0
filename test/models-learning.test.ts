/**
 * Learning tests: every method of Table 2 trains on a seeded synthetic task with one
 * generic loop and must beat chance on the held-out rows by a stated AUC margin.
 */
import { describe, expect, it } from 'vitest';
import { optim } from '../core/index.js';
import {
  createModel,
  METHODS,
  trainStep,
  type CreateModelOptions,
  type CvrMethod,
  type MethodSpec,
} from '../models/index.js';
import { auc, miniBatches, syntheticTask } from './models-fixtures.js';

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

const specs: Record<(typeof METHODS)[number], MethodSpec> = {
  base: { method: 'base' },
  aman: { method: 'aman', negativeRate: 0.2 },
  oversampling: { method: 'oversampling', factor: 3 },
  unbias: { method: 'unbias' },
  division: { method: 'division' },
  'esmm-ns': { method: 'esmm-ns' },
  esmm: { method: 'esmm' },
};

describe('every method learns the synthetic task', () => {
  it('has a learnable task (oracle AUCs)', () => {
    console.log('oracle', task.oracle, 'clicks', task.train.click.reduce((a, b) => a + b, 0) / task.train.size);
    expect(task.oracle.cvr).toBeGreaterThan(0.7);
  });
  for (const name of METHODS) {
    it(`${name} beats chance`, () => {
      const options = {
        ...specs[name],
        schema: task.schema,
        tower: { hidden: [32, 16] },
        seed: 1,
      } as CreateModelOptions;
      const method = createModel(options);
      const t0 = performance.now();
      train(method);
      const r = evaluate(method);
      console.log(name, r, `${(performance.now() - t0).toFixed(0)} ms`);
      expect(r.cvr).toBeGreaterThan(0.5 + CVR_MARGIN);
      expect(r.ctcvr).toBeGreaterThan(0.5 + CTCVR_MARGIN);
    });
  }
});

describe('ESMM learns with every built-in base model', () => {
  // DIN attends over every behaviour of every row, so it gets fewer epochs to stay fast.
  const cases: [string, Record<string, unknown>, number][] = [
    ['din', { hidden: [32, 16], attention: { hidden: [16, 8], normalization: 'softmax' } }, 5],
    ['deepfm', { hidden: [32, 16] }, EPOCHS],
  ];
  for (const [base, tower, epochs] of cases) {
    it(`esmm + ${base}`, () => {
      const method = createModel({ method: 'esmm', base, schema: task.schema, tower, seed: 1 });
      const t0 = performance.now();
      train(method, epochs);
      const r = evaluate(method);
      console.log(`esmm+${base}`, r, `${(performance.now() - t0).toFixed(0)} ms`);
      expect(r.cvr).toBeGreaterThan(0.5 + CVR_MARGIN);
      expect(r.ctcvr).toBeGreaterThan(0.5 + CTCVR_MARGIN);
    });
  }
});
