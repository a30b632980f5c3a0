/**
 * A fast path for the columns that training data has: flat numbers and lists of numbers. Pages are
 * decoded with hyparquet's own page readers, but a list column becomes one flat array of values
 * plus row offsets (from the repetition levels) instead of one JavaScript array per row, which is
 * what makes reading a row group of bags cheap. Other shapes return null and take the general path.
 */
import type { AsyncBuffer, DecodedArray, FileMetaData } from 'hyparquet';
import { parquetSchema } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { DEFAULT_PARSERS, convertWithDictionary } from 'hyparquet/src/convert.js';
import { decompressPage, readDataPage, readDataPageV2 } from 'hyparquet/src/datapage.js';
import { readPlain } from 'hyparquet/src/plain.js';
import { getMaxDefinitionLevel, getMaxRepetitionLevel, getTreePath } from 'hyparquet/src/schema.js';

/** A flat column: one value per row; `present[r]` is 0 where the row is null (absent when none can be). */
export interface FlatColumn {
  kind: 'flat';
  values: ArrayLike<unknown>;
  /** Row → index into `values`, or -1 for a null (absent when the column is required). */
  index: Int32Array | null;
}

/** A list column: row r's elements are `values[offsets[r] .. offsets[r + 1])`. */
export interface ListColumn {
  kind: 'list';
  values: ArrayLike<unknown>;
  offsets: Int32Array;
  /** First row holding a null element, or -1. */
  nullElementRow: number;
}

const NUMERIC = new Set(['INT32', 'INT64', 'FLOAT', 'DOUBLE', 'BOOLEAN']);

/** Decodes column `name` of row group `group`, or returns null when it is not a flat or list column of numbers. */
export async function readFastColumn(
  file: AsyncBuffer,
  metadata: FileMetaData,
  group: number,
  name: string,
): Promise<FlatColumn | ListColumn | null> {
  const rg = metadata.row_groups[group];
  const chunks = rg.columns.filter((c) => c.meta_data?.path_in_schema[0] === name);
  if (chunks.length !== 1) return null;
  const meta = chunks[0].meta_data;
  if (!meta || !NUMERIC.has(meta.type)) return null;
  const tree = getTreePath(parquetSchema(metadata), meta.path_in_schema);
  const schemaPath = tree;
  const maxRep = getMaxRepetitionLevel(schemaPath);
  const maxDef = getMaxDefinitionLevel(schemaPath);
  if (maxRep > 1 || (maxRep === 0 && maxDef > 1)) return null;
  const element = schemaPath[schemaPath.length - 1].element;
  const decoder = {
    pathInSchema: meta.path_in_schema,
    element,
    schemaPath,
    type: meta.type,
    codec: meta.codec,
    parsers: DEFAULT_PARSERS,
    utf8: false,
  };
  const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
  const buffer = await file.slice(start, start + Number(meta.total_compressed_size));
  const reader = { view: new DataView(buffer), offset: 0 };
  const rows = Number(rg.num_rows);
  const parts: ArrayLike<unknown>[] = [];
  let dictionary: DecodedArray | undefined;
  // Row bookkeeping runs page by page: for a flat column the row → value index, for a list the offsets.
  const index = maxRep === 0 && maxDef > 0 ? new Int32Array(rows) : null;
  const offsets = maxRep > 0 ? new Int32Array(rows + 1) : null;
  const elementOptional = element.repetition_type === 'OPTIONAL';
  let row = -1;
  let v = 0;
  let nullElementRow = -1;
  while (reader.offset < buffer.byteLength - 1) {
    const header = parquetHeader(reader);
    const bytes = new Uint8Array(buffer, reader.offset, header.compressed_page_size);
    reader.offset += header.compressed_page_size;
    let page;
    let encoding;
    if (header.type === 'DICTIONARY_PAGE') {
      const raw = decompressPage(bytes, Number(header.uncompressed_page_size), meta.codec, undefined);
      const view = { view: new DataView(raw.buffer, raw.byteOffset, raw.byteLength), offset: 0 };
      dictionary = readPlain(view, meta.type, header.dictionary_page_header?.num_values ?? 0, element.type_length);
      continue;
    } else if (header.type === 'DATA_PAGE' && header.data_page_header) {
      const raw = decompressPage(bytes, Number(header.uncompressed_page_size), meta.codec, undefined);
      page = readDataPage(raw, header.data_page_header, decoder);
      encoding = header.data_page_header.encoding;
    } else if (header.type === 'DATA_PAGE_V2' && header.data_page_header_v2) {
      page = readDataPageV2(bytes, header, decoder);
      encoding = header.data_page_header_v2.encoding;
    } else {
      continue; // index pages carry no values
    }
    const decoded =
      lookUp(page.dataPage, dictionary, encoding) ??
      (convertWithDictionary(page.dataPage, dictionary, encoding, decoder) as ArrayLike<unknown>);
    parts.push(decoded);
    const defs = page.definitionLevels ?? [];
    const reps = page.repetitionLevels;
    if (index && defs.length === 0) {
      // No definition levels written: every value of the page is there.
      for (let i = 0; i < decoded.length; i++) {
        if (++row >= rows) throw new Error(`column ${name}: more values than the row group's ${rows} rows`);
        index[row] = v++;
      }
    } else if (index) {
      for (let i = 0; i < defs.length; i++) {
        if (++row >= rows) throw new Error(`column ${name}: more values than the row group's ${rows} rows`);
        index[row] = defs[i] === maxDef ? v++ : -1;
      }
    } else if (offsets) {
      const n = Math.max(reps.length, defs.length);
      for (let i = 0; i < n; i++) {
        if (reps[i] === 0) {
          if (++row >= rows) throw new Error(`column ${name}: more rows than the row group's ${rows}`);
          offsets[row] = v;
        }
        const def = defs.length ? defs[i] : maxDef;
        if (def === maxDef) v++;
        else if (elementOptional && def === maxDef - 1 && nullElementRow < 0) nullElementRow = row;
      }
    }
  }
  const values = typedValues(concat(parts), meta.type);
  if (!index && !offsets) {
    if (values.length !== rows) throw new Error(`column ${name}: ${values.length} values for ${rows} rows`);
    return { kind: 'flat', values, index: null };
  }
  if (row !== rows - 1) throw new Error(`column ${name}: ${row + 1} rows for the row group's ${rows}`);
  if (v !== values.length) throw new Error(`column ${name}: ${values.length} values for ${v} defined levels`);
  if (index) return { kind: 'flat', values, index };
  (offsets as Int32Array)[rows] = v;
  return { kind: 'list', values, offsets: offsets as Int32Array, nullElementRow };
}

