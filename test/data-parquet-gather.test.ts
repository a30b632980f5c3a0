/** Batches gathered from row groups' typed columns: the same batches as collating rows, in bounded memory. */
import { describe, expect, it } from 'vitest';
import { BatchGatherer, BatchPool } from '../models/data/parquet-gather.js';
import type { GroupColumns } from '../models/data/parquet.js';
import { batchRowsSync, type Row } from '../models/data/rows.js';
import type { Schema } from '../models/schema.js';
import { plainBatch } from './helpers/batches.js';

const schema: Schema = {
  fields: [
    { kind: 'categorical', name: 'item', vocabSize: 1000, group: 'item' },
    { kind: 'bag', name: 'hist', vocabSize: 1000, group: 'user', weighted: true },
    { kind: 'bag', name: 'tags', vocabSize: 1000, group: 'item' },
    { kind: 'numeric', name: 'price', group: 'item', dim: 2 },
  ],
};

/** Row i of the stream, as a row and as columns: every value tells which row it came from. */
function rowOf(i: number): Row {
  const hist = Array.from({ length: i % 5 }, (_, k) => (i + k) % 1000);
  return {
    features: {
      item: i % 1000,
      hist: { ids: hist, values: hist.map((_, k) => k + 0.5) },
      tags: { ids: i % 7 === 0 ? [] : [i % 997] },
      price: [i, -i],
    },
    click: i % 3 === 0 ? 1 : 0,
    conversion: i % 9 === 0 ? 1 : 0,
    userId: i,
  };
}

function groupOf(first: number, rows: number): GroupColumns {
  const r = Array.from({ length: rows }, (_, k) => rowOf(first + k));
  const bag = (name: string) => {
    const offsets = new Int32Array(rows + 1);
    r.forEach(
      (x, k) => (offsets[k + 1] = offsets[k] + (x.features as Record<string, { ids: number[] }>)[name].ids.length),
    );
    return {
      offsets,
      ids: Int32Array.from(r.flatMap((x) => (x.features as Record<string, { ids: number[] }>)[name].ids)),
      values: Float32Array.from(
        r.flatMap((x) => (x.features as Record<string, { values?: number[] }>)[name].values ?? []),
      ),
    };
  };
  const hist = bag('hist');
  const tags = bag('tags');
  return {
    rows,
    click: Float32Array.from(r.map((x) => x.click)),
    conversion: Float32Array.from(r.map((x) => x.conversion)),
    userIds: Int32Array.from(r.map((x) => x.userId as number)),
    ids: [Int32Array.from(r.map((x) => (x.features as Record<string, number>).item)), hist.ids, tags.ids, null],
    offsets: [null, hist.offsets, tags.offsets, null],
    values: [
      null,
      hist.values,
      null,
      Float32Array.from(r.flatMap((x) => (x.features as Record<string, number[]>).price)),
    ],
  };
}

const SIZES = [300, 1, 0, 517, 256, 256, 90, 1024, 300, 300, 300, 44, 700, 256, 256, 256, 256, 129];

function gathered(
  options: { batchSize: number; shuffleBuffer: number; seed: number; dropLast: boolean },
  recycle: boolean,
): { batches: unknown[]; maxHeld: number; compacted: number; allocated: number } {
  const pool = new BatchPool(schema, options.batchSize, true);
  const g = new BatchGatherer(schema, options, pool);
  const batches: unknown[] = [];
  const drain = (): void => {
    for (let b = g.take(); b; b = g.take()) {
      batches.push(plainBatch(b));
      if (recycle) pool.recycle(b);
    }
  };
  let first = 0;
  let maxHeld = 0;
  for (const n of SIZES) {
    g.add(groupOf(first, n));
    first += n;
    maxHeld = Math.max(maxHeld, g.heldRows);
    drain();
  }
  g.finish();
  drain();
  return { batches, maxHeld, compacted: g.compactedRows, allocated: pool.allocated };
}

describe('BatchGatherer', () => {
  const total = SIZES.reduce((a, b) => a + b, 0);
  const rows = Array.from({ length: total }, (_, i) => rowOf(i));

  for (const shuffleBuffer of [0, 1, 250, 3000])
    for (const dropLast of [false, true])
      it(`gives collate's batches: shuffle buffer ${shuffleBuffer}, dropLast ${dropLast}`, () => {
        const options = { batchSize: 64, shuffleBuffer, seed: 11, dropLast };
        const expected = [...batchRowsSync(schema, rows, options)].map(plainBatch);
        const got = gathered(options, false);
        expect(got.batches).toEqual(expected);
        // Reused buffers change nothing in what a batch holds while it is read.
        const reused = gathered(options, true);
        expect(reused.batches).toEqual(expected);
        expect(reused.allocated).toBeLessThanOrEqual(1);
      });

  it('copies sparse groups together so that the rows held stay bounded', () => {
    const options = { batchSize: 64, shuffleBuffer: 250, seed: 3, dropLast: false };
    const got = gathered(options, false);
    expect(got.compacted).toBeGreaterThan(0);
    expect(got.maxHeld).toBeLessThanOrEqual(2 * (250 + 64) + Math.max(...SIZES));
    // Without compaction the groups with a row left in the buffer would hold far more.
    expect(got.batches.flatMap((b) => (b as { userIds: number[] }).userIds).sort((a, b) => a - b)).toEqual(
      rows.map((r) => r.userId),
    );
  });

  it('differs by seed', () => {
    const a = gathered({ batchSize: 64, shuffleBuffer: 250, seed: 1, dropLast: false }, false);
    const b = gathered({ batchSize: 64, shuffleBuffer: 250, seed: 2, dropLast: false }, false);
    expect(b.batches).not.toEqual(a.batches);
  });
});
