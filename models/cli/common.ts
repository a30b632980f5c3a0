/**
 * What several commands share: the data and model flags, building a data source and a model from them,
 * and restoring a trained model from its checkpoint and the config written beside it.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ready, setBackendAsync } from '../../kernels/index.js';
import { CheckpointError, openCheckpoint } from '../checkpoint.js';
import { aliCcpFiles, AliCcpReader, Vocabulary } from '../data/aliccp.js';
import { DEFAULT_SHUFFLE_BUFFER } from '../data/rows.js';
import { FunnelSimulator, type SimulatorConfig } from '../data/simulator.js';
import { baseModelInfo, listBaseModels, TOWER_DEFAULTS, validateBaseModelOptions } from '../base/base-model.js';
import { ESMM_DEFAULTS } from '../esmm.js';
import {
  createModel,
  listMethods,
  methodInfo,
  MODEL_DEFAULTS,
  type CreateModelOptions,
  type MethodName,
} from '../model-factory.js';
import type { CvrMethod } from '../methods/method.js';
import { validateMethodOptions } from '../methods/registry.js';
import { describeOptions, isPlainObject } from '../options.js';
import type { Schema } from '../schema.js';
import { TABLE2_DEFAULTS, type ExperimentData } from '../training/experiment.js';
import { aliCcpSource, simulatorSource, SOURCE_DEFAULTS } from '../training/sources.js';
import { writeFileAtomic } from './paths.js';
import { TRAINER_DEFAULTS, type BatchSource } from '../training/trainer.js';
import { listNumber, num, optNum, str, UsageError, type FlagSpecs, type FlagValues } from './flags.js';

const SIMULATED = TABLE2_DEFAULTS.simulated;

/** Data flags shared by train, eval, predict and experiment (defaults: the quick start's, `TABLE2_DEFAULTS.simulated`). */
export const DATA_FLAGS: FlagSpecs = {
  data: { kind: 'string', help: 'simulator | aliccp', default: 'simulator' },
  dir: {
    kind: 'string',
    help: 'Ali-CCP folder with sample_skeleton_{train,test}.csv and common_features_{train,test}.csv',
  },
  'train-rows': { kind: 'integer', help: 'simulated training impressions', default: SIMULATED.trainRows, min: 1 },
  'test-rows': { kind: 'integer', help: 'simulated test impressions', default: SIMULATED.testRows, min: 1 },
  'sim-seed': { kind: 'integer', help: 'seed of the simulated world', default: SIMULATED.config.seed, min: 0 },
  ctr: { kind: 'number', help: 'simulated click rate', default: SIMULATED.config.ctr, min: 0, max: 1 },
  cvr: {
    kind: 'number',
    help: 'simulated conversion rate given a click',
    default: SIMULATED.config.cvr,
    min: 0,
    max: 1,
  },
  'min-count': { kind: 'integer', help: 'Ali-CCP vocabulary frequency threshold', default: 1, min: 1 },
  limit: { kind: 'integer', help: 'read at most this many Ali-CCP rows per split', min: 1 },
  'shuffle-buffer': {
    kind: 'integer',
    help: 'rows mixed when streaming Ali-CCP training data (memory grows with it)',
    default: DEFAULT_SHUFFLE_BUFFER,
    min: 1,
  },
};

/** Model and optimisation flags shared by train and experiment; every default is the API's. */
export const MODEL_FLAGS: FlagSpecs = {
  method: { kind: 'string', help: `registered method: ${listMethods().join(', ')}`, default: MODEL_DEFAULTS.method },
  base: {
    kind: 'string',
    help: `base model of the towers: ${listBaseModels().join(', ')}`,
    default: MODEL_DEFAULTS.base,
  },
  'base-options': {
    kind: 'string',
    help: 'options of the base model as JSON, e.g. \'{"attention":{"hidden":[80,40]}}\' (listed below)',
  },
  hidden: { kind: 'list', help: 'tower hidden sizes, comma-separated', default: TOWER_DEFAULTS.hidden.join(',') },
  epochs: { kind: 'integer', help: 'training epochs', default: TRAINER_DEFAULTS.epochs, min: 1 },
  'batch-size': { kind: 'integer', help: 'rows per step', default: SOURCE_DEFAULTS.batchSize, min: 1 },
  lr: { kind: 'number', help: 'Adam learning rate', default: TRAINER_DEFAULTS.lr, above: 0 },
  seed: { kind: 'integer', help: 'seed of weights, sampling and shuffling', default: MODEL_DEFAULTS.seed, min: 0 },
  'ctr-weight': {
    kind: 'number',
    help: 'ESMM weight of the CTR loss',
    default: ESMM_DEFAULTS.lossWeights.ctr,
    min: 0,
  },
  'ctcvr-weight': {
    kind: 'number',
    help: 'ESMM weight of the CTCVR loss',
    default: ESMM_DEFAULTS.lossWeights.ctcvr,
    min: 0,
  },
  backend: { kind: 'string', help: 'reference | wasm | gpu (default: ESMM_BACKEND or wasm)' },
  'gpu-mode': { kind: 'string', help: 'gpu.js mode for --backend gpu: cpu, webasm, headlessgl, auto' },
};

