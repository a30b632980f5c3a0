/**
 * Checkpoints in the safetensors format: an 8-byte little-endian header
 * length, a JSON header (`dtype`, `shape`, `data_offsets` per tensor, string
 * metadata under `__metadata__`) padded with spaces to an 8-byte boundary,
 * then the raw little-endian data. Files written here open in the Python
 * `safetensors` library and vice versa (for F32/F64).
 *
 * Saving is atomic: the file is written under a temporary name in the same
 * directory, flushed to disk, then renamed over the target, so a crash or an
 * error mid-save never leaves a half-written checkpoint in place of a good one.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Tensor } from '../core/tensor.js';

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

/** A loaded checkpoint. */
export interface Checkpoint {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
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

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Serialises tensors and string metadata to safetensors bytes (a deterministic layout, so equal inputs give equal bytes). */
export function encodeSafetensors(
  tensors: Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array[] {
  const { header, names } = buildHeader(tensors, metadata);
  const parts: Uint8Array[] = [header];
  for (const name of names) parts.push(tensorBytes(tensors[name]));
  return parts;
}

/** Saves a checkpoint atomically (temp file in the same directory, fsync, rename); the previous file survives any failure. */
export async function saveCheckpoint(
  path: string,
  tensors: Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  const { header, names } = buildHeader(tensors, metadata);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx');
  let done = false;
  try {
    await writeAll(fh, header);
    // One tensor at a time: a large model never needs a second full copy in memory.
    for (const name of names) await writeAll(fh, tensorBytes(tensors[name]));
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    done = true;
    await syncDir(dirname(path));
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    }
  }
}

/** Loads and validates a checkpoint; every defect is a {@link CheckpointError} naming the file and tensor. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new CheckpointError(path, `cannot read: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}

/** Decodes safetensors bytes (`file` names the source in errors). */
export function decodeSafetensors(bytes: Uint8Array, file = '<memory>'): Checkpoint {
  if (bytes.length < 8)
    throw new CheckpointError(file, `truncated: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES)
    throw new CheckpointError(
      file,
      `header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes (corrupt or not a safetensors file)`,
    );
  if (8 + headerLen > bytes.length)
    throw new CheckpointError(file, `truncated: header says ${headerLen} bytes but only ${bytes.length - 8} follow`);
  const headerText = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(8, 8 + headerLen));
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    throw new CheckpointError(file, `bad header JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new CheckpointError(file, 'bad header: not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw new CheckpointError(file, 'bad header: __metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new CheckpointError(file, `bad header: __metadata__ value "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null)
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
    if (end > dataLen) {
      throw new CheckpointError(
        file,
        `data_offsets [${begin}, ${end}] out of range: the data section has ${dataLen} bytes (file truncated?)`,
        name,
      );
    }
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    const width = dtype === 'F32' ? 4 : 8;
    if (elements * width !== end - begin) {
      throw new CheckpointError(
        file,
        `shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${elements * width} bytes, data_offsets give ${end - begin}`,
        name,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) {
      throw new CheckpointError(
        file,
        `data_offsets [${sorted[i].begin}, ${sorted[i].end}] overlap those of "${sorted[i - 1].name}" [${sorted[i - 1].begin}, ${sorted[i - 1].end}]`,
        sorted[i].name,
      );
    }
  }
  const tensors: Record<string, Tensor> = {};
  for (const e of entries) {
    const slice = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    tensors[e.name] = Tensor.fromArray(readFloats(slice, e.dtype), e.shape, {
      dtype: e.dtype === 'F32' ? 'float32' : 'float64',
    });
  }
  return { tensors, metadata };
}

function buildHeader(
  tensors: Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>>,
): { header: Uint8Array; names: string[] } {
  // Wider dtypes first (then by name), as the reference writer does, so every tensor's data stays aligned to its element size.
  const width = (n: string): number => (tensors[n].dtype === 'float64' ? 8 : 4);
  const names = Object.keys(tensors).sort((a, b) => width(b) - width(a) || (a < b ? -1 : a > b ? 1 : 0));
  const json: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`checkpoint: metadata "${k}" must be a string, got ${typeof v}`);
  }
  if (Object.keys(metadata).length > 0) json.__metadata__ = { ...metadata };
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new Error('checkpoint: "__metadata__" is reserved and cannot name a tensor');
    const t = tensors[name];
    t.assertAlive(`checkpoint tensor "${name}"`);
    const bytes = t.size * width(name);
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
  return { header, names };
}

function tensorBytes(t: Tensor): Uint8Array {
  const values = t.toArray();
  const width = values.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.length * width);
  const out = new Uint8Array(values.length * width);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    if (width === 8) dv.setFloat64(i * 8, values[i], true);
    else dv.setFloat32(i * 4, values[i], true);
  }
  return out;
}

function readFloats(slice: Uint8Array, dtype: SafetensorsDType): Float32Array | Float64Array {
  const width = dtype === 'F32' ? 4 : 8;
  const n = slice.length / width;
  // Copy into a fresh buffer: the data offset within the file need not be aligned for a typed-array view.
  const copy = new Uint8Array(slice.length);
  copy.set(slice);
  if (LITTLE_ENDIAN) return dtype === 'F32' ? new Float32Array(copy.buffer, 0, n) : new Float64Array(copy.buffer, 0, n);
  const dv = new DataView(copy.buffer);
  const out = dtype === 'F32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = width === 8 ? dv.getFloat64(i * 8, true) : dv.getFloat32(i * 4, true);
  return out;
}

async function writeAll(fh: Awaited<ReturnType<typeof open>>, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await fh.write(data, written, data.length - written);
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
