/**
 * Models as the command line saves them, opened for serving: an .onnx file (schema and vocabulary
 * in its metadata_props, scored by ONNX Runtime) or a safetensors checkpoint of `esmm train` with
 * its `<file>.config.json` and, for Ali-CCP data, `<file>.vocabulary.json` beside it.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../checkpoint.js';
import { aliCcpSchema } from '../data/aliccp-format.js';
import { OOV_ROW, Vocabulary } from '../data/aliccp.js';
import { DEFAULT_SIMULATOR_CONFIG, simulatorSchema, type SimulatorConfig } from '../data/simulator.js';
import type { CvrMethod } from '../methods/method.js';
import { createModel, listMethods, type CreateModelOptions, type MethodName } from '../model-factory.js';
import type { Schema } from '../schema.js';
import { EagerEngine, OnnxRuntimeEngine, type EngineName, type ScoringEngine } from './engine.js';
import { exportOnnx, vocabularyHash } from './onnx-export.js';
import { readOnnxMetadata } from './onnx-proto.js';
import { IDENTITY_IDS, vocabularyIds, type IdMap } from './request.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** A model ready to serve: its schema, id map, engine and descriptive metadata. */
export interface ServedModel {
  schema: Schema;
  ids: IdMap;
  engine: ScoringEngine;
  /** What GET /metadata reports (method, base model, vocabulary hash, training commit, ...). */
  metadata: Record<string, string>;
  /** Default exponents of the ranking score pCTR^a · pCVR^b. */
  ranking: { a: number; b: number };
}

/** What `esmm train` writes to `<checkpoint>.config.json`. */
export interface TrainedModelConfig {
  method: MethodName;
  base: string;
  hidden: number[];
  seed: number;
  lossWeights?: { ctr: number; ctcvr: number };
  data: { kind: 'simulator'; config?: Partial<SimulatorConfig> } | { kind: 'aliccp' };
  vocabularyPath?: string;
  /** Commit of the code that trained the model, when recorded. */
  commit?: string;
}

