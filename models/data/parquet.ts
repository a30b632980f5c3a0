/**
 * Training data from Parquet files: the column spec that maps a file's columns to labels and
 * feature fields, vocabularies built in one pass (or hashing), and a row-group reader that
 * validates every value and names file, row group, column and row when one is wrong.
 *
 * The same reader serves data prepared from Ali-CCP (`prepareAliCcp`, whose columns already hold
 * embedding rows) and users' own exports from Spark, DuckDB, BigQuery or pandas.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parquetMetadataAsync, parquetRead, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { Rng } from '../../core/random.js';
import type { BagField, CategoricalField, FieldGroup, FieldSpec, NumericField, Schema } from '../schema.js';
import type { BagValue, Row, RowValue } from './rows.js';
import { readFastColumn, type FlatColumn, type ListColumn } from './parquet-columns.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** How a field's raw values become embedding rows. */
export type IdMapping =
  /** The column holds embedding rows already (data written by `prepareAliCcp`), each below `vocabSize`. */
  | { encoded: number }
  /** A vocabulary of the train files, built by one pass: row 0 missing, 1 unknown, then kept values in order. */
  | 'vocabulary'
  /** `1 + hash(value) mod (buckets − 1)`: no pass needed, collisions possible. */
  | { hash: number };

/** A categorical field: one id (integer or string) per row; null means missing. */
export interface ParquetCategoricalSpec {
  kind: 'categorical';
  /** Field name in the model's schema. */
  name: string;
  /** Column holding the value (default: `name`). */
  column?: string;
  ids?: IdMapping;
  group?: FieldGroup;
  /** Embedding table shared with other fields (default: the field's own). */
  table?: string;
  isTarget?: boolean;
}

/** A bag field: a list of ids per row, optionally with a list of values of the same length. */
export interface ParquetBagSpec {
  kind: 'bag';
  name: string;
  column?: string;
  /** Column of per-id values (weights), a list as long as the ids' list of the row. */
  values?: string;
  ids?: IdMapping;
  group?: FieldGroup;
  table?: string;
  pooling?: 'sum' | 'mean';
  isSequence?: boolean;
}

/** A numeric field: a number per row, or a list of `dim` numbers. */
export interface ParquetNumericSpec {
  kind: 'numeric';
  name: string;
  column?: string;
  dim?: number;
  group?: FieldGroup;
}

/** One feature field of a {@link ColumnsSpec}. */
export type ParquetFieldSpec = ParquetCategoricalSpec | ParquetBagSpec | ParquetNumericSpec;

/** Maps a Parquet file's columns to the labels and feature fields of a model. */
export interface ColumnsSpec {
  /** Column of the click label (0/1 integers or booleans). */
  click: string;
  /** Column of the conversion label (0/1; 1 only where click is 1). */
  conversion: string;
  /** Column of a user id (integer), for GAUC. */
  userId?: string;
  fields: ParquetFieldSpec[];
  /** Vocabulary threshold: keep a value seen at least this often in the train files (default 1). */
  minCount?: number;
  /** Train files: a file or a folder of `*.parquet`, relative to the data folder (default `train`). */
  train?: string;
  /** Test files, likewise (default `test`). */
  test?: string;
}

/** A wrong value or column in a Parquet file, located as precisely as the problem allows. */
export class ParquetSchemaError extends Error {
  constructor(
    readonly file: string,
    detail: string,
    readonly rowGroup?: number,
    readonly column?: string,
    /** 0-based row within the file. */
    readonly row?: number,
  ) {
    const where = [
      rowGroup !== undefined ? `row group ${rowGroup}` : '',
      column !== undefined ? `column ${JSON.stringify(column)}` : '',
      row !== undefined ? `row ${row}` : '',
    ].filter(Boolean);
    super(`${file}${where.length ? ` (${where.join(', ')})` : ''}: ${detail}`);
    this.name = 'ParquetSchemaError';
  }
}

const SPEC_KEYS = new Set(['click', 'conversion', 'userId', 'fields', 'minCount', 'train', 'test']);
const FIELD_KEYS: Record<ParquetFieldSpec['kind'], Set<string>> = {
  categorical: new Set(['kind', 'name', 'column', 'ids', 'group', 'table', 'isTarget']),
  bag: new Set(['kind', 'name', 'column', 'values', 'ids', 'group', 'table', 'pooling', 'isSequence']),
  numeric: new Set(['kind', 'name', 'column', 'dim', 'group']),
};
const GROUPS: readonly FieldGroup[] = ['user', 'item', 'context', 'cross'];

