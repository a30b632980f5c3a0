/**
 * The real-data path through the `esmm` commands: simulate → shuffle the common files → prepare →
 * train from Parquet, and train from the shuffled raw files: the same metrics and weights as from
 * the files in their written order, and (one row group) as from Parquet.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors } from '../models/checkpoint.js';
import { main } from '../models/cli.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'esmm-cli-shuffled-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs a command, returning its exit code and what it printed. */
async function run(args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  try {
    return { code: await main(args), out };
  } finally {
    log.mockRestore();
  }
}

/** The metrics line `esmm train` prints (a JSON object). */
function metricsOf(out: string[]): Record<string, number> {
  const line = out.find((l) => l.startsWith('{"'));
  expect(line).toBeDefined();
  return JSON.parse(line as string) as Record<string, number>;
}

function weightsOf(path: string): Record<string, number[]> {
  const { tensors } = decodeSafetensors(readFileSync(path), path);
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Array.from(t.toArray())]));
}

/** Copies a split's files, with the common file's lines in a seeded random order. */
function shuffledCopy(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const split of ['train', 'test']) {
    copyFileSync(join(from, `sample_skeleton_${split}.csv`), join(to, `sample_skeleton_${split}.csv`));
    const lines = readFileSync(join(from, `common_features_${split}.csv`), 'latin1')
      .split('\n')
      .filter(Boolean);
    let s = 12345;
    for (let i = lines.length - 1; i > 0; i--) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const j = s % (i + 1);
      [lines[i], lines[j]] = [lines[j], lines[i]];
    }
    writeFileSync(join(to, `common_features_${split}.csv`), lines.join('\n') + '\n', 'latin1');
  }
}

const TRAIN = ['--epochs', '1', '--hidden', '8', '--batch-size', '256', '--backend', 'reference'];

describe('esmm simulate → shuffle → prepare → train', () => {
  it('trains from Parquet, and from shuffled raw files exactly as from ordered ones', async () => {
    const raw = join(dir, 'raw');
    const shuffled = join(dir, 'shuffled');
    const prepared = join(dir, 'prepared');
    const sim = ['--train-rows', '2500', '--test-rows', '800', '--ctr', '0.15', '--cvr', '0.2'];
    expect((await run(['simulate', '--out', raw, ...sim])).code).toBe(0);
    shuffledCopy(raw, shuffled);
    // The shuffle moved keys: the first common line is no longer the first skeleton row's session.
    const firstKey = (f: string): string => readFileSync(f, 'latin1').split('\n')[0].split(',')[0];
    expect(firstKey(join(shuffled, 'common_features_train.csv'))).not.toBe(
      firstKey(join(raw, 'common_features_train.csv')),
    );

    const prep = await run(['prepare', '--dir', shuffled, '--out', prepared]);
    expect(prep.code).toBe(0);
    const fromParquet = await run([
      'train',
      '--data',
      'parquet',
      '--dir',
      prepared,
      ...TRAIN,
      '--out',
      join(dir, 'parquet.safetensors'),
    ]);
    expect(fromParquet.code).toBe(0);
    const pq = metricsOf(fromParquet.out);
    expect(pq.ctrAuc).toBeGreaterThan(0);

    const fromText = async (data: string, name: string) => {
      const r = await run(['train', '--data', 'aliccp', '--dir', data, ...TRAIN, '--out', join(dir, name)]);
      expect(r.code).toBe(0);
      return { metrics: metricsOf(r.out), weights: weightsOf(join(dir, name)) };
    };
    const ordered = await fromText(raw, 'ordered.safetensors');
    const reordered = await fromText(shuffled, 'shuffled.safetensors');
    expect(reordered.metrics).toEqual(ordered.metrics);
    expect(Object.keys(ordered.weights).length).toBeGreaterThan(4);
    expect(reordered.weights).toEqual(ordered.weights);
    // One row group, so shuffling the order of groups moves nothing and the shuffle buffer, seeded
    // alike, mixes the same rows the same way: Parquet trains to the very same model.
    expect(weightsOf(join(dir, 'parquet.safetensors'))).toEqual(ordered.weights);
    expect(pq).toEqual(ordered.metrics);
  });
});
