/**
 * Gradient checks (float64 central differences) of every base model and of every
 * deterministic method's loss, end to end, with respect to embedding tables and tower weights.
 */
import { describe, expect, it } from 'vitest';
import { gradcheck, Rng, type Tensor } from '../core/index.js';
import {
  createBaseModel,
  createModel,
  Esmm,
  SharedEmbedding,
  type BaseModelOptions,
  type CreateModelOptions,
  type MethodSpec,
} from '../models/index.js';
import '../docs/examples/wide-and-deep.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';
import { setBackend } from '../kernels/index.js';

// Finite differences need float64, which only the reference backend runs natively; the other
// backends reproduce its autodiff op by op (test/core-backends-autodiff.test.ts).
setBackend('reference');

const tiny: BaseModelOptions = { hidden: [3, 2], attention: { hidden: [3, 2] } };

function expectGradcheck(fn: () => Tensor, params: Tensor[]): void {
  const result = gradcheck(() => fn(), params);
  expect(result.checked).toBeGreaterThan(0);
  expect(result.ok, `worst ${JSON.stringify(result.worst)}`).toBe(true);
}

describe('base models pass gradcheck w.r.t. embeddings and tower weights', () => {
  const cases: [string, BaseModelOptions][] = [
    ['mlp', tiny],
    ['mlp', { ...tiny, activation: 'relu' }],
    ['din', tiny],
    ['din', { ...tiny, attention: { hidden: [3, 2], normalization: 'softmax' } }],
    ['din', { ...tiny, attention: { hidden: [3, 2], activation: 'dice' } }],
    ['deepfm', tiny],
    ['wide-and-deep', { ...tiny, crosses: [['user', 'item']], crossBuckets: 7 }],
  ];
  for (const [name, options] of cases) {
    it(`${name} ${JSON.stringify(options)}`, () => {
      const schema = tinySchema(2);
      const batch = tinyBatch();
      const embedding = new SharedEmbedding(schema, { dtype: 'float64', std: 0.5, rng: new Rng(3) });
      const tower = createBaseModel(
        name,
        schema,
        { ...options, dtype: 'float64', rng: new Rng(4) },
        embedding.fieldDims(),
      );
      const params = [...embedding.parameters(), ...tower.parameters()];
      expectGradcheck(() => tower.forward(embedding.forward(batch)), params);
      // Every table the batch touches receives a gradient (the check compares against zeros otherwise).
      expect(embedding.parameters().every((p) => p.grad !== null)).toBe(true);
    });
  }
});

describe('method losses pass gradcheck end to end', () => {
  it('the ESMM loss with a DIN CVR tower and an MLP CTR tower', () => {
    const model = new Esmm(tinySchema(3), {
      base: { ctr: 'mlp', cvr: 'din' },
      tower: tiny,
      dtype: 'float64',
      embeddingStd: 0.5,
      seed: 5,
    });
    expectGradcheck(() => model.loss(tinyBatch()), model.parameters());
  });
  it('the ESMM loss with unequal weights', () => {
    const model = new Esmm(tinySchema(2), {
      base: 'deepfm',
      tower: tiny,
      dtype: 'float64',
      embeddingStd: 0.5,
      seed: 6,
      lossWeights: { ctr: 0.3, ctcvr: 2 },
    });
    expectGradcheck(() => model.loss(tinyBatch()), model.parameters());
  });
  const specs: MethodSpec[] = [
    { method: 'esmm' },
    { method: 'esmm-ns' },
    { method: 'base' },
    { method: 'oversampling', factor: 3 },
    { method: 'division' },
  ];
  for (const spec of specs) {
    it(spec.method, () => {
      const method = createModel({
        ...spec,
        schema: tinySchema(2),
        tower: tiny,
        dtype: 'float64',
        embeddingStd: 0.5,
        seed: 2,
      } as CreateModelOptions);
      expectGradcheck(() => method.loss(tinyBatch()), method.parameters());
    });
  }
});
