/** `esmm experiment table2 --suite mtl` on files: a prepared Parquet folder and raw Ali-CCP files give every method's row. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSimulatorAliCcp } from '../models/data/aliccp-writer.js';
import { prepareAliCcp } from '../models/data/prepare.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import { main } from '../models/cli.js';
import { TABLE2_SUITES, type RunResult } from '../models/training/experiment.js';

let tmp = '';
let raw = '';
let prepared = '';
const sim = new FunnelSimulator({
  seed: 6,
  numUsers: 60,
  numItems: 120,
  numCategories: 8,
  numShops: 16,
  numBrands: 12,
});

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'esmm-suite-files-'));
  raw = join(tmp, 'raw');
  prepared = join(tmp, 'prepared');
  await writeSimulatorAliCcp(sim, sim.generate(1200), raw, 'train');
  await writeSimulatorAliCcp(sim, sim.generate(600), raw, 'test');
  await prepareAliCcp({ dir: raw, out: prepared, rowGroupRows: 256 });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Runs the command quietly; returns its exit code and the report folder's markdown and runs. */
async function table2(...flags: string[]): Promise<{ code: number; markdown: string; runs: RunResult[] }> {
  const out = join(tmp, `out-${flags.join('-').replace(/[^a-z]/g, '')}`);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  let code: number;
  try {
    code = await main([
      'experiment',
      'table2',
      '--suite',
      'mtl',
      '--repeats',
      '1',
      '--batch-size',
      '256',
      ...flags,
      '--out',
      out,
    ]);
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
  const markdown = await readFile(join(out, 'report.md'), 'utf8');
  const { runs } = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as { runs: RunResult[] };
  return { code, markdown, runs };
}

/** The method column of the report's table, in order. */
function reportRows(markdown: string): string[] {
  return markdown
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| method') && !l.startsWith('| ---'))
    .map((l) => l.split('|')[1].trim());
}

describe('--suite mtl on files', () => {
  for (const [data, dir] of [
    ['parquet', () => prepared],
    ['aliccp', () => raw],
  ] as const) {
    it(`--data ${data} trains and reports every method of the suite`, async () => {
      const { code, markdown, runs } = await table2('--data', data, '--dir', dir());
      expect(code).toBe(0);
      // No simulator behind the files: no oracle row and no entire-space column, one row per method.
      expect(reportRows(markdown)).toEqual([...TABLE2_SUITES.mtl]);
      expect(markdown).not.toContain('entire-space');
      expect(runs.map((r) => r.method)).toEqual([...TABLE2_SUITES.mtl]);
      for (const r of runs) {
        expect(r.metrics.rows).toBe(600);
        expect(r.metrics.ctrAuc).toBeGreaterThan(0);
        expect(r.metrics.ctrAuc).toBeLessThan(1);
      }
    }, 240_000);
  }
});
