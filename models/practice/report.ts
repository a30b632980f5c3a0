/**
 * The "ESMM in practice" report on simulated data: negative down-sampling with its
 * correction, calibration on a validation split (globally and per item-popularity
 * bucket), the serving score pCTR^a·pCVR^b, and a loss-weight sweep. Everything is
 * measured against the simulator's true probabilities, which real logs never give.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../../kernels/index.js';
import {
  DEFAULT_SIMULATOR_CONFIG,
  FunnelSimulator,
  type ImpressionLog,
  type SimulatorConfig,
} from '../data/simulator.js';
import { auc } from '../metrics.js';
import type { CvrMethod, HostPredictions } from '../methods/method.js';
import { createModel } from '../model-factory.js';
import { simulatorSource, SOURCE_DEFAULTS } from '../training/sources.js';
import { Trainer, TRAINER_DEFAULTS, type BatchSource } from '../training/trainer.js';
import {
  applyCalibrator,
  expectedCalibrationError,
  fitBucketed,
  fitIsotonic,
  fitPlatt,
  predictedObservedRatio,
  QuantileBuckets,
  ratioByBucket,
  reliabilityBins,
  reliabilitySvg,
  type Binning,
  type BucketRatio,
} from './calibration.js';
import { correctPredictions, downsampledSource, rateForRatio, type DownsamplingRates } from './downsampling.js';
import { DEFAULT_SCORE_GRID, rankingGrid, type RankingGridRow, type ScoreExponents } from './ranking.js';
import { INSTEAD, requireNode } from '../node-only.js';

/**
 * Defaults of the practice report, shared with `esmm calibrate`. Towers of 64-32 and two epochs keep the
 * report to minutes on two cores; the learning rate and batch size are the Trainer's and the sources'.
 */
export const PRACTICE_DEFAULTS = {
  hidden: [64, 32] as readonly number[],
  epochs: 2,
  batchSize: SOURCE_DEFAULTS.batchSize,
  lr: TRAINER_DEFAULTS.lr,
  seed: 1,
  simulator: {
    seed: DEFAULT_SIMULATOR_CONFIG.seed,
    ctr: DEFAULT_SIMULATOR_CONFIG.ctr,
    cvr: DEFAULT_SIMULATOR_CONFIG.cvr,
  },
  trainRows: 300_000,
  validRows: 150_000,
  testRows: 200_000,
  /** The 1:6 practice of down-sampling negatives. */
  negativeRatio: 6,
  clickedUnconvertedRate: 1,
  bins: 10,
  binning: 'equal-mass' as Binning,
  k: 5,
} as const;

/** How each ESMM of the report is trained (defaults in {@link PRACTICE_DEFAULTS}). */
export interface PracticeTrainingOptions {
  /** Tower hidden sizes. */
  hidden?: readonly number[];
  epochs?: number;
  /** Rows per step. */
  batchSize?: number;
  /** Adam learning rate. */
  lr?: number;
  /** Seed of weights, shuffling and sampling. */
  seed?: number;
}

/** Simulated data for the report: a training, a validation and a test log from one world. */
export interface PracticeData {
  sim: FunnelSimulator;
  train: ImpressionLog;
  valid: ImpressionLog;
  test: ImpressionLog;
}

/** Generate {@link PracticeData} in stream order (train, then validation, then test). */
export function generatePracticeData(
  config: Partial<SimulatorConfig>,
  rows: { train: number; valid: number; test: number },
): PracticeData {
  const sim = new FunnelSimulator(config);
  return { sim, train: sim.generate(rows.train), valid: sim.generate(rows.valid), test: sim.generate(rows.test) };
}

/** Host predictions of a method over a whole log, in log order. */
export function predictLog(
  method: CvrMethod,
  sim: FunnelSimulator,
  log: ImpressionLog,
  batchSize = 4096,
): HostPredictions {
  const out: HostPredictions = {
    pctr: new Float32Array(log.size),
    pcvr: new Float32Array(log.size),
    pctcvr: new Float32Array(log.size),
  };
  let at = 0;
  for (const batch of sim.batches(log, { batchSize })) {
    const p = method.predict(batch);
    out.pctr.set(p.pctr, at);
    out.pcvr.set(p.pcvr, at);
    out.pctcvr.set(p.pctcvr, at);
    at += batch.size;
  }
  return out;
}

interface Trained {
  method: CvrMethod;
  seconds: number;
  samples: number;
}

