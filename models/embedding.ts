/**
 * The embedding layer of ESMM: one table per distinct `table` name of the schema,
 * field-wise pooling into one vector per field, and, for DIN, the unpooled
 * behaviour sequences with their padding mask.
 *
 * Initialisation: every table is drawn from N(0, 0.01²) (as DeepCTR-style models
 * start embeddings near zero, so the towers first learn from biases and then from
 * ids); `std` overrides it.
 */
import {
  activeTracer,
  concat,
  derive,
  embeddingBag,
  gatherRows,
  init,
  lookupConcat,
  markTraced,
  mul,
  nn,
  reshape,
  Rng,
  Tensor,
  type ConcatLookup,
} from '../core/index.js';
import { getBackend, type Backend, type DType } from '../kernels/index.js';
import {
  embeddingDimOf,
  tableOf,
  tableSizes,
  type Batch,
  type BagField,
  type CategoricalField,
  type FieldSpec,
  type Schema,
} from './schema.js';

/** Default standard deviation of the embedding initialisation. */
export const DEFAULT_EMBEDDING_STD = 0.01;

/** Options of {@link SharedEmbedding}. */
export interface SharedEmbeddingOptions {
  /** Generator for the initial values (default `Rng(0)`). */
  rng?: Rng;
  dtype?: DType;
  /** Standard deviation of the normal initialisation (default 0.01). */
  std?: number;
}

/** A behaviour sequence before pooling, for attention. */
export interface SequenceEmbedding {
  /** [batch, maxLen, dim]; padded positions are exactly zero (weighted bags are scaled by their values). */
  values: Tensor;
  /** Shape [batch, maxLen], with 1 for a real behaviour and 0 for padding. */
  mask: Tensor;
  /** Number of real behaviours of each row. */
  lengths: Int32Array;
  /** Padded length: the longest sequence rounded up by {@link paddedLength} (not while an exporter traces); at least 1, so that an all-empty batch still has a valid shape. */
  maxLen: number;
}

/**
 * How {@link SharedEmbedding.sequence} labels its host arrays for a tracer: the padded ids
 * [batch·maxLen] (padding reads row 0), the mask [batch, maxLen] and the per-position scale
 * (the bag's values where weighted, else the mask).
 */
export interface SequenceTraceTag {
  field: string;
  part: 'sequenceIds' | 'sequenceMask' | 'sequenceScale';
}

/** What a tower reads: the batch, its per-field vectors, and sequences on demand. */
export interface TowerInput {
  /** The raw batch (models with their own lookups, such as DeepFM's first-order term, read ids from it). */
  readonly batch: Batch;
  /** Rows in the batch. */
  readonly size: number;
  /** One [batch, width] tensor per field, in schema order; numeric fields pass through as values. */
  readonly pooled: ReadonlyMap<string, Tensor>;
  /**
   * One field's vector, the same tensor as `pooled.get(field)`, looked up on first use without the
   * others: a tower that replaces a field (DIN pools its sequences by attention) skips that lookup.
   */
  field(name: string): Tensor;
  /**
   * Every field's vector concatenated in schema order, [batch, Σ widths] (the same values as
   * `concat([...pooled.values()], 1)`), made once per input: towers that share the input share it.
   */
  concatenated(): Tensor;
  /** The unpooled sequence of a bag field (computed once, on first request). */
  sequence(field: string): SequenceEmbedding;
  /** Element type of the tensors. */
  readonly dtype: DType;
  /** Backend of the tensors. */
  readonly backend: Backend;
}

/** Field-wise embeddings over a schema, with tables shared by name. */
export class SharedEmbedding extends nn.Module {
  /** Table name → parameter [rows, dim]. */
  readonly tables: Map<string, Tensor>;
  /** Element type of the tables and of every tensor this layer produces. */
  readonly dtype: DType;
  /** Backend the tables live on. */
  readonly backend: Backend;
  private readonly schema: Schema;

  constructor(schema: Schema, options: SharedEmbeddingOptions = {}) {
    super();
    this.schema = schema;
    this.dtype = options.dtype ?? 'float32';
    this.backend = getBackend();
    const rng = options.rng ?? new Rng(0);
    const std = options.std ?? DEFAULT_EMBEDDING_STD;
    const names = new Set<string>();
    const dims = new Map<string, [number, string]>();
    for (const field of schema.fields) {
      if (names.has(field.name)) throw new Error(`SharedEmbedding: field '${field.name}' appears twice in the schema`);
      names.add(field.name);
      if (field.kind === 'numeric') continue;
      const table = tableOf(field);
      const dim = embeddingDimOf(field);
      const seen = dims.get(table);
      if (seen && seen[0] !== dim) {
        throw new Error(
          `SharedEmbedding: table '${table}' is read by '${seen[1]}' with dim ${seen[0]} and by '${field.name}' with dim ${dim}; fields sharing a table need one dim`,
        );
      }
      dims.set(table, [dim, field.name]);
    }
    this.tables = new Map();
    for (const [table, rows] of tableSizes(schema)) {
      const dim = dims.get(table)![0];
      this.tables.set(table, nn.parameter(init.normal([rows, dim], 0, std, { rng, dtype: this.dtype })));
    }
  }

