import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../core/tensor.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from '../models/checkpoint.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'esmm-ckpt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Builds a safetensors file by hand from a header object and data bytes. */
function rawFile(header: unknown, data: Uint8Array, pad = true): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) while ((text.length + 8) % 8 !== 0) text += ' ';
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('checkpoint', () => {
  it('round-trips float32 and float64 tensors with metadata', async () => {
    const path = join(dir, 'model.safetensors');
    const w = Tensor.fromArray([1.5, -2, 3.25, 1e-30, 7, 8], [2, 3]);
    const b = Tensor.fromArray([Math.PI, -Math.E], [2], { dtype: 'float64' });
    const s = Tensor.fromArray([42], []);
    const empty = Tensor.fromArray([], [0, 4]);
    await saveCheckpoint(path, { 'tower.w': w, 'tower.b': b, scalar: s, empty }, { step: '12', model: 'esmm' });
    const bytes = await readFile(path);
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect((8 + headerLen) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8'));
    // The checksums travel in the metadata (as a string, so the file stays valid safetensors) but are not returned.
    expect(Object.keys(header.__metadata__)).toEqual(['step', 'model', 'crc32']);
    expect(Object.keys(JSON.parse(header.__metadata__.crc32)).sort()).toEqual([
      '__metadata__',
      'empty',
      'scalar',
      'tower.b',
      'tower.w',
    ]);
    expect(header['tower.b']).toEqual({ dtype: 'F64', shape: [2], data_offsets: [0, 16] });
    const ck = await loadCheckpoint(path);
    expect(ck.metadata).toEqual({ step: '12', model: 'esmm' });
    expect(ck.tensors['tower.w'].dtype).toBe('float32');
    expect(ck.tensors['tower.w'].shape).toEqual([2, 3]);
    expect([...ck.tensors['tower.w'].toArray()]).toEqual([...w.toArray()]);
    expect(ck.tensors['tower.b'].dtype).toBe('float64');
    expect([...ck.tensors['tower.b'].toArray()]).toEqual([Math.PI, -Math.E]);
    expect(ck.tensors.scalar.shape).toEqual([]);
    expect(ck.tensors.scalar.item()).toBe(42);
    expect(ck.tensors.empty.shape).toEqual([0, 4]);
  });

  const f32 = (values: number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer);
  const cases: [string, Uint8Array, RegExp][] = [
    ['short.safetensors', new Uint8Array([1, 2, 3]), /short\.safetensors: truncated/],
    [
      'badjson.safetensors',
      rawFile('{"a": {"dtype": "F32",', new Uint8Array(0)),
      /badjson\.safetensors: bad header JSON/,
    ],
    [
      'range.safetensors',
      rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32([1, 2])),
      /range\.safetensors: tensor "a": data_offsets \[0, 16\] out of range/,
    ],
    [
      'overlap.safetensors',
      rawFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        f32([1, 2, 3]),
      ),
      /overlap\.safetensors: tensor "b": data_offsets \[4, 12\] overlap those of "a"/,
    ],
    [
      'dtype.safetensors',
      rawFile({ a: { dtype: 'Q7', shape: [1], data_offsets: [0, 4] } }, f32([1])),
      /dtype\.safetensors: tensor "a": unknown dtype "Q7"/,
    ],
    [
      'f16.safetensors',
      rawFile({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, f32([1])),
      /tensor "a": unsupported dtype F16/,
    ],
    [
      'shape.safetensors',
      rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32([1, 2])),
      /shape\.safetensors: tensor "a": shape \[3\] of F32 needs 12 bytes/,
    ],
    [
      'meta.safetensors',
      rawFile({ __metadata__: { step: 3 } }, new Uint8Array(0)),
      /__metadata__ value "step" is not a string/,
    ],
  ];
  for (const [name, bytes, message] of cases) {
    it(`rejects ${name} with a clear error`, async () => {
      const path = join(dir, name);
      await writeFile(path, bytes);
      const err = await loadCheckpoint(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('reports a truncated copy of a good file', async () => {
    const path = join(dir, 'cut.safetensors');
    await saveCheckpoint(path, { w: Tensor.fromArray([1, 2, 3, 4], [4]) });
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 3));
    await expect(loadCheckpoint(path)).rejects.toThrow(
      /cut\.safetensors: tensor "w": data_offsets \[0, 16\] out of range.*truncated/,
    );
    await writeFile(path, bytes.subarray(0, 20));
    await expect(loadCheckpoint(path)).rejects.toThrow(/cut\.safetensors: truncated: header says/);
  });

  it('keeps the previous file intact when a save fails midway', async () => {
    const sub = await mkdtemp(join(dir, 'atomic-'));
    const path = join(sub, 'ck.safetensors');
    await saveCheckpoint(path, { w: Tensor.fromArray([1, 2], [2]) }, { version: 'old' });
    const before = await readFile(path);
    const gone = Tensor.fromArray([9, 9], [2]);
    const big = Tensor.fromArray(new Float32Array(1 << 16).fill(3), [1 << 16]);
    // "a" is written before "z" fails, so the temp file really was partly written.
    const save = saveCheckpoint(path, { a: big, z: gone }, { version: 'new' });
    gone.dispose();
    await expect(save).rejects.toThrow(/disposed/);
    expect(Buffer.compare(await readFile(path), before)).toBe(0);
    expect((await loadCheckpoint(path)).metadata.version).toBe('old');
    expect(await readdir(sub)).toEqual(['ck.safetensors']);
    await expect(saveCheckpoint(join(sub, 'missing', 'x.safetensors'), { w: big })).rejects.toThrow();
    expect(await readdir(sub)).toEqual(['ck.safetensors']);
  });
});
