/**
 * Scoring requests: JSON rows of raw feature ids (as in the training data), checked field by
 * field and mapped through the model's id map into a batch. Every fault is a
 * {@link RequestError} naming the row and field, never an exception from deeper down.
 */
import { tableOf, type Batch, type FieldBatch, type Schema } from '../schema.js';

/** A request the server refuses with a 400, with a message naming what and where. */
export class RequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestError';
  }
}

/** Maps a field's raw id to its embedding row. */
export interface IdMap {
  /** Row of `raw` in `table`, or `null` when the id cannot be served (out of range without a vocabulary). */
  row(table: string, raw: number, vocabSize: number): number | null;
  /** What an unknown id becomes, for messages and metadata. */
  readonly unknownIds: string;
}

/** Raw ids are rows already (models trained on simulated batches); ids outside the table are refused. */
export const IDENTITY_IDS: IdMap = {
  row: (_table, raw, vocabSize) => (raw >= 0 && raw < vocabSize ? raw : null),
  unknownIds: 'refused (the model has no vocabulary: ids are rows)',
};

/** A vocabulary of raw ids per table: unknown ids take the out-of-vocabulary row. */
export function vocabularyIds(encode: (table: string, raw: number) => number, oovRow: number): IdMap {
  return {
    row: (table, raw) => encode(table, raw),
    unknownIds: `mapped to the out-of-vocabulary row ${oovRow}`,
  };
}

/** What a parsed request asks for. */
export interface ScoreRequest {
  batch: Batch;
  /** Exponents of the ranking score pCTR^a · pCVR^b. */
  a: number;
  b: number;
}

/** Limits and defaults of request parsing. */
export interface RequestLimits {
  maxRows: number;
  defaultA: number;
  defaultB: number;
}

const TOP_KEYS = new Set(['rows', 'common', 'a', 'b']);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/**
 * Parse a request body: `{ "rows": [ {field: value, ...}, ... ], "common"?: {...}, "a"?, "b"? }`.
 * A categorical field takes one raw id, a bag an array of raw ids or `{ "ids": [...], "values": [...] }`
 * (values default to 1), a numeric field a number (or an array of `dim` numbers). `common` holds
 * fields shared by every row (one user's features beside many candidates).
 */
