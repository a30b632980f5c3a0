/**
 * Every registered method trains the same under the Trainer's captured step as eagerly: over the
 * simulator's own batches (bags of varying length, few conversions, so label arrays repeat between
 * batches), losses and parameters are bit-identical, and a step that cannot be replayed says why.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { compileStep, optim, type CompiledStep, type Tensor } from '../core/index.js';
import { getBackend, setBackend } from '../kernels/index.js';
import { WasmBackend } from '../kernels/wasm/index.js';
import {
  createModel,
  listMethods,
  Trainer,
  trainStep,
  type Batch,
  type CvrMethod,
  type MethodName,
} from '../models/index.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import { loadRegistrations } from './helpers/registries.js';
import { SMALL_WORLD, simulatorBatches } from './models-fixtures.js';

await loadRegistrations();
const before = getBackend();
afterAll(() => setBackend(before));

const sim = new FunnelSimulator(SMALL_WORLD);
const batches = simulatorBatches(sim, 24);

/**
 * Trains two copies of one model over `batches`, one eagerly and one through `compileStep`, and
 * asserts bit-identical losses at every step and parameters at the end; returns the captured step
 * (not yet disposed) for its statistics.
 */
function expectCapturedEqualsEager(build: () => CvrMethod, batches: readonly Batch[]): CompiledStep<Batch, Tensor> {
  const make = () => {
    const model = build();
    return { model, opt: new optim.Adam(model.parameters(), { lr: 0.01 }) };
  };
  const eager = make();
  const captured = make();
  const step = compileStep((b: Batch) => trainStep(captured.model, captured.opt, b));
  for (const b of batches) {
    const want = trainStep(eager.model, eager.opt, b);
    const got = step(b);
    expect(got.item()).toBe(want.item());
    want.dispose();
    got.dispose();
  }
  const got = new Map(captured.model.namedParameters());
  for (const [name, p] of eager.model.namedParameters()) expect(got.get(name)!.toArray(), name).toEqual(p.toArray());
  return step;
}

describe('captured step, every method', () => {
  for (const method of listMethods()) {
    it(`${method}: captured and eager steps give bit-identical losses and parameters over 24 batches`, () => {
      setBackend(new WasmBackend({ threads: 1 }));
      const step = expectCapturedEqualsEager(
        () => createModel({ method: method as MethodName, base: 'mlp', schema: sim.schema, seed: 7 }),
        batches,
      );
      // Either the plan replayed most steps, or the step ran eagerly and says why.
      const { replays } = step.stats;
      if (replays === 0) expect(step.fallbackReason).toMatch(/./);
      else expect(replays).toBeGreaterThanOrEqual(batches.length - 4);
      if (method === 'esmm' || method === 'mmoe') expect(replays).toBeGreaterThanOrEqual(batches.length - 4);
      step.dispose();
    });
  }
});

describe('DIN under the captured step', () => {
  /** The simulator's batches with the behaviour sequence of every row redrawn, the longest of each batch 33 to 36. */
  const longSequences = batches.map((b, k): Batch => {
    const n = b.size;
    const offsets = new Int32Array(n + 1);
    for (let r = 0; r < n; r++) offsets[r + 1] = offsets[r] + (r === k % n ? 33 + (k % 4) : (r * 7 + k) % 30);
    const total = offsets[n];
    const ids = Int32Array.from({ length: total }, (_, j) => 1 + ((j * 31 + k) % 150));
    const values = Float32Array.from({ length: total }, (_, j) => 1 + (j % 3));
    return { ...b, fields: { ...b.fields, '205_14': { kind: 'bag', ids, offsets, values } } };
  });

  it('replays one plan while the longest sequence varies within a padded length, bit-identical to eager', () => {
    setBackend(new WasmBackend({ threads: 1 }));
    const step = expectCapturedEqualsEager(
      () =>
        createModel({
          method: 'esmm',
          base: 'din',
          schema: sim.schema,
          tower: { hidden: [8], attention: { hidden: [6, 4] } },
          seed: 7,
        }),
      longSequences,
    );
    // Every batch pads to 36: Adam's first step and two recordings, then replays only.
    expect(step.stats).toMatchObject({ recordings: 3, rerecords: 0, replays: longSequences.length - 3 });
    step.dispose();
  });
});

describe('Trainer with the captured step', () => {
  it('refuses a batch with an id out of range after its plan has replayed, changing no parameter', async () => {
    setBackend(new WasmBackend({ threads: 1 }));
    const model = createModel({ method: 'esmm', base: 'mlp', schema: sim.schema, seed: 7 });
    const trainer = new Trainer(model, { epochs: 2, progress: 'none' });
    const good = batches[8];
    const field = Object.keys(good.fields).find((f) => good.fields[f].kind === 'categorical')!;
    const ids = (good.fields[field] as { ids: Int32Array }).ids;
    const bad: Batch = {
      ...good,
      fields: { ...good.fields, [field]: { kind: 'categorical', ids: ids.map(() => 1e8) } },
    };
    let weights: (readonly [string, unknown])[] = [];
    const source = {
      batches: (epoch: number): Batch[] => {
        if (epoch === 1) return batches.slice(0, 8);
        expect(trainer.trainStep.stats.replays).toBeGreaterThan(0);
        weights = model.namedParameters().map(([n, p]) => [n, p.toArray()] as const);
        return [bad];
      },
    };
    await expect(trainer.fit(source)).rejects.toThrow(new RegExp(field));
    const after = new Map(model.namedParameters());
    expect(weights.length).toBeGreaterThan(0);
    for (const [n, w] of weights) expect(after.get(n)!.toArray(), n).toEqual(w);
  });
});
