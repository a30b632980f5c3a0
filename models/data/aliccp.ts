/**
 * A streaming reader of the raw Ali-CCP files.
 *
 * The skeleton file (one line per impression) is joined with the
 * common-features file (one line per user session) by key, in any order of
 * either file: one pass over the common file builds a compact
 * {@link CommonIndex} (key → byte offset and line; 16 bytes a
 * session), then the skeleton is streamed and each row's session is read by
 * position, parsed once per run of consecutive rows of a key and kept in a
 * small cache. Neither file is ever held in memory.
 *
 * A row's session fields are not copied per impression: they travel in
 * {@link Row.shared} (typed arrays, read-only) and `collate` copies them into
 * each batch with one `set` per bag.
 *
 * Every id of a multi-valued field is kept with its value (the behaviour
 * count), raw feature ids are mapped to embedding rows by a {@link Vocabulary}
 * built in one pass or by a {@link HashEncoder}, and rows with click = 0 and
 * conversion = 1 are dropped and counted.
 */
import { join } from 'node:path';
import { CommonIndex, CommonIndexError, CommonLineReader } from './common-index.js';
import { LineReader, LineTooLongError, checkLineReaderOptions, type LineReaderOptions } from './lines.js';
import {
  ALICCP_FIELDS,
  FeatureListError,
  aliCcpSchema,
  fieldCode,
  scanFeatureList,
  splitCommonLine,
  splitSkeletonLine,
  type AliCcpFieldInfo,
} from './aliccp-format.js';
import {
  batchRows,
  type BatchWithExtras,
  type BatchingOptions,
  type BagValue,
  type Row,
  type RowValue,
} from './rows.js';
import type { Schema } from '../schema.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** Paths of one split's two files. */
export interface AliCcpFiles {
  skeleton: string;
  common: string;
}

/** The standard file names of a split inside a directory. */
export function aliCcpFiles(dir: string, split: 'train' | 'test'): AliCcpFiles {
  requireNode('aliCcpFiles', [join], INSTEAD.data);
  return { skeleton: join(dir, `sample_skeleton_${split}.csv`), common: join(dir, `common_features_${split}.csv`) };
}

/** A malformed or inconsistent line, located by file and 1-based line number. */
export class AliCcpFormatError extends Error {
  constructor(
    /** File holding the line. */
    readonly file: string,
    /** 1-based line number. */
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'AliCcpFormatError';
  }
}

/** What to do with a malformed line: throw (default) or skip it and count it. */
export type MalformedPolicy = 'error' | 'skip';

/** Maps a raw feature id of a table to an embedding row. */
export interface IdEncoder {
  /** Rows of every table (including the reserved ones). */
  readonly tableSizes: Readonly<Record<string, number>>;
  /** Row of `rawId` in `table`; never {@link MISSING_ROW}. */
  encode(table: string, rawId: number): number;
}

/** Embedding row of ids that a vocabulary does not know. */
export const OOV_ROW = 1;

/** Options of {@link Vocabulary.build}. */
export interface VocabularyOptions {
  /** Keep an id seen at least this often in some field of its table; a number or per field id (default 1). */
  minCount?: number | Readonly<Record<string, number>>;
  fields?: readonly AliCcpFieldInfo[];
  onMalformed?: MalformedPolicy;
  lineReader?: LineReaderOptions;
}

/**
 * A per-table vocabulary: row 0 is "missing", row 1 out-of-vocabulary, then
 * the kept raw ids in ascending order (so the mapping does not depend on the
 * order the data was read in). Fields sharing a table share the vocabulary.
 */
export class Vocabulary implements IdEncoder {
  readonly tableSizes: Readonly<Record<string, number>>;
  private readonly maps: Map<string, Map<number, number>>;

  constructor(
    /** Kept raw ids per table, ascending. */
    readonly tables: Readonly<Record<string, readonly number[]>>,
  ) {
    this.maps = new Map();
    const sizes: Record<string, number> = {};
    for (const [table, ids] of Object.entries(tables)) {
      const m = new Map<number, number>();
      ids.forEach((raw, i) => m.set(raw, i + 2));
      this.maps.set(table, m);
      sizes[table] = ids.length + 2;
    }
    this.tableSizes = sizes;
  }

