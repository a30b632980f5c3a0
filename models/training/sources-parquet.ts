/**
 * Batch sources for the {@link Trainer} from Parquet: folders written by `prepareAliCcp` and
 * users' own files read through a column spec. Reading, validation, shuffling and collation run
 * in a worker thread that keeps the next batches ready while a step runs.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  ParquetVocabulary,
  buildParquetVocabulary,
  parquetFiles,
  parquetSchemaOf,
  parseColumnsSpec,
  type ColumnsSpec,
} from '../data/parquet.js';
import { ParquetStream, batchBuffers, type ParquetStreamConfig } from '../data/parquet-stream.js';
import type { WorkerReply, WorkerRequest } from '../data/parquet-worker.js';
import { openPrepared } from '../data/prepare.js';
import { DEFAULT_SHUFFLE_BUFFER, type BatchWithExtras } from '../data/rows.js';
import type { Batch, Schema } from '../schema.js';
import type { BatchSource } from './trainer.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** Options of {@link parquetSource}. */
export interface ParquetSourceOptions {
  files: string[];
  spec: ColumnsSpec;
  /** Needed when a field's ids are `"vocabulary"`. */
  vocabulary?: ParquetVocabulary;
  limit?: number;
  batchSize: number;
  /** Shuffle each epoch: the order of files and row groups, and rows through the shuffle buffer (default false). */
  shuffle?: boolean;
  /** Shuffle-buffer rows when shuffling (default {@link DEFAULT_SHUFFLE_BUFFER}). */
  shuffleBuffer?: number;
  seed?: number;
  dropLast?: boolean;
  /** Rows per epoch, for the progress bar. */
  rows?: number;
  /**
   * Run in a worker thread: `true`, `false`, a URL of the worker module (a bundle, say), or
   * `'auto'` (default): a worker when the compiled worker module is there, else in this thread.
   */
  worker?: boolean | 'auto' | URL;
  /** Batches the worker keeps ready (default 4). */
  prefetch?: number;
}

/** A {@link BatchSource} over Parquet files; `close()` ends its worker. */
export interface ParquetBatchSource extends BatchSource {
  readonly schema: Schema;
  /** Whether batches come from a worker thread. */
  readonly usesWorker: boolean;
  batches(epoch: number): AsyncIterable<BatchWithExtras>;
  /**
   * Hands a batch back once nothing reads it any more (the {@link Trainer} does after each step):
   * its buffers are reused for a later batch instead of fresh memory. The batch must not be read
   * afterwards; batches never handed back are simply the caller's.
   */
  recycle(batch: Batch): void;
  /** Ends the decoding worker; the source cannot be read afterwards. */
  close(): Promise<void>;
}

const SOURCE_OPTIONS = new Set([
  'files',
  'spec',
  'vocabulary',
  'limit',
  'batchSize',
  'shuffle',
  'shuffleBuffer',
  'seed',
  'dropLast',
  'rows',
  'worker',
  'prefetch',
]);

function defaultWorkerUrl(): URL | null {
  // From the TypeScript sources (tests) there is no compiled worker to start: read in this thread.
  if (!import.meta.url.endsWith('.js')) return null;
  const url = new URL('../data/parquet-worker.js', import.meta.url);
  return existsSync(fileURLToPath(url)) ? url : null;
}

/** Batches from Parquet files, prepared by a worker thread while the trainer steps. */
export function parquetSource(options: ParquetSourceOptions): ParquetBatchSource {
  requireNode('parquetSource', [readFile, Worker], INSTEAD.parquet);
  for (const k of Object.keys(options))
    if (!SOURCE_OPTIONS.has(k)) throw new Error(`parquetSource: unknown option '${k}'`);
  if (!Number.isInteger(options.batchSize) || options.batchSize <= 0)
    throw new Error(`parquetSource: batchSize must be a positive integer, got ${options.batchSize}`);
  const prefetch = options.prefetch ?? 4;
  if (!(Number.isInteger(prefetch) && prefetch >= 1))
    throw new Error(`parquetSource: prefetch must be a positive integer, got ${prefetch}`);
  const shuffle = options.shuffle ?? false;
  const config: ParquetStreamConfig = {
    files: options.files,
    spec: options.spec,
    ...(options.vocabulary ? { vocabulary: options.vocabulary.toJSON() } : {}),
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
    batchSize: options.batchSize,
    shuffleBuffer: shuffle ? (options.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER) : 0,
    shuffleOrder: shuffle,
    seed: options.seed ?? 0,
    dropLast: options.dropLast ?? false,
  };
  const schema = parquetSchemaOf(options.spec, options.vocabulary);
  const want = options.worker ?? 'auto';
  const url = want instanceof URL ? want : want === false ? null : defaultWorkerUrl();
  if (want === true && !url)
    throw new Error('parquetSource: no compiled worker module next to this one; pass worker: URL or false');
  if (!url) {
    let stream: ParquetStream | null = null;
    return {
      schema,
      usesWorker: false,
      rows: options.rows,
      batches: (epoch) => (stream ??= new ParquetStream(config)).batches(epoch),
      recycle: (batch) => stream?.recycle(batch as BatchWithExtras),
      close: async () => {},
    };
  }
  return new WorkerSource(url, config, schema, prefetch, options.rows);
}

