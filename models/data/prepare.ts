/**
 * `prepareAliCcp`: one streaming pass per split turns the raw Ali-CCP text files into Parquet
 * shards (joined, encoded rows: labels, user id and per field its embedding rows and values) plus
 * the train split's vocabulary as JSON, so later epochs and runs parse no text.
 *
 * Memory is bounded by one row group being written (`rowGroupRows` rows) and the reader's index
 * of the common file, whatever the size of the files.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parquetMetadataAsync, type SchemaElement } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { writeColumn } from 'hyparquet-writer/src/column.js';
import { appendFileSync, writeFileSync } from 'node:fs';
import type { Schema } from '../schema.js';
import { AliCcpReader, Vocabulary, aliCcpFiles, type AliCcpStats, type MalformedPolicy } from './aliccp.js';
import {
  ParquetSchemaError,
  asyncBufferFromFile,
  parquetFiles,
  type ColumnsSpec,
  type ParquetFieldSpec,
} from './parquet.js';
import { valueOf, type Row } from './rows.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** Format tag of a prepared folder's `prepared.json` and of its shards' metadata. */
export const PREPARED_FORMAT = 'esmm-ts/aliccp-parquet@1';
/** Rows per shard file by default. */
export const DEFAULT_SHARD_ROWS = 1_000_000;
/** Rows per row group by default: the unit of reading, shuffling and of the writer's memory. */
export const DEFAULT_ROW_GROUP_ROWS = 16_384;
/**
 * List values per row group at most, whatever `rowGroupRows` says: Ali-CCP rows carry about 1,000
 * history values each, and writing or decoding a group holds several bytes per value.
 */
export const MAX_ROW_GROUP_VALUES = 1 << 22;

/** Progress of {@link prepareAliCcp}, reported every row group. */
export interface PrepareProgress {
  split: 'train' | 'test';
  phase: 'vocabulary' | 'rows';
  rows: number;
  /** Bytes of the skeleton file read so far, and its size (for an ETA). */
  bytesRead: number;
  totalBytes: number;
  seconds: number;
}

/** Options of {@link prepareAliCcp}. */
export interface PrepareOptions {
  /** Folder of the raw files (`sample_skeleton_{train,test}.csv`, `common_features_{train,test}.csv`). */
  dir: string;
  /** Folder to write (created; files of an earlier preparation there are replaced). */
  out: string;
  /** Vocabulary threshold on the train split (default 1). */
  minCount?: number;
  onMalformed?: MalformedPolicy;
  /** Read at most this many rows per split. */
  limit?: number;
  shardRows?: number;
  rowGroupRows?: number;
  /** Splits to prepare (default both). */
  splits?: readonly ('train' | 'test')[];
  /** Called as the preparation advances, for a progress display. */
  onProgress?: (p: PrepareProgress) => void;
}

/** One prepared split. */
export interface PreparedSplit {
  /** Shard file names, relative to the prepared folder. */
  files: string[];
  rows: number;
  stats: AliCcpStats;
}

/** The content of `prepared.json`. */
export interface PreparedManifest {
  format: typeof PREPARED_FORMAT;
  schema: Schema;
  /** The spec that reads the shards (ids already encoded). */
  columns: ColumnsSpec;
  vocabulary: string;
  vocabularySha256: string;
  splits: Partial<Record<'train' | 'test', PreparedSplit>>;
}

const PREPARE_OPTIONS = new Set([
  'dir',
  'out',
  'minCount',
  'onMalformed',
  'limit',
  'shardRows',
  'rowGroupRows',
  'splits',
  'onProgress',
]);

