import { describe, expect, it } from 'vitest';
import { Rng } from '../core/random.js';
import { ShuffleBuffer, batchRows, batchRowsSync, collate, concatBatches, type Row } from '../models/data/rows.js';
import type { Schema } from '../models/schema.js';

const schema: Schema = {
  fields: [
    { kind: 'categorical', name: 'item', vocabSize: 10, group: 'item' },
    { kind: 'bag', name: 'hist', vocabSize: 10, group: 'user', weighted: true },
    { kind: 'bag', name: 'tags', vocabSize: 10, group: 'item' },
    { kind: 'numeric', name: 'price', group: 'item', dim: 2 },
  ],
};

const row = (i: number): Row => ({
  features: {
    item: i % 10,
    hist: i % 3 === 0 ? undefined : { ids: [1, i % 10], values: [2, 0.5] },
    tags: { ids: [i % 10] },
    price: [i, -i],
  },
  click: i % 2,
  conversion: i % 4 === 1 ? 1 : 0,
  userId: 100 + (i % 5),
  extras: { truth: i / 10 },
});

describe('collate', () => {
  it('builds typed arrays per field with bag offsets and values', () => {
    const b = collate(schema, [row(0), row(1), row(2)]);
    expect(b.size).toBe(3);
    expect(b.fields.item).toEqual({ kind: 'categorical', ids: Int32Array.of(0, 1, 2) });
    expect(b.fields.hist).toEqual({
      kind: 'bag',
      ids: Int32Array.of(1, 1, 1, 2),
      offsets: Int32Array.of(0, 0, 2, 4),
      values: Float32Array.of(2, 0.5, 2, 0.5),
    });
    expect(b.fields.tags).toEqual({ kind: 'bag', ids: Int32Array.of(0, 1, 2), offsets: Int32Array.of(0, 1, 2, 3) });
    expect(b.fields.price).toEqual({ kind: 'numeric', values: Float32Array.of(0, -0, 1, -1, 2, -2) });
    expect(b.click).toEqual(Float32Array.of(0, 1, 0));
    expect(b.conversion).toEqual(Float32Array.of(0, 1, 0));
    expect(b.userIds).toEqual(Int32Array.of(100, 101, 102));
    expect(b.extras.truth).toEqual(Float32Array.of(0, 0.1, 0.2));
  });

  it('refuses ids outside the vocabulary and values of the wrong kind', () => {
    const bad = row(1);
    bad.features = { ...bad.features, item: 10 };
    expect(() => collate(schema, [bad])).toThrow(/field "item" row 0: id 10 outside \[0, 10\)/);
    const wrong = row(1);
    wrong.features = { ...wrong.features, hist: 3 };
    expect(() => collate(schema, [wrong])).toThrow(/"hist" is a bag but row 0 holds a number/);
  });
});

describe('shuffle buffer and batching', () => {
  it('emits every row exactly once, mixed, reproducibly', async () => {
    const rows = Array.from({ length: 1000 }, (_, i) => row(i));
    const run = async (seed: number): Promise<number[]> => {
      const out: number[] = [];
      for await (const b of batchRows(schema, rows, { batchSize: 64, shuffleBuffer: 200, seed }))
        out.push(
          ...Array.from(b.fields.price.kind === 'numeric' ? b.fields.price.values.filter((_, k) => k % 2 === 0) : []),
        );
      return out;
    };
    const a = await run(1);
    expect([...a].sort((x, y) => x - y)).toEqual(rows.map((_, i) => i));
    expect(a).not.toEqual(rows.map((_, i) => i));
    expect(await run(1)).toEqual(a);
    expect(await run(2)).not.toEqual(a);
    const sync = [...batchRowsSync(schema, rows, { batchSize: 64, shuffleBuffer: 200, seed: 1, dropLast: true })];
    expect(sync).toHaveLength(15);
    expect(sync.every((b) => b.size === 64)).toBe(true);
  });

  it('keeps order without a buffer, and concatenates batches back', async () => {
    const rows = Array.from({ length: 10 }, (_, i) => row(i));
    const batches = [...batchRowsSync(schema, rows, { batchSize: 4 })];
    expect(batches.map((b) => b.size)).toEqual([4, 4, 2]);
    const whole = concatBatches(schema, batches);
    const direct = collate(schema, rows);
    expect(whole.fields).toEqual(direct.fields);
    expect(whole.userIds).toEqual(direct.userIds);
  });

  it('holds at most its capacity', () => {
    const buf = new ShuffleBuffer<number>(3, new Rng(0));
    expect([buf.push(1), buf.push(2), buf.push(3)]).toEqual([undefined, undefined, undefined]);
    expect(buf.push(4)).toBeDefined();
    expect(buf.length).toBe(3);
    expect(buf.drain()).toHaveLength(3);
  });
});