class WorkerSource implements ParquetBatchSource {
  readonly usesWorker = true;
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: WorkerReply) => void>();
  private failure: Error | null = null;

  constructor(
    private readonly url: URL,
    private readonly config: ParquetStreamConfig,
    readonly schema: Schema,
    private readonly prefetch: number,
    readonly rows: number | undefined,
  ) {}

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.url, { workerData: { kind: 'esmm-parquet', config: this.config } });
    w.on('message', (r: WorkerReply) => {
      const resolve = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      resolve?.(r);
    });
    const die = (e: Error): void => {
      this.failure = e;
      this.worker = null;
      for (const [id, resolve] of this.waiting) resolve({ type: 'error', id, name: e.name, message: e.message });
      this.waiting.clear();
    };
    w.on('error', die);
    w.on('exit', (code) => {
      if (this.worker === w) die(new Error(`Parquet worker exited with code ${code}`));
    });
    // After the listeners, which ref the worker again: an idle worker never keeps the process alive.
    w.unref();
    this.worker = w;
    return w;
  }

  private request(msg: Extract<WorkerRequest, { id: number }>): Promise<WorkerReply> {
    const w = this.start();
    return new Promise((resolve) => {
      this.waiting.set(msg.id, resolve);
      w.postMessage(msg);
    });
  }

  async *batches(epoch: number): AsyncGenerator<BatchWithExtras> {
    if (this.failure) throw this.failure;
    const w = this.start();
    w.postMessage({ type: 'start', id: this.nextId++, epoch } satisfies WorkerRequest);
    const queue: Promise<WorkerReply>[] = [];
    const ask = (): void => {
      queue.push(this.request({ type: 'next', id: this.nextId++ }));
    };
    // Referenced while an epoch runs (the trainer awaits its replies), not when idle between runs.
    w.ref();
    try {
      for (let i = 0; i < this.prefetch; i++) ask();
      for (;;) {
        const reply = await (queue.shift() as Promise<WorkerReply>);
        if (reply.type === 'error') {
          const e = new Error(reply.message);
          e.name = reply.name;
          throw e;
        }
        if (reply.type === 'end') return;
        ask();
        yield reply.batch;
      }
    } finally {
      w.unref();
    }
  }

  recycle(batch: Batch): void {
    const b = batch as BatchWithExtras;
    if (!this.worker || !b.extras) return;
    const msg: WorkerRequest = { type: 'recycle', batch: b };
    this.worker.postMessage(msg, batchBuffers(b));
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}

/** Options of {@link preparedSources} and {@link userParquetSources}. */
export interface ParquetSourcesOptions {
  batchSize: number;
  /** Shuffle-buffer rows of the train source (default {@link DEFAULT_SHUFFLE_BUFFER}). */
  shuffleBuffer?: number;
  seed?: number;
  limit?: number;
  worker?: ParquetSourceOptions['worker'];
  /** Batch size of the test source (default 4096). */
  testBatchSize?: number;
}

/** Train and test sources of a folder written by `prepareAliCcp` / `esmm prepare`. */
export async function preparedSources(
  dir: string,
  options: ParquetSourcesOptions,
): Promise<{ schema: Schema; train: ParquetBatchSource; test: ParquetBatchSource }> {
  requireNode('preparedSources', [readFile], INSTEAD.parquet);
  const prepared = await openPrepared(dir);
  const { manifest, files } = prepared;
  if (!files.train || !files.test) throw new Error(`${dir}: prepared.json lacks the train or the test split`);
  const rowsOf = (s: 'train' | 'test'): number => Math.min(manifest.splits[s]?.rows ?? 0, options.limit ?? Infinity);
  const common = { spec: manifest.columns, ...(options.limit !== undefined ? { limit: options.limit } : {}) };
  const train = parquetSource({
    ...common,
    files: files.train,
    batchSize: options.batchSize,
    shuffle: true,
    shuffleBuffer: options.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER,
    seed: options.seed ?? 0,
    rows: rowsOf('train'),
    ...(options.worker !== undefined ? { worker: options.worker } : {}),
  });
  const test = parquetSource({
    ...common,
    files: files.test,
    batchSize: options.testBatchSize ?? 4096,
    rows: rowsOf('test'),
    ...(options.worker !== undefined ? { worker: options.worker } : {}),
  });
  return { schema: train.schema, train, test };
}

