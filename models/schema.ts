/**
 * Feature schema and batches (DeepCTR-style feature columns).
 *
 * A schema declares every input field once: its kind, vocabulary, embedding
 * size, pooling, which table it shares and its group. A batch carries, per
 * field, typed arrays ready for the embedding kernels, plus the two labels.
 */
import type { BagMode } from '../kernels/index.js';

/** Which part of the feature space a field describes (Ali-CCP's groups). */
export type FieldGroup = 'user' | 'item' | 'context' | 'cross';

/** A field with one id per row (e.g. item id, gender). */
export interface CategoricalField {
  kind: 'categorical';
  name: string;
  /** Number of embedding rows (vocabulary size or hash buckets). Ids must lie in [0, vocabSize). */
  vocabSize: number;
  /** Embedding width; default 18 as in the paper. */
  embeddingDim?: number;
  /** Name of the table this field reads; fields with the same table share rows. Default: the field's own name. */
  table?: string;
  group: FieldGroup;
  /** DIN's query: the candidate item this field identifies. */
  isTarget?: boolean;
}

/** A field with any number of ids per row, each with an optional value (e.g. behaviour counts). */
export interface BagField {
  kind: 'bag';
  name: string;
  vocabSize: number;
  embeddingDim?: number;
  table?: string;
  group: FieldGroup;
  /** Pooling of the bag; default `sum`, as the paper. */
  pooling?: BagMode;
  /** Whether the batch carries per-id values used as weights. */
  weighted?: boolean;
  /** DIN's behaviour sequence (attended against the target field with the same table). */
  isSequence?: boolean;
}

/** A real-valued field, fed to the towers as is. */
export interface NumericField {
  kind: 'numeric';
  name: string;
  group: FieldGroup;
  /** Width of the value vector; default 1. */
  dim?: number;
}

/** Any field. */
export type FieldSpec = CategoricalField | BagField | NumericField;

/** Fields of a model's input, in order. */
export interface Schema {
  fields: FieldSpec[];
}

/** Default embedding width of the paper. */
export const DEFAULT_EMBEDDING_DIM = 18;

/** Per-field data of one batch. */
export type FieldBatch =
  | { kind: 'categorical'; ids: Int32Array }
  | { kind: 'bag'; ids: Int32Array; offsets: Int32Array; values?: Float32Array }
  | { kind: 'numeric'; values: Float32Array };

/** One mini-batch: typed arrays per field and the labels, all of `size` rows. */
export interface Batch {
  size: number;
  fields: Record<string, FieldBatch>;
  /** 1 if the impression was clicked. */
  click: Float32Array;
  /** 1 if it converted (only possible after a click). */
  conversion: Float32Array;
  /** Optional row ids of the user, for GAUC. */
  userIds?: Int32Array;
}

/** The table a field reads (its own name unless it shares one). */
export function tableOf(field: CategoricalField | BagField): string {
  return field.table ?? field.name;
}

/** A field's embedding width. */
export function embeddingDimOf(field: CategoricalField | BagField): number {
  return field.embeddingDim ?? DEFAULT_EMBEDDING_DIM;
}

/** The vocabulary size of a table: the largest vocabulary among the fields that read it. */
export function tableSizes(schema: Schema): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const field of schema.fields) {
    if (field.kind === 'numeric') continue;
    const name = tableOf(field);
    sizes.set(name, Math.max(sizes.get(name) ?? 0, field.vocabSize));
  }
  return sizes;
}

function isBinary(v: number): boolean {
  return v === 0 || v === 1;
}

/** Finite once stored as float32 (3.5e38 is a finite double but +Inf in float32). */
function isFiniteF32(v: number): boolean {
  return Number.isFinite(Math.fround(v));
}

function kindOf(a: unknown): string {
  if (a === null || a === undefined) return String(a);
  if (Array.isArray(a)) return 'an Array';
  return (a as object).constructor?.name ?? typeof a;
}

/**
 * Check a batch against its schema before it reaches the kernels, so that a bad row
 * fails with the field and row that caused it rather than deep inside an op.
 * Throws an `Error` naming the field (or label) and the row; returns nothing when the batch is sound.
 */
