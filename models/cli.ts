#!/usr/bin/env node
/**
 * The `esmm` command line: simulate data, train, evaluate, score, and run the
 * paper's Table 2 experiment. Every subcommand has `--help`; errors say what to fix.
 */
import { mkdirSync, readFileSync, realpathSync, writeFileSync, createWriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bceWithLogits, mean, nn, noGrad, optim, Rng, sigmoid, tensor, tidy } from '../core/index.js';
import { getBackend, ready, setBackendAsync } from '../kernels/index.js';
import { loadCheckpoint } from './checkpoint.js';
import { aliCcpFiles, AliCcpReader, Vocabulary } from './data/aliccp.js';
import { writeSimulatorAliCcp } from './data/aliccp-writer.js';
import { DEFAULT_SHUFFLE_BUFFER } from './data/rows.js';
import { FunnelSimulator, type SimulatorConfig } from './data/simulator.js';
import { createModel, METHODS, type CreateModelOptions, type MethodName } from './model-factory.js';
import type { CvrMethod } from './methods/method.js';
import { runCalibrationReport } from './practice/report.js';
import type { Schema } from './schema.js';
import { runTable2, type ExperimentData } from './training/experiment.js';
import { aliCcpSource, simulatorSource } from './training/sources.js';
import { Trainer, type BatchSource, type MonitoredMetric } from './training/trainer.js';

/** A command-line usage error: printed with the command's help hint, exit code 2. */
export class UsageError extends Error {}

type FlagKind = 'number' | 'string' | 'boolean' | 'list';

interface FlagSpec {
  kind: FlagKind;
  help: string;
  default?: number | string | boolean;
}

type FlagValues = Record<string, number | string | boolean | string[] | undefined>;

/** Parse `--name value` / `--flag` pairs against a spec; unknown flags and bad values are usage errors. */
export function parseFlags(command: string, args: readonly string[], spec: Record<string, FlagSpec>): FlagValues {
  const values: FlagValues = {};
  for (const [name, s] of Object.entries(spec)) values[name] = s.default;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) throw new UsageError(`${command}: unexpected argument '${arg}'`);
    const [rawName, inline] = arg.slice(2).split('=', 2);
    const s = spec[rawName];
    if (!s)
      throw new UsageError(
        `${command}: unknown option '--${rawName}'; options: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(', ')}`,
      );
    if (s.kind === 'boolean') {
      values[rawName] = inline === undefined ? true : inline !== 'false';
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`${command}: option --${rawName} needs a value`);
    if (s.kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`${command}: option --${rawName} needs a number, got '${value}'`);
      values[rawName] = n;
    } else if (s.kind === 'list') {
      values[rawName] = value
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);
    } else {
      values[rawName] = value;
    }
  }
  return values;
}

function helpText(command: string, summary: string, spec: Record<string, FlagSpec>): string {
  const lines = Object.entries(spec).map(([name, s]) => {
    const d = s.default === undefined ? '' : ` (default ${String(s.default)})`;
    return `  --${name}${s.kind === 'boolean' ? '' : ` <${s.kind}>`}`.padEnd(30) + `${s.help}${d}`;
  });
  return `usage: esmm ${command} [options]\n\n${summary}\n\noptions:\n${lines.join('\n')}`;
}

const num = (v: FlagValues, k: string): number => v[k] as number;
const str = (v: FlagValues, k: string): string | undefined => v[k] as string | undefined;

// ---------------------------------------------------------------------------
// Data flags shared by train, eval, predict and experiment

const DATA_FLAGS: Record<string, FlagSpec> = {
  data: { kind: 'string', help: 'simulator | aliccp', default: 'simulator' },
  dir: {
    kind: 'string',
    help: 'Ali-CCP folder with sample_skeleton_{train,test}.csv and common_features_{train,test}.csv',
  },
  'train-rows': { kind: 'number', help: 'simulated training impressions', default: 150000 },
  'test-rows': { kind: 'number', help: 'simulated test impressions', default: 100000 },
  'sim-seed': { kind: 'number', help: 'seed of the simulated world', default: 1 },
  ctr: { kind: 'number', help: 'simulated click rate', default: 0.04 },
  cvr: { kind: 'number', help: 'simulated conversion rate given a click', default: 0.05 },
  'min-count': { kind: 'number', help: 'Ali-CCP vocabulary frequency threshold', default: 1 },
  limit: { kind: 'number', help: 'read at most this many Ali-CCP rows per split' },
  'shuffle-buffer': {
    kind: 'number',
    help: 'rows mixed when streaming Ali-CCP training data (memory grows with it)',
    default: DEFAULT_SHUFFLE_BUFFER,
  },
};