/** A trained checkpoint, rebuilt: the method with its weights, and what describes it. */
export interface TrainedModel {
  method: CvrMethod;
  config: TrainedModelConfig;
  vocabulary: Vocabulary | null;
  /** The vocabulary file's JSON, for hashing and for the ONNX metadata. */
  vocabularyJson: unknown;
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: ${what} is not valid JSON: ${(e as Error).message}`);
  }
}

function checkConfig(path: string, json: unknown): TrainedModelConfig {
  const c = json as Partial<TrainedModelConfig>;
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  if (!c || typeof c !== 'object') fail('not an object');
  if (!listMethods().includes(c.method as MethodName))
    fail(`method must be one of ${listMethods().join(', ')}, got ${JSON.stringify(c.method)}`);
  if (typeof c.base !== 'string') fail('base is not a string');
  if (!Array.isArray(c.hidden) || !c.hidden.every((h) => Number.isInteger(h) && h > 0))
    fail('hidden is not a list of sizes');
  if (!c.data || (c.data.kind !== 'simulator' && c.data.kind !== 'aliccp'))
    fail("data.kind must be 'simulator' or 'aliccp'");
  return c as TrainedModelConfig;
}

/** Rebuild a checkpoint written by `esmm train` (weights under `model.`), without reading any training data. */
export async function loadTrainedModel(checkpointPath: string): Promise<TrainedModel> {
  requireNode('loadTrainedModel', [readFile], INSTEAD.serving);
  const configPath = `${checkpointPath}.config.json`;
  const config = checkConfig(configPath, await readJson(configPath, 'the model config (written by esmm train)'));
  let schema: Schema;
  let vocabulary: Vocabulary | null = null;
  let vocabularyJson: unknown = undefined;
  if (config.data.kind === 'simulator') {
    schema = simulatorSchema({ ...DEFAULT_SIMULATOR_CONFIG, ...config.data.config });
  } else {
    const stored = config.vocabularyPath ?? `${checkpointPath}.vocabulary.json`;
    // A relative path is the one train was given, relative to where it ran; fall back to beside the checkpoint.
    const candidates = isAbsolute(stored) ? [stored] : [resolve(stored), resolve(dirname(checkpointPath), stored)];
    let lastError: Error | null = null;
    for (const p of [...candidates, `${checkpointPath}.vocabulary.json`]) {
      try {
        vocabularyJson = await readJson(p, 'the vocabulary');
        lastError = null;
        break;
      } catch (e) {
        lastError = e as Error;
      }
    }
    if (lastError) throw lastError;
    vocabulary = Vocabulary.fromJSON(vocabularyJson);
    schema = aliCcpSchema(vocabulary.tableSizes);
  }
  const options = {
    method: config.method,
    schema,
    base: config.base,
    seed: config.seed,
    tower: { hidden: config.hidden },
    ...(config.method === 'esmm' || config.method === 'esmm-ns' ? { lossWeights: config.lossWeights } : {}),
  } as CreateModelOptions;
  const method = createModel(options);
  const ckpt = await loadCheckpoint(checkpointPath);
  const weights: Record<string, (typeof ckpt.tensors)[string]> = {};
  for (const [name, t] of Object.entries(ckpt.tensors)) if (name.startsWith('model.')) weights[name.slice(6)] = t;
  method.loadStateDict(weights);
  if (!config.commit && ckpt.metadata.commit) config.commit = ckpt.metadata.commit;
  return { method, config, vocabulary, vocabularyJson };
}

/** Options of {@link openServedModel}. */
export interface OpenModelOptions {
  /** Engine of a safetensors checkpoint (default `esmm-ts`; `onnxruntime` exports it in memory). An .onnx file is always ONNX Runtime's. */
  engine?: EngineName;
  /** ONNX Runtime intra-op threads. */
  threads?: number;
}

function rankingOf(meta: Record<string, string>): { a: number; b: number } {
  const num = (key: string): number => {
    const v = meta[key] === undefined ? 1 : Number(meta[key]);
    if (!Number.isFinite(v) || v < 0) throw new Error(`model metadata ${key} = ${meta[key]} is not a number ≥ 0`);
    return v;
  };
  return { a: num('ranking_a'), b: num('ranking_b') };
}

/** Open an .onnx export or an `esmm train` checkpoint for serving. */
export async function openServedModel(path: string, options: OpenModelOptions = {}): Promise<ServedModel> {
  requireNode('openServedModel', [readFile], INSTEAD.serving);
  if (path.endsWith('.onnx')) {
    if (options.engine === 'esmm-ts')
      throw new Error(
        `${path}: an .onnx file is scored by ONNX Runtime; serve the safetensors checkpoint for the esmm-ts engine`,
      );
    const bytes = new Uint8Array(await readFile(path));
    const metadata = readOnnxMetadata(bytes);
    if (!metadata.schema)
      throw new Error(`${path}: no schema in the model's metadata_props (not exported by esmm-ts?)`);
    const schema = JSON.parse(metadata.schema) as Schema;
    let ids: IdMap = IDENTITY_IDS;
    if (metadata.vocabulary) {
      const vocabulary = Vocabulary.fromJSON(JSON.parse(metadata.vocabulary));
      ids = vocabularyIds((t, raw) => vocabulary.encode(t, raw), OOV_ROW);
    }
    const engine = await OnnxRuntimeEngine.create(bytes, schema, { threads: options.threads });
    const { vocabulary: _omit, ...described } = metadata;
    void _omit;
    return { schema, ids, engine, metadata: { ...described, engine: engine.name }, ranking: rankingOf(metadata) };
  }
  const trained = await loadTrainedModel(path);
  const { method, config, vocabulary } = trained;
  const ids = vocabulary ? vocabularyIds((t, raw) => vocabulary.encode(t, raw), OOV_ROW) : IDENTITY_IDS;
  const engine =
    options.engine === 'onnxruntime'
      ? await OnnxRuntimeEngine.create(exportOnnx(method, onnxOptionsOf(trained)), method.schema, {
          threads: options.threads,
        })
      : new EagerEngine(method);
  const metadata: Record<string, string> = {
    method: method.method,
    base_model: config.base,
    vocabulary_sha256: vocabularyHash(trained.vocabularyJson),
    training_commit: config.commit ?? 'unknown',
    engine: engine.name,
    schema: JSON.stringify(method.schema),
  };
  return { schema: method.schema, ids, engine, metadata, ranking: { a: 1, b: 1 } };
}

/** The exportOnnx options that describe a trained model (vocabulary, commit). */
export function onnxOptionsOf(trained: TrainedModel): { vocabulary?: unknown; trainingCommit?: string } {
  return {
    ...(trained.vocabularyJson !== undefined ? { vocabulary: trained.vocabularyJson } : {}),
    ...(trained.config.commit ? { trainingCommit: trained.config.commit } : {}),
  };
}

/**
 * The commit of the esmm-ts code running now (`git rev-parse HEAD` in its own folder), recorded by
 * `esmm train` so that an export can name the code that trained it; undefined outside a git checkout.
 */
export function codeCommit(): string | undefined {
  try {
    const out = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: dirname(fileURLToPath(import.meta.url)),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    }).trim();
    return /^[0-9a-f]{40}$/.test(out) ? out : undefined;
  } catch {
    return undefined;
  }
}
