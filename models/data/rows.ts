/**
 * Row-level samples and their collation into {@link Batch}es, plus a seeded
 * shuffle buffer so that streamed data can be mixed without loading it all.
 *
 * A row keeps per-field values keyed by field name; the schema decides how a
 * value is read (a categorical id, a bag of ids with optional weights, or a
 * numeric vector), so rows stay cheap to build from any source.
 */
import { Rng } from '../../core/random.js';
import type { Batch, FieldBatch, FieldSpec, Schema } from '../schema.js';

/** The ids (and optional per-id values) of one bag field in one row. */
export interface BagValue {
  ids: ArrayLike<number>;
  values?: ArrayLike<number>;
}

/** One field's value in a row: an id (categorical), a bag, or a numeric vector. */
export type RowValue = number | BagValue | ArrayLike<number>;

/**
 * Field values by name: a plain object (convenient to write by hand) or a Map. Readers
 * that hold many rows at once (a shuffle buffer) use Maps: Ali-CCP's field names are
 * numeric strings, which V8 would store in an object as sparse array slots, several
 * kilobytes per row.
 */
export type FieldValues = Readonly<Record<string, RowValue | undefined>> | ReadonlyMap<string, RowValue>;

/** One sample: field values by field name, the two labels, and optional extras. */
export interface Row {
  /** Values by field name; a missing categorical reads as id 0, a missing bag as empty, a missing numeric as zeros. */
  features: FieldValues;
  /** Values shared by a group of rows (a user session), read where `features` has none; never mutated. */
  shared?: FieldValues;
  click: number;
  conversion: number;
  /** Id of the user, for GAUC. */
  userId?: number;
  /** Extra per-row numbers carried into {@link BatchWithExtras.extras} (e.g. ground truth of a simulator). */
  extras?: Record<string, number>;
}

/** A batch with the extra per-row columns that its rows carried. */
export interface BatchWithExtras extends Batch {
  /** One column per extra key present on the first row of the batch. */
  extras: Record<string, Float32Array>;
}

/** Options of {@link collate}. */
export interface CollateOptions {
  /** Throw when an id lies outside [0, vocabSize) of its field (default true): catches vocabulary mix-ups early. */
  checkIds?: boolean;
}

/** Builds a batch from rows: typed arrays per field, offsets for bags, labels and extras. */
export function collate(schema: Schema, rows: readonly Row[], options: CollateOptions = {}): BatchWithExtras {
  const checkIds = options.checkIds ?? true;
  const size = rows.length;
  const fields: Record<string, FieldBatch> = {};
  for (const field of schema.fields) fields[field.name] = collateField(field, rows, checkIds);
  const click = new Float32Array(size);
  const conversion = new Float32Array(size);
  let hasUser = size > 0;
  for (let r = 0; r < size; r++) {
    click[r] = rows[r].click;
    conversion[r] = rows[r].conversion;
    if (rows[r].userId === undefined) hasUser = false;
  }
  const batch: BatchWithExtras = { size, fields, click, conversion, extras: {} };
  if (hasUser) {
    const userIds = new Int32Array(size);
    for (let r = 0; r < size; r++) userIds[r] = rows[r].userId as number;
    batch.userIds = userIds;
  }
  const first = rows[0]?.extras;
  if (first) {
    for (const key of Object.keys(first)) {
      const col = new Float32Array(size);
      for (let r = 0; r < size; r++) {
        const v = rows[r].extras?.[key];
        if (v === undefined)
          throw new Error(`collate: row ${r} lacks extra "${key}" that the first row of the batch has`);
        col[r] = v;
      }
      batch.extras[key] = col;
    }
  }
  return batch;
}