export function parseScoreRequest(body: string, schema: Schema, ids: IdMap, limits: RequestLimits): ScoreRequest {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    throw new RequestError(`malformed JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new RequestError(`the body must be a JSON object with "rows", got ${describe(json)}`);
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!TOP_KEYS.has(k)) throw new RequestError(`unknown key "${k}"; known: ${[...TOP_KEYS].join(', ')}`);
  const exponent = (key: 'a' | 'b', fallback: number): number => {
    const v = o[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new RequestError(`"${key}" must be a finite number ≥ 0, got ${describe(v)}`);
    return v;
  };
  const a = exponent('a', limits.defaultA);
  const b = exponent('b', limits.defaultB);
  const rows = o.rows;
  if (!Array.isArray(rows)) throw new RequestError(`"rows" must be an array of objects, got ${describe(rows)}`);
  if (rows.length === 0) throw new RequestError('"rows" is empty');
  if (rows.length > limits.maxRows)
    throw new RequestError(`${rows.length} rows is more than the limit of ${limits.maxRows} per request`);
  let common: Record<string, unknown> = {};
  if (o.common !== undefined) {
    if (o.common === null || typeof o.common !== 'object' || Array.isArray(o.common))
      throw new RequestError(`"common" must be an object of fields, got ${describe(o.common)}`);
    common = o.common as Record<string, unknown>;
  }
  const known = new Set(schema.fields.map((f) => f.name));
  for (const k of Object.keys(common))
    if (!known.has(k)) throw new RequestError(`common, field "${k}": not a field of the model`);
  const n = rows.length;
  for (let r = 0; r < n; r++) {
    const row = rows[r];
    if (row === null || typeof row !== 'object' || Array.isArray(row))
      throw new RequestError(`row ${r}: must be an object of fields, got ${describe(row)}`);
    for (const k of Object.keys(row)) {
      if (!known.has(k)) throw new RequestError(`row ${r}, field "${k}": not a field of the model`);
      if (k in common) throw new RequestError(`row ${r}, field "${k}": given both in the row and in "common"`);
    }
  }
  const fields: Record<string, FieldBatch> = {};
  for (const f of schema.fields) {
    const value = (r: number): unknown => {
      const row = rows[r] as Record<string, unknown>;
      return f.name in row ? row[f.name] : common[f.name];
    };
    const where = (r: number): string => (!(f.name in (rows[r] as object)) && f.name in common ? 'common' : `row ${r}`);
    const fail = (r: number, msg: string): never => {
      throw new RequestError(`${where(r)}, field "${f.name}": ${msg}`);
    };
    const mapId = (r: number, raw: unknown, vocabSize: number, table: string): number => {
      if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 0)
        fail(r, `expected a non-negative integer id, got ${describe(raw)}`);
      const row = ids.row(table, raw as number, vocabSize);
      if (row === null || !(row >= 0 && row < vocabSize))
        fail(r, `id ${raw as number} is outside the table of ${vocabSize} rows (unknown ids are ${ids.unknownIds})`);
      return row as number;
    };
    if (f.kind === 'categorical') {
      const out = new Int32Array(n);
      for (let r = 0; r < n; r++) {
        const v = value(r);
        if (v === undefined) fail(r, 'missing');
        out[r] = mapId(r, v, f.vocabSize, tableOf(f));
      }
      fields[f.name] = { kind: 'categorical', ids: out };
    } else if (f.kind === 'numeric') {
      const dim = f.dim ?? 1;
      const out = new Float32Array(n * dim);
      for (let r = 0; r < n; r++) {
        const v = value(r);
        if (v === undefined) fail(r, 'missing');
        const list = Array.isArray(v) ? v : [v];
        if (list.length !== dim) fail(r, `expected ${dim} number${dim === 1 ? '' : 's'}, got ${list.length}`);
        for (let d = 0; d < dim; d++) {
          const x = list[d];
          if (typeof x !== 'number' || !Number.isFinite(x)) fail(r, `expected a finite number, got ${describe(x)}`);
          out[r * dim + d] = x as number;
        }
      }
      fields[f.name] = { kind: 'numeric', values: out };
    } else {
      const offsets = new Int32Array(n + 1);
      const idList: number[] = [];
      const valueList: number[] = [];
      for (let r = 0; r < n; r++) {
        const v = value(r);
        if (v === undefined) fail(r, 'missing (an empty bag is [])');
        let rawIds: unknown[];
        let rawValues: unknown[] | null = null;
        if (Array.isArray(v)) rawIds = v;
        else if (v !== null && typeof v === 'object') {
          const bag = v as Record<string, unknown>;
          for (const k of Object.keys(bag))
            if (k !== 'ids' && k !== 'values') fail(r, `unknown key "${k}" (a bag is [ids] or { ids, values })`);
          if (!Array.isArray(bag.ids)) fail(r, `"ids" must be an array, got ${describe(bag.ids)}`);
          rawIds = bag.ids as unknown[];
          if (bag.values !== undefined) {
            if (!Array.isArray(bag.values)) fail(r, `"values" must be an array, got ${describe(bag.values)}`);
            rawValues = bag.values as unknown[];
            if (rawValues.length !== rawIds.length) fail(r, `${rawValues.length} values for ${rawIds.length} ids`);
          }
        } else {
          rawIds = fail(r, `expected an array of ids or { ids, values }, got ${describe(v)}`);
        }
        for (let j = 0; j < rawIds.length; j++) {
          idList.push(mapId(r, rawIds[j], f.vocabSize, tableOf(f)));
          const x = rawValues ? rawValues[j] : 1;
          if (typeof x !== 'number' || !Number.isFinite(x))
            fail(r, `value ${j} must be a finite number, got ${describe(x)}`);
          valueList.push(x as number);
        }
        offsets[r + 1] = idList.length;
      }
      const bag: FieldBatch = { kind: 'bag', ids: Int32Array.from(idList), offsets };
      if (f.weighted) bag.values = Float32Array.from(valueList);
      fields[f.name] = bag;
    }
  }
  return { batch: { size: n, fields, click: new Float32Array(n), conversion: new Float32Array(n) }, a, b };
}

/** Rows of several batches of one schema, in order, as one batch (the micro-batch of concurrent requests). */
export function concatBatches(schema: Schema, batches: readonly Batch[]): Batch {
  if (batches.length === 1) return batches[0];
  const size = batches.reduce((n, b) => n + b.size, 0);
  const fields: Record<string, FieldBatch> = {};
  for (const f of schema.fields) {
    const parts = batches.map((b) => b.fields[f.name]);
    if (f.kind === 'categorical') {
      const ids = new Int32Array(size);
      let at = 0;
      for (const p of parts) {
        const ids_ = (p as Extract<FieldBatch, { kind: 'categorical' }>).ids;
        ids.set(ids_, at);
        at += ids_.length;
      }
      fields[f.name] = { kind: 'categorical', ids };
    } else if (f.kind === 'numeric') {
      const total = parts.reduce((n, p) => n + (p as Extract<FieldBatch, { kind: 'numeric' }>).values.length, 0);
      const values = new Float32Array(total);
      let at = 0;
      for (const p of parts) {
        const v = (p as Extract<FieldBatch, { kind: 'numeric' }>).values;
        values.set(v, at);
        at += v.length;
      }
      fields[f.name] = { kind: 'numeric', values };
    } else {
      const bags = parts as Extract<FieldBatch, { kind: 'bag' }>[];
      const total = bags.reduce((n, p) => n + p.ids.length, 0);
      const ids = new Int32Array(total);
      const values = f.weighted ? new Float32Array(total) : undefined;
      const offsets = new Int32Array(size + 1);
      let row = 0;
      let at = 0;
      for (const p of bags) {
        ids.set(p.ids, at);
        if (values && p.values) values.set(p.values, at);
        for (let r = 1; r < p.offsets.length; r++) offsets[row + r] = at + p.offsets[r];
        row += p.offsets.length - 1;
        at += p.ids.length;
      }
      fields[f.name] = values ? { kind: 'bag', ids, offsets, values } : { kind: 'bag', ids, offsets };
    }
  }
  return { size, fields, click: new Float32Array(size), conversion: new Float32Array(size) };
}