/** Converts a folder of raw Ali-CCP files into Parquet shards + `vocabulary.json` + `prepared.json`. */
export async function prepareAliCcp(options: PrepareOptions): Promise<PreparedManifest> {
  requireNode('prepareAliCcp', [mkdir, writeFile, rename], INSTEAD.parquet);
  for (const k of Object.keys(options))
    if (!PREPARE_OPTIONS.has(k)) throw new Error(`prepareAliCcp: unknown option '${k}'`);
  const positive = (v: number | undefined, name: string, d: number): number => {
    const x = v ?? d;
    if (!(Number.isInteger(x) && x >= 1))
      throw new Error(`prepareAliCcp: ${name} must be a positive integer, got ${v}`);
    return x;
  };
  const shardRows = positive(options.shardRows, 'shardRows', DEFAULT_SHARD_ROWS);
  const groupRows = positive(options.rowGroupRows, 'rowGroupRows', DEFAULT_ROW_GROUP_ROWS);
  const minCount = positive(options.minCount, 'minCount', 1);
  const splits = options.splits ?? ['train', 'test'];
  const out = resolve(options.out);
  await mkdir(out, { recursive: true });
  const started = performance.now();
  const trainFiles = aliCcpFiles(options.dir, 'train');
  options.onProgress?.({
    split: 'train',
    phase: 'vocabulary',
    rows: 0,
    bytesRead: 0,
    totalBytes: (await stat(trainFiles.skeleton)).size,
    seconds: 0,
  });
  const vocabulary = await Vocabulary.build(trainFiles, { minCount, onMalformed: options.onMalformed });
  const vocabText = JSON.stringify(vocabulary.toJSON());
  const vocabularySha256 = createHash('sha256').update(vocabText).digest('hex');
  await writeAtomic(join(out, 'vocabulary.json'), vocabText);
  const manifest: PreparedManifest = {
    format: PREPARED_FORMAT,
    schema: { fields: [] },
    columns: { click: 'click', conversion: 'conversion', userId: 'user_id', fields: [] },
    vocabulary: 'vocabulary.json',
    vocabularySha256,
    splits: {},
  };
  for (const split of splits) {
    const files = aliCcpFiles(options.dir, split);
    const totalBytes = (await stat(files.skeleton)).size;
    const reader = new AliCcpReader(files, {
      encoder: vocabulary,
      onMalformed: options.onMalformed,
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
    });
    const schema = reader.schema;
    manifest.schema = schema;
    manifest.columns = preparedSpec(schema);
    const parquetSchema = parquetSchemaFor(schema);
    const scratch = new GroupScratch();
    const kv = [
      { key: 'esmm.format', value: PREPARED_FORMAT },
      { key: 'esmm.schema', value: JSON.stringify(schema) },
      { key: 'esmm.vocabulary_sha256', value: vocabularySha256 },
      { key: 'esmm.split', value: split },
    ];
    // Shards of an earlier run of this split go first, so none is mistaken for part of this one.
    for (const name of await parquetFiles(out).catch(() => [] as string[]))
      if (name.startsWith(join(out, `${split}-`))) await rm(name);
    const shardNames: string[] = [];
    let writer: ParquetWriter | null = null;
    let shardPath = '';
    let inShard = 0;
    let rows = 0;
    let pending: Row[] = [];
    const flushGroup = (): void => {
      if (pending.length === 0) return;
      if (!writer) {
        const name = `${split}-${String(shardNames.length).padStart(5, '0')}.parquet`;
        shardNames.push(name);
        shardPath = join(out, name);
        writer = new ParquetWriter({
          writer: fileWriter(`${shardPath}.tmp`),
          schema: parquetSchema,
          kvMetadata: kv,
          createdBy: 'esmm-ts prepareAliCcp',
        });
      }
      writeRowGroup(writer as ParquetWriter, parquetSchema, schema, pending, scratch);
      inShard += pending.length;
      pending = [];
    };
    const closeShard = async (): Promise<void> => {
      if (!writer) return;
      await (writer as ParquetWriter).finish();
      await rename(`${shardPath}.tmp`, shardPath);
      writer = null;
      inShard = 0;
    };
    const bags = schema.fields.filter((f) => f.kind === 'bag');
    let pendingValues = 0;
    for await (const row of reader.rows()) {
      pending.push(row);
      rows++;
      for (const f of bags) {
        const b = valueOf(row, f.name) as { ids: ArrayLike<number> } | undefined;
        if (b) pendingValues += b.ids.length * (f.weighted ? 2 : 1);
      }
      if (
        pending.length === groupRows ||
        pendingValues >= MAX_ROW_GROUP_VALUES ||
        inShard + pending.length === shardRows
      ) {
        pendingValues = 0;
        flushGroup();
        if (inShard >= shardRows) await closeShard();
        options.onProgress?.({
          split,
          phase: 'rows',
          rows,
          bytesRead: reader.stats.skeletonBytes,
          totalBytes,
          seconds: (performance.now() - started) / 1000,
        });
      }
    }
    flushGroup();
    await closeShard();
    options.onProgress?.({
      split,
      phase: 'rows',
      rows,
      bytesRead: totalBytes,
      totalBytes,
      seconds: (performance.now() - started) / 1000,
    });
    manifest.splits[split] = { files: shardNames, rows, stats: reader.stats };
  }
  // The manifest last: a folder without it (an interrupted run) is never read as prepared data.
  const prior = await readManifest(out).catch(() => null);
  for (const s of ['train', 'test'] as const)
    if (!manifest.splits[s] && prior?.splits[s] && prior.vocabularySha256 === vocabularySha256)
      manifest.splits[s] = prior.splits[s];
  await writeAtomic(join(out, 'prepared.json'), JSON.stringify(manifest, null, 2));
  return manifest;
}