function collateField(field: FieldSpec, rows: readonly Row[], checkIds: boolean): FieldBatch {
  const size = rows.length;
  if (field.kind === 'categorical') {
    const ids = new Int32Array(size);
    for (let r = 0; r < size; r++) {
      const v = valueOf(rows[r], field.name);
      const id = v === undefined ? 0 : v;
      if (typeof id !== 'number')
        throw new Error(`collate: field "${field.name}" is categorical but row ${r} holds a ${describe(id)}`);
      if (checkIds && !(Number.isInteger(id) && id >= 0 && id < field.vocabSize)) {
        throw new Error(`collate: field "${field.name}" row ${r}: id ${id} outside [0, ${field.vocabSize})`);
      }
      ids[r] = id;
    }
    return { kind: 'categorical', ids };
  }
  if (field.kind === 'bag') {
    const offsets = new Int32Array(size + 1);
    let total = 0;
    for (let r = 0; r < size; r++) {
      const v = valueOf(rows[r], field.name);
      if (v !== undefined) total += asBag(field.name, v, r).ids.length;
      offsets[r + 1] = total;
    }
    const ids = new Int32Array(total);
    const values = field.weighted ? new Float32Array(total) : undefined;
    for (let r = 0; r < size; r++) {
      const v = valueOf(rows[r], field.name);
      if (v === undefined) continue;
      const bag = asBag(field.name, v, r);
      const start = offsets[r];
      const n = bag.ids.length;
      if (bag.values !== undefined && bag.values.length !== n) {
        throw new Error(`collate: field "${field.name}" row ${r}: ${n} ids but ${bag.values.length} values`);
      }
      const src = bag.ids;
      if (src instanceof Int32Array) {
        ids.set(src, start);
        if (checkIds) checkRange(field.name, field.vocabSize, ids, start, start + n, r);
      } else {
        for (let k = 0; k < n; k++) {
          const id = src[k];
          if (checkIds && !(Number.isInteger(id) && id >= 0 && id < field.vocabSize)) {
            throw new Error(`collate: field "${field.name}" row ${r}: id ${id} outside [0, ${field.vocabSize})`);
          }
          ids[start + k] = id;
        }
      }
      if (values) {
        // A bag without values in a weighted field weighs each id 1, as plain id features do in Ali-CCP.
        const vs = bag.values;
        if (vs === undefined) values.fill(1, start, start + n);
        else if (vs instanceof Float32Array) values.set(vs, start);
        else for (let k = 0; k < n; k++) values[start + k] = vs[k];
      }
    }
    return values ? { kind: 'bag', ids, offsets, values } : { kind: 'bag', ids, offsets };
  }
  const dim = field.dim ?? 1;
  const values = new Float32Array(size * dim);
  for (let r = 0; r < size; r++) {
    const v = valueOf(rows[r], field.name);
    if (v === undefined) continue;
    if (typeof v === 'number') {
      if (dim !== 1)
        throw new Error(`collate: numeric field "${field.name}" has dim ${dim} but row ${r} holds a single number`);
      values[r] = v;
      continue;
    }
    const arr = isBag(v) ? null : v;
    if (!arr || arr.length !== dim)
      throw new Error(`collate: numeric field "${field.name}" row ${r}: expected ${dim} values`);
    for (let k = 0; k < dim; k++) values[r * dim + k] = arr[k];
  }
  return { kind: 'numeric', values };
}

/** The value of a field in a row: its own, else the shared one. */
export function valueOf(row: Row, name: string): RowValue | undefined {
  const v = lookup(row.features, name);
  return v !== undefined || row.shared === undefined ? v : lookup(row.shared, name);
}

function lookup(values: FieldValues, name: string): RowValue | undefined {
  return values instanceof Map ? values.get(name) : (values as Readonly<Record<string, RowValue | undefined>>)[name];
}

function checkRange(name: string, vocabSize: number, ids: Int32Array, from: number, to: number, r: number): void {
  for (let k = from; k < to; k++) {
    if (ids[k] < 0 || ids[k] >= vocabSize)
      throw new Error(`collate: field "${name}" row ${r}: id ${ids[k]} outside [0, ${vocabSize})`);
  }
}

function isBag(v: RowValue): v is BagValue {
  return typeof v === 'object' && v !== null && 'ids' in v;
}

function asBag(name: string, v: RowValue, r: number): BagValue {
  if (!isBag(v)) throw new Error(`collate: field "${name}" is a bag but row ${r} holds a ${describe(v)}`);
  return v;
}

function describe(v: RowValue): string {
  return typeof v === 'number' ? 'number' : isBag(v) ? 'bag' : 'numeric vector';
}

/**
 * A seeded shuffle buffer: holds up to `capacity` items and releases a
 * uniformly chosen one per push once full, so a stream is mixed within a
 * window without being held in memory (the tf.data approach).
 */
export class ShuffleBuffer<T> {
  private readonly items: T[] = [];

  constructor(
    /** How many items are held at most; 0 or 1 disables shuffling. */
    readonly capacity: number,
    private readonly rng: Rng,
  ) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new Error(`ShuffleBuffer: capacity must be a non-negative integer, got ${capacity}`);
  }

  /** Adds an item; returns an item to emit once the buffer is full, else undefined. */
  push(item: T): T | undefined {
    if (this.capacity <= 1) return item;
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return undefined;
    }
    const j = this.rng.int(this.capacity);
    const out = this.items[j];
    this.items[j] = item;
    return out;
  }

  /** Empties the buffer in random order. */
  drain(): T[] {
    const out = this.items.splice(0, this.items.length);
    this.rng.shuffle(out);
    return out;
  }

  /** Number of items held. */
  get length(): number {
    return this.items.length;
  }
}

