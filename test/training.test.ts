/** The Trainer, checkpoint resume, the Table 2 runner and the CLI. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FunnelSimulator } from '../models/data/simulator.js';
import { createModel } from '../models/model-factory.js';
import { runTable2 } from '../models/training/experiment.js';
import { simulatorSource } from '../models/training/sources.js';
import { Trainer } from '../models/training/trainer.js';
import { SMALL_WORLD } from './models-fixtures.js';
import { getBackend } from '../kernels/index.js';
import { main } from '../models/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'esmm-training-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sim = new FunnelSimulator({
  ...SMALL_WORLD,
  ctr: 0.15,
  cvr: 0.2,
  // The world of these tests, independent of the defaults: milder bait, full taste match.
  bait: 1,
  clickMatch: 1,
});
const trainLog = sim.generate(3000);
const testLog = sim.generate(1500);
const train = simulatorSource(sim, trainLog, { batchSize: 256, shuffle: true, seed: 5 });
const test = simulatorSource(sim, testLog, { batchSize: 1024 });

function build(method: 'esmm' | 'aman') {
  return createModel({
    method,
    schema: sim.schema,
    seed: 11,
    tower: { hidden: [16, 8] },
    ...(method === 'aman' ? { negativeRate: 0.3 } : {}),
  });
}

function weights(m: ReturnType<typeof build>): Float32Array[] {
  return m.parameters().map((p) => Float32Array.from(p.toArray()));
}

describe('Trainer', () => {
  it('captures its steps by default, with the weights of eager steps (ESMM, and AMAN whose sampling follows the data)', async () => {
    for (const method of ['esmm', 'aman'] as const) {
      const a = build(method);
      const b = build(method);
      const captured = new Trainer(a, { epochs: 1, lr: 0.01, progress: 'none' });
      const eager = new Trainer(b, { epochs: 1, lr: 0.01, progress: 'none', stepMode: 'eager' });
      const ra = await captured.fit(train);
      const rb = await eager.fit(train);
      expect(ra.history.map((h) => h.trainLoss)).toEqual(rb.history.map((h) => h.trainLoss));
      expect(weights(a)).toEqual(weights(b));
      expect(eager.trainStep.stats.recordings + eager.trainStep.stats.replays).toBe(0);
      // This file also runs on the gpu backends, whose storage lives on a device: there the step
      // runs eagerly and says why (capture replays host-memory backends only).
      if (getBackend().name.startsWith('gpu')) {
        expect(captured.trainStep.fallbackReason).toMatch(/keeps storage on a device|asynchronously/);
        continue;
      }
      expect(captured.trainStep.stats.recordings).toBeGreaterThan(0);
      if (method === 'esmm') {
        // The simulator's bags have another total length in every batch: the plan still replays.
        // 12 steps: Adam's first, two compared recordings, the smaller last batch; the rest replay.
        expect(captured.trainStep.fallbackReason).toBeNull();
        expect(captured.trainStep.stats).toMatchObject({ recordings: 4, replays: 8, eager: 0 });
      }
    }
  });

  it('trains ESMM so that test AUCs beat chance, with the loss falling', async () => {
    const m = build('esmm');
    const trainer = new Trainer(m, { epochs: 3, lr: 0.01, progress: 'none', jsonlPath: join(dir, 'log.jsonl') });
    const result = await trainer.fit(train, test);
    const [first, , last] = result.history;
    expect(last.trainLoss).toBeLessThan(first.trainLoss);
    expect(last.metrics!.ctrAuc).toBeGreaterThan(0.6);
    expect(last.metrics!.ctcvrAuc).toBeGreaterThan(0.6);
    const events = readFileSync(join(dir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    expect(events.filter((e) => e.type === 'epoch')).toHaveLength(3);
  });

  it('resumes from a checkpoint to exactly the weights of an uninterrupted run (with sampling state)', async () => {
    const straight = build('aman');
    await new Trainer(straight, { epochs: 2, lr: 0.01, progress: 'none' }).fit(train);

    const first = build('aman');
    const path = join(dir, 'resume.safetensors');
    await new Trainer(first, { epochs: 1, lr: 0.01, progress: 'none', checkpointPath: path }).fit(train);
    const resumedModel = build('aman');
    const resumed = new Trainer(resumedModel, { epochs: 2, lr: 0.01, progress: 'none' });
    await resumed.load(path);
    expect(resumed.epoch).toBe(1);
    await resumed.fit(train);

    const a = weights(straight);
    const b = weights(resumedModel);
    expect(b.length).toBe(a.length);
    a.forEach((w, i) => expect(b[i]).toEqual(w));
  });

  it('refuses a checkpoint of another method, changing nothing', async () => {
    const path = join(dir, 'esmm.safetensors');
    const m = build('esmm');
    await new Trainer(m, { epochs: 1, progress: 'none', checkpointPath: path }).fit(train);
    const other = build('aman');
    const before = weights(other);
    await expect(new Trainer(other, { progress: 'none' }).load(path)).rejects.toThrow(/method 'esmm'/);
    weights(other).forEach((w, i) => expect(w).toEqual(before[i]));
  });

  it('stops early when the monitored metric stops improving', async () => {
    const m = build('esmm');
    // A learning rate this large makes the validation metric stall at once.
    const result = await new Trainer(m, { epochs: 6, lr: 5, patience: 1, progress: 'none' }).fit(train, test);
    expect(result.stoppedEarly).toBe(true);
    expect(result.history.length).toBeLessThan(6);
  });
});

describe('Table 2 runner', () => {
  it('trains every method and writes the report with the paper beside it', async () => {
    const out = join(dir, 'table2');
    const result = await runTable2({
      data: {
        kind: 'simulator',
        config: { seed: 3, numUsers: 300, numItems: 600, ctr: 0.15, cvr: 0.2 },
        trainRows: 2000,
        testRows: 1000,
      },
      repeats: 2,
      epochs: 1,
      batchSize: 256,
      hidden: [8],
      lr: 0.01,
      outDir: out,
      log: () => {},
    });
    expect(result.runs).toHaveLength(14);
    expect(result.summary.map((s) => s.method)).toEqual([
      'oracle',
      'base',
      'aman',
      'oversampling',
      'unbias',
      'division',
      'esmm-ns',
      'esmm',
    ]);
    for (const s of result.summary) {
      expect(s.cvrAuc.mean).toBeGreaterThan(0);
      expect(s.cvrAucEntireSpace).toBeDefined();
      // The test set's own sampling error (DeLong) rides beside every AUC.
      expect(s.testStd.ctrAuc).toBeGreaterThan(0);
      expect(s.testStd.ctrAuc).toBeLessThan(0.1);
    }
    // The oracle scores the simulator's true propensities on the same test rows: nothing beats it on CTR by much.
    const oracle = result.summary[0];
    expect(result.oracle?.ctrAuc).toBe(oracle.ctrAuc.mean);
    for (const s of result.summary.slice(1)) expect(s.ctrAuc.mean).toBeLessThan(oracle.ctrAuc.mean + 0.05);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toMatch(/\| esmm \| \d+\.\d\d ± \d+\.\d\d \(\d+\.\d\d\) \|/);
    expect(md).toMatch(/\| \*\*oracle\*\* \(true pCTR, pCVR\) \| \d+\.\d\d \(\d+\.\d\d\) \|/);
    expect(md).toContain('68.56 ± 0.37');
    expect(readFileSync(join(out, 'report.svg'), 'utf8')).toMatch(/^<svg[^>]*xmlns/);
  });
});

describe('esmm CLI', () => {
  it('prints help and rejects unknown commands and options with a pointer to --help', async () => {
    expect(await main(['--help'])).toBe(0);
    expect(await main(['train', '--help'])).toBe(0);
    expect(await main(['frobnicate'])).toBe(2);
    expect(await main(['train', '--epochz', '3'])).toBe(2);
    expect(await main(['train', '--method', 'magic'])).toBe(2);
    expect(await main(['train', '--data', 'aliccp'])).toBe(2);
  });

  it('simulates Ali-CCP files, trains on them, evaluates and predicts', async () => {
    const data = join(dir, 'sim');
    const model = join(dir, 'cli', 'model.safetensors');
    expect(
      await main([
        'simulate',
        '--out',
        data,
        '--train-rows',
        '1500',
        '--test-rows',
        '800',
        '--ctr',
        '0.15',
        '--cvr',
        '0.2',
      ]),
    ).toBe(0);
    expect(
      await main([
        'train',
        '--data',
        'aliccp',
        '--dir',
        data,
        '--epochs',
        '1',
        '--hidden',
        '8',
        '--batch-size',
        '256',
        '--out',
        model,
      ]),
    ).toBe(0);
    expect(await main(['eval', '--model', model])).toBe(0);
    const predictions = join(dir, 'cli', 'p.csv');
    expect(await main(['predict', '--model', model, '--out', predictions, '--score', '1,0.5'])).toBe(0);
    const lines = readFileSync(predictions, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('row,pctr,pcvr,pctcvr,score');
    expect(lines.length).toBe(801);
    const [, pctr, pcvr, pctcvr, score] = lines[1].split(',').map(Number);
    expect(pctcvr).toBeCloseTo(pctr * pcvr, 6);
    expect(score).toBeCloseTo(pctr * Math.sqrt(pcvr), 6);
  });
});