  /** The table a field reads. */
  tableFor(fieldName: string): Tensor {
    const field = this.field(fieldName);
    if (field.kind === 'numeric') throw new Error(`SharedEmbedding: numeric field '${fieldName}' has no table`);
    return this.tables.get(tableOf(field))!;
  }

  /** Width of each field's pooled vector, in schema order (embedding dim, or a numeric field's dim). */
  fieldDims(): Map<string, number> {
    return new Map(this.schema.fields.map((f) => [f.name, f.kind === 'numeric' ? (f.dim ?? 1) : embeddingDimOf(f)]));
  }

  /** Embed a batch: pooled vectors for every field, sequences when asked for. */
  forward(batch: Batch): TowerInput {
    // Both made on first use: a tower that reads only the concatenation looks each field up once, into it.
    let pooled: Map<string, Tensor> | null = null;
    let joined: Tensor | null = null;
    const one = new Map<string, Tensor>();
    const fieldVector = (name: string): Tensor => {
      let t = one.get(name);
      if (!t) {
        t = this.pool(this.field(name), batch);
        one.set(name, t);
      }
      return t;
    };
    const pooledFields = (): Map<string, Tensor> => {
      if (!pooled) {
        pooled = new Map();
        for (const field of this.schema.fields) pooled.set(field.name, fieldVector(field.name));
      }
      return pooled;
    };
    const cache = new Map<string, SequenceEmbedding>();
    return {
      batch,
      size: batch.size,
      get pooled() {
        return pooledFields();
      },
      field: fieldVector,
      concatenated: () => (joined ??= pooled ? concatFields(pooled) : this.concatenate(batch, pooledFields)),
      dtype: this.dtype,
      backend: this.backend,
      sequence: (name: string): SequenceEmbedding => {
        let seq = cache.get(name);
        if (!seq) {
          seq = this.sequence(name, batch);
          cache.set(name, seq);
        }
        return seq;
      },
    };
  }

  /** The unpooled, padded sequence of a bag field: gathered rows reshaped to [batch, maxLen, dim], with its mask. */
  sequence(fieldName: string, batch: Batch): SequenceEmbedding {
    const field = this.field(fieldName);
    if (field.kind !== 'bag')
      throw new Error(`SharedEmbedding: '${fieldName}' is ${field.kind}; only bag fields have sequences`);
    const data = this.data(field, batch);
    if (data.kind !== 'bag') throw new Error(`SharedEmbedding: field '${fieldName}' is not a bag in the batch`);
    const n = batch.size;
    const weighted = field.weighted === true;
    // An exporter reads the padded length as a dimension that follows the batch: pad to the longest there.
    const round = activeTracer() === null;
    // Derived from the batch, so that a captured step pads each batch's sequences again.
    const { lengths, maxLen, ids, scale, mask } = derive(
      'sequence',
      [data.offsets, data.ids, data.values ?? null],
      (offsets, bagIds, bagValues) =>
        padSequences(offsets.length - 1, offsets, bagIds, weighted ? bagValues : null, round),
    );
    // An exporter's tracer learns what these host arrays are, so the padding can become graph ops.
    markTraced(ids, { field: field.name, part: 'sequenceIds' } satisfies SequenceTraceTag);
    markTraced(mask, { field: field.name, part: 'sequenceMask' } satisfies SequenceTraceTag);
    markTraced(scale, { field: field.name, part: 'sequenceScale' } satisfies SequenceTraceTag);
    const table = this.tables.get(tableOf(field))!;
    const dim = table.shape[1];
    const rows = reshape(gatherRows(table, ids), [n, maxLen, dim]);
    const values = mul(rows, this.constant(scale, [n, maxLen, 1]));
    return { values, mask: this.constant(mask, [n, maxLen]), lengths, maxLen };
  }

  /**
   * Every field's vector in one [batch, Σ widths] matrix: one {@link lookupConcat} where every field
   * is a lookup of one dim (its backward sums each table's rows from their columns of the gradient),
   * else the concatenation of the pooled fields.
   */
  private concatenate(batch: Batch, pooledFields: () => Map<string, Tensor>): Tensor {
    const fields = sparseFields(this.schema);
    const dim = fields.length > 0 ? embeddingDimOf(fields[0]) : 0;
    if (fields.length !== this.schema.fields.length || fields.some((f) => embeddingDimOf(f) !== dim))
      return concatFields(pooledFields());
    const tables: Tensor[] = [];
    const lookups = fields.map((field): ConcatLookup => {
      const table = this.tables.get(tableOf(field))!;
      let index = tables.indexOf(table);
      if (index < 0) index = tables.push(table) - 1;
      const data = this.data(field, batch);
      if (data.kind !== field.kind)
        throw new Error(`SharedEmbedding: field '${field.name}' is not ${field.kind} in the batch`);
      if (field.kind === 'categorical' || data.kind !== 'bag') return { table: index, ids: data.ids };
      return {
        table: index,
        ids: data.ids,
        offsets: data.offsets,
        weights: field.weighted ? (data.values ?? null) : null,
        mode: field.pooling ?? 'sum',
      };
    });
    return lookupConcat(tables, lookups);
  }