/** Reads and checks `prepared.json` of a prepared folder. */
export async function readManifest(dir: string): Promise<PreparedManifest> {
  requireNode('readManifest', [readFile], INSTEAD.parquet);
  const path = join(dir, 'prepared.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(
      `${path}: not found; is ${dir} a folder written by esmm prepare (or give --columns for other Parquet)?`,
    );
  }
  let m: PreparedManifest;
  try {
    m = JSON.parse(text) as PreparedManifest;
  } catch (e) {
    throw new Error(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  if (m.format !== PREPARED_FORMAT)
    throw new Error(`${path}: format '${String(m.format)}', expected '${PREPARED_FORMAT}'`);
  return m;
}

/** A prepared folder, checked: the vocabulary matches the hash the shards were written with. */
export interface PreparedDataset {
  manifest: PreparedManifest;
  vocabulary: Vocabulary;
  files: Partial<Record<'train' | 'test', string[]>>;
}

/** Opens a folder written by {@link prepareAliCcp}. */
export async function openPrepared(dir: string): Promise<PreparedDataset> {
  requireNode('openPrepared', [readFile], INSTEAD.parquet);
  const manifest = await readManifest(dir);
  const vocabPath = join(dir, manifest.vocabulary);
  const text = await readFile(vocabPath, 'utf8').catch((e: Error) => {
    throw new Error(`${vocabPath}: cannot read: ${e.message}`);
  });
  const sha = createHash('sha256').update(text).digest('hex');
  if (sha !== manifest.vocabularySha256)
    throw new Error(
      `${vocabPath}: does not match the vocabulary the shards were written with (sha256 ${sha.slice(0, 12)}…, prepared.json says ${manifest.vocabularySha256.slice(0, 12)}…)`,
    );
  let vocabulary: Vocabulary;
  try {
    vocabulary = Vocabulary.fromJSON(JSON.parse(text));
  } catch (e) {
    throw new Error(`${vocabPath}: ${(e as Error).message}`);
  }
  const files: Partial<Record<'train' | 'test', string[]>> = {};
  for (const s of ['train', 'test'] as const) {
    const split = manifest.splits[s];
    if (!split) continue;
    files[s] = split.files.map((f) => resolve(join(dir, f)));
    for (const f of files[s]) {
      let hash: string | undefined;
      try {
        const md = await parquetMetadataAsync(await asyncBufferFromFile(f));
        hash = md.key_value_metadata?.find((kv) => kv.key === 'esmm.vocabulary_sha256')?.value;
      } catch (e) {
        throw new ParquetSchemaError(f, `not a readable Parquet file: ${(e as Error).message}`);
      }
      if (hash !== manifest.vocabularySha256)
        throw new ParquetSchemaError(
          f,
          `written with another vocabulary (sha256 ${String(hash).slice(0, 12)}…) than prepared.json's`,
        );
    }
  }
  return { manifest, vocabulary, files };
}

/** The spec reading prepared shards: ids are embedding rows already. */
function preparedSpec(schema: Schema): ColumnsSpec {
  const fields = schema.fields.map((f): ParquetFieldSpec => {
    if (f.kind === 'numeric')
      return { kind: 'numeric', name: f.name, group: f.group, ...(f.dim ? { dim: f.dim } : {}) };
    const common = {
      name: f.name,
      group: f.group,
      ids: { encoded: f.vocabSize },
      ...(f.table ? { table: f.table } : {}),
    };
    if (f.kind === 'categorical') return { kind: 'categorical', ...common, ...(f.isTarget ? { isTarget: true } : {}) };
    return {
      kind: 'bag',
      ...common,
      ...(f.weighted ? { values: `${f.name}_values` } : {}),
      ...(f.pooling && f.pooling !== 'sum' ? { pooling: f.pooling as 'mean' } : {}),
      ...(f.isSequence ? { isSequence: true } : {}),
    };
  });
  return { click: 'click', conversion: 'conversion', userId: 'user_id', fields };
}

function listElement(name: string, type: 'INT32' | 'FLOAT'): SchemaElement[] {
  return [
    { name, repetition_type: 'REQUIRED', converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    { name: 'element', type, repetition_type: 'REQUIRED' },
  ];
}

function parquetSchemaFor(schema: Schema): SchemaElement[] {
  const leaves: SchemaElement[][] = [
    [{ name: 'click', type: 'INT32', repetition_type: 'REQUIRED' }],
    [{ name: 'conversion', type: 'INT32', repetition_type: 'REQUIRED' }],
    [{ name: 'user_id', type: 'INT32', repetition_type: 'REQUIRED' }],
  ];
  for (const f of schema.fields) {
    if (f.kind === 'categorical') leaves.push([{ name: f.name, type: 'INT32', repetition_type: 'REQUIRED' }]);
    else if (f.kind === 'bag') {
      leaves.push(listElement(f.name, 'INT32'));
      if (f.weighted) leaves.push(listElement(`${f.name}_values`, 'FLOAT'));
    } else throw new Error(`prepareAliCcp: numeric field ${f.name} is not part of Ali-CCP`);
  }
  return [{ name: 'root', num_children: leaves.length }, ...leaves.flat()];
}

type ColumnEncoder = Parameters<typeof writeColumn>[0]['column'];
type PageData = Parameters<typeof writeColumn>[0]['pageData'];

/** Buffers reused from one row group to the next (a list column holds millions of values). */
class GroupScratch {
  values: (number | undefined)[] = [];
  definition = new Uint8Array(0);
  repetition = new Uint8Array(0);
  ensure(slots: number): void {
    if (this.definition.length < slots) {
      this.definition = new Uint8Array(Math.ceil(slots * 1.25));
      this.repetition = new Uint8Array(Math.ceil(slots * 1.25));
    }
    this.values.length = slots;
  }
}

/**
 * Writes one row group through hyparquet-writer's column writer, with the Dremel levels of the
 * list columns computed here from the rows' typed arrays. \`ParquetWriter.write\` takes lists as
 * arrays of JS arrays and walks every value recursively; on Ali-CCP rows (about 1,000 list values
 * each) that walk and the arrays it needs were two thirds of the time (profiled), and this path
 * writes the same bytes 3-4 times faster. Each list column chunk is one page: readers decode a
 * whole chunk anyway, and page splitting costs a size estimate per value.
 */
function writeRowGroup(
  writer: ParquetWriter,
  parquetSchema: SchemaElement[],
  schema: Schema,
  rows: readonly Row[],
  scratch: GroupScratch,
): void {
  const n = rows.length;
  const root = parquetSchema[0];
  const byName = new Map<string, number>();
  parquetSchema.forEach((e, i) => {
    if (i > 0 && (e.converted_type === 'LIST' || (e.type && e.name !== 'element'))) byName.set(e.name, i);
  });
  const columns: NonNullable<Parameters<ParquetWriter['row_groups']['push']>[0]>['columns'] = [];
  const encoder = (path: SchemaElement[], list: boolean): ColumnEncoder => ({
    columnName: path
      .slice(1)
      .map((e) => e.name)
      .join('.'),
    element: path[path.length - 1],
    schemaPath: path,
    codec: writer.codec,
    compressors: writer.compressors,
    // Min/max of list values help no reader of these files and cost a comparison per value.
    stats: !list && writer.statistics,
    statisticsTruncateLength: writer.statisticsTruncateLength,
    pageSize: list ? 0 : 1 << 20,
    columnIndex: false,
    offsetIndex: true,
  });
  const emit = (column: ColumnEncoder, pageData: PageData): void => {
    const result = writeColumn({ writer: writer.writer, column, pageData });
    columns.push(result.chunk);
    writer.pendingIndexes.push(result);
  };
  const flat = (name: string, data: Int32Array): void => {
    const path = [root, parquetSchema[byName.get(name) as number]];
    emit(encoder(path, false), { values: data, definitionLevels: [], repetitionLevels: [], maxDefinitionLevel: 0 });
  };
  type Bag = { ids: ArrayLike<number>; values?: ArrayLike<number> };
  const list = (name: string, field: string, pick: (b: Bag) => ArrayLike<number> | null): void => {
    const at = byName.get(name) as number;
    const path = [root, ...parquetSchema.slice(at, at + 3)];
    let slots = 0;
    const bags: (Bag | undefined)[] = new Array<Bag | undefined>(n);
    for (let r = 0; r < n; r++) {
      const b = valueOf(rows[r], field) as Bag | undefined;
      bags[r] = b;
      slots += Math.max(1, b ? b.ids.length : 0);
    }
    scratch.ensure(slots);
    const { values, definition, repetition } = scratch;
    let j = 0;
    for (let r = 0; r < n; r++) {
      const b = bags[r];
      const k = b ? b.ids.length : 0;
      if (k === 0) {
        // An empty list: one slot below the element's definition level.
        values[j] = undefined;
        definition[j] = 0;
        repetition[j++] = 0;
        continue;
      }
      const src = pick(b as Bag);
      for (let i = 0; i < k; i++) {
        values[j] = src ? src[i] : 1;
        definition[j] = 1;
        repetition[j++] = i === 0 ? 0 : 1;
      }
    }
    emit(encoder(path, true), {
      values,
      // The writer only indexes, measures and slices the levels: bytes serve as well as numbers.
      definitionLevels: definition.subarray(0, slots) as unknown as number[],
      repetitionLevels: repetition.subarray(0, slots) as unknown as number[],
      maxDefinitionLevel: 1,
    });
  };
  const click = new Int32Array(n);
  const conversion = new Int32Array(n);
  const user = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    click[r] = rows[r].click;
    conversion[r] = rows[r].conversion;
    user[r] = rows[r].userId ?? -1;
  }
  flat('click', click);
  flat('conversion', conversion);
  flat('user_id', user);
  for (const f of schema.fields) {
    if (f.kind === 'categorical') {
      const ids = new Int32Array(n);
      for (let r = 0; r < n; r++) ids[r] = (valueOf(rows[r], f.name) as number | undefined) ?? 0;
      flat(f.name, ids);
    } else if (f.kind === 'bag') {
      list(f.name, f.name, (b) => b.ids);
      if (f.weighted) list(`${f.name}_values`, f.name, (b) => b.values ?? null);
    }
  }
  let totalBytes = 0n;
  for (const c of columns) totalBytes += c.meta_data?.total_uncompressed_size ?? 0n;
  const first = columns[0]?.file_offset ?? 0n;
  writer.num_rows += BigInt(n);
  writer.row_groups.push({
    columns,
    total_byte_size: totalBytes,
    num_rows: BigInt(n),
    total_compressed_size: BigInt(writer.writer.offset) - first,
  });
}

/** A ByteWriter that appends to a file every MiB (hyparquet-writer's own is in its Node entry only). */
function fileWriter(path: string): ByteWriter {
  const writer = new ByteWriter();
  writeFileSync(path, new Uint8Array(0));
  const flush = (): void => {
    appendFileSync(path, new Uint8Array(writer.buffer, 0, writer.index));
    writer.index = 0;
  };
  const grow = writer.ensure.bind(writer);
  writer.ensure = (size: number): void => {
    if (writer.index > 1 << 20) flush();
    grow(size);
  };
  writer.finish = flush;
  return writer;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}
