/**
 * What the registry-driven suites (gradient checks, learning) do not cover of the multi-task frames:
 * experts built from another base model, the parts of each loss, the training spaces, and bad options.
 */
import { describe, expect, it } from 'vitest';
import { gradcheck, type nn } from '../core/index.js';

type Module = nn.Module;
import { setBackend } from '../kernels/index.js';
import { createModel, listMethods, type CreateModelOptions } from '../models/index.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';

setBackend('reference');
const schema = tinySchema(2);

describe('multi-task frames', () => {
  it('are registered in both training spaces', () => {
    for (const frame of ['shared-bottom', 'mmoe', 'ple'])
      expect(listMethods()).toEqual(expect.arrayContaining([frame, `${frame}-naive`]));
    expect(listMethods()).toEqual(expect.arrayContaining(['aitm', 'escm2-ips', 'escm2-dr']));
  });

  it('take any registered base model as expert: MMoE over DIN trunks passes gradcheck', () => {
    const method = createModel({
      method: 'mmoe',
      experts: 2,
      expertSizes: [3],
      towers: [2],
      base: 'din',
      schema,
      tower: { attention: { hidden: [3] } },
      dtype: 'float64',
      embeddingStd: 0.5,
      seed: 3,
    });
    const result = gradcheck(() => method.loss(tinyBatch()), method.parameters());
    expect(result.ok, `worst ${JSON.stringify(result.worst)}`).toBe(true);
  });

  it('supervise CVR through CTCVR in the entire space and on clicked rows naively', () => {
    const sizes = { experts: 2, expertSizes: [3], towers: [2] };
    const entire = createModel({ method: 'mmoe', ...sizes, schema, seed: 1 }).lossFor(tinyBatch());
    const naive = createModel({ method: 'mmoe-naive', ...sizes, schema, seed: 1 }).lossFor(tinyBatch());
    expect(Object.keys(entire.parts).sort()).toEqual(['ctcvr', 'ctr']);
    expect(Object.keys(naive.parts).sort()).toEqual(['ctr', 'cvr']);
    // tinyBatch has clicks on rows 0 and 2: the naive CVR term sees those two only.
    expect(naive.rows).toEqual({ ctr: 3, cvr: 2 });
  });

  it('AITM adds the calibrator, ESCM² the counterfactual risk (and DR the imputation loss)', () => {
    const parts = (o: CreateModelOptions): string[] => Object.keys(createModel(o).lossFor(tinyBatch()).parts).sort();
    expect(parts({ method: 'aitm', towerSizes: [3, 2], schema })).toEqual(['calibrator', 'ctcvr', 'ctr']);
    expect(parts({ method: 'escm2-ips', schema, tower: { hidden: [3] } })).toEqual(['counterfactual', 'ctcvr', 'ctr']);
    expect(parts({ method: 'escm2-dr', schema, tower: { hidden: [3] } })).toEqual([
      'counterfactual',
      'ctcvr',
      'ctr',
      'imputation',
    ]);
  });

  it('ESCM² at the default propensity floor: exact gradients on the CVR side, none through 1/pCTR', () => {
    for (const method of ['escm2-ips', 'escm2-dr'] as const) {
      const m = createModel({
        method,
        schema,
        tower: { hidden: [3, 2] },
        dtype: 'float64',
        embeddingStd: 0.5,
        seed: 5,
      });
      const towers = m as unknown as { cvrTower: Module; ctrTower: Module; imputationTower: Module | null };
      // The CVR and imputation towers do not feed the propensity, so the finite differences see what the gradient does.
      const params = [...towers.cvrTower.parameters(), ...(towers.imputationTower?.parameters() ?? [])];
      const result = gradcheck(() => m.loss(tinyBatch()), params);
      expect(result.ok, `${method}: worst ${JSON.stringify(result.worst)}`).toBe(true);
      // The risk alone leaves the CTR tower without gradient.
      for (const p of m.parameters()) p.grad = null;
      m.lossFor(tinyBatch()).parts.counterfactual.backward();
      expect(towers.ctrTower.parameters().every((p) => p.grad === null)).toBe(true);
      expect(towers.cvrTower.parameters().every((p) => p.grad !== null)).toBe(true);
    }
  });

  it('AITM scores pCVR as pCTCVR / pCTR within [0, 1]', () => {
    const p = createModel({ method: 'aitm', towerSizes: [3, 2], schema, seed: 4 }).predict(tinyBatch());
    for (let i = 0; i < 3; i++) {
      expect(p.pcvr[i]).toBeGreaterThanOrEqual(0);
      expect(p.pcvr[i]).toBeLessThanOrEqual(1);
      expect(p.pcvr[i]).toBeCloseTo(Math.min(1, p.pctcvr[i] / p.pctr[i]), 5);
    }
  });

  it('reject bad options naming the method and the option', () => {
    expect(() => createModel({ method: 'mmoe', schema, experts: 0 })).toThrow(/method 'mmoe': option 'experts'/);
    expect(() => createModel({ method: 'ple-naive', schema, expertSizes: [0] })).toThrow(
      /method 'ple-naive': option 'expertSizes'/,
    );
    expect(() => createModel({ method: 'escm2-ips', schema, minPropensity: 0 })).toThrow(/minPropensity/);
    expect(() =>
      createModel({ method: 'aitm', schema, trainingSpace: 'click' } as unknown as CreateModelOptions),
    ).toThrow(/method 'aitm': unknown option 'trainingSpace'/);
  });
});
