/**
 * One source for every default: what `esmm <command> --help` shows is the API's DEFAULTS objects, the
 * model the CLI builds from its defaults is the one createModel builds from its own, and every model
 * option is reachable from the command line (typed, an unknown one refused by name).
 */
import { describe, expect, it, vi } from 'vitest';
import {
  AMAN_DEFAULTS,
  ESMM_DEFAULTS,
  MODEL_DEFAULTS,
  OVERSAMPLING_DEFAULTS,
  PRACTICE_DEFAULTS,
  SOURCE_DEFAULTS,
  TABLE2_DEFAULTS,
  TABLE2_SUITES,
  TOWER_DEFAULTS,
  TRAINER_DEFAULTS,
  createModel,
  type AmanMethod,
  type DinTower,
  type EsmmMethod,
} from '../models/index.js';
import { buildMethod } from '../models/cli/common.js';
import { parseFlags, UsageError } from '../models/cli/flags.js';
import { trainCommand, trainConfig } from '../models/cli/train.js';
import { main } from '../models/cli.js';
import { DEFAULT_SCORE_GRID } from '../models/practice/ranking.js';
import { tinySchema } from './models-fixtures.js';

async function help(...command: string[]): Promise<string> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
  try {
    expect(await main([...command, '--help'])).toBe(0);
  } finally {
    log.mockRestore();
  }
  return lines.join('\n');
}

/** The `(default …)` of one flag in a help text. */
function shown(text: string, flag: string): string | undefined {
  const line = text.split('\n').find((l) => l.trimStart().startsWith(`--${flag} `) || l.trim() === `--${flag}`);
  expect(line, `--${flag} is in the help`).toBeDefined();
  return /\(default (.*)\)$/.exec(line!)?.[1];
}

const join = (xs: readonly (number | string)[]): string => xs.join(',');

describe('the CLI shows the API defaults', () => {
  it('esmm train --help', async () => {
    const text = await help('train');
    const expected: Record<string, unknown> = {
      method: MODEL_DEFAULTS.method,
      base: MODEL_DEFAULTS.base,
      seed: MODEL_DEFAULTS.seed,
      hidden: join(TOWER_DEFAULTS.hidden),
      epochs: TRAINER_DEFAULTS.epochs,
      lr: TRAINER_DEFAULTS.lr,
      monitor: TRAINER_DEFAULTS.monitor,
      'batch-size': SOURCE_DEFAULTS.batchSize,
      'ctr-weight': ESMM_DEFAULTS.lossWeights.ctr,
      'ctcvr-weight': ESMM_DEFAULTS.lossWeights.ctcvr,
      'train-rows': TABLE2_DEFAULTS.simulated.trainRows,
      'test-rows': TABLE2_DEFAULTS.simulated.testRows,
      'sim-seed': TABLE2_DEFAULTS.simulated.config.seed,
      ctr: TABLE2_DEFAULTS.simulated.config.ctr,
      cvr: TABLE2_DEFAULTS.simulated.config.cvr,
    };
    for (const [flag, value] of Object.entries(expected)) expect(shown(text, flag), flag).toBe(String(value));
    // Every model's and method's own options, with their defaults.
    expect(text).toContain(
      `negativeRate: fraction of unclicked rows sampled as negatives (default ${AMAN_DEFAULTS.negativeRate})`,
    );
    expect(text).toContain('attention.hidden: hidden sizes of the unit (default [80,40])');
    expect(text).toContain(`factor: copies of each converted row (default ${OVERSAMPLING_DEFAULTS.factor})`);
  });

  it('esmm experiment table2 --help', async () => {
    const text = await help('experiment', 'table2');
    const expected: Record<string, unknown> = {
      suite: TABLE2_DEFAULTS.suite,
      repeats: TABLE2_DEFAULTS.repeats,
      seed: TABLE2_DEFAULTS.seed,
      base: TABLE2_DEFAULTS.base,
      hidden: join(TABLE2_DEFAULTS.hidden),
      epochs: TABLE2_DEFAULTS.epochs,
      lr: TABLE2_DEFAULTS.lr,
      'batch-size': TABLE2_DEFAULTS.batchSize,
      'aman-rate': AMAN_DEFAULTS.negativeRate,
      'oversampling-factor': OVERSAMPLING_DEFAULTS.factor,
    };
    for (const [flag, value] of Object.entries(expected)) expect(shown(text, flag), flag).toBe(String(value));
    expect(TABLE2_SUITES[TABLE2_DEFAULTS.suite]).toEqual(TABLE2_DEFAULTS.methods);
    expect(TABLE2_DEFAULTS.amanRate).toBe(AMAN_DEFAULTS.negativeRate);
    expect(TABLE2_DEFAULTS.lr).toBe(TRAINER_DEFAULTS.lr);
  });

  it('esmm calibrate --help', async () => {
    const text = await help('calibrate');
    const d = PRACTICE_DEFAULTS;
    const expected: Record<string, unknown> = {
      hidden: join(d.hidden),
      epochs: d.epochs,
      lr: d.lr,
      'batch-size': d.batchSize,
      seed: d.seed,
      'train-rows': d.trainRows,
      'valid-rows': d.validRows,
      'test-rows': d.testRows,
      cvr: d.simulator.cvr,
      'negative-ratio': d.negativeRatio,
      'unconverted-rate': d.clickedUnconvertedRate,
      bins: d.bins,
      binning: d.binning,
      k: d.k,
      grid: DEFAULT_SCORE_GRID.map(({ a, b }) => `${a}:${b}`).join(','),
    };
    for (const [flag, value] of Object.entries(expected)) expect(shown(text, flag), flag).toBe(String(value));
  });
});