const MODEL_FLAGS: Record<string, FlagSpec> = {
  method: { kind: 'string', help: `one of ${METHODS.join(', ')}`, default: 'esmm' },
  base: { kind: 'string', help: 'base model of the towers: mlp, din, deepfm, ...', default: 'mlp' },
  hidden: { kind: 'list', help: 'tower hidden sizes, comma-separated', default: '200,80' },
  epochs: { kind: 'number', help: 'training epochs', default: 1 },
  'batch-size': { kind: 'number', help: 'rows per step', default: 1024 },
  lr: { kind: 'number', help: 'Adam learning rate', default: 0.002 },
  seed: { kind: 'number', help: 'seed of weights, sampling and shuffling', default: 1 },
  'ctr-weight': { kind: 'number', help: 'ESMM weight of the CTR loss', default: 1 },
  'ctcvr-weight': { kind: 'number', help: 'ESMM weight of the CTCVR loss', default: 1 },
  backend: { kind: 'string', help: 'reference | wasm | gpu (default: ESMM_BACKEND or wasm)' },
  'gpu-mode': { kind: 'string', help: 'gpu.js mode for --backend gpu: cpu, webasm, headlessgl, auto' },
};

function hiddenSizes(v: FlagValues): number[] {
  const raw = v.hidden;
  const list = Array.isArray(raw) ? raw : String(raw).split(',');
  const sizes = list.map(Number);
  if (sizes.some((s) => !Number.isInteger(s) || s <= 0))
    throw new UsageError(`--hidden needs positive integers, got '${list.join(',')}'`);
  return sizes;
}

/** The backend of --backend, else of ESMM_BACKEND; awaited because `gpu` imports gpu.js on first use. */
async function applyBackend(v: FlagValues): Promise<void> {
  const name = str(v, 'backend');
  if (name) await setBackendAsync(name, { mode: str(v, 'gpu-mode') });
  else await ready();
}

function methodName(v: FlagValues): MethodName {
  const m = str(v, 'method') as MethodName;
  if (!METHODS.includes(m)) throw new UsageError(`--method must be one of ${METHODS.join(', ')}, got '${m}'`);
  return m;
}

/** What a trained model needs to be rebuilt: stored in the checkpoint's metadata. */
interface ModelConfig {
  method: MethodName;
  base: string;
  hidden: number[];
  seed: number;
  lossWeights: { ctr: number; ctcvr: number };
  data: ExperimentData;
  simConfig?: Partial<SimulatorConfig>;
  vocabularyPath?: string;
}

interface LoadedData {
  schema: Schema;
  train: BatchSource;
  test: BatchSource;
  sim?: { sim: FunnelSimulator };
}

async function loadData(config: ModelConfig, batchSize: number, vocabularyOut?: string): Promise<LoadedData> {
  const d = config.data;
  if (d.kind === 'simulator') {
    const sim = new FunnelSimulator(d.config ?? {});
    const train = sim.generate(d.trainRows);
    const test = sim.generate(d.testRows);
    return {
      schema: sim.schema,
      train: simulatorSource(sim, train, { batchSize, shuffle: true, seed: config.seed }),
      test: simulatorSource(sim, test, { batchSize: 4096 }),
      sim: { sim },
    };
  }
  const trainFiles = aliCcpFiles(d.dir, 'train');
  const testFiles = aliCcpFiles(d.dir, 'test');
  let vocabulary: Vocabulary;
  if (config.vocabularyPath) {
    vocabulary = Vocabulary.fromJSON(JSON.parse(readFileSync(config.vocabularyPath, 'utf8')));
  } else {
    vocabulary = await Vocabulary.build(trainFiles, { minCount: d.minCount ?? 1 });
    if (vocabularyOut) {
      writeFileSync(vocabularyOut, JSON.stringify(vocabulary.toJSON()));
      config.vocabularyPath = vocabularyOut;
    }
  }
  const open = (files: typeof trainFiles) => () => new AliCcpReader(files, { encoder: vocabulary, limit: d.limit });
  return {
    schema: open(trainFiles)().schema,
    train: aliCcpSource(open(trainFiles), {
      batchSize,
      shuffleBuffer: d.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER,
      seed: config.seed,
    }),
    test: aliCcpSource(open(testFiles), { batchSize: 4096 }),
  };
}