  /** Row of `rawId` in `table`, {@link OOV_ROW} when unknown. */
  encode(table: string, rawId: number): number {
    const m = this.maps.get(table);
    if (!m) throw new Error(`Vocabulary: no table "${table}"`);
    return m.get(rawId) ?? OOV_ROW;
  }

  /** Plain JSON form, for saving next to a checkpoint (the test split must reuse the train vocabulary). */
  toJSON(): { version: 1; tables: Record<string, number[]> } {
    const tables: Record<string, number[]> = {};
    for (const [t, ids] of Object.entries(this.tables)) tables[t] = [...ids];
    return { version: 1, tables };
  }

  /** Restores {@link toJSON}'s output, validating it. */
  static fromJSON(json: unknown): Vocabulary {
    const o = json as { version?: unknown; tables?: unknown };
    if (typeof o !== 'object' || o === null || o.version !== 1 || typeof o.tables !== 'object' || o.tables === null) {
      throw new Error('Vocabulary.fromJSON: expected { version: 1, tables: { [table]: number[] } }');
    }
    const tables: Record<string, number[]> = {};
    for (const [t, ids] of Object.entries(o.tables as Record<string, unknown>)) {
      if (!Array.isArray(ids) || !ids.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) {
        throw new Error(`Vocabulary.fromJSON: table "${t}" is not a list of non-negative integers`);
      }
      // Rows follow the order of the ids, so a reordered (or duplicated) list would silently remap every row.
      for (let i = 1; i < ids.length; i++) {
        if (!((ids[i] as number) > (ids[i - 1] as number)))
          throw new Error(
            `Vocabulary.fromJSON: table "${t}" is not in strictly ascending order at position ${i} (${ids[i - 1]}, ${ids[i]}); the file was altered`,
          );
      }
      tables[t] = ids as number[];
    }
    return new Vocabulary(tables);
  }

  /**
   * Builds the vocabulary in one pass over each file (no join), counting the
   * occurrences of an id: per impression for skeleton fields, per session for
   * common fields. Inconsistent rows (click 0, conversion 1) of
   * the skeleton are not counted.
   */
  static async build(files: AliCcpFiles, options: VocabularyOptions = {}): Promise<Vocabulary> {
    requireNode('Vocabulary.build', [join], INSTEAD.data);
    const fields = options.fields ?? ALICCP_FIELDS;
    const byId = new Map(fields.map((f) => [f.id, f]));
    const counts = new Map<string, Map<number, number>>();
    for (const f of fields) counts.set(f.id, new Map());
    const policy = options.onMalformed ?? 'error';
    // Occurrences, not distinct rows: an id repeated within one line is rare and the threshold only needs a rough frequency.
    const countsByCode = new Map<number, Map<number, number>>();
    for (const f of fields) countsByCode.set(fieldCode(f.id), counts.get(f.id) as Map<number, number>);
    // Entries of a line are held until the whole line has parsed, so a skipped malformed line leaves no trace.
    const codes: number[] = [];
    const ids: number[] = [];
    const visit = (code: number, id: number): void => {
      codes.push(code);
      ids.push(id);
    };
    const commit = (): void => {
      for (let i = 0; i < ids.length; i++) {
        const m = countsByCode.get(codes[i]);
        if (m) m.set(ids[i], (m.get(ids[i]) ?? 0) + 1);
      }
    };
    for (const which of ['skeleton', 'common'] as const) {
      const path = files[which];
      const reader = new LineReader(path, options.lineReader);
      const next = (): Promise<string | null> => reader.read().catch((e: unknown) => Promise.reject(asFormatError(e)));
      try {
        for (let line = await next(); line !== null; line = await next()) {
          if (line.length === 0) continue;
          codes.length = 0;
          ids.length = 0;
          try {
            if (which === 'skeleton') {
              const s = splitSkeletonLine(line);
              if (!s) throw new Error('expected 6 comma-separated columns');
              checkLabel(s.click, 'click');
              checkLabel(s.conversion, 'conversion');
              if (s.click === '0' && s.conversion === '1') continue;
              scanFeatureList(s.featureList, visit);
            } else {
              const c = splitCommonLine(line);
              if (!c) throw new Error('expected 3 comma-separated columns');
              scanFeatureList(c.featureList, visit);
            }
          } catch (e) {
            if (policy === 'skip') continue;
            throw new AliCcpFormatError(path, reader.lineNo, describeError(e));
          }
          commit();
        }
      } finally {
        await reader.close();
      }
    }
    const threshold = (field: string): number => {
      const m = options.minCount;
      const t = m === undefined ? 1 : typeof m === 'number' ? m : (m[field] ?? 1);
      if (!(t >= 1)) throw new Error(`Vocabulary.build: minCount of field ${field} must be >= 1, got ${t}`);
      return t;
    };
    const kept = new Map<string, Set<number>>();
    for (const f of fields) if (!kept.has(f.table)) kept.set(f.table, new Set());
    for (const [field, m] of counts) {
      const info = byId.get(field) as AliCcpFieldInfo;
      const set = kept.get(info.table) as Set<number>;
      const t = threshold(field);
      for (const [raw, c] of m) if (c >= t) set.add(raw);
    }
    const tables: Record<string, number[]> = {};
    for (const [table, set] of kept) tables[table] = [...set].sort((a, b) => a - b);
    return new Vocabulary(tables);
  }
}