describe('the CLI builds what the API builds', () => {
  const schema = tinySchema(2);
  const config = (...args: string[]) => trainConfig(parseFlags('train', args, trainCommand.flags));

  it('the default model, weight for weight', () => {
    const cli = buildMethod(config(), schema);
    const api = createModel({ method: MODEL_DEFAULTS.method, schema });
    const a = cli.stateDict();
    const b = api.stateDict();
    expect(Object.keys(a)).toEqual(Object.keys(b));
    for (const key of Object.keys(a)) expect(a[key].toArray(), key).toEqual(b[key].toArray());
  });

  it('AMAN with the same negative rate', () => {
    const cli = buildMethod(config('--method', 'aman'), schema) as AmanMethod;
    const api = createModel({ method: 'aman', schema }) as AmanMethod;
    expect(cli.negativeRate).toBe(api.negativeRate);
    expect(cli.negativeRate).toBe(AMAN_DEFAULTS.negativeRate);
  });

  it('passes every option through --base-options and --method-options', () => {
    const c = config(
      '--method=esmm',
      '--base=din',
      '--base-options={"attention":{"hidden":[6,3],"normalization":"softmax"},"dropout":0.1}',
      '--method-options={"lossWeights":{"ctr":0.5,"ctcvr":2}}',
    );
    const m = buildMethod(c, schema) as EsmmMethod;
    const tower = m.model.cvrTower as DinTower;
    expect(tower.kind).toBe('din');
    expect(tower.normalization).toBe('softmax');
    expect(m.model.lossWeights).toEqual({ ctr: 0.5, ctcvr: 2 });
    expect(c.baseOptions).toMatchObject({ hidden: TOWER_DEFAULTS.hidden, dropout: 0.1 });
    const aman = buildMethod(config('--method', 'aman', '--method-options', '{"negativeRate":0.5}'), schema);
    expect((aman as AmanMethod).negativeRate).toBe(0.5);
  });

  it('refuses an unknown or malformed option as a usage error naming the model and the option', () => {
    const refuses = (pattern: RegExp, ...args: string[]) => {
      expect(() => config(...args)).toThrow(UsageError);
      expect(() => config(...args)).toThrow(pattern);
    };
    refuses(
      /--base-options: base model 'din': unknown option 'atention'/,
      '--base',
      'din',
      '--base-options',
      '{"atention":{}}',
    );
    refuses(/--base-options: base model 'mlp': unknown option 'attention'/, '--base-options', '{"attention":{}}');
    refuses(
      /--method-options: method 'aman': unknown option 'negativeRat'/,
      '--method',
      'aman',
      '--method-options',
      '{"negativeRat":0.1}',
    );
    refuses(
      /--method-options: method 'aman': option 'negativeRate' must be a number in \[0, 1\], got 3/,
      '--method',
      'aman',
      '--method-options',
      '{"negativeRate":3}',
    );
    refuses(/--method-options needs a JSON object/, '--method-options', '[1]');
    refuses(/--base-options needs a JSON object: /, '--base-options', '{hidden: 3}');
    refuses(/--base must be one of mlp, din, deepfm/, '--base', 'dnn');
    refuses(/--method must be one of base, aman/, '--method', 'mmo');
  });
});
