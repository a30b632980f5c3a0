/** The practice report end to end on tiny simulated data, and its CLI command. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../models/cli.js';
import { runCalibrationReport } from '../models/practice/index.js';

const dir = mkdtempSync(join(tmpdir(), 'esmm-practice-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = {
  seed: 2,
  numUsers: 150,
  numItems: 300,
  numCategories: 20,
  numShops: 40,
  numBrands: 30,
  ctr: 0.1,
  cvr: 0.2,
};

describe('runCalibrationReport', () => {
  it('trains full and down-sampled ESMM, corrects, calibrates, ranks, sweeps, and writes the report', async () => {
    const out = join(dir, 'report');
    const rep = await runCalibrationReport({
      simulator: tiny,
      trainRows: 6000,
      validRows: 3000,
      testRows: 3000,
      hidden: [8],
      epochs: 2,
      lr: 0.01,
      batchSize: 512,
      negativeRatio: 2,
      lossWeightPairs: [
        { ctr: 1, ctcvr: 1 },
        { ctr: 1, ctcvr: 3 },
      ],
      grid: [
        { a: 1, b: 0 },
        { a: 1, b: 1 },
      ],
      outDir: out,
      log: () => {},
    });
    expect(rep.rates.unclicked).toBeGreaterThan(0.1);
    expect(rep.rates.unclicked).toBeLessThan(0.4);
    const [full, raw, corrected, truth] = rep.downsampling;
    // Down-sampling inflates pCTR by about 1/r; the correction brings it back near the full-data model.
    expect(raw.quality.ratioCtr).toBeGreaterThan(1.5);
    expect(Math.abs(Math.log(corrected.quality.ratioCtr))).toBeLessThan(Math.abs(Math.log(raw.quality.ratioCtr)) / 2);
    expect(corrected.quality.eceCtr).toBeLessThan(raw.quality.eceCtr);
    expect(raw.samples).toBeLessThan(full.samples!);
    expect(truth.quality.eceCtr).toBeLessThan(full.quality.eceCtr);
    const iso = rep.calibration.find((c) => c.name === 'isotonic')!;
    expect(iso.eceCtr).toBeLessThanOrEqual(rep.calibration[0].eceCtr + 0.01);
    expect(rep.deciles.length).toBeGreaterThan(1);
    expect(rep.ranking).toHaveLength(2);
    expect(rep.rankingTruth[1].metrics.shareOfOracle).toBeCloseTo(1, 9);
    expect(rep.sweep).toHaveLength(2);
    for (const f of [
      'report.md',
      'results.json',
      'reliability-ctr.svg',
      'reliability-cvr.svg',
      'reliability-ctcvr.svg',
    ])
      expect(existsSync(join(out, f))).toBe(true);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    for (const h of ['## 1. Negative down-sampling', '## 2. Calibration', '## 3. Ranking score', '## 4. Loss weights'])
      expect(md).toContain(h);
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).downsampling).toHaveLength(4);
  });
});

describe('esmm calibrate', () => {
  it('runs from the command line and rejects bad pairs', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const out = join(dir, 'cli');
      const args = [
        '--train-rows',
        '3000',
        '--valid-rows',
        '2000',
        '--test-rows',
        '2000',
        '--hidden',
        '8',
        '--epochs',
        '1',
        '--ctr',
        '0.1',
        '--cvr',
        '0.2',
      ];
      expect(await main(['calibrate', ...args, '--grid', '1:1,1:2', '--out', out])).toBe(0);
      expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('| 1 | 2 |');
      expect(await main(['calibrate', ...args, '--sweep', '1-1', '--out', out])).toBe(2);
      expect(await main(['calibrate', '--binning', 'odd'])).toBe(2);
    } finally {
      log.mockRestore();
      err.mockRestore();
      stderr.mockRestore();
    }
  });
});