/** Checks a parsed spec (e.g. `JSON.parse` of a spec file); `source` names it in errors. */
export function parseColumnsSpec(json: unknown, source = 'columns spec'): ColumnsSpec {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('expected a JSON object');
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!SPEC_KEYS.has(k)) fail(`unknown key "${k}"; keys: ${[...SPEC_KEYS].join(', ')}`);
  const str = (v: unknown, what: string): string =>
    typeof v === 'string' && v.length > 0 ? v : fail(`${what} must be a non-empty string`);
  const spec: ColumnsSpec = { click: str(o.click, 'click'), conversion: str(o.conversion, 'conversion'), fields: [] };
  if (o.userId !== undefined) spec.userId = str(o.userId, 'userId');
  if (o.train !== undefined) spec.train = str(o.train, 'train');
  if (o.test !== undefined) spec.test = str(o.test, 'test');
  if (o.minCount !== undefined) {
    if (!(Number.isInteger(o.minCount) && (o.minCount as number) >= 1)) fail('minCount must be an integer >= 1');
    spec.minCount = o.minCount as number;
  }
  if (!Array.isArray(o.fields) || o.fields.length === 0) fail('fields must be a non-empty list');
  const names = new Set<string>();
  (o.fields as unknown[]).forEach((f, i) => {
    const at = `fields[${i}]`;
    if (typeof f !== 'object' || f === null) fail(`${at} must be an object`);
    const r = f as Record<string, unknown>;
    const kind = r.kind as ParquetFieldSpec['kind'];
    if (!(kind in FIELD_KEYS)) fail(`${at}.kind must be categorical, bag or numeric, got ${JSON.stringify(r.kind)}`);
    for (const k of Object.keys(r)) if (!FIELD_KEYS[kind].has(k)) fail(`${at}: unknown key "${k}" for a ${kind} field`);
    const name = str(r.name, `${at}.name`);
    if (names.has(name)) fail(`${at}: field name "${name}" is used twice`);
    names.add(name);
    if (r.column !== undefined) str(r.column, `${at}.column`);
    if (r.group !== undefined && !GROUPS.includes(r.group as FieldGroup))
      fail(`${at}.group must be one of ${GROUPS.join(', ')}`);
    if (kind !== 'numeric') {
      const ids = r.ids;
      if (ids !== undefined && ids !== 'vocabulary') {
        const m = ids as Record<string, unknown>;
        const ok =
          typeof m === 'object' &&
          m !== null &&
          Object.keys(m).length === 1 &&
          ((Number.isInteger(m.hash) && (m.hash as number) >= 2) ||
            (Number.isInteger(m.encoded) && (m.encoded as number) >= 1));
        if (!ok) fail(`${at}.ids must be "vocabulary", {"hash": buckets >= 2} or {"encoded": vocabSize}`);
      }
      if (r.table !== undefined) str(r.table, `${at}.table`);
    }
    if (kind === 'bag') {
      if (r.values !== undefined) str(r.values, `${at}.values`);
      if (r.pooling !== undefined && r.pooling !== 'sum' && r.pooling !== 'mean')
        fail(`${at}.pooling must be sum or mean`);
    }
    if (kind === 'numeric' && r.dim !== undefined && !(Number.isInteger(r.dim) && (r.dim as number) >= 1))
      fail(`${at}.dim must be a positive integer`);
    spec.fields.push(r as unknown as ParquetFieldSpec);
  });
  return spec;
}

/** Table of a categorical or bag field. */
function tableOfSpec(f: ParquetCategoricalSpec | ParquetBagSpec): string {
  return f.table ?? f.name;
}

/**
 * Per-table vocabularies of raw Parquet values (integers or strings, as text keys): row 0 is
 * "missing", row 1 "unknown", then the kept values sorted, so the mapping does not depend on the
 * order the files were read in.
 */
export class ParquetVocabulary {
  private readonly maps = new Map<string, Map<string, number>>();

  constructor(
    /** Kept values per table, sorted. */
    readonly tables: Readonly<Record<string, readonly string[]>>,
  ) {
    for (const [t, keys] of Object.entries(tables)) this.maps.set(t, new Map(keys.map((k, i) => [k, i + 2])));
  }

  /** Rows of `table` (kept values + 2). */
  size(table: string): number {
    const m = this.maps.get(table);
    if (!m) throw new Error(`ParquetVocabulary: no table "${table}"`);
    return m.size + 2;
  }

  /** Row of a raw value's key in `table`, 1 when unknown. */
  encode(table: string, key: string): number {
    return this.maps.get(table)?.get(key) ?? 1;
  }

  /** The vocabulary as JSON: each table's keys, in the order they were read. */
  toJSON(): { version: 1; kind: 'parquet'; tables: Record<string, string[]> } {
    const tables: Record<string, string[]> = {};
    for (const [t, keys] of Object.entries(this.tables)) tables[t] = [...keys];
    return { version: 1, kind: 'parquet', tables };
  }