export function validateBatch(schema: Schema, batch: Batch): void {
  const fail = (what: string, message: string): never => {
    throw new Error(`validateBatch: ${what}: ${message}`);
  };
  if (typeof batch !== 'object' || batch === null) fail('batch', `must be an object, got ${kindOf(batch)}`);
  const n = batch.size;
  if (!Number.isInteger(n) || n < 0) fail('batch', `size must be a non-negative integer, got ${n}`);
  if (typeof batch.fields !== 'object' || batch.fields === null) fail('batch', "has no 'fields' object");
  const labelArrays: [string, Float32Array][] = [
    ['click', batch.click],
    ['conversion', batch.conversion],
  ];
  for (const [name, values] of labelArrays) {
    if (!values || values.length !== n)
      fail(`label '${name}'`, `has ${values?.length ?? 0} values for a batch of ${n} rows`);
    for (let r = 0; r < n; r++) {
      if (!isBinary(values[r])) fail(`label '${name}' row ${r}`, `must be 0 or 1, got ${values[r]}`);
    }
  }
  for (let r = 0; r < n; r++) {
    if (batch.conversion[r] === 1 && batch.click[r] !== 1)
      fail(`label 'conversion' row ${r}`, 'a conversion without a click');
  }
  if (batch.userIds && batch.userIds.length !== n)
    fail("'userIds'", `has ${batch.userIds.length} values for a batch of ${n} rows`);

  for (const field of schema.fields) {
    const data = batch.fields[field.name];
    const where = `field '${field.name}'`;
    if (!data) fail(where, 'missing from the batch');
    if (data.kind !== field.kind) fail(where, `is ${data.kind} in the batch but ${field.kind} in the schema`);
    if (field.kind === 'numeric' && data.kind === 'numeric') {
      const dim = field.dim ?? 1;
      if (data.values.length !== n * dim) fail(where, `has ${data.values.length} values, expected ${n} rows × ${dim}`);
      for (let i = 0; i < data.values.length; i++) {
        if (!isFiniteF32(data.values[i]))
          fail(`${where} row ${Math.floor(i / dim)}`, `value ${data.values[i]} is not finite in float32`);
      }
    } else if (field.kind === 'categorical' && data.kind === 'categorical') {
      if (!(data.ids instanceof Int32Array))
        fail(where, `ids must be an Int32Array, got ${kindOf(data.ids)} (convert integer ids with Int32Array.from)`);
      if (data.ids.length !== n) fail(where, `has ${data.ids.length} ids for a batch of ${n} rows`);
      for (let r = 0; r < n; r++) {
        const id = data.ids[r];
        if (!(id >= 0 && id < field.vocabSize))
          fail(`${where} row ${r}`, `id ${id} is outside the vocabulary [0, ${field.vocabSize})`);
      }
    } else if (field.kind === 'bag' && data.kind === 'bag') {
      const { ids, offsets, values } = data;
      if (!(ids instanceof Int32Array))
        fail(where, `ids must be an Int32Array, got ${kindOf(ids)} (convert integer ids with Int32Array.from)`);
      if (!(offsets instanceof Int32Array)) fail(where, `offsets must be an Int32Array, got ${kindOf(offsets)}`);
      if (values && !(values instanceof Float32Array))
        fail(where, `values must be a Float32Array, got ${kindOf(values)}`);
      if (offsets.length !== n + 1) fail(where, `has ${offsets.length} offsets, expected batch size + 1 = ${n + 1}`);
      if (offsets[0] !== 0) fail(`${where} row 0`, `offsets must start at 0, got ${offsets[0]}`);
      for (let r = 0; r < n; r++) {
        if (offsets[r + 1] < offsets[r])
          fail(`${where} row ${r}`, `offsets are not monotone (${offsets[r]} > ${offsets[r + 1]})`);
      }
      if (offsets[n] !== ids.length)
        fail(`${where} row ${n - 1}`, `the last offset is ${offsets[n]} but there are ${ids.length} ids`);
      if (values && values.length !== ids.length) fail(where, `has ${values.length} values for ${ids.length} ids`);
      if (field.weighted && !values) fail(where, 'is weighted but the batch carries no values');
      for (let r = 0; r < n; r++) {
        for (let j = offsets[r]; j < offsets[r + 1]; j++) {
          if (!(ids[j] >= 0 && ids[j] < field.vocabSize)) {
            fail(
              `${where} row ${r}`,
              `id ${ids[j]} (position ${j - offsets[r]} of the bag) is outside the vocabulary [0, ${field.vocabSize})`,
            );
          }
          if (values && !isFiniteF32(values[j]))
            fail(`${where} row ${r}`, `value ${values[j]} is not finite in float32`);
        }
      }
    }
  }
}

/**
 * A new batch made of the given rows of `batch`, in that order (rows may repeat,
 * which is how oversampling and sampling with replacement are expressed).
 */
export function selectRows(batch: Batch, rows: ArrayLike<number>): Batch {
  const m = rows.length;
  const fields: Record<string, FieldBatch> = {};
  for (const [name, data] of Object.entries(batch.fields)) {
    if (data.kind === 'categorical') {
      const ids = new Int32Array(m);
      for (let i = 0; i < m; i++) ids[i] = data.ids[rows[i]];
      fields[name] = { kind: 'categorical', ids };
    } else if (data.kind === 'numeric') {
      const dim = batch.size > 0 ? data.values.length / batch.size : 0;
      const values = new Float32Array(m * dim);
      for (let i = 0; i < m; i++) values.set(data.values.subarray(rows[i] * dim, rows[i] * dim + dim), i * dim);
      fields[name] = { kind: 'numeric', values };
    } else {
      const offsets = new Int32Array(m + 1);
      for (let i = 0; i < m; i++) offsets[i + 1] = offsets[i] + data.offsets[rows[i] + 1] - data.offsets[rows[i]];
      const ids = new Int32Array(offsets[m]);
      const values = data.values ? new Float32Array(offsets[m]) : undefined;
      for (let i = 0; i < m; i++) {
        const start = data.offsets[rows[i]];
        const end = data.offsets[rows[i] + 1];
        ids.set(data.ids.subarray(start, end), offsets[i]);
        values?.set((data.values as Float32Array).subarray(start, end), offsets[i]);
      }
      fields[name] = values ? { kind: 'bag', ids, offsets, values } : { kind: 'bag', ids, offsets };
    }
  }
  const pick = (src: Float32Array): Float32Array => {
    const out = new Float32Array(m);
    for (let i = 0; i < m; i++) out[i] = src[rows[i]];
    return out;
  };
  const out: Batch = { size: m, fields, click: pick(batch.click), conversion: pick(batch.conversion) };
  if (batch.userIds) {
    const userIds = new Int32Array(m);
    for (let i = 0; i < m; i++) userIds[i] = batch.userIds[rows[i]];
    out.userIds = userIds;
  }
  return out;
}