function dataSpec(v: FlagValues): ExperimentData {
  const kind = str(v, 'data');
  if (kind === 'simulator') {
    return {
      kind: 'simulator',
      config: { seed: num(v, 'sim-seed'), ctr: num(v, 'ctr'), cvr: num(v, 'cvr') },
      trainRows: num(v, 'train-rows'),
      testRows: num(v, 'test-rows'),
    };
  }
  if (kind === 'aliccp') {
    const dir = str(v, 'dir');
    if (!dir) throw new UsageError('--data aliccp needs --dir PATH (the folder with the Ali-CCP csv files)');
    return {
      kind: 'aliccp',
      dir,
      minCount: num(v, 'min-count'),
      limit: v.limit as number | undefined,
      shuffleBuffer: num(v, 'shuffle-buffer'),
    };
  }
  throw new UsageError(`--data must be 'simulator' or 'aliccp', got '${kind}'`);
}

function buildMethod(config: ModelConfig, schema: Schema): CvrMethod {
  const options = {
    method: config.method,
    schema,
    base: config.base,
    seed: config.seed,
    tower: { hidden: config.hidden },
    ...(config.method === 'esmm' || config.method === 'esmm-ns' ? { lossWeights: config.lossWeights } : {}),
  } as CreateModelOptions;
  return createModel(options);
}

// ---------------------------------------------------------------------------
// Commands

const SIMULATE_FLAGS: Record<string, FlagSpec> = {
  out: { kind: 'string', help: 'folder to write the Ali-CCP-format files into', default: 'data/simulated' },
  'train-rows': DATA_FLAGS['train-rows'],
  'test-rows': DATA_FLAGS['test-rows'],
  'sim-seed': DATA_FLAGS['sim-seed'],
  ctr: DATA_FLAGS.ctr,
  cvr: DATA_FLAGS.cvr,
};

async function simulate(args: string[]): Promise<number> {
  const v = parseFlags('simulate', args, SIMULATE_FLAGS);
  const out = str(v, 'out')!;
  const sim = new FunnelSimulator({ seed: num(v, 'sim-seed'), ctr: num(v, 'ctr'), cvr: num(v, 'cvr') });
  const train = sim.generate(num(v, 'train-rows'));
  const test = sim.generate(num(v, 'test-rows'));
  for (const [split, log] of [
    ['train', train],
    ['test', test],
  ] as const) {
    const r = await writeSimulatorAliCcp(sim, log, out, split);
    console.log(
      `${split}: ${r.impressions} impressions in ${r.sessions} sessions → ${r.files.skeleton}, ${r.files.common}`,
    );
  }
  return 0;
}

const TRAIN_FLAGS: Record<string, FlagSpec> = {
  ...DATA_FLAGS,
  ...MODEL_FLAGS,
  out: { kind: 'string', help: 'checkpoint to write (safetensors)', default: 'runs/model.safetensors' },
  log: { kind: 'string', help: 'JSONL log of training events' },
  patience: { kind: 'number', help: 'early stopping: epochs without improvement of the test CTCVR AUC' },
  monitor: { kind: 'string', help: 'metric for early stopping', default: 'ctcvrAuc' },
  resume: { kind: 'boolean', help: 'continue from --out if it exists' },
};

async function train(args: string[]): Promise<number> {
  const v = parseFlags('train', args, TRAIN_FLAGS);
  await applyBackend(v);
  const out = str(v, 'out')!;
  mkdirSync(dirname(out), { recursive: true });
  const config: ModelConfig = {
    method: methodName(v),
    base: str(v, 'base')!,
    hidden: hiddenSizes(v),
    seed: num(v, 'seed'),
    lossWeights: { ctr: num(v, 'ctr-weight'), ctcvr: num(v, 'ctcvr-weight') },
    data: dataSpec(v),
  };
  const data = await loadData(config, num(v, 'batch-size'), `${out}.vocabulary.json`);
  const method = buildMethod(config, data.schema);
  const trainer = new Trainer(method, {
    epochs: num(v, 'epochs'),
    lr: num(v, 'lr'),
    patience: v.patience as number | undefined,
    monitor: str(v, 'monitor') as MonitoredMetric,
    jsonlPath: str(v, 'log'),
    checkpointPath: out,
  });
  if (v.resume) {
    await trainer.load(out);
    console.error(`resumed from ${out} at epoch ${trainer.epoch}`);
  }
  writeFileSync(`${out}.config.json`, JSON.stringify(config, null, 2));
  const result = await trainer.fit(data.train, data.test);
  const last = result.history[result.history.length - 1];
  console.log(
    `trained ${config.method}/${config.base} on ${getBackend().name} in ${result.seconds.toFixed(1)} s; best epoch ${result.bestEpoch}; checkpoint ${out}`,
  );
  if (last?.metrics) console.log(JSON.stringify(last.metrics));
  return 0;
}

