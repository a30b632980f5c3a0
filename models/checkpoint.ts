/**
 * Checkpoints in the safetensors format: an 8-byte little-endian header
 * length, a JSON header (`dtype`, `shape`, `data_offsets` per tensor, string
 * metadata under `__metadata__`) padded with spaces to an 8-byte boundary,
 * then the raw little-endian data. Files written here open in the Python
 * `safetensors` library and vice versa (for F32/F64).
 *
 * Files are read and written tensor by tensor with positioned reads and writes
 * through a fixed-size buffer, so a checkpoint of any size needs at most one
 * tensor's extra memory (none on host backends, which stream a window at a time).
 * Each tensor's CRC-32 is stored in `__metadata__.crc32` and checked on load, so a
 * flipped byte in the data is an error naming the tensor, not a silently different model.
 *
 * Saving is atomic: the file is written under a temporary name in the same
 * directory, flushed to disk, then renamed over the target, so a crash or an
 * error mid-save never leaves a half-written checkpoint in place of a good one.
 * Temporary files left by a killed process are removed by the next save to the same target.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import * as zlib from 'node:zlib';
import { Tensor } from '../core/index.js';
import { getBackend, hasRangeAccess, type Backend, type DType, type FloatArray } from '../kernels/index.js';
import { INSTEAD, requireNode } from './node-only.js';

/** A safetensors dtype this library reads and writes. */
export type SafetensorsDType = 'F32' | 'F64';

/** Dtypes of the safetensors spec that this library recognises but cannot load. */
const KNOWN_UNSUPPORTED = new Set([
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'I64',
  'U64',
]);

/** Headers larger than this are refused (the reference implementation's limit), so a corrupt length cannot exhaust memory. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * The `__metadata__` key holding the checksums: a JSON object mapping each tensor name to the
 * 8 hex digits of its data's CRC-32, and `__metadata__` to the CRC-32 of the other metadata entries.
 */
export const CRC_METADATA_KEY = 'crc32';

/** Bytes moved per positioned read or write; the only buffer a save or a load allocates besides the tensors. */
const CHUNK_BYTES = 8 << 20;

/** A loaded checkpoint. Both records have no prototype, so any tensor or key name (even `__proto__`) is plain data. */
export interface Checkpoint {
  tensors: Record<string, Tensor>;
  /** String metadata, without the checksums (which the loader has already checked). */
  metadata: Record<string, string>;
}

/** Where one tensor lies in a file. */
export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
  /** Stored CRC-32 of the tensor's bytes, when the file carries checksums. */
  crc32?: number;
}