  /** Restores {@link toJSON}'s output, checking its shape and order (`source` names it in errors). */
  static fromJSON(json: unknown, source = 'vocabulary'): ParquetVocabulary {
    const o = json as { version?: unknown; kind?: unknown; tables?: unknown };
    if (typeof o !== 'object' || o === null || o.version !== 1 || o.kind !== 'parquet' || typeof o.tables !== 'object')
      throw new Error(`${source}: expected { version: 1, kind: "parquet", tables: { [table]: string[] } }`);
    const tables: Record<string, string[]> = {};
    for (const [t, keys] of Object.entries(o.tables as Record<string, unknown>)) {
      if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string'))
        throw new Error(`${source}: table "${t}" is not a list of strings`);
      for (let i = 1; i < keys.length; i++)
        if (!(compareKeys(keys[i - 1] as string, keys[i] as string) < 0))
          throw new Error(`${source}: table "${t}" is not sorted without repeats at entry ${i}`);
      tables[t] = keys as string[];
    }
    return new ParquetVocabulary(tables);
  }
}

/** Integers in numeric order, before strings in code-unit order: "2" < "10" < "a". */
function compareKeys(a: string, b: string): number {
  const na = INT_KEY.test(a);
  const nb = INT_KEY.test(b);
  if (na && nb) {
    const d = Number(a) - Number(b);
    if (d !== 0) return d;
  } else if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
const INT_KEY = /^-?\d{1,15}$/;

/**
 * A file as hyparquet's AsyncBuffer, read by position (hyparquet's own helper is in its Node entry
 * only, which a browser bundle of this package does not have).
 */
export async function asyncBufferFromFile(path: string): Promise<AsyncBuffer> {
  requireNode('asyncBufferFromFile', [open], INSTEAD.parquet);
  const { size } = await stat(path);
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      const fh = await open(path, 'r');
      try {
        const out = new ArrayBuffer(end - start);
        const { bytesRead } = await fh.read(new Uint8Array(out), 0, end - start, start);
        if (bytesRead < end - start) throw new Error(`${path}: file ends at ${start + bytesRead}, expected ${end}`);
        return out;
      } finally {
        await fh.close();
      }
    },
  };
}

/** The `*.parquet` files of a path (a file, or a folder's files in name order). */
export async function parquetFiles(path: string): Promise<string[]> {
  requireNode('parquetFiles', [readdir, stat], INSTEAD.parquet);
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new Error(`${path}: no such file or folder`);
  }
  if (!info.isDirectory()) return [resolve(path)];
  const names = (await readdir(path)).filter((n) => n.endsWith('.parquet')).sort();
  if (names.length === 0) throw new Error(`${path}: no .parquet files in this folder`);
  return names.map((n) => resolve(join(path, n)));
}

/** A column read from one row group: `get(r)` is row r's value (a list as an array); `list` the fast form of a list column. */
interface ColumnValues {
  get(r: number): unknown;
  list?: ListColumn;
  flat?: FlatColumn;
}

function columnOf(c: FlatColumn | ListColumn): ColumnValues {
  if (c.kind === 'list') {
    const { values, offsets } = c;
    return { get: (r) => Array.prototype.slice.call(values, offsets[r], offsets[r + 1]), list: c };
  }
  const { values, index } = c;
  return { get: index ? (r) => (index[r] < 0 ? null : values[index[r]]) : (r) => values[r], flat: c };
}

/** The values of a row group, column by column. */
interface RowGroupData {
  file: string;
  group: number;
  /** File row of the group's first row. */
  firstRow: number;
  rows: number;
  columns: Map<string, ColumnValues>;
}

interface OpenFile {
  path: string;
  metadata: FileMetaData;
  file: AsyncBuffer;
  /** First file row of each row group, and one past the last. */
  groupStarts: number[];
  columns: Set<string>;
}

async function openParquet(path: string): Promise<OpenFile> {
  let file;
  let metadata: FileMetaData;
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    throw new ParquetSchemaError(path, `not a readable Parquet file: ${(e as Error).message}`);
  }
  const groupStarts = [0];
  for (const g of metadata.row_groups) groupStarts.push(groupStarts[groupStarts.length - 1] + Number(g.num_rows));
  // Only top-level names count: nested list children are named "list"/"element".
  const top = new Set<string>();
  let i = 1;
  const skip = (): void => {
    const s = metadata.schema[i++];
    for (let c = 0; c < (s.num_children ?? 0); c++) skip();
  };
  while (i < metadata.schema.length) {
    top.add(metadata.schema[i].name);
    skip();
  }
  return { path, metadata, file, groupStarts, columns: top };
}

