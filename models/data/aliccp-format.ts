/**
 * The Ali-CCP raw format: its field table, the feature-list codec
 * (`field \x02 feature \x03 value`, entries joined by `\x01`) and the line
 * layouts of the skeleton and common-features files.
 */
import type { BagField, CategoricalField, FieldGroup, Schema } from '../schema.js';

/** Separates the entries of a feature list. */
export const ENTRY_SEP = '\x01';
/** Separates the field id from the feature id. */
export const FIELD_SEP = '\x02';
/** Separates the feature id from the value. */
export const VALUE_SEP = '\x03';

/** One row of the Ali-CCP field table. */
export interface AliCcpFieldInfo {
  /** Field id as written in the files, e.g. `205` or `109_14`. */
  id: string;
  group: FieldGroup;
  /** Which file carries it. */
  file: 'common' | 'skeleton';
  /** Whether a row can hold several ids (read as a weighted bag). */
  multi: boolean;
  /** Embedding table, shared by fields naming the same entity (a category in 206 and in 109_14). */
  table: string;
  meaning: string;
}

/** The fields of Ali-CCP, in the order of the format description. */
export const ALICCP_FIELDS: readonly AliCcpFieldInfo[] = [
  { id: '101', group: 'user', file: 'common', multi: false, table: '101', meaning: 'user id' },
  {
    id: '109_14',
    group: 'user',
    file: 'common',
    multi: true,
    table: 'category',
    meaning: 'categories interacted with in 14 days (value = count)',
  },
  {
    id: '110_14',
    group: 'user',
    file: 'common',
    multi: true,
    table: 'shop',
    meaning: 'shops interacted with in 14 days',
  },
  {
    id: '127_14',
    group: 'user',
    file: 'common',
    multi: true,
    table: 'brand',
    meaning: 'brands interacted with in 14 days',
  },
  {
    id: '150_14',
    group: 'user',
    file: 'common',
    multi: true,
    table: 'intention',
    meaning: 'intention nodes in 14 days',
  },
  { id: '121', group: 'user', file: 'common', multi: false, table: '121', meaning: 'user profile category' },
  { id: '122', group: 'user', file: 'common', multi: false, table: '122', meaning: 'user profile group' },
  { id: '124', group: 'user', file: 'common', multi: false, table: '124', meaning: 'gender' },
  { id: '125', group: 'user', file: 'common', multi: false, table: '125', meaning: 'age' },
  { id: '126', group: 'user', file: 'common', multi: false, table: '126', meaning: 'consumption level I' },
  { id: '127', group: 'user', file: 'common', multi: false, table: '127', meaning: 'consumption level II' },
  { id: '128', group: 'user', file: 'common', multi: false, table: '128', meaning: 'occupation' },
  { id: '129', group: 'user', file: 'common', multi: false, table: '129', meaning: 'geography' },
  { id: '205', group: 'item', file: 'skeleton', multi: false, table: '205', meaning: 'item id' },
  { id: '206', group: 'item', file: 'skeleton', multi: false, table: 'category', meaning: 'item category' },
  { id: '207', group: 'item', file: 'skeleton', multi: false, table: 'shop', meaning: 'item shop' },
  { id: '210', group: 'item', file: 'skeleton', multi: true, table: 'intention', meaning: 'item intention nodes' },
  { id: '216', group: 'item', file: 'skeleton', multi: false, table: 'brand', meaning: 'item brand' },
  { id: '508', group: 'cross', file: 'skeleton', multi: true, table: '508', meaning: '109_14 x 206 (value = count)' },
  { id: '509', group: 'cross', file: 'skeleton', multi: true, table: '509', meaning: '110_14 x 207' },
  { id: '702', group: 'cross', file: 'skeleton', multi: true, table: '702', meaning: '127_14 x 216' },
  { id: '853', group: 'cross', file: 'skeleton', multi: true, table: '853', meaning: '150_14 x 210' },
  { id: '301', group: 'context', file: 'skeleton', multi: false, table: '301', meaning: 'position / scene' },
];

/** Field info by id. */
export const ALICCP_FIELD_BY_ID: ReadonlyMap<string, AliCcpFieldInfo> = new Map(ALICCP_FIELDS.map((f) => [f.id, f]));

/** Embedding row reserved for a missing single-valued field (and padding). */
export const MISSING_ROW = 0;

/**
 * The schema of Ali-CCP given the number of rows of each embedding table.
 * Single-valued fields are categorical (row 0 = missing); multi-valued and
 * cross fields are weighted bags whose values are the counts. The item
 * category is DIN's target and the 14-day category history its sequence:
 * they share the `category` table, so the attention compares like with like.
 */
