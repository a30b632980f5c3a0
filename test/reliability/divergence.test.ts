/** The divergence guard: a non-finite step stops training by name, never reaches the parameters or a checkpoint. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { optim } from '../../core/index.js';
import { FunnelSimulator } from '../../models/data/simulator.js';
import { NonFiniteStepError, trainStep } from '../../models/methods/method.js';
import type { Batch } from '../../models/schema.js';
import { createModel } from '../../models/model-factory.js';
import { simulatorSource } from '../../models/training/sources.js';
import { DivergenceError, Trainer } from '../../models/training/trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'esmm-divergence-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sim = new FunnelSimulator({
  seed: 4,
  numUsers: 80,
  numItems: 120,
  numCategories: 10,
  numShops: 20,
  numBrands: 15,
});
const train = simulatorSource(sim, sim.generate(2000), { batchSize: 200, shuffle: true, seed: 1 });
const build = () => createModel({ method: 'esmm', schema: sim.schema, seed: 2, tower: { hidden: [16, 8] } });
const snapshot = (m: ReturnType<typeof build>) => m.parameters().map((p) => Float32Array.from(p.toArray()));

describe('divergence guard', () => {
  it('lr 1e6 stops with the guard error and leaves the previous checkpoint byte-identical', async () => {
    const path = join(dir, 'model.safetensors');
    const m = build();
    await new Trainer(m, { epochs: 1, progress: 'none', checkpointPath: path }).fit(train);
    const good = readFileSync(path);
    const diverging = new Trainer(m, { epochs: 50, lr: 1e6, progress: 'none', checkpointPath: path });
    await diverging.load(path);
    const err = await diverging.fit(train).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergenceError);
    const d = err as DivergenceError;
    expect(d.message).toMatch(/^training diverged at epoch \d+, step \d+: /);
    expect(d.epoch).toBeGreaterThanOrEqual(2);
    expect(d.step).toBeGreaterThan(10);
    expect(d.parameter).toBeTypeOf('string');
    expect(d.message).toContain(`'${d.parameter}'`);
    expect(readFileSync(path).equals(good)).toBe(true);
    // The bad update never happened: every weight is still finite.
    for (const w of snapshot(m)) expect(w.every(Number.isFinite)).toBe(true);
  });

  it('trainStep throws before the update, naming the parameter, with parameters and optimizer state untouched', () => {
    const m = build();
    const opt = new optim.Adam(m.parameters(), { lr: 0.01 });
    const batches = [...(train.batches(1) as Iterable<Batch>)];
    trainStep(m, opt, batches[0]);
    // Poison one dense weight, as an overflow in an earlier unguarded step would.
    const [name, victim] = m.namedParameters().find(([n]) => n.endsWith('weight') && !n.includes('embedding'))!;
    const values = Float32Array.from(victim.toArray());
    values[0] = NaN;
    victim.backend.write(victim.storage, values);
    const before = snapshot(m);
    const state = Object.values(opt.stateDict().tensors).map((t) => Float32Array.from(t.toArray()));
    let err: unknown;
    try {
      trainStep(m, opt, batches[1]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NonFiniteStepError);
    expect((err as Error).message).toMatch(
      /^non-finite step: (loss|gradient norm) is NaN; first non-finite value: parameter '/,
    );
    expect((err as NonFiniteStepError).parameter).toBe(name);
    snapshot(m).forEach((w, i) => expect(w).toEqual(before[i]));
    Object.values(opt.stateDict().tensors).forEach((t, i) => expect(Float32Array.from(t.toArray())).toEqual(state[i]));
    for (const p of m.parameters()) expect(p.grad).toBeNull();
  });

  it('skipNonFiniteSteps skips up to N bad steps, then stops', async () => {
    const m = build();
    // Every step of lr 1e9 soon goes non-finite; with a budget the trainer skips, then gives up.
    const trainer = new Trainer(m, { epochs: 40, lr: 1e9, progress: 'none', skipNonFiniteSteps: 3 });
    const err = await trainer.fit(train).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergenceError);
    expect(trainer.skippedSteps).toBe(3);
  });
});