/**
 * The file as seen by one row group's columns: their bytes read in one go when they lie together
 * (a file of just these columns, as `prepareAliCcp` writes), rather than one open and read per column.
 */
async function groupBuffer(f: OpenFile, group: number, columns: readonly string[]): Promise<AsyncBuffer> {
  const wanted = new Set(columns);
  let start = Infinity;
  let end = 0;
  let bytes = 0;
  for (const c of f.metadata.row_groups[group].columns) {
    const meta = c.meta_data;
    if (!meta || !wanted.has(meta.path_in_schema[0])) continue;
    const a = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
    const b = a + Number(meta.total_compressed_size);
    start = Math.min(start, a);
    end = Math.max(end, b);
    bytes += b - a;
  }
  if (!(end > start) || end - start > 2 * bytes) return f.file;
  const base = start;
  const all = await f.file.slice(start, end);
  return {
    byteLength: f.file.byteLength,
    slice: (a: number, b = f.file.byteLength): ArrayBuffer | Promise<ArrayBuffer> =>
      a >= base && b <= base + all.byteLength ? all.slice(a - base, b - base) : f.file.slice(a, b),
  };
}

async function readGroup(f: OpenFile, group: number, columns: readonly string[]): Promise<RowGroupData> {
  const firstRow = f.groupStarts[group];
  const rows = f.groupStarts[group + 1] - firstRow;
  const out = new Map<string, ColumnValues>();
  const general: string[] = [];
  try {
    const file = await groupBuffer(f, group, columns);
    for (const c of columns) {
      const fast = await readFastColumn(file, f.metadata, group, c);
      if (fast) out.set(c, columnOf(fast));
      else general.push(c);
    }
    if (general.length > 0) {
      let data: unknown[][] = [];
      await parquetRead({
        file: f.file,
        metadata: f.metadata,
        columns: general,
        rowStart: firstRow,
        rowEnd: firstRow + rows,
        utf8: true,
        onComplete: (r: unknown[][]) => {
          data = r;
        },
      });
      if (data.length !== rows) throw new Error(`expected ${rows} rows, decoded ${data.length}`);
      general.forEach((c, k) => out.set(c, { get: (r) => data[r][k] }));
    }
  } catch (e) {
    throw new ParquetSchemaError(f.path, `cannot decode: ${(e as Error).message}`, group);
  }
  return { file: f.path, group, firstRow, rows, columns: out };
}

/** A field of the plan: its schema entry, columns and id mapping. */
interface PlannedField {
  spec: ParquetFieldSpec;
  column: string;
  values?: string;
  field: FieldSpec;
  mapping: IdMapping | null;
  table: string;
}

/**
 * A validated row group as flat typed arrays, field by field in the schema's order: a categorical
 * field's embedding rows in `ids[f]` (0 where missing); a bag's in `ids[f]`, row r's being
 * `offsets[f][r] .. offsets[f][r + 1]`, with per-id weights in `values[f]` for a weighted bag; a
 * numeric field's `rows × dim` numbers in `values[f]`. Batches are gathered from these arrays
 * directly, with no object per row.
 */
export interface GroupColumns {
  rows: number;
  click: Float32Array;
  conversion: Float32Array;
  userIds: Int32Array | null;
  ids: (Int32Array | null)[];
  offsets: (Int32Array | null)[];
  values: (Float32Array | null)[];
}

/** What {@link ParquetRowReader.rows} and {@link ParquetRowReader.groups} count. */
export interface ParquetReadStats {
  rows: number;
  rowGroups: number;
  files: number;
}

/** Options of {@link ParquetRowReader}. */
export interface ParquetRowReaderOptions {
  spec: ColumnsSpec;
  /** Required when a field's ids are `"vocabulary"` (see {@link buildParquetVocabulary}). */
  vocabulary?: ParquetVocabulary;
  /** Stop after this many rows. */
  limit?: number;
}

/** The schema a spec gives, with table sizes from its mappings and vocabulary. */
export function parquetSchemaOf(spec: ColumnsSpec, vocabulary?: ParquetVocabulary): Schema {
  return { fields: planFields(spec, vocabulary).map((p) => p.field) };
}