/** A checkpoint file that cannot be read, naming the file (and the tensor, when one is at fault). */
export class CheckpointError extends Error {
  constructor(
    /** Path of the file. */
    readonly file: string,
    detail: string,
    /** Name of the offending tensor, if any. */
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail}`);
    this.name = 'CheckpointError';
  }
}

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** Refuse to write a tensor holding NaN or ±Inf (the error names it; the previous file stays). Default false. */
  requireFinite?: boolean;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const widthOf = (dtype: SafetensorsDType): number => (dtype === 'F32' ? 4 : 8);

// ---- CRC-32 (IEEE, as zlib and PNG) ----

let crcTable: Uint32Array | undefined;

/** CRC-32 of `data`, continuing from `previous`; node's zlib.crc32 where it exists (Node ≥ 20.15), a table otherwise. */
export function crc32(data: Uint8Array, previous = 0): number {
  const native = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (native) return native(data, previous);
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

/** CRC-32 of the metadata entries (sorted by key, as JSON), so an altered counter or setting is caught like altered data. */
function metadataCrc(metadata: Readonly<Record<string, string>>): number {
  const entries = Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return crc32(new TextEncoder().encode(JSON.stringify(entries)));
}

// ---- writing ----

/** Serialises tensors and string metadata to safetensors bytes (a deterministic layout, so equal inputs give equal bytes). */
export function encodeSafetensors(
  tensors: Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array[] {
  const names = orderedNames(tensors, metadata);
  const data = names.map((name) => tensorBytes(tensors[name]));
  const crcs = data.map((bytes) => crc32(bytes));
  return [buildHeader(tensors, names, metadata, crcs), ...data];
}

/**
 * Saves a checkpoint atomically (temp file in the same directory, fsync, rename); the previous file
 * survives any failure. Tensors are written one window at a time at their final offsets and the
 * header, whose length does not depend on the checksums, goes last at offset 0.
 */
export async function saveCheckpoint(
  path: string,
  tensors: Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
  options: SaveCheckpointOptions = {},
): Promise<void> {
  requireNode('saveCheckpoint', [open, rename], INSTEAD.checkpoint);
  const names = orderedNames(tensors, metadata);
  const placeholder = names.map(() => 0);
  const headerLength = buildHeader(tensors, names, metadata, placeholder).length;
  const dir = dirname(path);
  await removeStaleTemps(dir, basename(path));
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx');
  let done = false;
  try {
    const crcs: number[] = [];
    const writer = new ChunkWriter(fh, headerLength);
    for (const name of names) {
      const { crc } = await writeTensor(writer, tensors[name], name, options.requireFinite ?? false);
      crcs.push(crc);
    }
    await writer.flush();
    const header = buildHeader(tensors, names, metadata, crcs);
    if (header.length !== headerLength) throw new Error('checkpoint: header length changed while writing (a bug)');
    await writeAt(fh, header, 0);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    done = true;
    await syncDir(dir);
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    }
  }
}

/**
 * Fills a buffer with consecutive tensor bytes and writes it out when full, so a file of many small
 * tensors costs a few writes, and a large tensor passes through the same buffer window by window.
 */
class ChunkWriter {
  private fill = 0;
  readonly buffer = new ArrayBuffer(CHUNK_BYTES);

  constructor(
    private readonly fh: FileHandle,
    /** File position of the buffer's first byte. */
    private position: number,
  ) {}

  /** Room for up to `max` elements of `width` bytes at the fill point, as a typed array (flushing first when full). */
  async room(width: number, max: number): Promise<FloatArray> {
    if (this.fill + width > CHUNK_BYTES) await this.flush();
    const n = Math.min(max, Math.floor((CHUNK_BYTES - this.fill) / width));
    // Wider dtypes come first in the file, so the fill point is always aligned to the element width.
    return width === 8 ? new Float64Array(this.buffer, this.fill, n) : new Float32Array(this.buffer, this.fill, n);
  }

  /** Marks `values` (from {@link ChunkWriter.room}) as written; returns their little-endian bytes. */
  commit(values: FloatArray): Uint8Array {
    const bytes = new Uint8Array(this.buffer, this.fill, values.byteLength);
    if (!LITTLE_ENDIAN) {
      const dv = new DataView(this.buffer, this.fill, values.byteLength);
      const w = values.BYTES_PER_ELEMENT;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (w === 8) dv.setFloat64(i * 8, v, true);
        else dv.setFloat32(i * 4, v, true);
      }
    }
    this.fill += values.byteLength;
    return bytes;
  }

  async flush(): Promise<void> {
    if (this.fill === 0) return;
    await writeAt(this.fh, new Uint8Array(this.buffer, 0, this.fill), this.position);
    this.position += this.fill;
    this.fill = 0;
  }
}

/** Writes one tensor through the writer's buffer; returns its CRC-32 and byte length. */
async function writeTensor(
  out: ChunkWriter,
  t: Tensor,
  name: string,
  requireFinite: boolean,
): Promise<{ crc: number; bytes: number }> {
  t.assertAlive(`checkpoint tensor "${name}"`);
  const width = t.dtype === 'float64' ? 8 : 4;
  const backend = t.backend;
  const readRange = hasRangeAccess(backend) ? backend.readRange.bind(backend) : undefined;
  // Backends without windowed reads (a device) hand over one full host copy of this tensor.
  const whole = readRange ? null : t.toArray();
  let crc = 0;
  for (let start = 0; start < t.size;) {
    const values = await out.room(width, t.size - start);
    if (whole) values.set(whole.subarray(start, start + values.length));
    else readRange!(t.storage, start, values);
    if (requireFinite) {
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]))
          throw new Error(
            `checkpoint: tensor "${name}" holds ${values[i]} at element ${start + i}; refusing to save a non-finite state`,
          );
      }
    }
    crc = crc32(out.commit(values), crc);
    start += values.length;
  }
  return { crc, bytes: t.size * width };
}

/**
 * Removes `.NAME.PID.RAND.tmp` files of this target left by processes that no longer run (a SIGKILL
 * mid-save). Temp files of a live process, which may be saving right now, are left alone.
 */
export async function removeStaleTemps(dir: string, name: string): Promise<void> {
  requireNode('removeStaleTemps', [readdir, unlink], INSTEAD.checkpoint);
  let files: string[];
  try {
    files = await readdir(dir);
  } catch {
    return; // The open below reports a missing directory.
  }
  const prefix = `.${name}.`;
  for (const file of files) {
    if (!file.startsWith(prefix) || !file.endsWith('.tmp')) continue;
    const m = /^(\d+)\.[0-9a-f]{12}\.tmp$/.exec(file.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    // Our own saves remove their temp files themselves; another live process may be saving right now.
    if (pid === process.pid || isAlive(pid)) continue;
    await unlink(join(dir, file)).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Tensor names in file order: wider dtypes first (then by name), as the reference writer does, so data stays aligned. */
function orderedNames(tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>>): string[] {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`checkpoint: metadata "${k}" must be a string, got ${typeof v}`);
    if (k === CRC_METADATA_KEY)
      throw new Error(`checkpoint: metadata key "${CRC_METADATA_KEY}" is reserved for the tensors' checksums`);
  }
  const width = (n: string): number => (tensors[n].dtype === 'float64' ? 8 : 4);
  const names = Object.keys(tensors).sort((a, b) => width(b) - width(a) || (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    if (name === '__metadata__') throw new Error('checkpoint: "__metadata__" is reserved and cannot name a tensor');
    if (!(tensors[name] instanceof Tensor)) throw new Error(`checkpoint: "${name}" is not a Tensor`);
  }
  return names;
}

