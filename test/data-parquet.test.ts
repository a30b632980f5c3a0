/** Ali-CCP prepared into Parquet, users' own Parquet through a column spec, and the worker source. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { parquetWriteFile } from 'hyparquet-writer';
import { AliCcpReader, aliCcpFiles } from '../models/data/aliccp.js';
import { writeSimulatorAliCcp } from '../models/data/aliccp-writer.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import { openPrepared, prepareAliCcp } from '../models/data/prepare.js';
import {
  ParquetSchemaError,
  ParquetVocabulary,
  buildParquetVocabulary,
  parseColumnsSpec,
  type ColumnsSpec,
} from '../models/data/parquet.js';
import { batchRows, type BatchWithExtras } from '../models/data/rows.js';
import { createModel } from '../models/model-factory.js';
import { aliCcpSource } from '../models/training/sources.js';
import { parquetSource, preparedSources, userParquetSources } from '../models/training/sources-parquet.js';
import { Trainer, type BatchSource } from '../models/training/trainer.js';
import { plainBatch } from './helpers/batches.js';

let tmp = '';
let raw = '';
let prepared = '';
const sim = new FunnelSimulator({
  seed: 8,
  numUsers: 150,
  numItems: 500,
  numCategories: 30,
  numShops: 80,
  numBrands: 50,
});

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'esmm-parquet-'));
  raw = join(tmp, 'raw');
  prepared = join(tmp, 'prepared');
  await writeSimulatorAliCcp(sim, sim.generate(3000), raw, 'train');
  await writeSimulatorAliCcp(sim, sim.generate(1200), raw, 'test');
  await prepareAliCcp({ dir: raw, out: prepared, shardRows: 1100, rowGroupRows: 256 });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function all(source: BatchSource, epoch: number): Promise<BatchWithExtras[]> {
  const out: BatchWithExtras[] = [];
  for await (const b of source.batches(epoch)) out.push(b as BatchWithExtras);
  return out;
}

describe('prepareAliCcp', () => {
  it('writes shards, vocabulary and manifest whose rows equal the text reader’s', async () => {
    const { manifest, vocabulary, files } = await openPrepared(prepared);
    expect(manifest.splits.train?.rows).toBe(3000);
    expect(manifest.splits.test?.rows).toBe(1200);
    expect(files.train?.map((f) => f.slice(prepared.length + 1))).toEqual([
      'train-00000.parquet',
      'train-00001.parquet',
      'train-00002.parquet',
    ]);
    // In file order and unshuffled, the prepared batches are the text reader's batches.
    const reader = new AliCcpReader(aliCcpFiles(raw, 'train'), { encoder: vocabulary });
    const fromText = [];
    for await (const b of batchRows(reader.schema, reader.rows(), { batchSize: 500 })) fromText.push(plainBatch(b));
    const source = parquetSource({
      files: files.train as string[],
      spec: manifest.columns,
      batchSize: 500,
      worker: false,
    });
    expect(source.schema).toEqual(reader.schema);
    expect((await all(source, 1)).map(plainBatch)).toEqual(fromText);
  });

  it('trains from Parquet to the same weights as from the text files', async () => {
    const { vocabulary, manifest, files } = await openPrepared(prepared);
    const reader = new AliCcpReader(aliCcpFiles(raw, 'train'), { encoder: vocabulary });
    const weightsOf = async (source: BatchSource) => {
      const m = createModel({ method: 'esmm', schema: reader.schema, seed: 1, tower: { hidden: [8] } });
      await new Trainer(m, { epochs: 1, lr: 0.01, progress: 'none' }).fit(source);
      return m.parameters().flatMap((p) => Array.from(p.toArray()));
    };
    const a = await weightsOf(aliCcpSource(() => reader, { batchSize: 300 }));
    const b = await weightsOf(
      parquetSource({ files: files.train as string[], spec: manifest.columns, batchSize: 300, worker: false }),
    );
    expect(b).toEqual(a);
  });

  it('shuffles the order of row groups per epoch, seeded, keeping every row once', async () => {
    const { train } = await preparedSources(prepared, { batchSize: 256, shuffleBuffer: 200, seed: 3, worker: false });
    const users = async (epoch: number) => (await all(train, epoch)).flatMap((b) => Array.from(b.userIds ?? []));
    const e1 = await users(1);
    const e1again = await users(1);
    const e2 = await users(2);
    expect(e1).toHaveLength(3000);
    expect(e1again).toEqual(e1);
    expect(e2).not.toEqual(e1);
    expect([...e2].sort((x, y) => x - y)).toEqual([...e1].sort((x, y) => x - y));
  });

  it('names the row of an id outside its table or a non-finite value in typed list columns', async () => {
    const { manifest, files } = await openPrepared(prepared);
    const bag = manifest.columns.fields.find((f) => f.kind === 'bag' && f.values !== undefined && !f.table);
    expect(bag?.kind).toBe('bag');
    // Shrink the table so real ids fall outside it.
    const spec: ColumnsSpec = {
      ...manifest.columns,
      fields: manifest.columns.fields.map((f) => (f === bag ? { ...f, ids: { encoded: 2 } } : f)),
    };
    const source = parquetSource({ files: files.train as string[], spec, batchSize: 500, worker: false });
    await expect(all(source, 0)).rejects.toThrow(
      new RegExp(`column "${bag?.name}", row \\d+\\): id must be an integer in \\[0, 2\\), got \\d+ at list position`),
    );
    const dir = join(tmp, 'nan');
    await mkdir(dir, { recursive: true });
    const list = (name: string, type: 'INT32' | 'FLOAT') => [
      { name, repetition_type: 'REQUIRED' as const, converted_type: 'LIST' as const, num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED' as const, num_children: 1 },
      { name: 'element', type, repetition_type: 'REQUIRED' as const },
    ];
    const w = Array.from({ length: 40 }, (_, i) => [1, 2, i]);
    w[33] = [1, Number.NaN, 2];
    await parquetWriteFile({
      filename: join(dir, 'part-0.parquet'),
      schema: [
        { name: 'root', num_children: 4 },
        { name: 'c', type: 'INT32', repetition_type: 'REQUIRED' },
        { name: 'v', type: 'INT32', repetition_type: 'REQUIRED' },
        ...list('t', 'INT32'),
        ...list('w', 'FLOAT'),
      ],
      columnData: [
        { name: 'c', data: new Int32Array(40).fill(1) },
        { name: 'v', data: new Int32Array(40) },
        { name: 't', data: w.map(() => [0, 1, 2]) },
        { name: 'w', data: w },
      ],
    });
    const nan = parquetSource({
      files: [join(dir, 'part-0.parquet')],
      spec: { click: 'c', conversion: 'v', fields: [{ kind: 'bag', name: 't', values: 'w', ids: { encoded: 3 } }] },
      batchSize: 16,
      worker: false,
    });
    await expect(all(nan, 0)).rejects.toThrow(
      /column "w", row 33\): value at list position 1 is not finite in float32/,
    );
  });

  it('refuses a vocabulary that is not the one the shards were written with', async () => {
    const copy = join(tmp, 'tampered');
    await prepareAliCcp({ dir: raw, out: copy, splits: ['train'] });
    const v = JSON.parse(await readFile(join(copy, 'vocabulary.json'), 'utf8')) as { tables: Record<string, number[]> };
    v.tables['205'].pop();
    await writeFile(join(copy, 'vocabulary.json'), JSON.stringify(v));
    await expect(openPrepared(copy)).rejects.toThrow(
      /vocabulary\.json: does not match the vocabulary the shards were written with/,
    );
  });

  it('gives the same batches through the worker thread as in this thread', async () => {
    const bundle = join(tmp, 'parquet-worker.mjs');
    await build({
      entryPoints: [join(__dirname, '../models/data/parquet-worker.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: bundle,
      logLevel: 'silent',
    });
    const { manifest, files } = await openPrepared(prepared);
    const options = { files: files.train as string[], spec: manifest.columns, batchSize: 512, shuffle: true, seed: 5 };
    const local = parquetSource({ ...options, worker: false });
    const remote = parquetSource({ ...options, worker: pathToFileURL(bundle), prefetch: 3 });
    try {
      expect(remote.usesWorker).toBe(true);
      // Batches handed back (as the trainer does) are reused by later ones; the next epoch is read ahead.
      const recycled = async (epoch: number) => {
        const out: unknown[] = [];
        for await (const b of remote.batches(epoch)) {
          out.push(plainBatch(b));
          remote.recycle(b);
          expect(b.click.length).toBe(0); // moved back to the worker
        }
        return out;
      };
      for (const epoch of [1, 2]) expect(await recycled(epoch)).toEqual((await all(local, epoch)).map(plainBatch));
      expect((await all(remote, 1)).map(plainBatch)).toEqual((await all(local, 1)).map(plainBatch));
      // Stopping mid-epoch and starting the next one is clean.
      for await (const _ of remote.batches(3)) break;
      expect((await all(remote, 4)).map(plainBatch)).toEqual((await all(local, 4)).map(plainBatch));
      // A worker's error reaches the trainer's loop with its message.
      const bad = parquetSource({ ...options, files: [join(tmp, 'missing.parquet')], worker: pathToFileURL(bundle) });
      await expect(all(bad, 1)).rejects.toThrow(/missing\.parquet: not a readable Parquet file/);
      await bad.close();
    } finally {
      await remote.close();
    }
  });
});

describe("users' own Parquet through a column spec", () => {
  const specJson = {
    click: 'clicked',
    conversion: 'bought',
    userId: 'user',
    fields: [
      { kind: 'categorical', name: 'item', column: 'item_id', group: 'item' },
      { kind: 'categorical', name: 'city', group: 'user', ids: { hash: 64 } },
      { kind: 'bag', name: 'tags', values: 'tag_weights', group: 'item' },
      { kind: 'numeric', name: 'price', group: 'item' },
    ],
  };

  async function writeUserFiles(
    dir: string,
    n: number,
    seed: number,
    mutate?: (cols: Record<string, unknown[]>) => void,
  ) {
    const cols: Record<string, unknown[]> = {
      clicked: [],
      bought: [],
      user: [],
      item_id: [],
      city: [],
      tags: [],
      tag_weights: [],
      price: [],
    };
    let s = seed;
    const rnd = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < n; i++) {
      const click = rnd() < 0.3 ? 1 : 0;
      cols.clicked.push(click === 1);
      cols.bought.push(click === 1 && rnd() < 0.4 ? 1 : 0);
      cols.user.push(i % 17);
      cols.item_id.push(BigInt(1000 + (i % 23)));
      cols.city.push(`c${i % 5}`);
      const k = i % 4;
      cols.tags.push(Array.from({ length: k }, (_, j) => (i + j) % 9));
      cols.tag_weights.push(Array.from({ length: k }, (_, j) => 0.5 + j));
      cols.price.push(i * 0.25);
    }
    mutate?.(cols);
    await mkdir(dir, { recursive: true });
    parquetWriteFile({
      filename: join(dir, 'part-0.parquet'),
      columnData: [
        { name: 'clicked', data: cols.clicked, type: 'BOOLEAN' },
        { name: 'bought', data: cols.bought, type: 'INT32' },
        { name: 'user', data: cols.user, type: 'INT32' },
        { name: 'item_id', data: cols.item_id, type: 'INT64' },
        { name: 'city', data: cols.city, type: 'STRING' },
        { name: 'tags', data: cols.tags },
        { name: 'tag_weights', data: cols.tag_weights },
        { name: 'price', data: cols.price, type: 'DOUBLE' },
      ],
      rowGroupSize: 100,
    });
  }

  it('builds the vocabulary in one pass, hashes where asked, and trains', async () => {
    const dir = join(tmp, 'user');
    await writeUserFiles(join(dir, 'train'), 600, 1);
    await writeUserFiles(join(dir, 'test'), 300, 2);
    const spec = parseColumnsSpec(specJson);
    const { schema, train, test, vocabulary } = await userParquetSources(dir, spec, {
      batchSize: 128,
      seed: 1,
      worker: false,
    });
    expect(vocabulary?.tables.item).toHaveLength(23);
    expect(vocabulary?.tables.item[0]).toBe('1000');
    expect(vocabulary?.tables.tags).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8']);
    expect(schema.fields.map((f) => [f.name, f.kind, f.kind === 'numeric' ? 1 : f.vocabSize])).toEqual([
      ['item', 'categorical', 25],
      ['city', 'categorical', 64],
      ['tags', 'bag', 11],
      ['price', 'numeric', 1],
    ]);
    const batches = await all(test, 0);
    const first = batches[0];
    expect(first.fields.tags.kind === 'bag' && Array.from(first.fields.tags.offsets.slice(0, 5))).toEqual([
      0, 0, 1, 3, 6,
    ]);
    expect(first.fields.tags.kind === 'bag' && Array.from(first.fields.tags.values ?? []).slice(0, 3)).toEqual([
      0.5, 0.5, 1.5,
    ]);
    expect(first.fields.price.kind === 'numeric' && first.fields.price.values[2]).toBe(0.5);
    const m = createModel({ method: 'esmm', schema, seed: 2, tower: { hidden: [8] } });
    const result = await new Trainer(m, { epochs: 2, lr: 0.01, progress: 'none' }).fit(train, test);
    expect(result.history[1].metrics?.ctrAuc).toBeGreaterThan(0);
    const restored = ParquetVocabulary.fromJSON(JSON.parse(JSON.stringify(vocabulary)));
    expect(restored.tables).toEqual(vocabulary?.tables);
  });

  it('names file, row group, column and row of a bad value', async () => {
    const spec = parseColumnsSpec(specJson);
    const cases: [string, (c: Record<string, unknown[]>) => void, RegExp][] = [
      ['label', (c) => (c.bought[250] = 2), /row group 2, column "bought", row 250\): conversion label must be 0 or 1/],
      [
        'noclick',
        (c) => {
          c.clicked[130] = false;
          c.bought[130] = 1;
        },
        /row group 1, column "bought", row 130\): a conversion without a click/,
      ],
      [
        'weights',
        (c) => (c.tag_weights[7] = [1]),
        /row group 0, column "tag_weights", row 7\): values must be a list as long as the ids \(3\)/,
      ],
      [
        'price',
        (c) => (c.price[555] = 1e39),
        /row group 5, column "price", row 555\): numeric value must be a number finite in float32/,
      ],
    ];
    for (const [name, mutate, message] of cases) {
      const dir = join(tmp, `bad-${name}`);
      await writeUserFiles(join(dir, 'train'), 600, 1, mutate);
      await writeUserFiles(join(dir, 'test'), 100, 2);
      const vocabulary = await buildParquetVocabulary([join(dir, 'train', 'part-0.parquet')], spec);
      const { train } = await userParquetSources(dir, spec, { batchSize: 64, worker: false, vocabulary });
      const err = await all(train, 0).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ParquetSchemaError);
      expect((err as Error).message).toMatch(/part-0\.parquet \(/);
      expect((err as Error).message).toMatch(message);
    }
    // A missing column and a bad spec are named before any row is read.
    const dir = join(tmp, 'user');
    const missing: ColumnsSpec = { ...spec, fields: [...spec.fields, { kind: 'numeric', name: 'weight' }] };
    const { train } = await userParquetSources(dir, missing, { batchSize: 64, worker: false });
    await expect(all(train, 0)).rejects.toThrow(
      /part-0\.parquet: missing column "weight" \(the file has "clicked", "bought"/,
    );
    expect(() => parseColumnsSpec({ ...specJson, label: 'x' }, 'spec.json')).toThrow(/spec\.json: unknown key "label"/);
    expect(() => parseColumnsSpec({ ...specJson, fields: [{ kind: 'bag', name: 'a', ids: { hash: 1 } }] })).toThrow(
      /ids must be "vocabulary", \{"hash": buckets >= 2\}/,
    );
  });
});