function planFields(spec: ColumnsSpec, vocabulary?: ParquetVocabulary): PlannedField[] {
  const sizes = new Map<string, number>();
  const planned = spec.fields.map((s): PlannedField => {
    const column = s.column ?? s.name;
    const group = s.group ?? 'item';
    if (s.kind === 'numeric') {
      const field: NumericField = { kind: 'numeric', name: s.name, group };
      if (s.dim !== undefined) field.dim = s.dim;
      return { spec: s, column, field, mapping: null, table: s.name };
    }
    const mapping = s.ids ?? 'vocabulary';
    const table = tableOfSpec(s);
    let vocabSize: number;
    if (mapping === 'vocabulary') {
      if (!vocabulary) throw new Error(`field "${s.name}" needs a vocabulary (ids: "vocabulary")`);
      vocabSize = vocabulary.size(table);
    } else vocabSize = 'hash' in mapping ? mapping.hash : mapping.encoded;
    const prior = sizes.get(table);
    if (prior !== undefined && prior !== vocabSize)
      throw new Error(`fields sharing table "${table}" disagree on its size (${prior} and ${vocabSize})`);
    sizes.set(table, vocabSize);
    let field: CategoricalField | BagField;
    if (s.kind === 'categorical') {
      field = { kind: 'categorical', name: s.name, vocabSize, group };
      if (s.isTarget) field.isTarget = true;
    } else {
      field = { kind: 'bag', name: s.name, vocabSize, group, pooling: s.pooling ?? 'sum' };
      if (s.values !== undefined) field.weighted = true;
      if (s.isSequence) field.isSequence = true;
    }
    if (s.table !== undefined) field.table = s.table;
    return { spec: s, column, values: s.kind === 'bag' ? s.values : undefined, field, mapping, table };
  });
  return planned;
}

/** Reads and validates rows of Parquet files through a {@link ColumnsSpec}. */
export class ParquetRowReader {
  readonly schema: Schema;
  stats: ParquetReadStats = { rows: 0, rowGroups: 0, files: 0 };
  private readonly plan: PlannedField[];
  private readonly columns: string[];
  private readonly opened = new Map<string, Promise<OpenFile>>();

  constructor(
    /** The files, in their default order. */
    readonly files: readonly string[],
    private readonly options: ParquetRowReaderOptions,
  ) {
    for (const k of Object.keys(options))
      if (!['spec', 'vocabulary', 'limit'].includes(k)) throw new Error(`ParquetRowReader: unknown option '${k}'`);
    if (files.length === 0) throw new Error('ParquetRowReader: no files');
    this.plan = planFields(options.spec, options.vocabulary);
    this.schema = { fields: this.plan.map((p) => p.field) };
    const cols = [options.spec.click, options.spec.conversion];
    if (options.spec.userId) cols.push(options.spec.userId);
    for (const p of this.plan) {
      cols.push(p.column);
      if (p.values) cols.push(p.values);
    }
    this.columns = [...new Set(cols)];
  }

  /** Every (file, row group) pair, in file order, or shuffled by `seed` (files, then groups within each). */
  async units(seed?: number): Promise<{ file: string; group: number }[]> {
    const rng = seed === undefined ? null : new Rng(seed);
    const files = [...this.files];
    if (rng) rng.shuffle(files);
    const out: { file: string; group: number }[] = [];
    for (const path of files) {
      const f = await this.open(path);
      const groups = f.metadata.row_groups.map((_, g) => g);
      if (rng) rng.shuffle(groups);
      for (const g of groups) out.push({ file: path, group: g });
    }
    return out;
  }

  /**
   * The validated row groups of the files, as flat typed columns (see {@link GroupColumns}): in
   * file order, or with the order of files and row groups shuffled by `seed`. A group past
   * `limit` is cut to the rows that remain.
   */
  async *groups(seed?: number): AsyncGenerator<GroupColumns> {
    const stats = (this.stats = { rows: 0, rowGroups: 0, files: this.files.length });
    const limit = this.options.limit ?? Infinity;
    for (const unit of await this.units(seed)) {
      if (stats.rows >= limit) return;
      const data = await readGroup(await this.open(unit.file), unit.group, this.columns);
      stats.rowGroups++;
      const columns = this.toColumns(data);
      columns.rows = Math.min(columns.rows, limit - stats.rows);
      stats.rows += columns.rows;
      yield columns;
    }
  }

  /** Rows of the files: in file order, or with the order of files and row groups shuffled by `seed`. */
  async *rows(seed?: number): AsyncGenerator<Row> {
    for await (const g of this.groups(seed)) {
      for (let r = 0; r < g.rows; r++) {
        const features = new Map<string, RowValue>();
        this.plan.forEach((p, f) => {
          const ids = g.ids[f];
          const values = g.values[f];
          const offsets = g.offsets[f];
          if (p.field.kind === 'categorical') {
            features.set(p.field.name, (ids as Int32Array)[r]);
          } else if (p.field.kind === 'bag') {
            const a = (offsets as Int32Array)[r];
            const b = (offsets as Int32Array)[r + 1];
            const bag: BagValue = { ids: (ids as Int32Array).slice(a, b) };
            if (values) bag.values = values.slice(a, b);
            features.set(p.field.name, bag);
          } else {
            const dim = p.field.dim ?? 1;
            features.set(
              p.field.name,
              dim === 1 ? (values as Float32Array)[r] : (values as Float32Array).slice(r * dim, (r + 1) * dim),
            );
          }
        });
        const row: Row = { features, click: g.click[r], conversion: g.conversion[r] };
        if (g.userIds) row.userId = g.userIds[r];
        yield row;
      }
    }
  }