const EVAL_FLAGS: Record<string, FlagSpec> = {
  model: { kind: 'string', help: 'checkpoint written by esmm train', default: 'runs/model.safetensors' },
  backend: MODEL_FLAGS.backend,
  'gpu-mode': MODEL_FLAGS['gpu-mode'],
};

async function restore(modelPath: string): Promise<{ config: ModelConfig; data: LoadedData; method: CvrMethod }> {
  let config: ModelConfig;
  try {
    config = JSON.parse(readFileSync(`${modelPath}.config.json`, 'utf8')) as ModelConfig;
  } catch (e) {
    throw new UsageError(
      `cannot read ${modelPath}.config.json (written by esmm train next to the checkpoint): ${(e as Error).message}`,
    );
  }
  const data = await loadData(config, 4096);
  const method = buildMethod(config, data.schema);
  const ckpt = await loadCheckpoint(modelPath);
  const weights: Record<string, (typeof ckpt.tensors)[string]> = {};
  for (const [name, t] of Object.entries(ckpt.tensors)) if (name.startsWith('model.')) weights[name.slice(6)] = t;
  method.loadStateDict(weights);
  return { config, data, method };
}

async function evaluateCommand(args: string[]): Promise<number> {
  const v = parseFlags('eval', args, EVAL_FLAGS);
  await applyBackend(v);
  const { config, data, method } = await restore(str(v, 'model')!);
  const metrics = await new Trainer(method, { progress: 'none' }).evaluate(data.test);
  console.log(`${config.method}/${config.base} on the test split:`);
  for (const [k, value] of Object.entries(metrics))
    console.log(`  ${k.padEnd(18)} ${typeof value === 'number' ? +value.toFixed(6) : value}`);
  return 0;
}

const PREDICT_FLAGS: Record<string, FlagSpec> = {
  ...EVAL_FLAGS,
  out: { kind: 'string', help: 'CSV to write: row,pctr,pcvr,pctcvr,score', default: 'runs/predictions.csv' },
  score: { kind: 'list', help: 'ranking score exponents a,b of pCTR^a·pCVR^b', default: '1,1' },
};

async function predict(args: string[]): Promise<number> {
  const v = parseFlags('predict', args, PREDICT_FLAGS);
  await applyBackend(v);
  const [a, b] = (Array.isArray(v.score) ? v.score : String(v.score).split(',')).map(Number);
  if (!Number.isFinite(a) || !Number.isFinite(b))
    throw new UsageError(`--score needs two numbers a,b, got '${String(v.score)}'`);
  const { data, method } = await restore(str(v, 'model')!);
  const out = str(v, 'out')!;
  mkdirSync(dirname(out), { recursive: true });
  const file = createWriteStream(out);
  file.write('row,pctr,pcvr,pctcvr,score\n');
  let row = 0;
  for await (const batch of data.test.batches(0)) {
    const p = method.predict(batch);
    let chunk = '';
    for (let i = 0; i < batch.size; i++, row++) {
      const score = Math.pow(p.pctr[i], a) * Math.pow(p.pcvr[i], b);
      chunk += `${row},${p.pctr[i]},${p.pcvr[i]},${p.pctcvr[i]},${score}\n`;
    }
    file.write(chunk);
  }
  await new Promise<void>((resolve, reject) => file.end((e?: Error | null) => (e ? reject(e) : resolve())));
  console.log(`scored ${row} rows → ${out}`);
  return 0;
}

const EXPERIMENT_FLAGS: Record<string, FlagSpec> = {
  ...DATA_FLAGS,
  ...MODEL_FLAGS,
  methods: { kind: 'list', help: 'methods to compare', default: METHODS.join(',') },
  repeats: { kind: 'number', help: 'repeats with different seeds', default: 10 },
  'aman-rate': { kind: 'number', help: 'AMAN negative sampling rate', default: 0.2 },
  'oversampling-factor': { kind: 'number', help: 'OVERSAMPLING factor', default: 5 },
  out: { kind: 'string', help: 'folder for report.md, report.svg, results.json', default: 'runs/table2' },
};

