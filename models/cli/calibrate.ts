/** `esmm calibrate`: ESMM in practice — down-sampling correction, calibration, ranking grid, loss weights. */
import { join } from 'node:path';
import { DEFAULT_SCORE_GRID } from '../practice/ranking.js';
import { PRACTICE_DEFAULTS, runCalibrationReport } from '../practice/report.js';
import { applyBackend, BACKEND_FLAGS, DATA_FLAGS, hiddenSizes, MODEL_FLAGS } from './common.js';
import {
  listNumber,
  num,
  optNum,
  parseFlags,
  str,
  UsageError,
  type Command,
  type FlagSpecs,
  type FlagValues,
} from './flags.js';
import { prepareOutputDir } from './paths.js';

const D = PRACTICE_DEFAULTS;
const FLAGS: FlagSpecs = {
  'train-rows': { ...DATA_FLAGS['train-rows'], default: D.trainRows },
  'valid-rows': {
    kind: 'integer',
    help: 'simulated validation impressions (the calibrators are fitted on them)',
    default: D.validRows,
    min: 1,
  },
  'test-rows': { ...DATA_FLAGS['test-rows'], default: D.testRows },
  'sim-seed': { ...DATA_FLAGS['sim-seed'], default: D.simulator.seed },
  ctr: { ...DATA_FLAGS.ctr, default: D.simulator.ctr },
  cvr: { ...DATA_FLAGS.cvr, default: D.simulator.cvr },
  hidden: { ...MODEL_FLAGS.hidden, default: D.hidden.join(',') },
  epochs: { ...MODEL_FLAGS.epochs, default: D.epochs },
  'batch-size': { ...MODEL_FLAGS['batch-size'], default: D.batchSize },
  lr: { ...MODEL_FLAGS.lr, default: D.lr },
  seed: { ...MODEL_FLAGS.seed, default: D.seed },
  'negative-ratio': {
    kind: 'number',
    help: 'unclicked rows kept per clicked row after down-sampling (sets r)',
    default: D.negativeRatio,
    min: 0,
  },
  'unclicked-rate': {
    kind: 'number',
    help: 'keep rate r of unclicked rows (overrides --negative-ratio)',
    min: 0,
    max: 1,
  },
  'unconverted-rate': {
    kind: 'number',
    help: 'keep rate r2 of clicked-unconverted rows',
    default: D.clickedUnconvertedRate,
    min: 0,
    max: 1,
  },
  bins: { kind: 'integer', help: 'reliability bins of the ECE', default: D.bins, min: 1 },
  binning: { kind: 'string', help: 'equal-mass | equal-width', default: D.binning },
  grid: {
    kind: 'list',
    help: 'ranking score exponents a:b of pCTR^a·pCVR^b, comma-separated',
    default: DEFAULT_SCORE_GRID.map(({ a, b }) => `${a}:${b}`).join(','),
  },
  k: { kind: 'integer', help: 'top k per user of the ranking metrics', default: D.k, min: 1 },
  sweep: { kind: 'list', help: 'ESMM loss weights w_ctr:w_ctcvr to sweep, comma-separated (e.g. 1:1,1:2,2:1)' },
  out: { kind: 'string', help: 'folder for report.md, reliability-*.svg, results.json', default: 'runs/calibrate' },
  ...BACKEND_FLAGS,
};

function colonPairs(v: FlagValues, flag: string): [number, number][] {
  const raw = v[flag] as string[] | undefined;
  return (raw ?? []).map((item) => {
    const pieces = item.split(':');
    if (pieces.length !== 2) throw new UsageError(`--${flag} needs pairs x:y separated by commas, got '${item}'`);
    const parts = pieces.map((p) => listNumber(flag, p, false));
    return [parts[0], parts[1]];
  });
}

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary:
    'ESMM in practice on simulated data: down-sampling with correction, calibration, the pCTR^a·pCVR^b grid, loss-weight sweep.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('calibrate', args, FLAGS);
    await applyBackend(v);
    const binning = str(v, 'binning');
    if (binning !== 'equal-mass' && binning !== 'equal-width')
      throw new UsageError(`--binning must be 'equal-mass' or 'equal-width', got '${binning}'`);
    const out = prepareOutputDir('--out', str(v, 'out')!);
    const report = await runCalibrationReport({
      simulator: { seed: num(v, 'sim-seed'), ctr: num(v, 'ctr'), cvr: num(v, 'cvr') },
      trainRows: num(v, 'train-rows'),
      validRows: num(v, 'valid-rows'),
      testRows: num(v, 'test-rows'),
      hidden: hiddenSizes(v),
      epochs: num(v, 'epochs'),
      batchSize: num(v, 'batch-size'),
      lr: num(v, 'lr'),
      seed: num(v, 'seed'),
      negativeRatio: num(v, 'negative-ratio'),
      unclickedRate: optNum(v, 'unclicked-rate'),
      clickedUnconvertedRate: num(v, 'unconverted-rate'),
      bins: num(v, 'bins'),
      binning,
      grid: colonPairs(v, 'grid').map(([a, b]) => ({ a, b })),
      k: num(v, 'k'),
      lossWeightPairs: colonPairs(v, 'sweep').map(([ctr, ctcvr]) => ({ ctr, ctcvr })),
      outDir: out,
    });
    console.log(`\n${report.markdown}`);
    console.log(`report: ${join(out, 'report.md')} and ${Object.keys(report.svgs).join(', ')}`);
    return 0;
  },
};