  private open(path: string): Promise<OpenFile> {
    let p = this.opened.get(path);
    if (!p) {
      p = openParquet(path).then((f) => {
        for (const c of this.columns)
          if (!f.columns.has(c))
            throw new ParquetSchemaError(
              path,
              `missing column ${JSON.stringify(c)} (the file has ${[...f.columns].map((n) => JSON.stringify(n)).join(', ')})`,
            );
        return f;
      });
      this.opened.set(path, p);
    }
    return p;
  }

  /** Converts a row group into typed columns, checking every value. */
  private toColumns(data: RowGroupData): GroupColumns {
    const { spec } = this.options;
    const n = data.rows;
    const fail = (column: string, r: number, msg: string): never => {
      throw new ParquetSchemaError(data.file, msg, data.group, column, data.firstRow + r);
    };
    const click = data.columns.get(spec.click) as ColumnValues;
    const conversion = data.columns.get(spec.conversion) as ColumnValues;
    const user = spec.userId ? (data.columns.get(spec.userId) as ColumnValues) : null;
    const out: GroupColumns = {
      rows: n,
      click: new Float32Array(n),
      conversion: new Float32Array(n),
      userIds: user ? new Int32Array(n) : null,
      ids: [],
      offsets: [],
      values: [],
    };
    for (let r = 0; r < n; r++) {
      const c = label(click.get(r));
      if (c < 0) fail(spec.click, r, `click label must be 0 or 1 (or a boolean), got ${show(click.get(r))}`);
      const v = label(conversion.get(r));
      if (v < 0)
        fail(spec.conversion, r, `conversion label must be 0 or 1 (or a boolean), got ${show(conversion.get(r))}`);
      if (c === 0 && v === 1) fail(spec.conversion, r, 'a conversion without a click (click 0, conversion 1)');
      out.click[r] = c;
      out.conversion[r] = v;
      if (user) {
        const u = integer(user.get(r));
        if (u === null || u < -0x80000000 || u > 0x7fffffff)
          fail(spec.userId as string, r, `user id must be a 32-bit integer, got ${show(user.get(r))}`);
        (out.userIds as Int32Array)[r] = u as number;
      }
    }
    for (const p of this.plan) {
      const col = data.columns.get(p.column) as ColumnValues;
      const valuesCol = p.values ? (data.columns.get(p.values) as ColumnValues) : null;
      let ids: Int32Array | null = null;
      let offsets: Int32Array | null = null;
      let values: Float32Array | null = null;
      if (p.field.kind === 'bag' && col.list && (!valuesCol || valuesCol.list)) {
        [ids, offsets, values] = this.fastBag(p, col.list, valuesCol?.list ?? null, n, fail);
      } else if (p.field.kind === 'numeric') {
        const dim = p.field.dim ?? 1;
        values = new Float32Array(n * dim);
        for (let r = 0; r < n; r++) {
          const raw = col.get(r);
          if (dim === 1 && !Array.isArray(raw)) {
            const x = finite32(raw);
            if (x === null) fail(p.column, r, `numeric value must be a number finite in float32, got ${show(raw)}`);
            values[r] = x as number;
          } else {
            if (!Array.isArray(raw) || raw.length !== dim)
              fail(p.column, r, `numeric field "${p.field.name}" needs a list of ${dim} numbers, got ${show(raw)}`);
            for (let k = 0; k < dim; k++) {
              const x = finite32((raw as unknown[])[k]);
              if (x === null) fail(p.column, r, `element ${k} must be a number finite in float32, got ${show(raw)}`);
              values[r * dim + k] = x as number;
            }
          }
        }
      } else if (p.field.kind === 'categorical') {
        ids = this.categorical(p, col, n, fail);
      } else {
        // A bag through the general path: lists as arrays, two passes (lengths, then ids and values).
        const mapping = p.mapping as IdMapping;
        offsets = new Int32Array(n + 1);
        for (let r = 0; r < n; r++) {
          const raw = col.get(r);
          let len = 0;
          if (raw !== null && raw !== undefined) {
            if (!Array.isArray(raw)) fail(p.column, r, `bag field "${p.field.name}" needs a list, got ${show(raw)}`);
            len = (raw as unknown[]).length;
          }
          offsets[r + 1] = offsets[r] + len;
        }
        ids = new Int32Array(offsets[n]);
        if (valuesCol) values = new Float32Array(offsets[n]);
        for (let r = 0; r < n; r++) {
          const raw = col.get(r);
          if (raw === null || raw === undefined) continue; // an empty bag
          const list = raw as unknown[];
          const at = offsets[r];
          for (let k = 0; k < list.length; k++) {
            if (list[k] === null || list[k] === undefined) fail(p.column, r, `null id at list position ${k}`);
            ids[at + k] = this.mapId(p, mapping, list[k], r, fail);
          }
          if (valuesCol) {
            const vs = valuesCol.get(r);
            if (!Array.isArray(vs) || vs.length !== list.length)
              fail(p.values as string, r, `values must be a list as long as the ids (${list.length}), got ${show(vs)}`);
            for (let k = 0; k < list.length; k++) {
              const x = finite32((vs as unknown[])[k]);
              if (x === null) fail(p.values as string, r, `value at list position ${k} is not finite in float32`);
              (values as Float32Array)[at + k] = x as number;
            }
          }
        }
      }
      out.ids.push(ids);
      out.offsets.push(offsets);
      out.values.push(values);
    }
    return out;
  }