/**
 * Hashes raw ids into a fixed number of rows per table (row 0 stays
 * "missing"): no pass over the data is needed and unseen ids still get a row.
 */
export class HashEncoder implements IdEncoder {
  readonly tableSizes: Readonly<Record<string, number>>;

  constructor(
    /** Rows per table, the same for all tables or per table name (tables not named get `defaultBuckets`). */
    buckets: number | Readonly<Record<string, number>>,
    fields: readonly AliCcpFieldInfo[] = ALICCP_FIELDS,
    defaultBuckets = 100_000,
  ) {
    const sizes: Record<string, number> = {};
    for (const f of fields) {
      const b = typeof buckets === 'number' ? buckets : (buckets[f.table] ?? defaultBuckets);
      if (!Number.isInteger(b) || b < 2)
        throw new Error(`HashEncoder: table "${f.table}" needs at least 2 buckets, got ${b}`);
      sizes[f.table] = b;
    }
    this.tableSizes = sizes;
  }

  /** 1 + hash(rawId) mod (buckets − 1); unsalted by field, so fields sharing a table agree. */
  encode(table: string, rawId: number): number {
    const b = this.tableSizes[table];
    if (b === undefined) throw new Error(`HashEncoder: no table "${table}"`);
    return 1 + (hashId(rawId) % (b - 1));
  }
}