  /** A constant tensor of this layer's dtype and backend. */
  constant(values: ArrayLike<number>, shape: readonly number[]): Tensor {
    return Tensor.fromArray(values, shape, { dtype: this.dtype, backend: this.backend });
  }

  private pool(field: FieldSpec, batch: Batch): Tensor {
    const data = this.data(field, batch);
    if (field.kind === 'numeric') {
      if (data.kind !== 'numeric')
        throw new Error(`SharedEmbedding: field '${field.name}' is not numeric in the batch`);
      return this.constant(data.values, [batch.size, field.dim ?? 1]);
    }
    const table = this.tables.get(tableOf(field))!;
    if (field.kind === 'categorical') {
      if (data.kind !== 'categorical')
        throw new Error(`SharedEmbedding: field '${field.name}' is not categorical in the batch`);
      // A bag of one: gatherRows is the same lookup without the offsets.
      return gatherRows(table, data.ids);
    }
    if (data.kind !== 'bag') throw new Error(`SharedEmbedding: field '${field.name}' is not a bag in the batch`);
    return embeddingBag(table, {
      ids: data.ids,
      offsets: data.offsets,
      weights: field.weighted ? (data.values ?? null) : null,
      mode: field.pooling ?? 'sum',
    });
  }

  private field(name: string): FieldSpec {
    const field = this.schema.fields.find((f) => f.name === name);
    if (!field) throw new Error(`SharedEmbedding: no field '${name}' in the schema`);
    return field;
  }

  private data(field: FieldSpec, batch: Batch): Batch['fields'][string] {
    const data = batch.fields[field.name];
    if (!data) throw new Error(`SharedEmbedding: field '${field.name}' is missing from the batch`);
    return data;
  }
}

/**
 * The length a batch's sequences are padded to: its longest sequence, rounded up above 16 to one of
 * eight lengths per doubling (18, 20, …, 32, 36, 40, …, 64, 72, …), so less than 12.5% more positions.
 * Batches of one source then share a few padded lengths, and a captured step keeps replaying its plan
 * where the longest sequence moves by one or two (padding is masked: the values do not change).
 */
export function paddedLength(longest: number): number {
  let step = 1;
  while (longest > 16 * step) step *= 2;
  return Math.ceil(longest / step) * step;
}

/** The padded ids, mask and per-position scale of one bag field's sequences (see {@link SharedEmbedding.sequence}). */
function padSequences(
  n: number,
  offsets: Int32Array,
  bagIds: Int32Array,
  values: Float32Array | Float64Array | Int32Array | null,
  round: boolean,
): { lengths: Int32Array; maxLen: number; ids: Int32Array; scale: Float64Array; mask: Float64Array } {
  const lengths = new Int32Array(n);
  let longest = 1;
  for (let r = 0; r < n; r++) {
    lengths[r] = offsets[r + 1] - offsets[r];
    longest = Math.max(longest, lengths[r]);
  }
  const maxLen = round ? paddedLength(longest) : longest;
  // Padding reads row 0 (always valid) and is then zeroed by the scale, so it carries no value and no gradient.
  const ids = new Int32Array(n * maxLen);
  const scale = new Float64Array(n * maxLen);
  const mask = new Float64Array(n * maxLen);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < lengths[r]; j++) {
      const src = offsets[r] + j;
      ids[r * maxLen + j] = bagIds[src];
      mask[r * maxLen + j] = 1;
      scale[r * maxLen + j] = values ? values[src] : 1;
    }
  }
  return { lengths, maxLen, ids, scale, mask };
}

/** Concatenate the named fields' vectors (schema order when omitted) into [batch, Σ widths]. */
export function concatFields(pooled: ReadonlyMap<string, Tensor>, fields?: readonly string[]): Tensor {
  const names = fields ?? [...pooled.keys()];
  const parts = names.map((name) => {
    const t = pooled.get(name);
    if (!t) throw new Error(`concatFields: no field '${name}' in the tower input`);
    return t;
  });
  return parts.length === 1 ? parts[0] : concat(parts, 1);
}

/** Fields that carry an id lookup (categorical and bag), in schema order. */
export function sparseFields(schema: Schema): (CategoricalField | BagField)[] {
  return schema.fields.filter((f): f is CategoricalField | BagField => f.kind !== 'numeric');
}
