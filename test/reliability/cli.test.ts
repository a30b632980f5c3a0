/** The command line at its edges: outputs checked before training, resume semantics, saved paths, no hang, no stack trace. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../models/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'esmm-cli-rel-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let errors: string[] = [];
let logs: string[] = [];
beforeEach(() => {
  errors = [];
  logs = [];
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void errors.push(a.join(' ')));
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void logs.push(a.join(' ')));
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
});
afterEach(() => vi.restoreAllMocks());

const SMALL = ['--train-rows', '600', '--test-rows', '300', '--hidden', '4', '--batch-size', '200'];
const stderr = (): string => errors.join('\n');

describe('esmm CLI edge cases', () => {
  it('checks outputs before any work: a folder, /proc paths and special files are refused at once', async () => {
    const cases: [string[], RegExp][] = [
      [['train', ...SMALL, '--out', dir], /--out: .* is a folder; give a file name inside it/],
      [['train', ...SMALL, '--out', '/proc/esmm-x/m.safetensors'], /--out: cannot create the folder \/proc\/esmm-x/],
      [['train', ...SMALL, '--out', '/proc/m.safetensors'], /--out: cannot write into \/proc/],
      [['train', ...SMALL, '--out', join(dir, 'ok.safetensors'), '--log', dir], /--log: .* is a folder/],
      [['predict', '--out', '/proc/p.csv'], /--out: cannot write into \/proc/],
      [['simulate', '--out', '/dev/null'], /--out: \/dev\/null exists and is not a folder/],
      [['train', ...SMALL, '--out', '/dev/null'], /--out: \/dev\/null exists and is not a regular file/],
    ];
    for (const [args, message] of cases) {
      errors = [];
      const started = performance.now();
      expect(await main(args)).toBe(2);
      expect(performance.now() - started).toBeLessThan(5000);
      expect(stderr()).toMatch(message);
      expect(stderr()).not.toMatch(/\n\s+at /);
    }
  });

  it('refuses empty, hex, fractional and out-of-range numbers in list flags too', async () => {
    for (const [args, message] of [
      [['train', ...SMALL, '--hidden', '0x8'], /--hidden needs a decimal number, got '0x8'/],
      [['train', ...SMALL, '--hidden', '8,2.5'], /--hidden needs a whole number/],
      [['train', ...SMALL, '--lr', '0'], /--lr must be > 0/],
      [['train', ...SMALL, '--epochs', '0'], /--epochs must be ≥ 1/],
      [['train', ...SMALL, '--skip-nonfinite-steps', '-1'], /--skip-nonfinite-steps/],
      [['predict', '--score', '0x2,1'], /--score needs a decimal number/],
      [['train', ...SMALL, '--force'], /--force only applies with --resume/],
    ] as [string[], RegExp][]) {
      errors = [];
      expect(await main(args)).toBe(2);
      expect(stderr()).toMatch(message);
    }
  });

  it('--resume starts fresh when the checkpoint is absent, refuses other settings, continues with --force', async () => {
    const out = join(dir, 'resume', 'm.safetensors');
    expect(await main(['train', ...SMALL, '--resume', '--out', out])).toBe(0);
    expect(stderr()).toMatch(/--resume: .*m\.safetensors does not exist yet; starting fresh/);
    errors = [];
    expect(await main(['train', ...SMALL, '--resume', '--epochs', '2', '--out', out])).toBe(0);
    expect(stderr()).toMatch(/resumed from .* at epoch 1/);
    errors = [];
    const before = readFileSync(out);
    const changed = ['--lr', '0.01', '--train-rows', '700'];
    expect(await main(['train', ...SMALL, ...changed, '--resume', '--epochs', '3', '--out', out])).toBe(2);
    expect(stderr()).toMatch(
      /was trained with other settings:\n {2}data\.trainRows: 600 → 700\n {2}training\.lr: 0\.002 → 0\.01/,
    );
    expect(readFileSync(out).equals(before)).toBe(true);
    errors = [];
    expect(await main(['train', ...SMALL, ...changed, '--resume', '--force', '--epochs', '3', '--out', out])).toBe(0);
    expect(stderr()).toMatch(/resumed from .* at epoch 2/);
  });

  it('lr 1e6 stops with the guard error, exit 1, and the previous checkpoint is byte-identical', async () => {
    const out = join(dir, 'diverge', 'm.safetensors');
    expect(await main(['train', ...SMALL, '--out', out])).toBe(0);
    const good = readFileSync(out);
    errors = [];
    const code = await main(['train', ...SMALL, '--lr', '1e6', '--epochs', '20', '--resume', '--force', '--out', out]);
    expect(code).toBe(1);
    expect(stderr()).toMatch(/esmm train: training diverged at epoch \d+, step \d+: non-finite step: .*parameter '/);
    expect(readFileSync(out).equals(good)).toBe(true);
  });

  it('stores absolute paths in config.json, so eval works from anywhere; a bad vocabulary names its file', async () => {
    const data = join(dir, 'aliccp');
    expect(await main(['simulate', '--train-rows', '600', '--test-rows', '300', '--out', data])).toBe(0);
    const out = join(dir, 'ali', 'm.safetensors');
    // A relative --dir, as a user in another folder would type it.
    const rel = relative(process.cwd(), data);
    expect(await main(['train', '--data', 'aliccp', '--dir', rel, '--hidden', '4', '--out', out])).toBe(0);
    const config = JSON.parse(readFileSync(`${out}.config.json`, 'utf8')) as {
      data: { dir: string };
      vocabularyPath: string;
    };
    expect(isAbsolute(config.data.dir)).toBe(true);
    expect(isAbsolute(config.vocabularyPath)).toBe(true);
    expect(await main(['eval', '--model', out])).toBe(0);

    const vocab = readFileSync(config.vocabularyPath, 'utf8');
    writeFileSync(config.vocabularyPath, vocab.slice(0, Math.floor(vocab.length / 2)));
    errors = [];
    expect(await main(['eval', '--model', out])).toBe(1);
    expect(stderr()).toContain(`${config.vocabularyPath}: not valid JSON (truncated?)`);

    const json = JSON.parse(vocab) as { tables: Record<string, number[]> };
    const table = Object.keys(json.tables).find((t) => json.tables[t].length > 2)!;
    json.tables[table].reverse();
    writeFileSync(config.vocabularyPath, JSON.stringify(json));
    errors = [];
    expect(await main(['eval', '--model', out])).toBe(1);
    expect(stderr()).toMatch(
      new RegExp(`${config.vocabularyPath}: .*table "${table}" is not in strictly ascending order`),
    );
  });
});