/** A 32-bit mix of a non-negative integer below 2^53 (murmur3's finaliser over both halves). */
export function hashId(id: number): number {
  const lo = id >>> 0;
  const hi = Math.floor(id / 4294967296) >>> 0;
  let h = (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Counters of one pass of {@link AliCcpReader.rows}. */
export interface AliCcpStats {
  skeletonLines: number;
  /** Bytes of the skeleton lines read (line ends counted as one byte): progress against the file size. */
  skeletonBytes: number;
  /** Lines of the common file (counted by its index). */
  commonLines: number;
  /** Rows handed out. */
  rows: number;
  /** Rows with click = 0 and conversion = 1, dropped. */
  droppedInconsistent: number;
  /**
   * Lines skipped as malformed under `onMalformed: 'skip'`: skeleton lines (those whose session is
   * missing, duplicated or malformed included) and common lines (each counted once).
   */
  skippedMalformed: number;
  /** Skeleton rows skipped because their common key is not in the common file (part of `skippedMalformed`). */
  missingCommonKey: number;
  /** The first few skipped lines' messages. */
  malformedExamples: string[];
  /** Occurrences of field ids that the schema does not have, by field. */
  unknownFields: Record<string, number>;
  /** Rows where a single-valued field carried more than one id (the first is kept), by field. */
  extraSingleValued: Record<string, number>;
  /** Common rows parsed (once per run of consecutive skeleton rows of a key, fewer with the cache). */
  commonRowsParsed: number;
}

/** Options of {@link AliCcpReader}. */
export interface AliCcpReaderOptions {
  /** How raw ids become rows: a vocabulary (built on the train split) or hashing. */
  encoder: IdEncoder;
  fields?: readonly AliCcpFieldInfo[];
  onMalformed?: MalformedPolicy;
  /** Stop after this many rows. */
  limit?: number;
  lineReader?: LineReaderOptions;
  /** Parsed sessions kept for skeleton rows of a key that come back later (default 64). */
  sessionCache?: number;
  /** An index of the common file built before (by {@link CommonIndex.build}); built on the first pass otherwise. */
  commonIndex?: CommonIndex;
}

const READER_OPTIONS = new Set([
  'encoder',
  'fields',
  'onMalformed',
  'limit',
  'lineReader',
  'sessionCache',
  'commonIndex',
]);

interface Encoded {
  features: Map<string, RowValue>;
  userId: number;
}

const MALFORMED: unique symbol = Symbol('malformed');

/** Streams joined, encoded Ali-CCP rows and batches of them. */
export class AliCcpReader {
  /** The schema of the rows, with table sizes from the encoder. */
  readonly schema: Schema;
  /** Counters of the last (or current) pass. */
  stats: AliCcpStats = emptyStats();
  private readonly fields: readonly AliCcpFieldInfo[];
  private readonly byCode: Map<number, AliCcpFieldInfo>;
  private index: CommonIndex | null;

  constructor(
    /** The split's two files. */
    readonly files: AliCcpFiles,
    private readonly options: AliCcpReaderOptions,
  ) {
    requireNode('AliCcpReader', [join], INSTEAD.data);
    for (const key of Object.keys(options))
      if (!READER_OPTIONS.has(key)) throw new Error(`AliCcpReader: unknown option '${key}'`);
    const policy = options.onMalformed ?? 'error';
    if (policy !== 'error' && policy !== 'skip')
      throw new Error(`AliCcpReader: onMalformed must be 'error' or 'skip', got '${String(policy)}'`);
    if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 0))
      throw new Error(`AliCcpReader: limit must be a non-negative integer, got ${options.limit}`);
    if (options.lineReader) checkLineReaderOptions(options.lineReader);
    this.fields = options.fields ?? ALICCP_FIELDS;
    this.byCode = new Map(this.fields.map((f) => [fieldCode(f.id), f]));
    for (const f of this.fields) {
      if (options.encoder.tableSizes[f.table] === undefined)
        throw new Error(`AliCcpReader: encoder has no table "${f.table}" (field ${f.id})`);
    }
    this.schema = aliCcpSchema(options.encoder.tableSizes, this.fields);
    this.index = options.commonIndex ?? null;
    if (this.index && this.index.path !== files.common)
      throw new Error(`AliCcpReader: commonIndex is of ${this.index.path}, not of ${files.common}`);
  }

  /** Batches of rows, optionally mixed through a seeded shuffle buffer. */
  batches(options: BatchingOptions): AsyncGenerator<BatchWithExtras> {
    return batchRows(this.schema, this.rows(), options);
  }

  /** The index of the common file: built by the first pass (or given), reused by the next. */
  async commonIndex(): Promise<CommonIndex> {
    if (!this.index) {
      try {
        this.index = await CommonIndex.build(this.files.common, {
          onMalformed: this.options.onMalformed ?? 'error',
          maxLineBytes: this.options.lineReader?.maxLineBytes,
        });
      } catch (e) {
        throw asFormatError(e);
      }
    }
    return this.index;
  }

  /** The joined rows in skeleton order; each call starts a fresh pass and resets {@link stats}. */
  async *rows(): AsyncGenerator<Row> {
    const stats = (this.stats = emptyStats());
    const policy = this.options.onMalformed ?? 'error';
    const limit = this.options.limit ?? Infinity;
    const cacheSize = Math.max(1, this.options.sessionCache ?? 64);
    const index = await this.commonIndex();
    stats.commonLines = index.lineCount;
    const skip = (file: string, line: number, e: unknown): void => {
      if (policy === 'error') throw asFormatError(e, file, line);
      stats.skippedMalformed++;
      if (stats.malformedExamples.length < 10) {
        stats.malformedExamples.push(
          e instanceof AliCcpFormatError ? e.message : `${file}:${line}: ${describeError(e)}`,
        );
      }
    };
    for (const issue of index.issues) skip(this.files.common, issue.line, new Error(issue.message));
    const skel = new LineReader(this.files.skeleton, this.options.lineReader);
    const common = new CommonLineReader(index);
    const cache = new Map<number, Encoded | typeof MALFORMED>();
    const badCommon = new Set<number>();
    let currentKey: string | null = null;
    let current: Encoded | typeof MALFORMED | null = null;
    let why = '';

    const session = async (key: string, skelLine: number): Promise<Encoded | typeof MALFORMED | null> => {
      const e = index.find(key);
      if (e < 0) {
        why = `common key ${key} not found in ${this.files.common} (${index.size} keys indexed)`;
        if (policy === 'error') throw new AliCcpFormatError(this.files.skeleton, skelLine, why);
        return null;
      }
      const hit = cache.get(e);
      if (hit !== undefined) {
        cache.delete(e);
        cache.set(e, hit);
        return hit;
      }
      const state = index.state(e);
      let enc: Encoded | typeof MALFORMED = MALFORMED;
      if (state === 'duplicate') {
        why = `common key ${key} is on several lines of ${this.files.common} (line ${index.line(e)} among them)`;
      } else {
        why = `its common row (key ${key}, ${this.files.common}:${index.line(e)}) is malformed`;
        let problem: unknown = null;
        if (state === 'malformed') {
          problem = new Error('expected 3 comma-separated columns: common_feature_index,feature_num,feature_list');
        } else {
          const c = splitCommonLine(await common.line(e));
          stats.commonRowsParsed++;
          if (!c || c.commonKey !== key) {
            problem = new Error(`the file changed since it was indexed (expected key ${key})`);
          } else {
            try {
              enc = this.encodeList(c.featureList, stats);
            } catch (err) {
              problem = err;
            }
          }
        }
        if (problem !== null && !badCommon.has(e)) {
          badCommon.add(e);
          skip(this.files.common, index.line(e), problem);
        }
      }
      cache.set(e, enc);
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value as number);
      return enc;
    };

    try {
      while (stats.rows < limit) {
        const line = await skel.read();
        if (line === null) break;
        stats.skeletonLines++;
        stats.skeletonBytes += line.length + 1;
        if (line.length === 0) continue;
        const lineNo = skel.lineNo;
        const s = splitSkeletonLine(line);
        if (!s || s.commonKey.length === 0) {
          skip(
            this.files.skeleton,
            lineNo,
            new Error(
              'expected 6 comma-separated columns: sample_id,click,conversion,common_feature_index,feature_num,feature_list',
            ),
          );
          continue;
        }
        let click: number;
        let conversion: number;
        let own: Encoded;
        try {
          click = checkLabel(s.click, 'click');
          conversion = checkLabel(s.conversion, 'conversion');
          own = this.encodeList(s.featureList, stats);
        } catch (e) {
          skip(this.files.skeleton, lineNo, e);
          continue;
        }
        if (s.commonKey !== currentKey) {
          currentKey = s.commonKey;
          current = await session(s.commonKey, lineNo);
        }
        if (current === null) {
          stats.missingCommonKey++;
          skip(this.files.skeleton, lineNo, new Error(why));
          continue;
        }
        if (current === MALFORMED) {
          skip(this.files.skeleton, lineNo, new Error(why));
          continue;
        }
        if (click === 0 && conversion === 1) {
          stats.droppedInconsistent++;
          continue;
        }
        const features = ownFields(current.features, own.features);
        stats.rows++;
        yield { features, shared: current.features, click, conversion, userId: current.userId };
      }
    } catch (e) {
      throw asFormatError(e);
    } finally {
      await skel.close();
      await common.close();
    }
  }

  /**
   * Encodes one feature list into a Map (field ids are numeric strings, which a plain
   * object would store as sparse array slots). Bags become typed arrays: a common row's
   * are shared read-only by every row of the session, and batches copy them with one `set`.
   */
  private encodeList(text: string, stats: AliCcpStats): Encoded {
    const enc = this.options.encoder;
    const features = new Map<string, RowValue>();
    let bags: Map<string, { ids: number[]; values: number[] }> | null = null;
    let extraCounted: Set<string> | null = null;
    let userId = -1;
    scanFeatureList(text, (code, id, value, fs, fe) => {
      const info = this.byCode.get(code);
      if (!info) {
        const name = text.slice(fs, fe);
        stats.unknownFields[name] = (stats.unknownFields[name] ?? 0) + 1;
        return;
      }
      const row = enc.encode(info.table, id);
      if (info.multi) {
        bags ??= new Map();
        let bag = bags.get(info.id);
        if (!bag) bags.set(info.id, (bag = { ids: [], values: [] }));
        bag.ids.push(row);
        bag.values.push(value);
      } else if (!features.has(info.id)) {
        features.set(info.id, row);
        // The raw user id (below 2^31 in Ali-CCP) keys GAUC; -1 marks a row without one.
        if (info.id === '101') userId = id <= 0x7fffffff ? id : hashId(id) & 0x7fffffff;
      } else if (!(extraCounted ??= new Set()).has(info.id)) {
        extraCounted.add(info.id);
        stats.extraSingleValued[info.id] = (stats.extraSingleValued[info.id] ?? 0) + 1;
      }
    });
    if (bags !== null) {
      for (const [name, bag] of bags as Map<string, { ids: number[]; values: number[] }>) {
        // Typed arrays: rows wait in shuffle buffers, where plain number arrays would cost twice the memory.
        features.set(name, { ids: Int32Array.from(bag.ids), values: Float32Array.from(bag.values) });
      }
    }
    return { features, userId };
  }
}