async function trainEsmm(
  sim: FunnelSimulator,
  source: BatchSource,
  o: PracticeTrainingOptions,
  lossWeights?: { ctr: number; ctcvr: number },
): Promise<Trained> {
  const method = createModel({
    method: 'esmm',
    schema: sim.schema,
    seed: o.seed ?? PRACTICE_DEFAULTS.seed,
    tower: { hidden: o.hidden ?? PRACTICE_DEFAULTS.hidden },
    lossWeights,
  });
  const trainer = new Trainer(method, {
    epochs: o.epochs ?? PRACTICE_DEFAULTS.epochs,
    lr: o.lr ?? PRACTICE_DEFAULTS.lr,
    progress: 'none',
  });
  const fit = await trainer.fit(source);
  return { method, seconds: fit.seconds, samples: fit.history.reduce((s, h) => s + h.samples, 0) };
}

function trainSource(data: PracticeData, o: PracticeTrainingOptions): BatchSource {
  return simulatorSource(data.sim, data.train, {
    batchSize: o.batchSize ?? PRACTICE_DEFAULTS.batchSize,
    shuffle: true,
    seed: o.seed ?? PRACTICE_DEFAULTS.seed,
  });
}

/** Labels and truth of a log as float columns. */
interface Truth {
  click: Float32Array;
  ctcvr: Float32Array;
  clickedRows: Int32Array;
  truePctr: Float32Array;
  truePcvr: Float32Array;
  truePctcvr: Float64Array;
}

function truthOf(log: ImpressionLog): Truth {
  const ctcvr = new Float32Array(log.size);
  const truePctcvr = new Float64Array(log.size);
  const clicked: number[] = [];
  for (let i = 0; i < log.size; i++) {
    ctcvr[i] = log.click[i] * log.conversion[i];
    truePctcvr[i] = log.pCtr[i] * log.pCvr[i];
    if (log.click[i] === 1) clicked.push(i);
  }
  return {
    click: log.click,
    ctcvr,
    clickedRows: Int32Array.from(clicked),
    truePctr: log.pCtr,
    truePcvr: log.pCvr,
    truePctcvr,
  };
}

function pick(a: ArrayLike<number>, rows: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = a[rows[i]];
  return out;
}

/** Calibration and ranking quality of one set of predictions on the test log. */
export interface PredictionQuality {
  ctrAuc: number;
  /** Over clicked rows. */
  cvrAuc: number;
  ctcvrAuc: number;
  eceCtr: number;
  /** Over clicked rows, against the observed conversion. */
  eceCvr: number;
  eceCtcvr: number;
  /** Σ prediction / Σ label. */
  ratioCtr: number;
  ratioCvr: number;
  ratioCtcvr: number;
}

function quality(
  p: { pctr: ArrayLike<number>; pcvr: ArrayLike<number>; pctcvr: ArrayLike<number> },
  t: Truth,
  log: ImpressionLog,
  bins: { bins: number; binning: Binning },
): PredictionQuality {
  const cvrP = pick(p.pcvr, t.clickedRows);
  const cvrY = pick(log.conversion, t.clickedRows);
  return {
    ctrAuc: auc(t.click, p.pctr),
    cvrAuc: auc(cvrY, cvrP),
    ctcvrAuc: auc(t.ctcvr, p.pctcvr),
    eceCtr: expectedCalibrationError(p.pctr, t.click, bins),
    eceCvr: expectedCalibrationError(cvrP, cvrY, bins),
    eceCtcvr: expectedCalibrationError(p.pctcvr, t.ctcvr, bins),
    ratioCtr: predictedObservedRatio(p.pctr, t.click),
    ratioCvr: predictedObservedRatio(cvrP, cvrY),
    ratioCtcvr: predictedObservedRatio(p.pctcvr, t.ctcvr),
  };
}

/** Name of the row that scores the simulator's true probabilities. */
const ORACLE_ROW = 'oracle: true probabilities (noise floor)';

// ---------------------------------------------------------------------------
// Loss-weight sweep

/** Options of {@link sweepLossWeights}. */
export interface LossWeightSweepOptions extends PracticeTrainingOptions {
  /** (w_ctr, w_ctcvr) pairs to train. */
  pairs: readonly { ctr: number; ctcvr: number }[];
  /** Data to use; generated from `simulator`, `trainRows` and `testRows` when absent. */
  data?: PracticeData;
  /** Simulator settings when generating. */
  simulator?: Partial<SimulatorConfig>;
  /** Impressions to generate for training and testing (default 100k each). */
  trainRows?: number;
  testRows?: number;
  /** Reliability bins for the ECEs (default 10 equal-mass). */
  bins?: number;
  binning?: Binning;
  /** Receives one progress line per trained pair. */
  log?: (line: string) => void;
}

