/**
 * Corrupted trainer checkpoints: bit flips in the length, header and data, overwritten runs, truncations
 * and trailing bytes. Every case must either be refused with a CheckpointError naming the file, leaving
 * the trainer exactly as it was, or load exactly the state that was saved: never a silent difference.
 * ESMM_FUZZ_CHECKPOINTS sets the number of cases (default 1,000).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../core/index.js';
import { CheckpointError } from '../../models/checkpoint.js';
import { FunnelSimulator } from '../../models/data/simulator.js';
import { createModel } from '../../models/model-factory.js';
import { simulatorSource } from '../../models/training/sources.js';
import { Trainer } from '../../models/training/trainer.js';

const CASES = Number(process.env.ESMM_FUZZ_CHECKPOINTS ?? 1000);
const dir = mkdtempSync(join(tmpdir(), 'esmm-ckpt-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sim = new FunnelSimulator({ seed: 9, numUsers: 30, numItems: 40, numCategories: 5, numShops: 8, numBrands: 6 });
const train = simulatorSource(sim, sim.generate(400), { batchSize: 100, shuffle: true, seed: 2 });
const trainer = (seed: number) =>
  new Trainer(createModel({ method: 'aman', schema: sim.schema, seed, tower: { hidden: [4] } }), { progress: 'none' });

/** Everything a load restores, as plain values. */
function state(t: Trainer): string {
  const params = t.method.parameters().map((p) => Array.from(p.toArray()));
  const opt = t.optimizer.stateDict();
  const optTensors = Object.entries(opt.tensors).map(([k, v]) => [k, Array.from(v.toArray())]);
  return JSON.stringify([params, optTensors, opt.scalars, t.epoch, t.step, t.method.samplingState()]);
}

const MUTATIONS = [
  'length bit',
  'header bit',
  'header digit',
  'data bit',
  'overwritten run',
  'truncation',
  'trailing bytes',
];

describe('corrupted checkpoints', () => {
  it(`${CASES} corruptions: each refused by name with nothing changed, or loaded exactly`, async () => {
    const source = trainer(1);
    const path = join(dir, 'good.safetensors');
    await new Trainer(source.method, { progress: 'none', checkpointPath: path }).fit(train);
    const good = readFileSync(path);
    const headerLen = Number(good.readBigUInt64LE(0));
    const header = good.subarray(8, 8 + headerLen).toString('latin1');
    const digits = [...header.matchAll(/\d/g)].map((m) => 8 + m.index);
    const reference = trainer(2);
    await reference.load(path);
    const saved = state(reference);

    const target = trainer(3);
    const rng = new Rng(20261201);
    const counts: Record<string, { refused: number; identical: number; unchanged: number }> = {};
    const failures: string[] = [];
    const file = join(dir, 'bad.safetensors');
    for (let c = 0; c < CASES; c++) {
      const kind = MUTATIONS[c % MUTATIONS.length];
      let bytes = Buffer.from(good);
      const at = (lo: number, hi: number) => lo + Math.floor(rng.uniform() * (hi - lo));
      const flip = (i: number) => (bytes[i] ^= 1 << at(0, 8));
      if (kind === 'length bit') flip(at(0, 8));
      else if (kind === 'header bit') flip(at(8, 8 + headerLen));
      else if (kind === 'header digit') bytes[digits[at(0, digits.length)]] = 0x30 + at(0, 10);
      else if (kind === 'data bit') flip(at(8 + headerLen, bytes.length));
      else if (kind === 'overwritten run') {
        const start = at(0, bytes.length);
        for (let i = start; i < Math.min(bytes.length, start + at(1, 17)); i++) bytes[i] = at(0, 256);
      } else if (kind === 'truncation') bytes = bytes.subarray(0, at(0, bytes.length));
      else bytes = Buffer.concat([bytes, Buffer.from(Array.from({ length: at(1, 65) }, () => at(0, 256)))]);
      const tally = (counts[kind] ??= { refused: 0, identical: 0, unchanged: 0 });
      // A digit replaced by itself leaves the file as it was: counted apart, not loaded.
      if (bytes.equals(good)) {
        tally.unchanged++;
        continue;
      }
      writeFileSync(file, bytes);
      const before = state(target);
      try {
        await target.load(file);
        const after = state(target);
        if (after === saved) tally.identical++;
        else failures.push(`case ${c} (${kind}): loaded a state different from the one saved`);
      } catch (e) {
        tally.refused++;
        if (!(e instanceof CheckpointError) || !e.message.startsWith(`${file}: `))
          failures.push(`case ${c} (${kind}): ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        else if (state(target) !== before) failures.push(`case ${c} (${kind}): refused, but the trainer changed`);
      }
    }
    console.log(`checkpoint fuzz, ${CASES} cases: ${JSON.stringify(counts)}`);
    expect(failures.slice(0, 10)).toEqual([]);
    const total = Object.values(counts).reduce((a, t) => a + t.refused + t.identical + t.unchanged, 0);
    expect(total).toBe(CASES);
  });
});
