/** The docs example: a fourth base model in one file registers itself and trains under ESMM. */
import { describe, expect, it } from 'vitest';
import { optim } from '../core/index.js';
import { createModel, EsmmMethod, listBaseModels, trainStep } from '../models/index.js';
import { WideAndDeepTower } from '../docs/examples/wide-and-deep.js';
import { auc, miniBatches, syntheticTask } from './models-fixtures.js';

describe('docs/examples/wide-and-deep', () => {
  it('registers itself on import', () => {
    expect(listBaseModels()).toEqual(expect.arrayContaining(['mlp', 'din', 'deepfm', 'wide-and-deep']));
  });

  it('trains as both ESMM towers and beats chance', () => {
    const task = syntheticTask(11, 4000, 2000);
    const model = createModel({
      method: 'esmm',
      base: 'wide-and-deep',
      schema: task.schema,
      tower: { hidden: [32, 16], crosses: [['user', 'item']], crossBuckets: 512 },
      seed: 3,
    });
    expect(model).toBeInstanceOf(EsmmMethod);
    const towers = (model as EsmmMethod).model;
    expect(towers.ctrTower).toBeInstanceOf(WideAndDeepTower);
    expect(towers.cvrTower).toBeInstanceOf(WideAndDeepTower);
    expect(model.namedParameters().some(([name]) => name.includes('crossTables'))).toBe(true);
    const opt = new optim.Adam(model.parameters(), { lr: 0.01 });
    const batches = miniBatches(task.train, 500);
    const first = trainStep(model, opt, batches[0]).item();
    let last = first;
    for (let epoch = 0; epoch < 8; epoch++) for (const b of batches) last = trainStep(model, opt, b).item();
    expect(last).toBeLessThan(first);
    const p = model.predict(task.test);
    const clicked = [...task.test.click.keys()].filter((i) => task.test.click[i] === 1);
    const cvr = auc(
      clicked.map((i) => p.pcvr[i]),
      clicked.map((i) => task.test.conversion[i]),
    );
    const ctcvr = auc(p.pctcvr, task.test.conversion);
    console.log('wide-and-deep ESMM', { cvr, ctcvr });
    expect(cvr).toBeGreaterThan(0.6);
    expect(ctcvr).toBeGreaterThan(0.65);
  });
});