/** Reads and checks a column spec file. */
export async function readColumnsSpec(path: string): Promise<ColumnsSpec> {
  requireNode('readColumnsSpec', [readFile], INSTEAD.parquet);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return parseColumnsSpec(json, path);
}

/**
 * Train and test sources of users' own Parquet files under `dir` (`spec.train` and `spec.test`,
 * `train/` and `test/` by default). A vocabulary is built by one pass over the train files when
 * a field needs one and none is given; it is returned so it can be saved beside the model.
 */
export async function userParquetSources(
  dir: string,
  spec: ColumnsSpec,
  options: ParquetSourcesOptions & { vocabulary?: ParquetVocabulary },
): Promise<{ schema: Schema; train: ParquetBatchSource; test: ParquetBatchSource; vocabulary?: ParquetVocabulary }> {
  requireNode('userParquetSources', [readFile], INSTEAD.parquet);
  const trainFiles = await parquetFiles(join(dir, spec.train ?? 'train'));
  const testFiles = await parquetFiles(join(dir, spec.test ?? 'test'));
  const needsVocabulary = spec.fields.some((f) => f.kind !== 'numeric' && (f.ids ?? 'vocabulary') === 'vocabulary');
  const vocabulary = needsVocabulary
    ? (options.vocabulary ?? (await buildParquetVocabulary(trainFiles, spec)))
    : undefined;
  const common = {
    spec,
    ...(vocabulary ? { vocabulary } : {}),
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
    ...(options.worker !== undefined ? { worker: options.worker } : {}),
  };
  const train = parquetSource({
    ...common,
    files: trainFiles,
    batchSize: options.batchSize,
    shuffle: true,
    shuffleBuffer: options.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER,
    seed: options.seed ?? 0,
  });
  const test = parquetSource({ ...common, files: testFiles, batchSize: options.testBatchSize ?? 4096 });
  return { schema: train.schema, train, test, ...(vocabulary ? { vocabulary } : {}) };
}

/** Parquet data as the CLI and `runTable2` name it: a prepared folder, or users' files with a column spec. */
export interface ParquetDataSpec {
  /** A folder written by `esmm prepare`, or (with `columns`) the folder of users' train/test files. */
  dir: string;
  /** A column spec, or the path of its JSON file; absent for a prepared folder. */
  columns?: string | ColumnsSpec;
  limit?: number;
  shuffleBuffer?: number;
}

/** Opens {@link ParquetDataSpec} data: train and test sources, and a vocabulary when one was built. */
export async function openParquetData(
  data: ParquetDataSpec,
  options: {
    batchSize: number;
    seed?: number;
    vocabulary?: ParquetVocabulary;
    worker?: ParquetSourceOptions['worker'];
  },
): Promise<{
  schema: Schema;
  train: ParquetBatchSource;
  test: ParquetBatchSource;
  vocabulary?: ParquetVocabulary;
  description: string;
}> {
  const common = {
    batchSize: options.batchSize,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(data.limit !== undefined ? { limit: data.limit } : {}),
    ...(data.shuffleBuffer !== undefined ? { shuffleBuffer: data.shuffleBuffer } : {}),
    ...(options.worker !== undefined ? { worker: options.worker } : {}),
  };
  if (data.columns === undefined) {
    requireNode('openParquetData', [readFile], INSTEAD.parquet);
    const s = await preparedSources(data.dir, common);
    return { ...s, description: `Ali-CCP prepared as Parquet in ${data.dir}` };
  }
  const spec = typeof data.columns === 'string' ? await readColumnsSpec(data.columns) : data.columns;
  const s = await userParquetSources(data.dir, spec, {
    ...common,
    ...(options.vocabulary ? { vocabulary: options.vocabulary } : {}),
  });
  return { ...s, description: `Parquet files in ${data.dir} (${spec.fields.length} fields)` };
}