/**
 * Dictionary indices to values, straight into a typed array when the dictionary is one (hyparquet's
 * own conversion writes into the indices' plain array, which would take a second pass to type).
 */
function lookUp(
  indices: DecodedArray,
  dictionary: DecodedArray | undefined,
  encoding: string,
): ArrayLike<unknown> | null {
  if (!dictionary || !encoding.endsWith('_DICTIONARY')) return null;
  if (!(dictionary instanceof Int32Array || dictionary instanceof Float32Array || dictionary instanceof Float64Array))
    return null;
  const idx = indices as ArrayLike<number>;
  const out = new (dictionary.constructor as new (n: number) => Int32Array | Float32Array | Float64Array)(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const j = idx[i];
    if (!(j >= 0 && j < dictionary.length))
      throw new Error(`dictionary index ${j} outside its ${dictionary.length} values`);
    out[i] = dictionary[j];
  }
  return out;
}

/** Dictionary pages decode to plain arrays: one pass makes them typed again, for the callers' fast paths. */
function typedValues(values: ArrayLike<unknown>, type: string): ArrayLike<unknown> {
  if (ArrayBuffer.isView(values) || values.length === 0) return values;
  if (type === 'INT32') return Int32Array.from(values as ArrayLike<number>);
  if (type === 'FLOAT') return Float32Array.from(values as ArrayLike<number>);
  if (type === 'DOUBLE') return Float64Array.from(values as ArrayLike<number>);
  return values;
}

/** Joins decoded pages: into one typed array when they all are of one kind, else a plain array. */
function concat(parts: ArrayLike<unknown>[]): ArrayLike<unknown> {
  if (parts.length === 1) return parts[0];
  const total = parts.reduce((s, p) => s + p.length, 0);
  const first = parts[0];
  if (first && ArrayBuffer.isView(first) && parts.every((p) => p.constructor === first.constructor)) {
    const Ctor = first.constructor as new (n: number) => Int32Array;
    const out = new Ctor(total);
    let at = 0;
    for (const p of parts) {
      out.set(p as Int32Array, at);
      at += p.length;
    }
    return out;
  }
  const out = new Array<unknown>(total);
  let at = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) out[at++] = p[i];
  return out;
}