function buildHeader(
  tensors: Readonly<Record<string, Tensor>>,
  names: readonly string[],
  metadata: Readonly<Record<string, string>>,
  crcs: readonly number[],
): Uint8Array {
  // Null-prototype objects: a tensor named `__proto__` is then an ordinary key of the JSON.
  const json: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const crcByName: Record<string, string> = Object.create(null) as Record<string, string>;
  names.forEach((name, i) => (crcByName[name] = hex8(crcs[i])));
  const meta: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(metadata)) meta[k] = v;
  crcByName.__metadata__ = hex8(metadataCrc(meta));
  meta[CRC_METADATA_KEY] = JSON.stringify(crcByName);
  json.__metadata__ = meta;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    t.assertAlive(`checkpoint tensor "${name}"`);
    const bytes = t.size * (t.dtype === 'float64' ? 8 : 4);
    json[name] = {
      dtype: t.dtype === 'float64' ? 'F64' : 'F32',
      shape: [...t.shape],
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  const text = new TextEncoder().encode(JSON.stringify(json));
  // Padding to 8 bytes keeps the data aligned for zero-copy readers.
  const padded = Math.ceil(text.length / 8) * 8;
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(text, 8);
  header.fill(0x20, 8 + text.length);
  return header;
}

/** The bytes of `values` in little-endian order (a view on little-endian hosts; converted into `scratch` otherwise). */
function littleEndianBytes(values: FloatArray, scratch: ArrayBuffer): Uint8Array {
  const width = values.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.length * width);
  const dv = new DataView(scratch, 0, values.length * width);
  values.forEach((v, i) => (width === 8 ? dv.setFloat64(i * 8, v, true) : dv.setFloat32(i * 4, v, true)));
  return new Uint8Array(scratch, 0, values.length * width);
}

function tensorBytes(t: Tensor): Uint8Array {
  const values = t.toArray();
  return littleEndianBytes(values, new ArrayBuffer(values.length * values.BYTES_PER_ELEMENT));
}

// ---- reading ----