export function aliCcpSchema(
  tableSizes: Readonly<Record<string, number>>,
  fields: readonly AliCcpFieldInfo[] = ALICCP_FIELDS,
): Schema {
  return {
    fields: fields.map((f): CategoricalField | BagField => {
      const vocabSize = tableSizes[f.table];
      if (!Number.isInteger(vocabSize) || vocabSize <= 0)
        throw new Error(`aliCcpSchema: no size for table "${f.table}" of field ${f.id}`);
      if (f.multi) {
        const bag: BagField = { kind: 'bag', name: f.id, vocabSize, group: f.group, weighted: true, pooling: 'sum' };
        if (f.table !== f.id) bag.table = f.table;
        if (f.id === '109_14') bag.isSequence = true;
        return bag;
      }
      const cat: CategoricalField = { kind: 'categorical', name: f.id, vocabSize, group: f.group };
      if (f.table !== f.id) cat.table = f.table;
      if (f.id === '206') cat.isTarget = true;
      return cat;
    }),
  };
}

/** A parsed feature list, as parallel arrays in file order. */
export interface FeatureList {
  fields: string[];
  ids: number[];
  values: number[];
}

/** Thrown for a malformed feature list; `column` is the 0-based character offset within the list. */
export class FeatureListError extends Error {
  constructor(
    message: string,
    /** Offset of the offending entry within the list. */
    readonly column: number,
  ) {
    super(message);
    this.name = 'FeatureListError';
  }
}

const FLOAT_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Numeric code of a field id (`a` or `a_b`, at most 9 and 4 digits), or -1
 * when the text is not a field id. Lets the reader look fields up without
 * allocating a string per entry.
 */
export function fieldCode(text: string, from = 0, to = text.length): number {
  if (to <= from) return -1;
  let a = 0;
  let b = 0;
  let digitsA = 0;
  let digitsB = -1;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digitsB < 0) {
        a = a * 10 + (c - 48);
        digitsA++;
      } else {
        b = b * 10 + (c - 48);
        digitsB++;
      }
    } else if (c === 95 && digitsB < 0 && digitsA > 0) {
      digitsB = 0;
    } else {
      return -1;
    }
  }
  if (digitsA > 9 || digitsB === 0 || digitsB > 4) return -1;
  return a * 10001 + (digitsB > 0 ? b + 1 : 0);
}

/** Receives one entry of a feature list: the field's code and its text span, the feature id and the value. */
export type FeatureVisitor = (code: number, id: number, value: number, fieldStart: number, fieldEnd: number) => void;

/**
 * Walks `field\x02id\x03value` entries joined by `\x01`. Strict: a field id
 * is digits with an optional `_digits` suffix, a feature id a non-negative
 * integer, a value a decimal number finite in float32; anything else throws a
 * {@link FeatureListError} so a dirty line is never read silently wrong.
 * Returns the number of entries.
 */
export function scanFeatureList(text: string, visit: FeatureVisitor): number {
  if (text.length === 0) return 0;
  let start = 0;
  let count = 0;
  const n = text.length;
  for (;;) {
    let end = text.indexOf(ENTRY_SEP, start);
    if (end < 0) end = n;
    const f = text.indexOf(FIELD_SEP, start);
    if (f < 0 || f >= end)
      throw new FeatureListError(
        `entry ${count + 1} lacks the field separator \\x02: ${preview(text, start, end)}`,
        start,
      );
    const v = text.indexOf(VALUE_SEP, f + 1);
    if (v < 0 || v >= end)
      throw new FeatureListError(
        `entry ${count + 1} lacks the value separator \\x03: ${preview(text, start, end)}`,
        start,
      );
    const code = fieldCode(text, start, f);
    if (code < 0)
      throw new FeatureListError(
        `entry ${count + 1} has a bad field id ${JSON.stringify(text.slice(start, f))}`,
        start,
      );
    const id = parseId(text, f + 1, v);
    if (id < 0)
      throw new FeatureListError(
        `entry ${count + 1} (field ${text.slice(start, f)}) has a bad feature id ${JSON.stringify(text.slice(f + 1, v))}`,
        start,
      );
    // Plain integers (ids' 1, behaviour counts) skip the regex; anything else is checked in full.
    let value = parseId(text, v + 1, end);
    if (value < 0) {
      const s = text.slice(v + 1, end);
      if (!FLOAT_RE.test(s))
        throw new FeatureListError(
          `entry ${count + 1} (field ${text.slice(start, f)}) has a bad value ${JSON.stringify(s)}`,
          start,
        );
      value = Number(s);
      // Values land in Float32Arrays: a double beyond float32's range would turn into Infinity there.
      if (!Number.isFinite(Math.fround(value)))
        throw new FeatureListError(
          `entry ${count + 1} (field ${text.slice(start, f)}) has a value ${JSON.stringify(s)} that is non-finite in float32 (beyond ±3.4028235e38)`,
          start,
        );
    }
    count++;
    visit(code, id, value, start, f);
    if (end === n) return count;
    start = end + 1;
    if (start === n) throw new FeatureListError(`feature list ends with a dangling \\x01`, end);
  }
}