async function experiment(args: string[]): Promise<number> {
  const [which, ...rest] = args;
  if (which !== 'table2') throw new UsageError(`experiment: unknown experiment '${which ?? ''}'; available: table2`);
  const v = parseFlags('experiment table2', rest, EXPERIMENT_FLAGS);
  await applyBackend(v);
  const methods = v.methods as string[] | string;
  const list = (Array.isArray(methods) ? methods : methods.split(',')) as MethodName[];
  for (const m of list)
    if (!METHODS.includes(m)) throw new UsageError(`--methods: unknown method '${m}'; known: ${METHODS.join(', ')}`);
  const result = await runTable2({
    data: dataSpec(v),
    methods: list,
    base: str(v, 'base'),
    repeats: num(v, 'repeats'),
    epochs: num(v, 'epochs'),
    batchSize: num(v, 'batch-size'),
    lr: num(v, 'lr'),
    hidden: hiddenSizes(v),
    amanRate: num(v, 'aman-rate'),
    oversamplingFactor: num(v, 'oversampling-factor'),
    lossWeights: { ctr: num(v, 'ctr-weight'), ctcvr: num(v, 'ctcvr-weight') },
    seed: num(v, 'seed'),
    outDir: str(v, 'out'),
  });
  console.log(`\n${result.markdown}`);
  console.log(`report: ${join(str(v, 'out')!, 'report.md')} and report.svg`);
  return 0;
}

const CALIBRATE_FLAGS: Record<string, FlagSpec> = {
  'train-rows': { ...DATA_FLAGS['train-rows'], default: 300000 },
  'valid-rows': {
    kind: 'number',
    help: 'simulated validation impressions (the calibrators are fitted on them)',
    default: 150000,
  },
  'test-rows': { ...DATA_FLAGS['test-rows'], default: 200000 },
  'sim-seed': DATA_FLAGS['sim-seed'],
  ctr: DATA_FLAGS.ctr,
  cvr: DATA_FLAGS.cvr,
  hidden: { ...MODEL_FLAGS.hidden, default: '64,32' },
  epochs: MODEL_FLAGS.epochs,
  'batch-size': MODEL_FLAGS['batch-size'],
  lr: MODEL_FLAGS.lr,
  seed: MODEL_FLAGS.seed,
  'negative-ratio': {
    kind: 'number',
    help: 'unclicked rows kept per clicked row after down-sampling (sets r)',
    default: 6,
  },
  'unclicked-rate': { kind: 'number', help: 'keep rate r of unclicked rows (overrides --negative-ratio)' },
  'unconverted-rate': { kind: 'number', help: 'keep rate r2 of clicked-unconverted rows', default: 1 },
  bins: { kind: 'number', help: 'reliability bins of the ECE', default: 10 },
  binning: { kind: 'string', help: 'equal-mass | equal-width', default: 'equal-mass' },
  grid: {
    kind: 'list',
    help: 'ranking score exponents a:b of pCTR^a·pCVR^b, comma-separated',
    default: '1:0,1:0.5,1:1,1:2,1:4,0:1',
  },
  k: { kind: 'number', help: 'top k per user of the ranking metrics', default: 5 },
  sweep: { kind: 'list', help: 'ESMM loss weights w_ctr:w_ctcvr to sweep, comma-separated (e.g. 1:1,1:2,2:1)' },
  out: { kind: 'string', help: 'folder for report.md, reliability-*.svg, results.json', default: 'runs/calibrate' },
  backend: MODEL_FLAGS.backend,
  'gpu-mode': MODEL_FLAGS['gpu-mode'],
};

function colonPairs(v: FlagValues, flag: string): [number, number][] {
  const raw = v[flag];
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : String(raw).split(',');
  return list.map((item) => {
    const parts = item.split(':').map(Number);
    if (parts.length !== 2 || !parts.every(Number.isFinite))
      throw new UsageError(`--${flag} needs pairs x:y separated by commas, got '${item}'`);
    return [parts[0], parts[1]];
  });
}

async function calibrate(args: string[]): Promise<number> {
  const v = parseFlags('calibrate', args, CALIBRATE_FLAGS);
  await applyBackend(v);
  const binning = str(v, 'binning');
  if (binning !== 'equal-mass' && binning !== 'equal-width')
    throw new UsageError(`--binning must be 'equal-mass' or 'equal-width', got '${binning}'`);
  const out = str(v, 'out')!;
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
    unclickedRate: v['unclicked-rate'] as number | undefined,
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
}