/** Options of {@link CheckpointFile.read}. */
export interface ReadTensorOptions {
  /** Fill this tensor in place (same element count; dtype converted if it differs) instead of creating one. */
  into?: Tensor;
  /** Backend of a created tensor (default: the active one). */
  backend?: Backend;
}

/**
 * An open checkpoint whose header has been validated: tensors are read (and their checksums
 * checked) one at a time, on demand. Close it when done.
 */
export class CheckpointFile {
  private chunk: ArrayBuffer | undefined;
  /** The data-section range held in `chunk`. */
  private windowStart = 0;
  private windowLength = 0;

  private constructor(
    /** Path of the file. */
    readonly path: string,
    private readonly fh: FileHandle,
    /** String metadata, without the checksums. */
    readonly metadata: Record<string, string>,
    /** Tensors by name, in file order. */
    readonly entries: ReadonlyMap<string, TensorEntry>,
    /** Whether every tensor carries a stored checksum. */
    readonly checksummed: boolean,
    private readonly dataStart: number,
    private readonly dataLength: number,
  ) {}

  /** Opens `path` and validates its header and layout; every defect is a {@link CheckpointError}. */
  static async open(path: string): Promise<CheckpointFile> {
    requireNode('CheckpointFile.open', [open], INSTEAD.checkpoint);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new CheckpointError(path, `cannot read: ${(e as Error).message}`);
    }
    try {
      const stat = await fh.stat();
      if (!stat.isFile()) throw new CheckpointError(path, 'not a regular file');
      const size = stat.size;
      if (size < 8) throw new CheckpointError(path, `truncated: ${size} bytes, shorter than the 8-byte header length`);
      const lengthBytes = new Uint8Array(8);
      await readAt(fh, lengthBytes, 0, path);
      const headerLen = checkHeaderLength(lengthBytes, size - 8, path);
      const headerBytes = new Uint8Array(headerLen);
      await readAt(fh, headerBytes, 8, path);
      const layout = parseHeader(headerBytes, size - 8 - headerLen, path);
      const dataStart = 8 + headerLen;
      return new CheckpointFile(
        path,
        fh,
        layout.metadata,
        layout.entries,
        layout.checksummed,
        dataStart,
        size - dataStart,
      );
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  /** Reads one tensor and checks its checksum. */
  async read(name: string, options: ReadTensorOptions = {}): Promise<Tensor> {
    const e = this.entry(name);
    const elements = shapeElements(e.shape);
    const target = options.into;
    const dtype: DType = e.dtype === 'F32' ? 'float32' : 'float64';
    if (target) {
      target.assertAlive(`checkpoint target for "${name}"`);
      if (target.size !== elements)
        throw new CheckpointError(
          this.path,
          `has ${elements} elements [${e.shape.join(', ')}], the target has ${target.size} [${target.shape.join(', ')}]`,
          name,
        );
    }
    const backend = target?.backend ?? options.backend ?? getBackend();
    const outDtype: DType = target?.dtype ?? dtype;
    const writeRange = hasRangeAccess(backend) ? backend.writeRange.bind(backend) : undefined;
    let created: Tensor | undefined;
    let whole: FloatArray | undefined;
    try {
      // A host backend is filled window by window; a device gets one full host copy, uploaded at the end.
      if (!writeRange) whole = outDtype === 'float64' ? new Float64Array(elements) : new Float32Array(elements);
      else if (!target) created = Tensor.zeros(e.shape, { dtype: outDtype, backend });
    } catch (err) {
      throw new CheckpointError(this.path, `cannot allocate ${e.end - e.begin} bytes: ${(err as Error).message}`, name);
    }
    const storage = (target ?? created)?.storage;
    const crc = await this.stream(e, (values, start) => {
      if (whole) whole.set(values, start);
      else writeRange!(storage!, start, convert(values, outDtype));
    });
    if (e.crc32 !== undefined && crc !== e.crc32) {
      created?.dispose();
      throw new CheckpointError(
        this.path,
        `checksum mismatch: stored CRC-32 ${hex8(e.crc32)}, data gives ${hex8(crc)} (the file is corrupt)`,
        name,
      );
    }
    if (whole) {
      if (target) backend.write(target.storage, whole);
      else created = Tensor.fromArray(whole, e.shape, { dtype: outDtype, backend });
    }
    return target ?? created!;
  }

  /** Checks the checksums of the named tensors (default: all) without keeping their values. */
  async verify(names: Iterable<string> = this.entries.keys()): Promise<void> {
    for (const name of names) {
      const e = this.entry(name);
      if (e.crc32 === undefined) continue;
      const crc = await this.stream(e, () => undefined);
      if (crc !== e.crc32)
        throw new CheckpointError(
          this.path,
          `checksum mismatch: stored CRC-32 ${hex8(e.crc32)}, data gives ${hex8(crc)} (the file is corrupt)`,
          name,
        );
    }
  }

  /** Every tensor, each checked. */
  async readAll(options: { backend?: Backend } = {}): Promise<Checkpoint> {
    const tensors: Record<string, Tensor> = Object.create(null) as Record<string, Tensor>;
    for (const name of this.entries.keys()) tensors[name] = await this.read(name, options);
    const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
    Object.assign(metadata, this.metadata);
    return { tensors, metadata };
  }

  /** Closes the file; the checkpoint's tensors already read stay valid. */
  async close(): Promise<void> {
    await this.fh.close();
  }

  private entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(this.path, 'no such tensor in the file', name);
    return e;
  }