/** The backend flags alone, for commands that only run a trained model. */
export const BACKEND_FLAGS: FlagSpecs = { backend: MODEL_FLAGS.backend, 'gpu-mode': MODEL_FLAGS['gpu-mode'] };

export function hiddenSizes(v: FlagValues): number[] {
  const raw = v.hidden;
  const list = Array.isArray(raw) ? raw : String(raw).split(',');
  const sizes = list.map((s) => listNumber('hidden', s, true));
  if (sizes.length === 0 || sizes.some((s) => s <= 0))
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
  const m = str(v, 'method')!;
  if (!listMethods().includes(m))
    throw new UsageError(`--method must be one of ${listMethods().join(', ')}, got '${m}'`);
  return m as MethodName;
}

/** A registered base model's name from --base. */
export function baseName(v: FlagValues): string {
  const b = str(v, 'base')!;
  if (!listBaseModels().includes(b))
    throw new UsageError(`--base must be one of ${listBaseModels().join(', ')}, got '${b}'`);
  return b;
}

/** A JSON object given to a flag (absent: empty), as a usage error naming the flag when it is not one. */
export function jsonObject(v: FlagValues, flag: string): Record<string, unknown> {
  const text = str(v, flag);
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--${flag} needs a JSON object: ${(e as Error).message}`);
  }
  if (!isPlainObject(value)) throw new UsageError(`--${flag} needs a JSON object, got ${text}`);
  return value;
}

/** Run a registry check as a usage error prefixed by the flag that carried the options. */
export function asUsage(flag: string, check: () => void): void {
  try {
    check();
  } catch (e) {
    throw new UsageError(`--${flag}: ${(e as Error).message}`);
  }
}

/** The tower options of --hidden and --base-options (its keys win), checked against the base model. */
export function baseOptions(v: FlagValues, base: string): Record<string, unknown> {
  const options = { hidden: hiddenSizes(v), ...jsonObject(v, 'base-options') };
  asUsage('base-options', () => validateBaseModelOptions(base, options));
  return options;
}

/** A method's own options from its shorthand flags and a JSON object (its keys win), checked against the method. */
export function ownMethodOptions(
  method: MethodName,
  v: FlagValues,
  given: Record<string, unknown>,
  flag = 'method-options',
): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  if ('lossWeights' in methodInfo(method).options)
    options.lossWeights = { ctr: num(v, 'ctr-weight'), ctcvr: num(v, 'ctcvr-weight') };
  Object.assign(options, given);
  asUsage(flag, () => validateMethodOptions(method, options));
  return options;
}

/** `--help` text listing every registered base model's and method's own options with their defaults. */
export function optionsHelp(): string {
  const section = (title: string, names: string[], specsOf: (name: string) => Record<string, unknown>): string[] => [
    title,
    ...names.flatMap((name) => {
      const lines = describeOptions(specsOf(name) as Parameters<typeof describeOptions>[0]);
      return lines.length ? [`  ${name}:`, ...lines.map((l) => `    ${l}`)] : [`  ${name}: (no options of its own)`];
    }),
  ];
  const shared = new Set(['hidden', 'activation', 'dropout']);
  const own = (name: string) =>
    Object.fromEntries(Object.entries(baseModelInfo(name).options).filter(([k]) => !shared.has(k)));
  return [
    ...section(
      'base models (--base; --base-options JSON, besides hidden, activation, dropout):',
      listBaseModels(),
      own,
    ),
    '',
    ...section(
      'methods (--method, --methods; --method-options JSON):',
      listMethods(),
      (name) => methodInfo(name).options,
    ),
  ].join('\n');
}

/** What a trained model needs to be rebuilt: stored beside the checkpoint. */
export interface ModelConfig {
  method: MethodName;
  base: string;
  hidden: number[];
  seed: number;
  lossWeights: { ctr: number; ctcvr: number };
  /** The base model's options beyond `hidden` (from --base-options). */
  baseOptions?: Record<string, unknown>;
  /** The method's own options (from --method-options and the shorthand flags). */
  methodOptions?: Record<string, unknown>;
  data: ExperimentData;
  simConfig?: Partial<SimulatorConfig>;
  /** Absolute (or, in older files, relative to the config file's folder). */
  vocabularyPath?: string;
  /** Commit of the code that trained the model (for the ONNX export's metadata). */
  commit?: string;
  /** Optimisation settings, compared when a run resumes (absent in configs of older versions). */
  training?: TrainingConfig;
}

/** The settings of `esmm train` that a resumed run must share with the run it continues. */
export interface TrainingConfig {
  lr: number;
  batchSize: number;
  patience?: number;
  monitor: string;
  skipNonFiniteSteps: number;
}

/** Differences between two configs, one line per setting (`data.trainRows: 2000 → 3000`). */
export function configDifferences(saved: unknown, now: unknown, path = ''): string[] {
  const show = (x: unknown): string => (x === undefined ? 'unset' : JSON.stringify(x));
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (isObj(saved) && isObj(now)) {
    const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])];
    return keys.flatMap((k) => configDifferences(saved[k], now[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(saved) === JSON.stringify(now) ? [] : [`${path}: ${show(saved)} → ${show(now)}`];
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
      test: simulatorSource(sim, test, { batchSize: SOURCE_DEFAULTS.evalBatchSize }),
      sim: { sim },
    };
  }
  const trainFiles = aliCcpFiles(d.dir, 'train');
  const testFiles = aliCcpFiles(d.dir, 'test');
  let vocabulary: Vocabulary;
  if (config.vocabularyPath) {
    vocabulary = readVocabulary(config.vocabularyPath);
  } else {
    vocabulary = await Vocabulary.build(trainFiles, { minCount: d.minCount ?? 1 });
    if (vocabularyOut) {
      await writeFileAtomic(vocabularyOut, JSON.stringify(vocabulary.toJSON()));
      config.vocabularyPath = resolve(vocabularyOut);
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
    test: aliCcpSource(open(testFiles), { batchSize: SOURCE_DEFAULTS.evalBatchSize }),
  };
}

/** A saved vocabulary; a truncated, altered or reordered file is an error naming it. */
function readVocabulary(path: string): Vocabulary {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the vocabulary ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (truncated?): ${(e as Error).message}`);
  }
  try {
    return Vocabulary.fromJSON(json);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
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
      // Absolute, so eval and predict find the files from any working folder.
      dir: resolve(dir),
      minCount: num(v, 'min-count'),
      limit: optNum(v, 'limit'),
      shuffleBuffer: num(v, 'shuffle-buffer'),
    };
  }
  throw new UsageError(`--data must be 'simulator' or 'aliccp', got '${kind}'`);
}

