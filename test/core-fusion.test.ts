/**
 * The fused lazy Adam (segment sum of an embedding table's row gradients and the SparseAdam update
 * in one kernel): the same bits as the unfused kernels, eager and captured, on every host backend;
 * what needs the gradient rows (clipping, the finite check) still gets them.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { compileStep, FUSION_DEFAULTS, fusions, optim, setFusions, tidy, type Tensor } from '../core/index.js';
import { getBackend, ReferenceBackend, setBackend, type Backend, type Storage } from '../kernels/index.js';
import { relaxedSimdSupported, WasmBackend } from '../kernels/wasm/index.js';
import { createModel, trainStep, type Batch } from '../models/index.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import { randomArray } from './gpu/kernel-checks.js';
import { SMALL_WORLD, simulatorBatches } from './models-fixtures.js';

const before = getBackend();
afterAll(() => {
  setBackend(before);
  setFusions(FUSION_DEFAULTS);
});

const sim = new FunnelSimulator(SMALL_WORLD);
const batches = simulatorBatches(sim, 10);
const backends: [string, () => Backend][] = [
  ['reference', () => new ReferenceBackend()],
  ['wasm plain SIMD', () => new WasmBackend({ threads: 1, simd: 'plain' })],
  ...(relaxedSimdSupported()
    ? [['wasm relaxed SIMD', () => new WasmBackend({ threads: 1, simd: 'relaxed' })] as [string, () => Backend]]
    : []),
  ['wasm 2 threads', () => new WasmBackend({ threads: 2 })],
];

/** Trains a fresh ESMM model over `batches`; returns the losses and the final parameters. */
function train(
  fused: boolean,
  step: 'eager' | 'captured',
  clipNorm?: number,
): { losses: number[]; params: number[][] } {
  setFusions({ segmentSumAdam: fused });
  const model = createModel({ method: 'esmm', base: 'mlp', schema: sim.schema, seed: 3, tower: { hidden: [16, 8] } });
  const opt = new optim.Adam(model.parameters(), { lr: 0.01 });
  // No finite check (it reads the gradient rows for their norm), so the fused kernel runs.
  const run = (b: Batch): Tensor =>
    clipNorm === undefined
      ? tidy(() => {
          opt.zeroGrad();
          const loss = model.loss(b);
          loss.backward();
          opt.step();
          return loss;
        })
      : trainStep(model, opt, b, { clipNorm });
  const compiled = compileStep(run, { mode: step });
  const losses = batches.map((b) => {
    const l = compiled(b);
    const v = l.item();
    l.dispose();
    return v;
  });
  if (step === 'captured') expect(compiled.stats.replays).toBeGreaterThan(0);
  compiled.dispose();
  return { losses, params: model.parameters().map((p) => [...p.toArray()]) };
}

describe('fused segment sum + lazy Adam', () => {
  for (const [name, make] of backends) {
    it(`${name}: the same losses and parameters as segmentSumRows + sparseAdam, eager and captured`, () => {
      setBackend(make());
      const fusedKernel = vi.spyOn(Object.getPrototypeOf(getBackend()) as Backend, 'sparseAdamSegments');
      const unfused = train(false, 'eager');
      expect(fusedKernel).not.toHaveBeenCalled();
      expect(train(true, 'eager')).toEqual(unfused);
      expect(fusedKernel).toHaveBeenCalled();
      fusedKernel.mockRestore();
      expect(train(true, 'captured')).toEqual(unfused);
    });
  }

  it('clipping reads the gradient rows: with the fusion on it trains as with it off', () => {
    setBackend(new WasmBackend({ threads: 1 }));
    expect(train(true, 'captured', 0.5)).toEqual(train(false, 'eager', 0.5));
  });

  for (const [name, make] of backends) {
    it(`${name}: sparseAdamSegments is bit for bit segmentSumRows then sparseAdam`, () => {
      const be = make();
      const [rows, dim, srcCount] = [50, 7, 30];
      const chosen = Int32Array.from([1, 4, 5, 9, 20, 33, 49]);
      const segments = Int32Array.from([0, 2, 2, 5, 6, 9, 10, 14]);
      const srcRows = Int32Array.from(randomArray(14, 11, 0, srcCount), Math.floor);
      const scales = randomArray(14, 12, -2, 2);
      const h = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };
      const state = (): Storage[] =>
        [randomArray(rows * dim, 1), randomArray(rows * dim, 2, -0.1, 0.1), randomArray(rows * dim, 3, 0, 0.1)].map(
          (x) => be.fromArray(x, 'float32'),
        );
      const src = be.fromArray(randomArray(srcCount * dim, 4), 'float32');
      for (const sc of [scales, null]) {
        const [p1, m1, v1] = state();
        const [p2, m2, v2] = state();
        const g = be.alloc(chosen.length * dim, 'float32');
        be.segmentSumRows(src, dim, segments, srcRows, sc, g);
        be.sparseAdam(p1, m1, v1, dim, chosen, g, h);
        be.sparseAdamSegments(p2, m2, v2, dim, chosen, src, segments, srcRows, sc, h);
        for (const [a, b] of [
          [p1, p2],
          [m1, m2],
          [v1, v2],
        ])
          expect(be.read(b)).toEqual(be.read(a));
      }
    });
  }

  it('setFusions takes known switches only and returns the previous settings', () => {
    setFusions(FUSION_DEFAULTS);
    expect(setFusions({ segmentSumAdam: false })).toEqual(FUSION_DEFAULTS);
    expect(fusions().segmentSumAdam).toBe(false);
    expect(() => setFusions({ bogus: true } as never)).toThrow(/unknown fusion 'bogus'/);
    expect(() => setFusions({ segmentSumAdam: 1 } as never)).toThrow(/must be true or false/);
    setFusions(FUSION_DEFAULTS);
    expect(fusions()).toEqual(FUSION_DEFAULTS);
  });
});