  /** Reads a tensor's bytes window by window, handing each as values of its dtype; returns the CRC-32. */
  private async stream(e: TensorEntry, visit: (values: FloatArray, start: number) => void): Promise<number> {
    const width = widthOf(e.dtype);
    this.chunk ??= new ArrayBuffer(CHUNK_BYTES);
    const chunk = this.chunk;
    let crc = 0;
    for (let at = e.begin; at < e.end;) {
      // One read fills the buffer with the data from `at` on, so consecutive small tensors share it.
      let piece = Math.min(e.end, this.windowStart + this.windowLength) - at;
      piece -= piece % width;
      if (at < this.windowStart || piece <= 0) {
        this.windowStart = at;
        this.windowLength = Math.min(CHUNK_BYTES, this.dataLength - at);
        await readAt(this.fh, new Uint8Array(chunk, 0, this.windowLength), this.dataStart + at, this.path, e.name);
        piece = Math.min(e.end - at, this.windowLength);
        piece -= piece % width;
      }
      const bytes = new Uint8Array(chunk, at - this.windowStart, piece);
      crc = crc32(bytes, crc);
      visit(floatsOf(bytes, e.dtype), (at - e.begin) / width);
      at += piece;
    }
    return crc;
  }
}

/** Opens a checkpoint for reading tensor by tensor; see {@link CheckpointFile}. */
export function openCheckpoint(path: string): Promise<CheckpointFile> {
  requireNode('openCheckpoint', [open], INSTEAD.checkpoint);
  return CheckpointFile.open(path);
}

/** Loads and validates a whole checkpoint; every defect is a {@link CheckpointError} naming the file and tensor. */
export async function loadCheckpoint(path: string, options: { backend?: Backend } = {}): Promise<Checkpoint> {
  requireNode('loadCheckpoint', [open], INSTEAD.checkpoint);
  const file = await CheckpointFile.open(path);
  try {
    return await file.readAll(options);
  } finally {
    await file.close();
  }
}