/** One trained weight pair. */
export interface LossWeightSweepRow {
  ctr: number;
  ctcvr: number;
  quality: PredictionQuality;
  /** Entire-space CVR AUC against the counterfactual conversion. */
  cvrAucEntireSpace: number;
  seconds: number;
}

/** Train ESMM once per (w_ctr, w_ctcvr) on the same simulated data and report AUCs and calibration on the test log. */
export async function sweepLossWeights(options: LossWeightSweepOptions): Promise<LossWeightSweepRow[]> {
  const data =
    options.data ??
    generatePracticeData(options.simulator ?? {}, {
      train: options.trainRows ?? 100_000,
      valid: 0,
      test: options.testRows ?? 100_000,
    });
  const t = truthOf(data.test);
  const bins = { bins: options.bins ?? PRACTICE_DEFAULTS.bins, binning: options.binning ?? PRACTICE_DEFAULTS.binning };
  const rows: LossWeightSweepRow[] = [];
  for (const pair of options.pairs) {
    if (!(pair.ctr >= 0 && pair.ctcvr >= 0 && pair.ctr + pair.ctcvr > 0))
      throw new Error(`sweepLossWeights: weights must be non-negative and not both 0, got ${pair.ctr}:${pair.ctcvr}`);
    const trained = await trainEsmm(data.sim, trainSource(data, options), options, pair);
    const p = predictLog(trained.method, data.sim, data.test);
    const row = {
      ctr: pair.ctr,
      ctcvr: pair.ctcvr,
      quality: quality(p, t, data.test, bins),
      cvrAucEntireSpace: auc(data.test.potentialConversion, p.pcvr),
      seconds: trained.seconds,
    };
    rows.push(row);
    options.log?.(
      `loss weights ${pair.ctr}:${pair.ctcvr}: CVR AUC ${row.quality.cvrAuc.toFixed(4)}, CTCVR AUC ${row.quality.ctcvrAuc.toFixed(4)}, ECE pCVR ${row.quality.eceCvr.toFixed(5)} (${trained.seconds.toFixed(1)} s)`,
    );
  }
  return rows;
}

// ---------------------------------------------------------------------------
// The report