  /** A categorical column as embedding rows (0 where the value is missing). */
  private categorical(
    p: PlannedField,
    col: ColumnValues,
    n: number,
    fail: (column: string, r: number, msg: string) => never,
  ): Int32Array {
    const mapping = p.mapping as IdMapping;
    const flat = col.flat;
    if (
      flat &&
      flat.index === null &&
      flat.values instanceof Int32Array &&
      mapping !== 'vocabulary' &&
      'encoded' in mapping
    ) {
      // Encoded ids with no nulls: one scan checks the range, and the decoded array is the column.
      const src = flat.values;
      let bad = 0;
      for (let r = 0; r < n; r++) bad |= src[r] | (mapping.encoded - 1 - src[r]);
      if (bad >= 0) return src;
    }
    const ids = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const raw = col.get(r);
      if (raw === null || raw === undefined) continue; // missing: row 0
      if (Array.isArray(raw)) fail(p.column, r, `categorical field "${p.field.name}" got a list`);
      ids[r] = this.mapId(p, mapping, raw, r, fail);
    }
    return ids;
  }

  /** A bag from the flat form of list columns: the decoded arrays themselves when every value checks out. */
  private fastBag(
    p: PlannedField,
    ids: ListColumn,
    values: ListColumn | null,
    n: number,
    fail: (column: string, r: number, msg: string) => never,
  ): [Int32Array, Int32Array, Float32Array | null] {
    const mapping = p.mapping as IdMapping;
    const encoded = mapping !== 'vocabulary' && 'encoded' in mapping ? mapping.encoded : -1;
    const src = ids.values;
    const typed = src instanceof Int32Array;
    if (ids.nullElementRow >= 0 && ids.nullElementRow < n) fail(p.column, ids.nullElementRow, 'null id in the list');
    const base = ids.offsets[0];
    const total = ids.offsets[n] - base;
    let outIds: Int32Array;
    if (encoded >= 0 && typed) {
      const col = src as Int32Array;
      let bad = 0;
      for (let k = base, end = base + total; k < end; k++) bad |= col[k] | (encoded - 1 - col[k]);
      if (bad < 0)
        for (let r = 0; r < n; r++)
          for (let k = ids.offsets[r]; k < ids.offsets[r + 1]; k++)
            if (col[k] < 0 || col[k] >= encoded)
              fail(
                p.column,
                r,
                `id must be an integer in [0, ${encoded}), got ${col[k]} at list position ${k - ids.offsets[r]}`,
              );
      outIds = col;
    } else {
      outIds = new Int32Array(ids.offsets[n]);
      for (let r = 0; r < n; r++)
        for (let k = ids.offsets[r]; k < ids.offsets[r + 1]; k++) outIds[k] = this.mapId(p, mapping, src[k], r, fail);
    }
    if (!values) return [outIds, ids.offsets, null];
    if (values.nullElementRow >= 0 && values.nullElementRow < n)
      fail(p.values as string, values.nullElementRow, 'null value in the list');
    for (let r = 0; r < n; r++) {
      const a = ids.offsets[r + 1] - ids.offsets[r];
      const b = values.offsets[r + 1] - values.offsets[r];
      if (a !== b) fail(p.values as string, r, `values must be a list as long as the ids (${a}), got ${b} values`);
    }
    const vsrc = values.values;
    // Equal lengths row by row: both lists share the ids' offsets.
    let outValues: Float32Array;
    if (vsrc instanceof Float32Array) {
      let acc = 0;
      for (let k = base, end = base + total; k < end; k++) acc += vsrc[k] * 0;
      outValues = vsrc;
      if (acc !== 0) outValues = new Float32Array(0); // NaN or ±Infinity somewhere: found row by row below
    } else outValues = new Float32Array(0);
    if (outValues.length === 0 && total > 0) {
      outValues = new Float32Array(ids.offsets[n]);
      for (let r = 0; r < n; r++) {
        const a = ids.offsets[r];
        const va = values.offsets[r];
        for (let k = 0; k < ids.offsets[r + 1] - a; k++) {
          const x = finite32((vsrc as ArrayLike<unknown>)[va + k]);
          if (x === null || !Number.isFinite(Math.fround(x)))
            fail(p.values as string, r, `value at list position ${k} is not finite in float32`);
          outValues[a + k] = x as number;
        }
      }
    }
    return [outIds, ids.offsets, outValues];
  }
  private mapId(
    p: PlannedField,
    mapping: IdMapping,
    x: unknown,
    r: number,
    fail: (column: string, r: number, msg: string) => never,
  ): number {
    if (mapping !== 'vocabulary' && 'encoded' in mapping) {
      const id = integer(x);
      if (id === null || id < 0 || id >= mapping.encoded)
        fail(p.column, r, `id must be an integer in [0, ${mapping.encoded}), got ${show(x)}`);
      return id as number;
    }
    const key = keyOf(x);
    if (key === null) fail(p.column, r, `value must be an integer or a string, got ${show(x)}`);
    return mapping === 'vocabulary'
      ? (this.options.vocabulary as ParquetVocabulary).encode(p.table, key as string)
      : 1 + (hashKey(key as string) % (mapping.hash - 1));
  }
}

