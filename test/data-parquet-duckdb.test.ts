/**
 * Parquet written by an independent writer (DuckDB) trains through a column spec: DuckDB's own
 * layout (optional lists of optional elements, BIGINT, BOOLEAN, VARCHAR) and its row groups.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetReadObjects } from 'hyparquet';
import { writeSimulatorAliCcp } from '../models/data/aliccp-writer.js';
import { asyncBufferFromFile, parseColumnsSpec } from '../models/data/parquet.js';
import { prepareAliCcp } from '../models/data/prepare.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import { createModel } from '../models/model-factory.js';
import { userParquetSources } from '../models/training/sources-parquet.js';
import { Trainer } from '../models/training/trainer.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'esmm-duckdb-'));
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  for (const [split, n, seed] of [
    ['train', 12000, 0.1],
    ['test', 4000, 0.2],
  ] as const) {
    await mkdir(join(dir, split));
    await con.run(`SELECT setseed(${seed})`);
    // Clicks depend on the item, conversions on the city: both learnable. Some tag lists are NULL or empty.
    await con.run(`COPY (
      SELECT user_id, item_id, city, tags, list_transform(tags, t -> (1 + t % 3)::FLOAT) AS tag_weights, price,
             clicked, clicked AND random() < 0.2 + 0.5 * (city_n % 2) AS bought
      FROM (SELECT i % 500 AS user_id, (i * 7) % 300 AS item_id, 'city-' || (i % 20) AS city, i % 20 AS city_n,
                   CASE WHEN i % 13 = 0 THEN NULL WHEN i % 17 = 0 THEN []::INT[] ELSE [i % 11, (i // 3) % 11] END AS tags,
                   round(random() * 100, 2) AS price,
                   random() < 0.05 + 0.25 * (((i * 7) % 300) % 3 = 0)::INT AS clicked
            FROM range(${n}) t(i))
    ) TO '${join(dir, split, 'part-0.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 2048)`);
  }
  con.closeSync();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Parquet written by DuckDB', () => {
  it('trains through a column spec, with a vocabulary built in one pass', async () => {
    const spec = parseColumnsSpec({
      click: 'clicked',
      conversion: 'bought',
      userId: 'user_id',
      fields: [
        { kind: 'categorical', name: 'item', column: 'item_id', group: 'item' },
        { kind: 'categorical', name: 'city', group: 'user' },
        { kind: 'categorical', name: 'user', column: 'user_id', group: 'user', ids: { hash: 1024 } },
        { kind: 'bag', name: 'tags', values: 'tag_weights', group: 'item' },
        { kind: 'numeric', name: 'price', group: 'item' },
      ],
    });
    const { schema, train, test, vocabulary } = await userParquetSources(dir, spec, { batchSize: 256, seed: 1 });
    expect(vocabulary?.tables.item).toHaveLength(300);
    expect(vocabulary?.tables.city).toHaveLength(20);
    expect(vocabulary?.tables.tags).toHaveLength(11);
    // NULL and empty tag lists are empty bags; the rest carry their weights.
    const first = (await test.batches(0)[Symbol.asyncIterator]().next()).value;
    const tags = first?.fields.tags;
    expect(tags?.kind).toBe('bag');
    if (tags?.kind === 'bag') {
      expect(tags.offsets[1] - tags.offsets[0]).toBe(0); // row 0: i % 13 = 0, NULL
      expect(tags.offsets[2] - tags.offsets[1]).toBe(2);
      expect(Array.from(tags.values ?? []).slice(0, 2)).toEqual([2, 1]); // tags [1, 0] of row 1
    }
    const method = createModel({ method: 'esmm', schema, seed: 1, tower: { hidden: [16] } });
    const result = await new Trainer(method, { epochs: 2, lr: 0.01, progress: 'none' }).fit(train, test);
    const metrics = result.history[1].metrics;
    expect(metrics?.ctrAuc).toBeGreaterThan(0.6);
    expect(metrics?.ctcvrAuc).toBeGreaterThan(0.6);
  });
});

describe('Parquet written by prepareAliCcp', () => {
  it('reads the same in DuckDB, lists with empty rows included', async () => {
    const sim = new FunnelSimulator({ seed: 4, numUsers: 60, numItems: 300 });
    await writeSimulatorAliCcp(sim, sim.generate(1500), join(dir, 'raw'), 'train');
    const m = await prepareAliCcp({
      dir: join(dir, 'raw'),
      out: join(dir, 'prepared'),
      splits: ['train'],
      rowGroupRows: 500,
    });
    const file = join(dir, 'prepared', m.splits.train?.files[0] as string);
    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(file) })) as Record<string, unknown>[];
    const lists = m.schema.fields
      .filter((f) => f.kind === 'bag')
      .flatMap((f) => (f.weighted ? [f.name, `${f.name}_values`] : [f.name]));
    expect(lists.length).toBeGreaterThan(3);
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    const sql = lists.map(
      (c) => `sum(len("${c}"))::DOUBLE, sum(list_sum("${c}"))::DOUBLE, count_if(len("${c}") = 0)::DOUBLE`,
    );
    const got = (
      await con.runAndReadAll(`SELECT count(*)::DOUBLE, sum(click)::DOUBLE, ${sql.join(', ')} FROM '${file}'`)
    ).getRows()[0];
    con.closeSync();
    const want: number[] = [rows.length, rows.reduce((a, r) => a + Number(r.click), 0)];
    for (const c of lists) {
      const vals = rows.map((r) => r[c] as number[]);
      want.push(vals.reduce((a, v) => a + v.length, 0));
      want.push(vals.reduce((a, v) => a + v.reduce((x, y) => x + y, 0), 0));
      want.push(vals.filter((v) => v.length === 0).length);
    }
    expect(got.map(Number).map((x, i) => (i % 3 === 0 && i > 1 ? +x.toPrecision(6) : x))).toEqual(
      want.map((x, i) => (i % 3 === 0 && i > 1 ? +x.toPrecision(6) : x)),
    );
    expect(want.filter((x, i) => i > 1 && i % 3 === 1).some((x) => x > 0)).toBe(true);
  });
});