/** Options of {@link runCalibrationReport}. */
export interface CalibrationReportOptions extends PracticeTrainingOptions {
  /** Simulator settings (over `PRACTICE_DEFAULTS.simulator`). */
  simulator?: Partial<SimulatorConfig>;
  /** Impressions of the training, validation and test logs. */
  trainRows?: number;
  validRows?: number;
  testRows?: number;
  /** Unclicked rows kept per clicked row after down-sampling; sets r = ratio·clicks / unclicked. */
  negativeRatio?: number;
  /** Keep rate r of unclicked rows; overrides `negativeRatio`. */
  unclickedRate?: number;
  /** Keep rate r2 of clicked-unconverted rows. */
  clickedUnconvertedRate?: number;
  /** Reliability bins and their cut. */
  bins?: number;
  binning?: Binning;
  /** Item-popularity buckets for the ratio table (default 10: deciles). */
  popularityBuckets?: number;
  /** Buckets of the per-bucket pCVR calibrator (default 5: coarser, as clicked rows are few). */
  calibrationBuckets?: number;
  /** The tail: this many least-popular deciles (default 3). */
  tailBuckets?: number;
  /** (a, b) grid of the ranking score (default {@link DEFAULT_SCORE_GRID}). */
  grid?: readonly ScoreExponents[];
  /** Top k per user. */
  k?: number;
  /** Loss-weight pairs to sweep (default none). */
  lossWeightPairs?: readonly { ctr: number; ctcvr: number }[];
  /** Write report.md, the reliability SVGs and results.json here. */
  outDir?: string;
  /** Receives progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** One row of the down-sampling table. */
export interface DownsamplingRow {
  name: string;
  quality: PredictionQuality;
  /** Training time in seconds (absent for the truth). */
  seconds?: number;
  /** Rows seen in training over all epochs. */
  samples?: number;
}

/** ECE of pCVR (and the other heads) before and after one calibration. */
export interface CalibrationRow {
  name: string;
  eceCtr: number;
  eceCvr: number;
  /** ECE of pCVR on the clicked test rows of tail items. */
  eceCvrTail: number;
  eceCtcvr: number;
  cvrAuc: number;
  /** pCVR Σ prediction / Σ truth on clicked tail rows. */
  tailRatioToTruth: number;
}

/** pCVR predicted/observed (and predicted/true) per item-popularity bucket, for each calibration. */
export interface DecileRow {
  bucket: number;
  /** Largest training impression count of the bucket's items. */
  maxPopularity: number;
  clickedRows: number;
  conversions: number;
  /** Σ pCVR / Σ conversion, by calibration name. */
  ratioObserved: Record<string, number>;
  /** Σ pCVR / Σ true pCVR, by calibration name. */
  ratioTruth: Record<string, number>;
}

/** Everything {@link runCalibrationReport} measured. */
export interface CalibrationReport {
  description: string;
  rates: Required<DownsamplingRates>;
  keptRows: number;
  downsampling: DownsamplingRow[];
  calibration: CalibrationRow[];
  deciles: DecileRow[];
  ranking: RankingGridRow[];
  /** The same grid with the true pCTR·pCVR as the NDCG gain. */
  rankingGraded: RankingGridRow[];
  /** The grid scored with the simulator's true pCTR and pCVR. */
  rankingTruth: RankingGridRow[];
  sweep?: LossWeightSweepRow[];
  /** The simulator's true pCTR, pCVR and pCTR·pCVR scored on the test log: the ceiling of every table. */
  oracle: { quality: PredictionQuality; cvrAucEntireSpace: number };
  k: number;
  seconds: number;
  markdown: string;
  /** SVG files by name. */
  svgs: Record<string, string>;
}

/**
 * Train ESMM on full and on down-sampled simulated data, correct and calibrate its
 * predictions, evaluate the ranking score grid, and write `report.md`, reliability
 * diagrams and `results.json` into `outDir` when given.
 */
export async function runCalibrationReport(options: CalibrationReportOptions = {}): Promise<CalibrationReport> {
  const started = performance.now();
  if (options.outDir !== undefined)
    requireNode('runCalibrationReport with outDir', [mkdirSync, writeFileSync], INSTEAD.reports);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const d = PRACTICE_DEFAULTS;
  const binOpts = { bins: options.bins ?? d.bins, binning: options.binning ?? d.binning };
  const k = options.k ?? d.k;
  const simConfig = { ...d.simulator, ...options.simulator };
  const data = generatePracticeData(simConfig, {
    train: options.trainRows ?? d.trainRows,
    valid: options.validRows ?? d.validRows,
    test: options.testRows ?? d.testRows,
  });
  const c = data.sim.config;
  const description =
    `simulated funnel (seed ${c.seed}, target CTR ${c.ctr}, CVR ${c.cvr}, ${c.numUsers} users, ${c.numItems} items): ` +
    `${data.train.size} train / ${data.valid.size} validation / ${data.test.size} test impressions`;
  log(`practice report on ${description}; backend ${getBackend().name}`);

  // --- 1. Down-sampling ---
  let clicked = 0;
  for (let i = 0; i < data.train.size; i++) clicked += data.train.click[i];
  const r =
    options.unclickedRate ?? rateForRatio(clicked, data.train.size - clicked, options.negativeRatio ?? d.negativeRatio);
  const rates: Required<DownsamplingRates> = {
    unclicked: r,
    clickedUnconverted: options.clickedUnconvertedRate ?? d.clickedUnconvertedRate,
  };
  const testTruth = truthOf(data.test);
  const full = await trainEsmm(data.sim, trainSource(data, options), options);
  log(`full data: ${full.samples} samples in ${full.seconds.toFixed(1)} s`);
  const sampled = await trainEsmm(
    data.sim,
    downsampledSource(trainSource(data, options), rates, { seed: options.seed ?? d.seed }),
    options,
  );
  log(
    `down-sampled (r = ${r.toFixed(4)}, r2 = ${rates.clickedUnconverted}): ${sampled.samples} samples in ${sampled.seconds.toFixed(1)} s`,
  );
  const pFull = predictLog(full.method, data.sim, data.test);
  const pSampled = predictLog(sampled.method, data.sim, data.test);
  const pCorrected = correctPredictions(pSampled, rates);
  const truthPred = { pctr: testTruth.truePctr, pcvr: testTruth.truePcvr, pctcvr: testTruth.truePctcvr };
  const downsampling: DownsamplingRow[] = [
    {
      name: 'full data',
      quality: quality(pFull, testTruth, data.test, binOpts),
      seconds: full.seconds,
      samples: full.samples,
    },
    {
      name: `down-sampled, raw`,
      quality: quality(pSampled, testTruth, data.test, binOpts),
      seconds: sampled.seconds,
      samples: sampled.samples,
    },
    {
      name: `down-sampled, corrected`,
      quality: quality(pCorrected, testTruth, data.test, binOpts),
      seconds: sampled.seconds,
      samples: sampled.samples,
    },
    { name: ORACLE_ROW, quality: quality(truthPred, testTruth, data.test, binOpts) },
  ];

  // --- 2. Calibration of the full-data model on the validation split ---
  const popularity = new Float64Array(c.numItems);
  for (let i = 0; i < data.train.size; i++) popularity[data.train.item[i]]++;
  const popOf = (l: ImpressionLog): Float64Array => Float64Array.from(l.item, (it) => popularity[it]);
  const validTruth = truthOf(data.valid);
  const pValid = predictLog(full.method, data.sim, data.valid);
  const validPop = popOf(data.valid);
  const testPop = popOf(data.test);
  const vClicked = validTruth.clickedRows;
  const vCvrP = pick(pValid.pcvr, vClicked);
  const vCvrY = pick(data.valid.conversion, vClicked);
  const deciles = QuantileBuckets.fit(pick(validPop, vClicked), options.popularityBuckets ?? 10);
  const coarse = QuantileBuckets.fit(pick(validPop, vClicked), options.calibrationBuckets ?? 5);
  const iso = {
    ctr: fitIsotonic(pValid.pctr, validTruth.click),
    cvr: fitIsotonic(vCvrP, vCvrY),
    ctcvr: fitIsotonic(pValid.pctcvr, validTruth.ctcvr),
  };
  const platt = {
    ctr: fitPlatt(pValid.pctr, validTruth.click),
    cvr: fitPlatt(vCvrP, vCvrY),
    ctcvr: fitPlatt(pValid.pctcvr, validTruth.ctcvr),
  };
  const bucketedCvr = fitBucketed(vCvrP, vCvrY, coarse.assign(pick(validPop, vClicked)), coarse.count, (s, y) =>
    fitIsotonic(s, y),
  );
  const tClicked = testTruth.clickedRows;
  const tCvrY = pick(data.test.conversion, tClicked);
  const tCvrTrue = pick(data.test.pCvr, tClicked);
  const tDecile = deciles.assign(pick(testPop, tClicked));
  const tailCut = options.tailBuckets ?? 3;
  const tail: number[] = [];
  tDecile.forEach((b, i) => {
    if (b < tailCut) tail.push(i);
  });
  const tailRows = Int32Array.from(tail);
  const variants: { name: string; pctr: ArrayLike<number>; pcvrClicked: Float64Array; pctcvr: ArrayLike<number> }[] =
    [];
  const rawCvr = pick(pFull.pcvr, tClicked);
  variants.push({ name: 'raw', pctr: pFull.pctr, pcvrClicked: rawCvr, pctcvr: pFull.pctcvr });
  variants.push({
    name: 'isotonic',
    pctr: applyCalibrator(iso.ctr, pFull.pctr),
    pcvrClicked: applyCalibrator(iso.cvr, rawCvr),
    pctcvr: applyCalibrator(iso.ctcvr, pFull.pctcvr),
  });
  variants.push({
    name: 'Platt',
    pctr: applyCalibrator(platt.ctr, pFull.pctr),
    pcvrClicked: applyCalibrator(platt.cvr, rawCvr),
    pctcvr: applyCalibrator(platt.ctcvr, pFull.pctcvr),
  });
  variants.push({
    name: `isotonic per popularity bucket (pCVR; ${coarse.count} buckets)`,
    pctr: applyCalibrator(iso.ctr, pFull.pctr),
    pcvrClicked: bucketedCvr.apply(rawCvr, coarse.assign(pick(testPop, tClicked))),
    pctcvr: applyCalibrator(iso.ctcvr, pFull.pctcvr),
  });
  variants.push({
    name: ORACLE_ROW,
    pctr: testTruth.truePctr,
    pcvrClicked: tCvrTrue,
    pctcvr: testTruth.truePctcvr,
  });
  const calibration: CalibrationRow[] = variants.map((v) => ({
    name: v.name,
    eceCtr: expectedCalibrationError(v.pctr, testTruth.click, binOpts),
    eceCvr: expectedCalibrationError(v.pcvrClicked, tCvrY, binOpts),
    eceCvrTail: expectedCalibrationError(pick(v.pcvrClicked, tailRows), pick(tCvrY, tailRows), binOpts),
    eceCtcvr: expectedCalibrationError(v.pctcvr, testTruth.ctcvr, binOpts),
    cvrAuc: auc(tCvrY, v.pcvrClicked),
    tailRatioToTruth: predictedObservedRatio(pick(v.pcvrClicked, tailRows), pick(tCvrTrue, tailRows)),
  }));
  const decileVariants = variants.slice(0, 4);
  const byVariantObs = decileVariants.map((v) => ratioByBucket(v.pcvrClicked, tCvrY, tDecile, deciles.count));
  const byVariantTrue = decileVariants.map((v) => ratioByBucket(v.pcvrClicked, tCvrTrue, tDecile, deciles.count));
  const maxPop = new Float64Array(deciles.count);
  tDecile.forEach((b, i) => (maxPop[b] = Math.max(maxPop[b], testPop[tClicked[i]])));
  const decileRows: DecileRow[] = byVariantObs[0].map((first: BucketRatio, j) => ({
    bucket: first.bucket,
    maxPopularity: maxPop[first.bucket],
    clickedRows: first.rows,
    conversions: first.observed,
    ratioObserved: Object.fromEntries(decileVariants.map((v, m) => [v.name, byVariantObs[m][j].ratio])),
    ratioTruth: Object.fromEntries(decileVariants.map((v, m) => [v.name, byVariantTrue[m][j].ratio])),
  }));

  // --- 3. Ranking score grid (raw full-data model, and the truth as the ceiling) ---
  const grid = options.grid ?? DEFAULT_SCORE_GRID;
  const rankInput = { userIds: data.test.user, value: testTruth.truePctcvr, gain: testTruth.ctcvr };
  const ranking = rankingGrid(rankInput, pFull.pctr, pFull.pcvr, grid, k);
  const rankingTruth = rankingGrid(rankInput, testTruth.truePctr, testTruth.truePcvr, grid, k);
  const graded = rankingGrid({ ...rankInput, gain: testTruth.truePctcvr }, pFull.pctr, pFull.pcvr, grid, k);

  // --- 4. Optional loss-weight sweep ---
  const sweep = options.lossWeightPairs?.length
    ? await sweepLossWeights({ ...options, data, pairs: options.lossWeightPairs, log })
    : undefined;

  const seconds = (performance.now() - started) / 1000;
  const svgs: Record<string, string> = {
    'reliability-ctr.svg': reliabilitySvg(
      [
        { name: 'full data', bins: reliabilityBins(pFull.pctr, testTruth.click, binOpts) },
        { name: 'down-sampled, raw', bins: reliabilityBins(pSampled.pctr, testTruth.click, binOpts) },
        { name: 'down-sampled, corrected', bins: reliabilityBins(pCorrected.pctr, testTruth.click, binOpts) },
      ],
      'pCTR reliability on the test log (equal-mass bins)',
    ),
    'reliability-cvr.svg': reliabilitySvg(
      variants
        .slice(0, 4)
        .map((v) => ({ name: v.name.replace(/ \(.*\)$/, ''), bins: reliabilityBins(v.pcvrClicked, tCvrY, binOpts) })),
      'pCVR reliability on clicked test rows',
    ),
    'reliability-ctcvr.svg': reliabilitySvg(
      [
        { name: 'full data', bins: reliabilityBins(pFull.pctcvr, testTruth.ctcvr, binOpts) },
        { name: 'down-sampled, raw', bins: reliabilityBins(pSampled.pctcvr, testTruth.ctcvr, binOpts) },
        { name: 'down-sampled, corrected', bins: reliabilityBins(pCorrected.pctcvr, testTruth.ctcvr, binOpts) },
        { name: 'full data, isotonic', bins: reliabilityBins(variants[1].pctcvr, testTruth.ctcvr, binOpts) },
      ],
      'pCTCVR reliability on the test log',
    ),
  };
  const report: CalibrationReport = {
    description,
    rates,
    keptRows: Math.round(sampled.samples / (options.epochs ?? d.epochs)),
    downsampling,
    calibration,
    deciles: decileRows,
    ranking,
    rankingGraded: graded,
    rankingTruth,
    sweep,
    oracle: {
      quality: downsampling[downsampling.length - 1].quality,
      cvrAucEntireSpace: auc(data.test.potentialConversion, testTruth.truePcvr),
    },
    k,
    seconds,
    markdown: '',
    svgs,
  };
  report.markdown = practiceMarkdown(report, {
    options,
    trainRows: data.train.size,
    clicked,
    binOpts,
    tailCut,
    coarseCount: coarse.count,
  });
  if (options.outDir) {
    mkdirSync(options.outDir, { recursive: true });
    writeFileSync(join(options.outDir, 'report.md'), report.markdown);
    for (const [name, svg] of Object.entries(svgs)) writeFileSync(join(options.outDir, name), svg);
    const { markdown: _m, svgs: _s, ...rest } = report;
    writeFileSync(join(options.outDir, 'results.json'), JSON.stringify(rest, null, 2));
  }
  log(`practice report done in ${seconds.toFixed(1)} s`);
  return report;
}

function f(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function table(head: string[], rows: string[][]): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
}

function practiceMarkdown(
  rep: CalibrationReport,
  ctx: {
    options: CalibrationReportOptions;
    trainRows: number;
    clicked: number;
    binOpts: { bins: number; binning: Binning };
    tailCut: number;
    coarseCount: number;
  },
): string {
  const o = ctx.options;
  const full = rep.downsampling[0];
  const sampled = rep.downsampling[1];
  const bins = `${ctx.binOpts.bins} ${ctx.binOpts.binning} bins`;
  const lines: string[] = [
    `# ESMM in practice: down-sampling, calibration, ranking score`,
    ``,
    `Data: ${rep.description}.`,
    `Model: ESMM, MLP towers ${(o.hidden ?? PRACTICE_DEFAULTS.hidden).join('-')}, Adam lr ${o.lr ?? PRACTICE_DEFAULTS.lr}, batch ${o.batchSize ?? PRACTICE_DEFAULTS.batchSize}, ${o.epochs ?? PRACTICE_DEFAULTS.epochs} epoch(s), seed ${o.seed ?? PRACTICE_DEFAULTS.seed}; backend ${getBackend().name}; ${rep.seconds.toFixed(0)} s in all.`,
    `ECE uses ${bins} over the test log (pCVR: over clicked test rows, against the observed conversion). ` +
      `The "oracle" row of each table scores the simulator's own pCTR/pCVR: its AUCs are the ceiling the data allow, and its ECE is what label noise alone gives, so differences below it are not meaningful.`,
    ``,
    `## 1. Negative down-sampling and its correction`,
    ``,
    `Unclicked training rows kept with r = ${f(rep.rates.unclicked)} (${o.unclickedRate !== undefined ? 'given' : `chosen so that unclicked : clicked ≈ ${o.negativeRatio ?? PRACTICE_DEFAULTS.negativeRatio} : 1; ${ctx.clicked} of ${ctx.trainRows} training rows are clicked`}), ` +
      `clicked-unconverted rows with r2 = ${rep.rates.clickedUnconverted}; about ${rep.keptRows} rows per epoch are kept, redrawn every epoch. ` +
      `Correction: pCTR = q/(q + (1−q)/r) when r2 = 1; in general every sampled class probability is divided by its keep rate and renormalised (see \`correctProbabilities\`).`,
    ``,
    ...table(
      [
        'model',
        'ECE pCTR',
        'ECE pCVR',
        'ECE pCTCVR',
        'Σp/Σy CTR',
        'Σp/Σy CVR',
        'Σp/Σy CTCVR',
        'CTR AUC',
        'CVR AUC',
        'CTCVR AUC',
        'train s',
      ],
      rep.downsampling.map((d) => [
        d.name,
        f(d.quality.eceCtr, 5),
        f(d.quality.eceCvr, 5),
        f(d.quality.eceCtcvr, 5),
        f(d.quality.ratioCtr, 3),
        f(d.quality.ratioCvr, 3),
        f(d.quality.ratioCtcvr, 3),
        f(d.quality.ctrAuc),
        f(d.quality.cvrAuc),
        f(d.quality.ctcvrAuc),
        d.seconds !== undefined ? d.seconds.toFixed(1) : '—',
      ]),
    ),
    ``,
    `Training on the down-sampled data took ${f(sampled.seconds ?? NaN, 1)} s against ${f(full.seconds ?? NaN, 1)} s on full data (${f((full.seconds ?? NaN) / (sampled.seconds ?? NaN), 1)}× faster). Reliability: \`reliability-ctr.svg\`, \`reliability-ctcvr.svg\`.`,
    ``,
    `## 2. Calibration on a validation split`,
    ``,
    `Calibrators are fitted on the full-data model's predictions for the validation log (pCTR and pCTCVR on all rows, pCVR on clicked rows) and applied to the test log. ` +
      `Isotonic regression (weighted PAV) predicts by linear interpolation between its knots; Platt scaling fits σ(a·logit(p) + b) by Newton's method. ` +
      `The per-bucket variant fits one isotonic pCVR calibrator per item-popularity bucket (${ctx.coarseCount} equal-mass buckets of the training impression count, falling back to the global fit when a bucket has fewer than 20 conversions or non-conversions). ` +
      `The tail is the ${ctx.tailCut} least popular of the popularity deciles.`,
    ``,
    ...table(
      ['calibration', 'ECE pCTR', 'ECE pCVR', 'ECE pCVR (tail)', 'ECE pCTCVR', 'CVR AUC', 'tail Σ pCVR / Σ true pCVR'],
      rep.calibration.map((c) => [
        c.name,
        f(c.eceCtr, 5),
        f(c.eceCvr, 5),
        f(c.eceCvrTail, 5),
        f(c.eceCtcvr, 5),
        f(c.cvrAuc),
        f(c.tailRatioToTruth, 3),
      ]),
    ),
    ``,
    `pCVR by item-popularity decile of the clicked test rows (0 = least popular): predicted/observed conversions, and predicted/true pCVR (the noise-free view a simulator allows).`,
    ``,
  ];
  const names = Object.keys(rep.deciles[0]?.ratioObserved ?? {});
  const short = (n: string): string =>
    n.replace(/ \(.*\)$/, '').replace('isotonic per popularity bucket', 'per-bucket');
  lines.push(
    ...table(
      [
        'decile',
        'max item impressions',
        'clicked rows',
        'conversions',
        ...names.map((n) => `Σp/Σy ${short(n)}`),
        ...names.map((n) => `Σp/Σtrue ${short(n)}`),
      ],
      rep.deciles.map((d) => [
        String(d.bucket),
        String(d.maxPopularity),
        String(d.clickedRows),
        String(d.conversions),
        ...names.map((n) => f(d.ratioObserved[n], 2)),
        ...names.map((n) => f(d.ratioTruth[n], 3)),
      ]),
    ),
    ``,
    `Reliability: \`reliability-cvr.svg\`.`,
    ``,
    `## 3. Ranking score pCTR^a · pCVR^b`,
    ``,
    `Per user, the test impressions are ranked by the score of the full-data model; "E[conv]@${rep.k}" is the mean over users of Σ true pCTR·pCVR over the top ${rep.k} (expected conversions), ` +
      `"share" divides it by the same for the ideal order; NDCG@${rep.k} is over users with a conversion, on the observed click·conversion, and "graded" uses the true pCTR·pCVR as the gain. ` +
      `Within one user only b/a changes the order. The last columns rank by the simulator's true pCTR and pCVR with the same exponents.`,
    ``,
    ...table(
      [
        'a',
        'b',
        `E[conv]@${rep.k}`,
        'share of ideal',
        `NDCG@${rep.k}`,
        `graded NDCG@${rep.k}`,
        `truth: E[conv]@${rep.k}`,
        'truth: share',
      ],
      rep.ranking.map((g, i) => [
        String(g.a),
        String(g.b),
        f(g.metrics.valueAtK, 5),
        f(g.metrics.shareOfOracle, 4),
        f(g.metrics.ndcgAtK, 4),
        f(rep.rankingGraded[i].metrics.ndcgAtK, 4),
        f(rep.rankingTruth[i].metrics.valueAtK, 5),
        f(rep.rankingTruth[i].metrics.shareOfOracle, 4),
      ]),
    ),
    ``,
    `${rep.ranking[0]?.metrics.users ?? 0} users; ${rep.ranking[0]?.metrics.ndcgUsers ?? 0} with a conversion in the test log.`,
    ``,
  );
  if (rep.sweep) {
    lines.push(
      `## 4. Loss weights (w_ctr, w_ctcvr)`,
      ``,
      ...table(
        [
          'w_ctr',
          'w_ctcvr',
          'CTR AUC',
          'CVR AUC',
          'entire-space CVR AUC',
          'CTCVR AUC',
          'ECE pCTR',
          'ECE pCVR',
          'ECE pCTCVR',
          'Σp/Σy CVR',
          'train s',
        ],
        [
          [
            'oracle',
            '(true pCTR, pCVR)',
            f(rep.oracle.quality.ctrAuc),
            f(rep.oracle.quality.cvrAuc),
            f(rep.oracle.cvrAucEntireSpace),
            f(rep.oracle.quality.ctcvrAuc),
            f(rep.oracle.quality.eceCtr, 5),
            f(rep.oracle.quality.eceCvr, 5),
            f(rep.oracle.quality.eceCtcvr, 5),
            f(rep.oracle.quality.ratioCvr, 3),
            '—',
          ],
        ].concat(
          rep.sweep.map((s) => [
            String(s.ctr),
            String(s.ctcvr),
            f(s.quality.ctrAuc),
            f(s.quality.cvrAuc),
            f(s.cvrAucEntireSpace),
            f(s.quality.ctcvrAuc),
            f(s.quality.eceCtr, 5),
            f(s.quality.eceCvr, 5),
            f(s.quality.eceCtcvr, 5),
            f(s.quality.ratioCvr, 3),
            s.seconds.toFixed(1),
          ]),
        ),
      ),
      ``,
    );
  }
  return lines.join('\n');
}