/**
 * One pass over `files` counting every value of the fields whose ids are `"vocabulary"`; values
 * seen at least `spec.minCount` times (in any field of their table) are kept.
 */
export async function buildParquetVocabulary(files: readonly string[], spec: ColumnsSpec): Promise<ParquetVocabulary> {
  requireNode('buildParquetVocabulary', [open], INSTEAD.parquet);
  const counted = spec.fields.filter(
    (f): f is ParquetCategoricalSpec | ParquetBagSpec =>
      f.kind !== 'numeric' && (f.ids ?? 'vocabulary') === 'vocabulary',
  );
  const counts = new Map<string, Map<string, number>>();
  for (const f of counted) if (!counts.has(tableOfSpec(f))) counts.set(tableOfSpec(f), new Map());
  for (const path of files) {
    const f = await openParquet(path);
    const columns = [...new Set(counted.map((s) => s.column ?? s.name))];
    for (const c of columns)
      if (!f.columns.has(c)) throw new ParquetSchemaError(path, `missing column ${JSON.stringify(c)}`);
    for (let g = 0; g < f.metadata.row_groups.length; g++) {
      const data = await readGroup(f, g, columns);
      for (const s of counted) {
        const column = s.column ?? s.name;
        const m = counts.get(tableOfSpec(s)) as Map<string, number>;
        const col = data.columns.get(column) as ColumnValues;
        const add = (x: unknown, r: number): void => {
          if (x === null || x === undefined) return;
          const key = keyOf(x);
          if (key === null)
            throw new ParquetSchemaError(
              path,
              `value must be an integer or a string, got ${show(x)}`,
              g,
              column,
              data.firstRow + r,
            );
          m.set(key, (m.get(key) ?? 0) + 1);
        };
        for (let r = 0; r < data.rows; r++) {
          const v = col.get(r);
          if (Array.isArray(v)) for (const x of v) add(x, r);
          else add(v, r);
        }
      }
    }
  }
  const min = spec.minCount ?? 1;
  const tables: Record<string, string[]> = {};
  for (const [t, m] of counts)
    tables[t] = [...m]
      .filter(([, n]) => n >= min)
      .map(([k]) => k)
      .sort(compareKeys);
  return new ParquetVocabulary(tables);
}

function label(x: unknown): number {
  if (x === 0 || x === 0n || x === false) return 0;
  if (x === 1 || x === 1n || x === true) return 1;
  return -1;
}

function integer(x: unknown): number | null {
  if (typeof x === 'number') return Number.isSafeInteger(x) ? x : null;
  if (typeof x === 'bigint')
    return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : null;
  return null;
}

function finite32(x: unknown): number | null {
  const v = typeof x === 'bigint' ? Number(x) : x;
  return typeof v === 'number' && Number.isFinite(Math.fround(v)) ? v : null;
}

/** The vocabulary key of a raw value: integers as decimal text, strings as they are. */
function keyOf(x: unknown): string | null {
  if (typeof x === 'string') return x;
  const i = integer(x);
  return i === null ? null : String(i);
}

function show(x: unknown): string {
  if (typeof x === 'bigint') return `${x}n`;
  if (x === undefined) return 'undefined';
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

/** FNV-1a over the key's code units: the same key hashes alike in every field of a table. */
function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}
