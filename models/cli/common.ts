/**
 * What several commands share: the data and model flags, building a data source and a model from them,
 * and restoring a trained model from its checkpoint and the config written beside it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ready, setBackendAsync } from '../../kernels/index.js';
import { loadCheckpoint } from '../checkpoint.js';
import { aliCcpFiles, AliCcpReader, Vocabulary } from '../data/aliccp.js';
import { DEFAULT_SHUFFLE_BUFFER } from '../data/rows.js';
import { FunnelSimulator, type SimulatorConfig } from '../data/simulator.js';
import { createModel, METHODS, type CreateModelOptions, type MethodName } from '../model-factory.js';
import type { CvrMethod } from '../methods/method.js';
import type { Schema } from '../schema.js';
import type { ExperimentData } from '../training/experiment.js';
import { aliCcpSource, simulatorSource } from '../training/sources.js';
import type { BatchSource } from '../training/trainer.js';
import { num, optNum, str, UsageError, type FlagSpecs, type FlagValues } from './flags.js';

/** Data flags shared by train, eval, predict and experiment. */
export const DATA_FLAGS: FlagSpecs = {
  data: { kind: 'string', help: 'simulator | aliccp', default: 'simulator' },
  dir: {
    kind: 'string',
    help: 'Ali-CCP folder with sample_skeleton_{train,test}.csv and common_features_{train,test}.csv',
  },
  'train-rows': { kind: 'integer', help: 'simulated training impressions', default: 150000, min: 1 },
  'test-rows': { kind: 'integer', help: 'simulated test impressions', default: 100000, min: 1 },
  'sim-seed': { kind: 'integer', help: 'seed of the simulated world', default: 1, min: 0 },
  ctr: { kind: 'number', help: 'simulated click rate', default: 0.04, min: 0, max: 1 },
  cvr: { kind: 'number', help: 'simulated conversion rate given a click', default: 0.05, min: 0, max: 1 },
  'min-count': { kind: 'integer', help: 'Ali-CCP vocabulary frequency threshold', default: 1, min: 1 },
  limit: { kind: 'integer', help: 'read at most this many Ali-CCP rows per split', min: 1 },
  'shuffle-buffer': {
    kind: 'integer',
    help: 'rows mixed when streaming Ali-CCP training data (memory grows with it)',
    default: DEFAULT_SHUFFLE_BUFFER,
    min: 1,
  },
};

/** Model and optimisation flags shared by train and experiment. */
export const MODEL_FLAGS: FlagSpecs = {
  method: { kind: 'string', help: `one of ${METHODS.join(', ')}`, default: 'esmm' },
  base: { kind: 'string', help: 'base model of the towers: mlp, din, deepfm, ...', default: 'mlp' },
  hidden: { kind: 'list', help: 'tower hidden sizes, comma-separated', default: '200,80' },
  epochs: { kind: 'integer', help: 'training epochs', default: 1, min: 1 },
  'batch-size': { kind: 'integer', help: 'rows per step', default: 1024, min: 1 },
  lr: { kind: 'number', help: 'Adam learning rate', default: 0.002, min: 0 },
  seed: { kind: 'integer', help: 'seed of weights, sampling and shuffling', default: 1, min: 0 },
  'ctr-weight': { kind: 'number', help: 'ESMM weight of the CTR loss', default: 1, min: 0 },
  'ctcvr-weight': { kind: 'number', help: 'ESMM weight of the CTCVR loss', default: 1, min: 0 },
  backend: { kind: 'string', help: 'reference | wasm | gpu (default: ESMM_BACKEND or wasm)' },
  'gpu-mode': { kind: 'string', help: 'gpu.js mode for --backend gpu: cpu, webasm, headlessgl, auto' },
};

/** The backend flags alone, for commands that only run a trained model. */
export const BACKEND_FLAGS: FlagSpecs = { backend: MODEL_FLAGS.backend, 'gpu-mode': MODEL_FLAGS['gpu-mode'] };

export function hiddenSizes(v: FlagValues): number[] {
  const raw = v.hidden;
  const list = Array.isArray(raw) ? raw : String(raw).split(',');
  const sizes = list.map(Number);
  if (sizes.length === 0 || sizes.some((s) => !Number.isSafeInteger(s) || s <= 0))
    throw new UsageError(`--hidden needs positive integers, got '${list.join(',')}'`);
  return sizes;
}

/** The backend of --backend, else of ESMM_BACKEND; awaited because `gpu` imports gpu.js on first use. */
export async function applyBackend(v: FlagValues): Promise<void> {
  const name = str(v, 'backend');
  if (name) await setBackendAsync(name, { mode: str(v, 'gpu-mode') });
  else await ready();
}

export function methodName(v: FlagValues): MethodName {
  const m = str(v, 'method') as MethodName;
  if (!METHODS.includes(m)) throw new UsageError(`--method must be one of ${METHODS.join(', ')}, got '${m}'`);
  return m;
}

/** What a trained model needs to be rebuilt: stored beside the checkpoint. */
export interface ModelConfig {
  method: MethodName;
  base: string;
  hidden: number[];
  seed: number;
  lossWeights: { ctr: number; ctcvr: number };
  data: ExperimentData;
  simConfig?: Partial<SimulatorConfig>;
  vocabularyPath?: string;
  /** Commit of the code that trained the model (for the ONNX export's metadata). */
  commit?: string;
}

export interface LoadedData {
  schema: Schema;
  train: BatchSource;
  test: BatchSource;
  sim?: { sim: FunnelSimulator };
}

export async function loadData(config: ModelConfig, batchSize: number, vocabularyOut?: string): Promise<LoadedData> {
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

export function dataSpec(v: FlagValues): ExperimentData {
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
      limit: optNum(v, 'limit'),
      shuffleBuffer: num(v, 'shuffle-buffer'),
    };
  }
  throw new UsageError(`--data must be 'simulator' or 'aliccp', got '${kind}'`);
}

export function buildMethod(config: ModelConfig, schema: Schema): CvrMethod {
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

/** Rebuild a trained model from `modelPath` and the `.config.json` written beside it. */
export async function restore(
  modelPath: string,
): Promise<{ config: ModelConfig; data: LoadedData; method: CvrMethod }> {
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
