/**
 * Gradient checks (float64 central differences) of every registered base model in each of its
 * declared variants, and of every registered method's loss end to end, with respect to embedding
 * tables and tower weights. The lists come from the registries: a new model or method file is checked
 * without an edit here.
 */
import { describe, expect, it } from 'vitest';
import { gradcheck, Rng, type Tensor } from '../core/index.js';
import {
  baseModelInfo,
  createBaseModel,
  createModel,
  Esmm,
  listBaseModels,
  listMethods,
  methodInfo,
  SharedEmbedding,
  type CreateModelOptions,
} from '../models/index.js';
import { loadRegistrations } from './helpers/registries.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';
import { setBackend } from '../kernels/index.js';

await loadRegistrations();

// Finite differences need float64, which only the reference backend runs natively; the other
// backends reproduce its autodiff op by op (test/core-backends-autodiff.test.ts).
setBackend('reference');

/** Tiny hidden layers keep the number of checked weights (two forwards each) small. */
const tiny = { hidden: [3, 2] };

function expectGradcheck(fn: () => Tensor, params: Tensor[]): void {
  const result = gradcheck(() => fn(), params);
  expect(result.checked).toBeGreaterThan(0);
  expect(result.ok, `worst ${JSON.stringify(result.worst)}`).toBe(true);
}

describe('every registered base model passes gradcheck w.r.t. embeddings and tower weights', () => {
  it('finds the built-in models and the docs example in the registry', () => {
    expect(listBaseModels()).toEqual(expect.arrayContaining(['mlp', 'din', 'deepfm', 'wide-and-deep']));
  });
  for (const name of listBaseModels()) {
    for (const variant of baseModelInfo(name).variants) {
      it(`${name} ${JSON.stringify(variant)}`, () => {
        const schema = tinySchema(2);
        const batch = tinyBatch();
        const embedding = new SharedEmbedding(schema, { dtype: 'float64', std: 0.5, rng: new Rng(3) });
        const tower = createBaseModel(
          name,
          schema,
          { ...tiny, ...variant, dtype: 'float64', rng: new Rng(4) },
          embedding.fieldDims(),
        );
        expect(tower.kind).toBe(name);
        const params = [...embedding.parameters(), ...tower.parameters()];
        expectGradcheck(() => tower.forward(embedding.forward(batch)), params);
        // Every table the batch touches receives a gradient (the check compares against zeros otherwise).
        expect(embedding.parameters().every((p) => p.gradient !== null)).toBe(true);
      });
    }
  }
});

describe('every registered method passes gradcheck end to end', () => {
  it('the ESMM loss with a DIN CVR tower and an MLP CTR tower', () => {
    const model = new Esmm(tinySchema(3), {
      base: { ctr: 'mlp', cvr: 'din' },
      tower: tiny,
      towers: { cvr: { attention: { hidden: [3, 2] } } },
      dtype: 'float64',
      embeddingStd: 0.5,
      seed: 5,
    });
    expectGradcheck(() => model.loss(tinyBatch()), model.parameters());
  });
  for (const name of listMethods()) {
    for (const variant of methodInfo(name).variants) {
      it(`${name} ${JSON.stringify(variant)}`, () => {
        const method = createModel({
          ...variant,
          method: name,
          schema: tinySchema(2),
          tower: tiny,
          dtype: 'float64',
          embeddingStd: 0.5,
          seed: 2,
        } as CreateModelOptions);
        // A sampling method draws the same rows in every evaluation of the check.
        const state = method.samplingState();
        expectGradcheck(() => {
          method.restoreSamplingState(state);
          return method.loss(tinyBatch());
        }, method.parameters());
      });
    }
  }
});
