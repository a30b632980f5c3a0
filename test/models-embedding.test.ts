/** SharedEmbedding: one table per table name, field-wise pooling, numeric pass-through and sequences. */
import { describe, expect, it } from 'vitest';
import { Rng, type Tensor } from '../core/index.js';
import { paddedLength, SharedEmbedding, type Schema } from '../models/index.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';
import { getBackend } from '../kernels/index.js';

/** float64 where the active backend has it (tight comparisons); float32 with float32 tolerances on the gpu backend. */
const DTYPE = getBackend().supportsDtype('float64') ? 'float64' : 'float32';
const DIGITS = DTYPE === 'float64' ? 12 : 5;

function values(t: Tensor): number[] {
  return [...t.toArray()];
}

function rowsOf(table: Tensor, ids: number[]): number[] {
  const v = table.toArray();
  const d = table.shape[1];
  return ids.flatMap((id) => [...v.subarray(id * d, id * d + d)]);
}

describe('SharedEmbedding', () => {
  it('makes one table per table name, sized by the largest vocabulary', () => {
    const schema = tinySchema(3);
    schema.fields[2] = {
      kind: 'bag',
      name: 'history',
      vocabSize: 7,
      embeddingDim: 3,
      group: 'user',
      table: 'item',
      isSequence: true,
    };
    const e = new SharedEmbedding(schema);
    expect([...e.tables.keys()]).toEqual(['user', 'item', 'tags']);
    expect(e.tables.get('item')!.shape).toEqual([7, 3]);
    expect(e.tableFor('item')).toBe(e.tableFor('history'));
    expect(e.parameters()).toHaveLength(3);
    expect(Object.fromEntries(e.fieldDims())).toEqual({ user: 3, item: 3, history: 3, tags: 3, price: 1 });
  });

  it('rejects fields that share a table with different dims', () => {
    const schema: Schema = {
      fields: [
        { kind: 'categorical', name: 'a', vocabSize: 3, embeddingDim: 4, group: 'item', table: 't' },
        { kind: 'categorical', name: 'b', vocabSize: 3, embeddingDim: 5, group: 'item', table: 't' },
      ],
    };
    expect(() => new SharedEmbedding(schema)).toThrow(/table 't' is read by 'a' with dim 4 and by 'b' with dim 5/);
  });

  it('initialises small: N(0, 0.01²) by default', () => {
    const schema: Schema = {
      fields: [{ kind: 'categorical', name: 'a', vocabSize: 2000, embeddingDim: 10, group: 'item' }],
    };
    const v = values(new SharedEmbedding(schema, { rng: new Rng(9) }).tables.get('a')!);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
    expect(Math.abs(mean)).toBeLessThan(0.001);
    expect(std).toBeGreaterThan(0.0095);
    expect(std).toBeLessThan(0.0105);
  });

  it('pools each field: categorical as a bag of one, bags by their mode and weights, numerics as is', () => {
    const e = new SharedEmbedding(tinySchema(2), { std: 1, dtype: DTYPE });
    const out = e.forward(tinyBatch());
    expect([...out.pooled.keys()]).toEqual(['user', 'item', 'history', 'tags', 'price']);
    const item = e.tables.get('item')!;
    const tags = e.tables.get('tags')!;
    expect(values(out.pooled.get('item')!)).toEqual(rowsOf(item, [2, 4, 2]));
    // history = sum of its ids' rows, read from the item table: [1, 2], [], [4, 0, 2].
    const h = rowsOf(item, [1, 2, 4, 0, 2]);
    const expected = [h[0] + h[2], h[1] + h[3], 0, 0, h[4] + h[6] + h[8], h[5] + h[7] + h[9]];
    values(out.pooled.get('history')!).forEach((v, i) => expect(v).toBeCloseTo(expected[i], DIGITS));
    // tags: weighted mean (weights 1 | 0.5, 2 | none).
    const t = rowsOf(tags, [0, 2, 1]);
    const tagMean = [t[0], t[1], (0.5 * t[2] + 2 * t[4]) / 2.5, (0.5 * t[3] + 2 * t[5]) / 2.5, 0, 0];
    values(out.pooled.get('tags')!).forEach((v, i) => expect(v).toBeCloseTo(tagMean[i], DIGITS));
    expect(values(out.pooled.get('price')!)).toEqual([0.30000001192092896, -1.2000000476837158, 0.699999988079071]);
  });

  it('pads sequences to the longest, rounded up above 16 to eight lengths per doubling', () => {
    const lengths = [1, 7, 16, 17, 18, 19, 32, 33, 35, 36, 37, 64, 65, 100, 1000];
    expect(lengths.map(paddedLength)).toEqual([1, 7, 16, 18, 18, 20, 32, 36, 36, 36, 40, 64, 72, 104, 1024]);
    for (let n = 1; n <= 3000; n++) {
      expect(paddedLength(n)).toBeGreaterThanOrEqual(n);
      expect(paddedLength(n)).toBeLessThan(n * 1.125);
    }
  });

  it('exposes sequences as [batch, maxLen, dim] with a padding mask', () => {
    const e = new SharedEmbedding(tinySchema(2), { std: 1, dtype: DTYPE });
    const input = e.forward(tinyBatch());
    const seq = input.sequence('history');
    expect(seq).toBe(input.sequence('history'));
    expect(seq.values.shape).toEqual([3, 3, 2]);
    expect(values(seq.mask)).toEqual([1, 1, 0, 0, 0, 0, 1, 1, 1]);
    const item = e.tables.get('item')!;
    const r = (id: number): number[] => rowsOf(item, [id]);
    expect(values(seq.values)).toEqual([...r(1), ...r(2), 0, 0, 0, 0, 0, 0, 0, 0, ...r(4), ...r(0), ...r(2)]);
    expect(() => input.sequence('user')).toThrow(/only bag fields have sequences/);
  });
});