/** Decodes safetensors bytes held in memory (`file` names the source in errors), with the same checks as a file. */
export function decodeSafetensors(bytes: Uint8Array, file = '<memory>'): Checkpoint {
  if (bytes.length < 8)
    throw new CheckpointError(file, `truncated: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const headerLen = checkHeaderLength(bytes.subarray(0, 8), bytes.length - 8, file);
  const layout = parseHeader(bytes.subarray(8, 8 + headerLen), bytes.length - 8 - headerLen, file);
  const dataStart = 8 + headerLen;
  const tensors: Record<string, Tensor> = Object.create(null) as Record<string, Tensor>;
  for (const e of layout.entries.values()) {
    const slice = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    if (e.crc32 !== undefined && crc32(slice) !== e.crc32)
      throw new CheckpointError(
        file,
        `checksum mismatch: stored CRC-32 ${hex8(e.crc32)}, data gives ${hex8(crc32(slice))} (the file is corrupt)`,
        e.name,
      );
    // Copy into a fresh buffer: the data offset need not be aligned for a typed-array view.
    const copy = new Uint8Array(slice.length);
    copy.set(slice);
    tensors[e.name] = Tensor.fromArray(floatsOf(copy, e.dtype), e.shape, {
      dtype: e.dtype === 'F32' ? 'float32' : 'float64',
    });
  }
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  Object.assign(metadata, layout.metadata);
  return { tensors, metadata };
}

function checkHeaderLength(lengthBytes: Uint8Array, available: number, file: string): number {
  const view = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES))
    throw new CheckpointError(
      file,
      `header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes (corrupt or not a safetensors file)`,
    );
  const n = Number(headerLen);
  if (n > available) throw new CheckpointError(file, `truncated: header says ${n} bytes but only ${available} follow`);
  return n;
}

/**
 * Validates a header as strictly as the reference implementation: UTF-8 JSON object, known dtypes,
 * shapes whose byte size matches the offsets, tensors that tile the data section exactly (no gap,
 * no overlap, no trailing bytes), string metadata; and, when present, one checksum per tensor.
 */
function parseHeader(
  headerBytes: Uint8Array,
  dataLen: number,
  file: string,
): { metadata: Record<string, string>; entries: Map<string, TensorEntry>; checksummed: boolean } {
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new CheckpointError(file, 'bad header: not valid UTF-8');
  }
  if (!headerText.startsWith('{')) throw new CheckpointError(file, 'bad header: does not start with "{"');
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    throw new CheckpointError(file, `bad header JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new CheckpointError(file, 'bad header: not a JSON object');
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: TensorEntry[] = [];
  let crcText: string | undefined;
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw new CheckpointError(file, 'bad header: __metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new CheckpointError(file, `bad header: __metadata__ value "${k}" is not a string`);
        if (k === CRC_METADATA_KEY) crcText = v;
        else metadata[k] = v;
      }
      continue;
    }
    entries.push(parseEntry(name, raw, file));
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous: TensorEntry | undefined;
  for (const e of sorted) {
    if (e.begin !== expected) {
      const before = previous ? `"${previous.name}" [${previous.begin}, ${previous.end}]` : 'the start of the data';
      throw new CheckpointError(
        file,
        e.begin < expected
          ? `data_offsets [${e.begin}, ${e.end}] overlap those of ${before}`
          : `data_offsets [${e.begin}, ${e.end}] leave a gap of ${e.begin - expected} bytes after ${before}`,
        e.name,
      );
    }
    previous = e;
    if (e.end > dataLen) {
      throw new CheckpointError(
        file,
        `data_offsets [${e.begin}, ${e.end}] out of range: the data section has ${dataLen} bytes (file truncated?)`,
        e.name,
      );
    }
    expected = e.end;
  }
  if (expected !== dataLen)
    throw new CheckpointError(
      file,
      `${dataLen - expected} trailing bytes after the last tensor (the data section has ${dataLen} bytes, the tensors ${expected})`,
    );
  const byName = new Map<string, TensorEntry>(sorted.map((e) => [e.name, e]));
  if (crcText !== undefined) {
    let crcs: unknown;
    try {
      crcs = JSON.parse(crcText);
    } catch {
      throw new CheckpointError(file, `bad header: __metadata__.${CRC_METADATA_KEY} is not JSON`);
    }
    if (typeof crcs !== 'object' || crcs === null || Array.isArray(crcs))
      throw new CheckpointError(file, `bad header: __metadata__.${CRC_METADATA_KEY} is not an object`);
    let metaCrc: number | undefined;
    for (const [name, value] of Object.entries(crcs as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof value !== 'string' || !/^[0-9a-f]{8}$/.test(value))
          throw new CheckpointError(file, `bad metadata checksum ${JSON.stringify(value)} (expected 8 hex digits)`);
        metaCrc = parseInt(value, 16);
        continue;
      }
      const e = byName.get(name);
      if (!e) throw new CheckpointError(file, `a checksum is stored for a tensor the file does not hold`, name);
      if (typeof value !== 'string' || !/^[0-9a-f]{8}$/.test(value))
        throw new CheckpointError(file, `bad checksum ${JSON.stringify(value)} (expected 8 hex digits)`, name);
      e.crc32 = parseInt(value, 16);
    }
    for (const e of sorted)
      if (e.crc32 === undefined) throw new CheckpointError(file, 'no checksum stored for this tensor', e.name);
    if (metaCrc === undefined) throw new CheckpointError(file, 'no checksum stored for the metadata');
    const actual = metadataCrc(metadata);
    if (actual !== metaCrc)
      throw new CheckpointError(
        file,
        `metadata checksum mismatch: stored CRC-32 ${hex8(metaCrc)}, the metadata gives ${hex8(actual)} (the file is corrupt)`,
      );
  }
  return { metadata, entries: byName, checksummed: crcText !== undefined };
}