/** Parses a feature list into parallel arrays (see {@link scanFeatureList} for what is accepted). */
export function parseFeatureList(text: string): FeatureList {
  const out: FeatureList = { fields: [], ids: [], values: [] };
  scanFeatureList(text, (_code, id, value, fs, fe) => {
    out.fields.push(text.slice(fs, fe));
    out.ids.push(id);
    out.values.push(value);
  });
  return out;
}

function isFieldId(s: string): boolean {
  return fieldCode(s) >= 0;
}

/** A non-negative integer in text[from, to), or -1 when it is not one (or past 2^53). */
function parseId(text: string, from: number, to: number): number {
  if (to <= from || to - from > 16) return -1;
  let x = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    x = x * 10 + c;
  }
  return Number.isSafeInteger(x) ? x : -1;
}

function preview(text: string, start: number, end: number): string {
  const s = text.slice(start, Math.min(end, start + 60));
  return JSON.stringify(s) + (end - start > 60 ? '…' : '');
}

/** Writes a feature list; integral values print without a fraction, others round-trip exactly. */
export function formatFeatureList(list: FeatureList): string {
  const parts: string[] = new Array<string>(list.ids.length);
  for (let i = 0; i < list.ids.length; i++) {
    const field = list.fields[i];
    const id = list.ids[i];
    const value = list.values[i];
    if (!isFieldId(field)) throw new Error(`formatFeatureList: bad field id ${JSON.stringify(field)}`);
    if (!Number.isSafeInteger(id) || id < 0)
      throw new Error(`formatFeatureList: bad feature id ${id} (field ${field})`);
    if (!Number.isFinite(Math.fround(value)))
      throw new Error(`formatFeatureList: value ${value} is non-finite in float32 (field ${field})`);
    parts[i] = `${field}${FIELD_SEP}${id}${VALUE_SEP}${formatValue(value)}`;
  }
  return parts.join(ENTRY_SEP);
}

function formatValue(v: number): string {
  // String() of a double can use exponent notation ("1e-7"), which the parser accepts; "-0" would print as "0".
  return Object.is(v, -0) ? '-0' : String(v);
}

/** A skeleton line split into its columns. */
export interface SkeletonLine {
  sampleId: string;
  click: string;
  conversion: string;
  commonKey: string;
  featureNum: string;
  featureList: string;
}

/** Splits a skeleton line on its first five commas, or returns null when it has fewer. */
export function splitSkeletonLine(line: string): SkeletonLine | null {
  const c1 = line.indexOf(',');
  if (c1 < 0) return null;
  const c2 = line.indexOf(',', c1 + 1);
  if (c2 < 0) return null;
  const c3 = line.indexOf(',', c2 + 1);
  if (c3 < 0) return null;
  const c4 = line.indexOf(',', c3 + 1);
  if (c4 < 0) return null;
  const c5 = line.indexOf(',', c4 + 1);
  if (c5 < 0) return null;
  return {
    sampleId: line.slice(0, c1),
    click: line.slice(c1 + 1, c2),
    conversion: line.slice(c2 + 1, c3),
    commonKey: line.slice(c3 + 1, c4),
    featureNum: line.slice(c4 + 1, c5),
    featureList: line.slice(c5 + 1),
  };
}

/** A common-features line split into its columns. */
export interface CommonLine {
  commonKey: string;
  featureNum: string;
  featureList: string;
}

/** Splits a common-features line on its first two commas, or returns null when it has fewer. */
export function splitCommonLine(line: string): CommonLine | null {
  const c1 = line.indexOf(',');
  if (c1 < 0) return null;
  const c2 = line.indexOf(',', c1 + 1);
  if (c2 < 0) return null;
  return { commonKey: line.slice(0, c1), featureNum: line.slice(c1 + 1, c2), featureList: line.slice(c2 + 1) };
}

/** Formats a skeleton line (`feature_num` is written as the entry count). */
export function formatSkeletonLine(
  sampleId: string | number,
  click: number,
  conversion: number,
  commonKey: string,
  list: FeatureList,
): string {
  return `${sampleId},${click},${conversion},${commonKey},${list.ids.length},${formatFeatureList(list)}`;
}

/** Formats a common-features line. */
export function formatCommonLine(commonKey: string, list: FeatureList): string {
  return `${commonKey},${list.ids.length},${formatFeatureList(list)}`;
}