/** `n` points uniform in [-1, 1]², labelled 1 where both coordinates share a sign: not linearly separable. */
export function xorTask(n: number, rng: Rng): { xs: number[]; ys: number[] } {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = rng.uniformIn(-1, 1);
    const b = rng.uniformIn(-1, 1);
    xs.push(a, b);
    ys.push(a * b > 0 ? 1 : 0);
  }
  return { xs, ys };
}

/** Train a small MLP on an XOR-like task; returns the losses (the core's own demo). */
export function runDemo(steps: number, seed: number, log: (line: string) => void = console.log): number[] {
  const rng = new Rng(seed);
  const n = 1024;
  const { xs, ys } = xorTask(n, rng);
  const x = tensor(xs, [n, 2]);
  const y = tensor(ys, [n, 1]);
  const model = nn.mlp(2, [32, 16], { outFeatures: 1, rng: rng.fork() });
  const opt = new optim.Adam(model.parameters(), { lr: 0.03 });
  log(`demo: 2-layer PReLU MLP, XOR-like task, ${n} points, Adam lr 0.03, backend ${getBackend().name}`);
  const losses: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const loss = tidy(() => {
      opt.zeroGrad();
      const l = mean(bceWithLogits(model.forward(x), y));
      l.backward();
      opt.step();
      return l.item();
    });
    losses.push(loss);
    if (step === 1 || step % Math.max(1, Math.floor(steps / 10)) === 0)
      log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}`);
  }
  const predictions = noGrad(() => sigmoid(model.forward(x)).toArray());
  let correct = 0;
  predictions.forEach((p, i) => (correct += (p > 0.5 ? 1 : 0) === ys[i] ? 1 : 0));
  log(`accuracy ${((correct / n) * 100).toFixed(1)}%`);
  return losses;
}

const DEMO_FLAGS: Record<string, FlagSpec> = {
  steps: { kind: 'number', help: 'training steps', default: 200 },
  seed: { kind: 'number', help: 'seed', default: 1 },
};

async function demo(args: string[]): Promise<number> {
  const v = parseFlags('demo', args, DEMO_FLAGS);
  await ready();
  runDemo(num(v, 'steps'), num(v, 'seed'));
  return 0;
}

interface Command {
  summary: string;
  flags: Record<string, FlagSpec>;
  run: (args: string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  simulate: {
    summary: 'Write a simulated impression → click → conversion data set in the Ali-CCP raw format.',
    flags: SIMULATE_FLAGS,
    run: simulate,
  },
  train: {
    summary: 'Train one method (ESMM by default) and write a checkpoint; evaluates on the test split each epoch.',
    flags: TRAIN_FLAGS,
    run: train,
  },
  eval: {
    summary: 'Evaluate a checkpoint on its test split: CTR/CVR/CTCVR AUC, loglosses, GAUC.',
    flags: EVAL_FLAGS,
    run: evaluateCommand,
  },
  predict: {
    summary: 'Score the test split of a checkpoint: pCTR, pCVR, pCTCVR and a ranking score per row.',
    flags: PREDICT_FLAGS,
    run: predict,
  },
  experiment: {
    summary: "Run the paper's Table 2 protocol: `esmm experiment table2 [options]`.",
    flags: EXPERIMENT_FLAGS,
    run: experiment,
  },
  calibrate: {
    summary:
      'ESMM in practice on simulated data: down-sampling with correction, calibration, the pCTR^a·pCVR^b grid, loss-weight sweep.',
    flags: CALIBRATE_FLAGS,
    run: calibrate,
  },
  demo: {
    summary: 'Train a 2-layer MLP on a synthetic task and print its loss falling.',
    flags: DEMO_FLAGS,
    run: demo,
  },
};

const USAGE = `esmm: ESMM (Entire Space Multi-Task Model) and its baselines in TypeScript

usage: esmm <command> [options]     (esmm <command> --help for its options)

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(12)}${c.summary}`)
  .join('\n')}

Backend: --backend or ESMM_BACKEND (wasm by default; reference, gpu).`;

/** Entry point; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`esmm: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(helpText(name === 'experiment' ? 'experiment table2' : name, command.summary, command.flags));
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`esmm ${name}: ${message}`);
    if (error instanceof UsageError) console.error(`(see: esmm ${name} --help)`);
    return error instanceof UsageError ? 2 : 1;
  }
}

// Run when this file is the program, also through the symlink an installed package's `bin` is.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