function parseEntry(name: string, raw: unknown, file: string): TensorEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new CheckpointError(file, 'bad header: entry is not an object', name);
  const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string') throw new CheckpointError(file, 'bad header: missing dtype', name);
  if (dtype !== 'F32' && dtype !== 'F64') {
    throw new CheckpointError(
      file,
      KNOWN_UNSUPPORTED.has(dtype)
        ? `unsupported dtype ${dtype} (only F32 and F64 load)`
        : `unknown dtype ${JSON.stringify(dtype)}`,
      name,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new CheckpointError(file, `bad shape ${JSON.stringify(shape)}`, name);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
  ) {
    throw new CheckpointError(file, `bad data_offsets ${JSON.stringify(offsets)}`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new CheckpointError(file, `data_offsets [${begin}, ${end}] run backwards`, name);
  const elements = shapeElements(shape as number[]);
  const width = widthOf(dtype);
  if (!Number.isSafeInteger(elements * width))
    throw new CheckpointError(file, `shape [${(shape as number[]).join(', ')}] is too large`, name);
  if (elements * width !== end - begin) {
    throw new CheckpointError(
      file,
      `shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${elements * width} bytes, data_offsets give ${end - begin}`,
      name,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function shapeElements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The values in `bytes` (little-endian; `bytes` starts at offset 0 of its buffer, so a view is aligned). */
function floatsOf(bytes: Uint8Array, dtype: SafetensorsDType): FloatArray {
  const width = widthOf(dtype);
  const n = bytes.length / width;
  if (LITTLE_ENDIAN && bytes.byteOffset % width === 0)
    return dtype === 'F32'
      ? new Float32Array(bytes.buffer, bytes.byteOffset, n)
      : new Float64Array(bytes.buffer, bytes.byteOffset, n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = dtype === 'F32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = width === 8 ? dv.getFloat64(i * 8, true) : dv.getFloat32(i * 4, true);
  return out;
}

let convertScratch: FloatArray | undefined;

/** `values` as `dtype` (itself when it already is; else through a reused buffer). */
function convert(values: FloatArray, dtype: DType): FloatArray {
  const isF64 = values instanceof Float64Array;
  if ((dtype === 'float64') === isF64) return values;
  if (
    !convertScratch ||
    convertScratch.length < values.length ||
    (dtype === 'float64') !== convertScratch instanceof Float64Array
  )
    convertScratch = dtype === 'float64' ? new Float64Array(values.length) : new Float32Array(values.length);
  const out = convertScratch.subarray(0, values.length);
  out.set(values);
  return out;
}

async function readAt(
  fh: FileHandle,
  into: Uint8Array,
  position: number,
  file: string,
  tensor?: string,
): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0)
      throw new CheckpointError(file, `truncated: the file ended at byte ${position + done} while reading`, tensor);
    done += bytesRead;
  }
}

async function writeAt(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await fh.write(data, written, data.length - written, position + written);
    written += bytesWritten;
  }
}

/** Flushes the directory entry of the rename; not every platform allows opening a directory, hence best effort. */
async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // The rename itself has happened; only its durability across a power cut is not guaranteed here.
  }
}