/**
 * The impression's own fields, with any bag that the session also has
 * concatenated after the session's ids (a field spanning both files); the
 * session's fields themselves are shared, not copied, through {@link Row.shared}.
 */
function ownFields(common: ReadonlyMap<string, RowValue>, own: Map<string, RowValue>): Map<string, RowValue> {
  for (const [name, mine] of own) {
    const theirs = common.get(name);
    if (theirs === undefined) continue;
    if (typeof theirs === 'number' || typeof mine === 'number') {
      // A single-valued field keeps the session's id.
      own.delete(name);
      continue;
    }
    const a = theirs as BagValue;
    const b = mine as BagValue;
    const ids = new Int32Array(a.ids.length + b.ids.length);
    ids.set(a.ids);
    ids.set(b.ids, a.ids.length);
    const values = new Float32Array(ids.length).fill(1);
    if (a.values) values.set(a.values);
    if (b.values) values.set(b.values, a.ids.length);
    own.set(name, { ids, values });
  }
  return own;
}

function emptyStats(): AliCcpStats {
  return {
    skeletonLines: 0,
    skeletonBytes: 0,
    commonLines: 0,
    rows: 0,
    droppedInconsistent: 0,
    skippedMalformed: 0,
    malformedExamples: [],
    unknownFields: {},
    extraSingleValued: {},
    missingCommonKey: 0,
    commonRowsParsed: 0,
  };
}

function checkLabel(s: string, name: string): number {
  if (s === '0') return 0;
  if (s === '1') return 1;
  throw new Error(`${name} label must be 0 or 1, got ${JSON.stringify(s.slice(0, 40))}`);
}

/** Errors of the line reader and the index, as format errors naming file and line. */
function asFormatError(e: unknown, file?: string, line?: number): unknown {
  if (e instanceof AliCcpFormatError) return e;
  if (e instanceof LineTooLongError || e instanceof CommonIndexError)
    return new AliCcpFormatError(e.file, e.line, e.detail);
  if (file !== undefined && line !== undefined) return new AliCcpFormatError(file, line, describeError(e));
  return e;
}

function describeError(e: unknown): string {
  if (e instanceof FeatureListError) return `bad feature list: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