/**
 * Rows a streamed training source mixes by default: enough to break up sessions (rows of a
 * user arrive together in Ali-CCP), small enough that reading a multi-GB file stays in a few
 * hundred MB (see benchmarks/results/aliccp-reader.md).
 */
export const DEFAULT_SHUFFLE_BUFFER = 20_000;

/** Options of {@link batchRows} and {@link batchRowsSync}. */
export interface BatchingOptions extends CollateOptions {
  batchSize: number;
  /** Shuffle-buffer capacity in rows; 0 keeps the stream order (default 0). */
  shuffleBuffer?: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** Drop the last, smaller batch (default false). */
  dropLast?: boolean;
}

function checkBatching(options: BatchingOptions): void {
  if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) {
    throw new Error(`batching: batchSize must be a positive integer, got ${options.batchSize}`);
  }
}

/** Groups a stream of rows into batches, mixing them through a seeded shuffle buffer. */
export async function* batchRows(
  schema: Schema,
  rows: AsyncIterable<Row> | Iterable<Row>,
  options: BatchingOptions,
): AsyncGenerator<BatchWithExtras> {
  checkBatching(options);
  const buffer = new ShuffleBuffer<Row>(options.shuffleBuffer ?? 0, new Rng(options.seed ?? 0));
  let pending: Row[] = [];
  for await (const row of rows) {
    const out = buffer.push(row);
    if (out === undefined) continue;
    pending.push(out);
    if (pending.length === options.batchSize) {
      yield collate(schema, pending, options);
      pending = [];
    }
  }
  for (const out of buffer.drain()) {
    pending.push(out);
    if (pending.length === options.batchSize) {
      yield collate(schema, pending, options);
      pending = [];
    }
  }
  if (pending.length > 0 && !options.dropLast) yield collate(schema, pending, options);
}

/** Synchronous {@link batchRows} over an in-memory or generated row sequence. */
export function* batchRowsSync(
  schema: Schema,
  rows: Iterable<Row>,
  options: BatchingOptions,
): Generator<BatchWithExtras> {
  checkBatching(options);
  const buffer = new ShuffleBuffer<Row>(options.shuffleBuffer ?? 0, new Rng(options.seed ?? 0));
  let pending: Row[] = [];
  const emit = (out: Row): BatchWithExtras | undefined => {
    pending.push(out);
    if (pending.length < options.batchSize) return undefined;
    const b = collate(schema, pending, options);
    pending = [];
    return b;
  };
  for (const row of rows) {
    const out = buffer.push(row);
    if (out === undefined) continue;
    const b = emit(out);
    if (b) yield b;
  }
  for (const out of buffer.drain()) {
    const b = emit(out);
    if (b) yield b;
  }
  if (pending.length > 0 && !options.dropLast) yield collate(schema, pending, options);
}

/** Concatenates batches of the same schema into one (e.g. a whole test set for evaluation). */
export function concatBatches<B extends Batch>(schema: Schema, batches: readonly B[]): Batch {
  const size = batches.reduce((s, b) => s + b.size, 0);
  const fields: Record<string, FieldBatch> = {};
  for (const field of schema.fields) {
    const parts = batches.map((b) => {
      const f = b.fields[field.name];
      if (!f || f.kind !== field.kind)
        throw new Error(`concatBatches: a batch lacks ${field.kind} field "${field.name}"`);
      return f;
    });
    if (field.kind === 'categorical') {
      fields[field.name] = { kind: 'categorical', ids: concatInt(parts.map((p) => (p as { ids: Int32Array }).ids)) };
    } else if (field.kind === 'numeric') {
      fields[field.name] = {
        kind: 'numeric',
        values: concatFloat(parts.map((p) => (p as { values: Float32Array }).values)),
      };
    } else {
      const bags = parts as Extract<FieldBatch, { kind: 'bag' }>[];
      const ids = concatInt(bags.map((p) => p.ids));
      const offsets = new Int32Array(size + 1);
      let row = 0;
      let base = 0;
      for (const p of bags) {
        const n = p.offsets.length - 1;
        for (let r = 1; r <= n; r++) offsets[row + r] = base + p.offsets[r];
        row += n;
        base += p.ids.length;
      }
      const withValues = bags.every((p) => p.values !== undefined);
      fields[field.name] = withValues
        ? { kind: 'bag', ids, offsets, values: concatFloat(bags.map((p) => p.values as Float32Array)) }
        : { kind: 'bag', ids, offsets };
    }
  }
  const out: Batch = {
    size,
    fields,
    click: concatFloat(batches.map((b) => b.click)),
    conversion: concatFloat(batches.map((b) => b.conversion)),
  };
  if (batches.length > 0 && batches.every((b) => b.userIds !== undefined))
    out.userIds = concatInt(batches.map((b) => b.userIds as Int32Array));
  return out;
}

function concatInt(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function concatFloat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