export function buildMethod(config: ModelConfig, schema: Schema): CvrMethod {
  // A config written before --method-options carried ESMM's loss weights on their own.
  const legacy = 'lossWeights' in methodInfo(config.method).options ? { lossWeights: config.lossWeights } : {};
  const options = {
    ...(config.methodOptions ?? legacy),
    method: config.method,
    schema,
    base: config.base,
    seed: config.seed,
    tower: { hidden: config.hidden, ...config.baseOptions },
  } as CreateModelOptions;
  return createModel(options);
}

/** Rebuild a trained model from `modelPath` and the `.config.json` written beside it. */
export async function restore(
  modelPath: string,
): Promise<{ config: ModelConfig; data: LoadedData; method: CvrMethod }> {
  const configPath = `${modelPath}.config.json`;
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (e) {
    throw new UsageError(
      `cannot read ${configPath} (written by esmm train next to the checkpoint): ${(e as Error).message}`,
    );
  }
  let config: ModelConfig;
  try {
    config = JSON.parse(text) as ModelConfig;
  } catch (e) {
    throw new Error(`${configPath}: not valid JSON: ${(e as Error).message}`);
  }
  // Paths of older configs are relative to the folder the training ran in; the config's own folder is the best guess.
  const base = dirname(resolve(configPath));
  if (config.data?.kind === 'aliccp' && !isAbsolute(config.data.dir)) config.data.dir = resolve(base, config.data.dir);
  if (config.vocabularyPath && !isAbsolute(config.vocabularyPath))
    config.vocabularyPath = resolve(base, config.vocabularyPath);
  const data = await loadData(config, SOURCE_DEFAULTS.evalBatchSize);
  const method = buildMethod(config, data.schema);
  await loadModelWeights(modelPath, method);
  return { config, data, method };
}

/**
 * Streams a checkpoint's `model.*` tensors straight into a model's parameters, after checking every
 * name, shape and checksum, so a bad file changes nothing and loading needs no second copy of the weights.
 */
export async function loadModelWeights(path: string, method: CvrMethod): Promise<void> {
  const file = await openCheckpoint(path);
  try {
    const params = new Map(method.namedParameters());
    const problems: string[] = [];
    for (const [name, e] of file.entries) {
      if (!name.startsWith('model.')) continue;
      const p = params.get(name.slice(6));
      if (!p) problems.push(`unexpected tensor '${name}'`);
      else if (e.shape.length !== p.shape.length || e.shape.some((d, i) => d !== p.shape[i]))
        problems.push(`'${name}' has shape [${e.shape.join(', ')}], the model's is [${p.shape.join(', ')}]`);
    }
    for (const name of params.keys()) if (!file.entries.has(`model.${name}`)) problems.push(`missing 'model.${name}'`);
    if (problems.length > 0)
      throw new CheckpointError(path, `does not fit the model of its config: ${problems.slice(0, 5).join('; ')}`);
    const names = [...params.keys()].map((n) => `model.${n}`);
    await file.verify(names);
    for (const [name, p] of params) await file.read(`model.${name}`, { into: p });
  } finally {
    await file.close();
  }
}
