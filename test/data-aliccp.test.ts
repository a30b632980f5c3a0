import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AliCcpFormatError,
  AliCcpReader,
  HashEncoder,
  Vocabulary,
  aliCcpFiles,
  type AliCcpFiles,
} from '../models/data/aliccp.js';
import { formatFeatureList, type FeatureList } from '../models/data/aliccp-format.js';
import { writeSimulatorAliCcp } from '../models/data/aliccp-writer.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import type { Row } from '../models/data/rows.js';
import type { BagField, CategoricalField } from '../models/schema.js';

const fixtureDir = fileURLToPath(new URL('./fixtures/aliccp/', import.meta.url));
const fixture = aliCcpFiles(fixtureDir, 'train');

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'esmm-aliccp-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A bag with plain arrays (the reader may hand out typed arrays for session-level bags). */
function plain(v: unknown): unknown {
  if (v === undefined || typeof v === 'number') return v;
  const b = v as { ids: ArrayLike<number>; values?: ArrayLike<number> };
  return { ids: Array.from(b.ids), values: b.values ? Array.from(b.values) : undefined };
}

/** All fields of a row: the session's shared ones overlaid with the impression's own. */
function view(r: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const part of [r.shared, r.features]) {
    if (!part) continue;
    for (const [k, v] of part instanceof Map ? part.entries() : Object.entries(part)) if (v !== undefined) out[k] = v;
  }
  return out;
}

async function collect(reader: AliCcpReader): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const r of reader.rows()) rows.push(r);
  return rows;
}

const fl = (entries: [string, number, number][]): string =>
  formatFeatureList({
    fields: entries.map((e) => e[0]),
    ids: entries.map((e) => e[1]),
    values: entries.map((e) => e[2]),
  });

async function writeSplit(name: string, skeleton: string[], common: string[]): Promise<AliCcpFiles> {
  const dir = join(tmp, name);
  await rm(dir, { recursive: true, force: true });
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  const files = aliCcpFiles(dir, 'train');
  await writeFile(files.skeleton, skeleton.map((l) => l + '\n').join(''), 'latin1');
  await writeFile(files.common, common.map((l) => l + '\n').join(''), 'latin1');
  return files;
}

describe('Ali-CCP reader on the fixture', () => {
  it('fails on the dirty row naming file and line', async () => {
    const vocab = await Vocabulary.build(fixture, { onMalformed: 'skip' });
    const reader = new AliCcpReader(fixture, { encoder: vocab });
    const err = await collect(reader).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AliCcpFormatError);
    expect((err as AliCcpFormatError).line).toBe(6);
    expect((err as Error).message).toMatch(
      /sample_skeleton_train\.csv:6: bad feature list: entry 1 lacks the value separator/,
    );
    await expect(Vocabulary.build(fixture)).rejects.toThrow(/sample_skeleton_train\.csv:6:/);
  });

  it('reads every field, keeps all ids of multi-valued fields with their counts, and drops/skips/counts bad rows', async () => {
    const vocab = await Vocabulary.build(fixture, { onMalformed: 'skip' });
    // Shared tables share one vocabulary: categories of 206 and 109_14 map alike.
    expect(vocab.tables.category).toEqual([5001, 5002]);
    expect(vocab.tables.intention).toEqual([8001, 8101, 8102]);
    const reader = new AliCcpReader(fixture, { encoder: vocab, onMalformed: 'skip' });
    const rows = await collect(reader);
    expect(reader.stats).toMatchObject({ skeletonLines: 8, rows: 6, droppedInconsistent: 1, skippedMalformed: 1 });
    expect(reader.stats.malformedExamples[0]).toMatch(/sample_skeleton_train\.csv:6:/);
    expect(rows.map((r) => r.click)).toEqual([0, 1, 1, 0, 0, 1]);
    expect(rows.map((r) => r.conversion)).toEqual([0, 0, 1, 0, 0, 0]);
    expect(rows.map((r) => r.userId)).toEqual([1001, 1001, 1001, 1002, 1003, 1004]);
    const r0 = view(rows[0]);
    const row = (table: string, raw: number): number => vocab.encode(table, raw);
    expect(r0['101']).toBe(row('101', 1001));
    expect(plain(r0['109_14'])).toEqual({ ids: [2, 3], values: [3, 1.5] });
    expect(plain(r0['127_14'])).toEqual({ ids: [2, 3], values: [4, 1] });
    expect(plain(r0['150_14'])).toEqual({ ids: [2], values: [1] });
    expect(plain(r0['210'])).toEqual({ ids: [3, 4], values: [1, 1] });
    expect(plain(r0['508'])).toEqual({ ids: [2], values: [3] });
    expect(r0['206']).toBe(2);
    expect(r0['216']).toBe(row('brand', 7001));
    expect(r0['126']).toBe(row('126', 9601));
    expect(r0['301']).toBe(row('301', 9001));
    // Row 2 lacks brand and crosses; row 4 (user B) lacks most profile fields.
    expect(view(rows[1])['216']).toBeUndefined();
    expect(view(rows[1])['508']).toBeUndefined();
    expect(view(rows[3])['126']).toBeUndefined();
    expect(plain(view(rows[3])['109_14'])).toEqual({ ids: [3], values: [7] });
    expect(plain(view(rows[3])['509'])).toEqual({ ids: [row('509', 3501)], values: [2] });

    const batches = [];
    for await (const b of reader.batches({ batchSize: 4 })) batches.push(b);
    expect(batches.map((b) => b.size)).toEqual([4, 2]);
    const b = batches[0];
    const hist = b.fields['109_14'];
    expect(hist.kind === 'bag' && [...hist.offsets]).toEqual([0, 2, 4, 6, 7]);
    expect(hist.kind === 'bag' && [...(hist.values ?? [])]).toEqual([3, 1.5, 3, 1.5, 3, 1.5, 7]);
    const brand = b.fields['216'];
    expect(brand.kind === 'categorical' && [...brand.ids]).toEqual([row('brand', 7001), 0, row('brand', 7002), 0]);
    expect([...(b.userIds ?? [])]).toEqual([1001, 1001, 1001, 1002]);

    const schemaField = (n: string) => reader.schema.fields.find((f) => f.name === n);
    expect((schemaField('206') as CategoricalField).table).toBe('category');
    expect((schemaField('109_14') as BagField).table).toBe('category');
    expect((schemaField('206') as CategoricalField).isTarget).toBe(true);
    expect((schemaField('109_14') as BagField).isSequence).toBe(true);
    expect(reader.schema.fields.map((f) => f.name)).toHaveLength(23);
  });

  it('applies a per-field frequency threshold, sending rare ids to the OOV row', async () => {
    const vocab = await Vocabulary.build(fixture, { onMalformed: 'skip', minCount: { '205': 2 } });
    // Item 2001 shows up on three kept lines and 2003 on one kept line (its other line is the dropped inconsistent row); 2002 once.
    expect(vocab.tables['205']).toEqual([2001]);
    expect(vocab.encode('205', 2002)).toBe(1);
    expect(vocab.tables['101']).toEqual([1001, 1002, 1003, 1004, 1005]);
    const restored = Vocabulary.fromJSON(JSON.parse(JSON.stringify(vocab)));
    expect(restored.tableSizes).toEqual(vocab.tableSizes);
    expect(restored.encode('category', 5002)).toBe(3);
  });

  it('hashes ids into buckets when asked, with shared tables hashing alike', async () => {
    const reader = new AliCcpReader(fixture, { encoder: new HashEncoder(97), onMalformed: 'skip' });
    const rows = await collect(reader);
    expect(rows).toHaveLength(6);
    const cat = view(rows[0])['206'] as number;
    expect(cat).toBeGreaterThanOrEqual(1);
    expect(cat).toBeLessThan(97);
    expect((view(rows[0])['109_14'] as { ids: ArrayLike<number> }).ids[0]).toBe(cat);
    expect(reader.schema.fields.every((f) => f.kind === 'numeric' || f.vocabSize === 97)).toBe(true);
  });
});

describe('Ali-CCP reader join checks', () => {
  const common = (key: string, user: number): string => `${key},1,${fl([['101', user, 1]])}`;
  const skel = (id: number, key: string): string => `${id},0,0,${key},1,${fl([['205', 10 + id, 1]])}`;

  it('joins by key: rows of a key need not be consecutive, nor the files in the same order', async () => {
    const files = await writeSplit(
      'order',
      [skel(1, 'aa'), skel(2, 'bb'), skel(3, 'aa'), skel(4, 'cc')],
      [common('bb', 2), common('cc', 3), common('aa', 1)],
    );
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50) });
    const rows = await collect(reader);
    expect(rows.map((r) => r.userId)).toEqual([1, 2, 1, 3]);
    expect(reader.stats.commonLines).toBe(3);
  });

  it('rejects a missing key and a bad label with file:line', async () => {
    const missing = await writeSplit('missing', [skel(1, 'aa'), skel(2, 'zz')], [common('aa', 1)]);
    await expect(collect(new AliCcpReader(missing, { encoder: new HashEncoder(50) }))).rejects.toThrow(
      /:2: common key zz not found/,
    );
    const badLabel = await writeSplit(
      'label',
      [skel(1, 'aa'), `2,2,0,aa,1,${fl([['205', 3, 1]])}`, '3,0,0'],
      [common('aa', 1)],
    );
    await expect(collect(new AliCcpReader(badLabel, { encoder: new HashEncoder(50) }))).rejects.toThrow(
      /:2: click label must be 0 or 1/,
    );
    const reader = new AliCcpReader(badLabel, { encoder: new HashEncoder(50), onMalformed: 'skip' });
    expect(await collect(reader)).toHaveLength(1);
    expect(reader.stats.skippedMalformed).toBe(2);
    expect(reader.stats.malformedExamples[1]).toMatch(/:3: expected 6 comma-separated columns/);
  });

  it('concatenates a bag that spans both files, session ids first, without touching the shared session bag', async () => {
    const commonLine = `aa,2,${fl([
      ['101', 1, 1],
      ['210', 7, 2],
    ])}`;
    const files = await writeSplit(
      'span',
      [`1,0,0,aa,1,${fl([['210', 8, 1]])}`, `2,0,0,aa,1,${fl([['205', 3, 1]])}`],
      [commonLine],
    );
    const enc = new HashEncoder(1000);
    const rows = await collect(new AliCcpReader(files, { encoder: enc }));
    const e = (raw: number): number => enc.encode('intention', raw);
    expect(plain(view(rows[0])['210'])).toEqual({ ids: [e(7), e(8)], values: [2, 1] });
    expect(plain(view(rows[1])['210'])).toEqual({ ids: [e(7)], values: [2] });
  });

  it('skips the skeleton rows of a malformed common row under the skip option', async () => {
    const files = await writeSplit(
      'badcommon',
      [skel(1, 'aa'), skel(2, 'bb'), skel(3, 'bb')],
      [common('aa', 1), 'bb,1,101\x02x\x031'],
    );
    await expect(collect(new AliCcpReader(files, { encoder: new HashEncoder(50) }))).rejects.toThrow(
      /common_features_train\.csv:2: bad feature list/,
    );
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), onMalformed: 'skip' });
    expect(await collect(reader)).toHaveLength(1);
    expect(reader.stats.skippedMalformed).toBe(3);
  });
});

describe('simulator → Ali-CCP files → reader', () => {
  it('recovers the labels, the categorical ids and the bag contents with their counts', async () => {
    const sim = new FunnelSimulator({
      seed: 21,
      numUsers: 300,
      numItems: 2000,
      numCategories: 50,
      numShops: 150,
      numBrands: 120,
    });
    const log = sim.generate(4000);
    const written = await writeSimulatorAliCcp(sim, log, join(tmp, 'sim'), 'train');
    expect(written.impressions).toBe(4000);
    const vocab = await Vocabulary.build(written.files);
    const reader = new AliCcpReader(written.files, { encoder: vocab });
    const rows = await collect(reader);
    expect(rows).toHaveLength(4000);
    expect(reader.stats.commonLines).toBe(written.sessions);
    const raw = written.rawIds;
    const enc = (field: string, table: string, local: number): number => vocab.encode(table, raw.raw(field, local));
    const encBag = (field: string, table: string, b: { ids: Int32Array; values: Float32Array } | null) =>
      b === null ? undefined : { ids: Array.from(b.ids, (id) => enc(field, table, id)), values: Array.from(b.values) };
    let mismatches = 0;
    const check = (got: unknown, want: unknown): void => {
      if (JSON.stringify(plain(got)) !== JSON.stringify(want)) mismatches++;
    };
    for (let r = 0; r < log.size; r++) {
      const f = view(rows[r]);
      const user = sim.users[log.user[r]];
      const item = sim.items[log.item[r]];
      if (rows[r].click !== log.click[r] || rows[r].conversion !== log.conversion[r]) mismatches++;
      check(rows[r].userId, raw.raw('101', log.user[r] + 1));
      check(f['205'], enc('205', '205', log.item[r] + 1));
      check(f['206'], enc('206', 'category', item.category));
      check(f['216'], item.brand === 0 ? undefined : enc('216', 'brand', item.brand));
      check(f['126'], user.consumption === 0 ? undefined : enc('126', '126', user.consumption));
      check(f['109_14'], encBag('109_14', 'category', user.categories));
      check(f['110_14'], encBag('110_14', 'shop', user.shops));
      check(f['127_14'], encBag('127_14', 'brand', user.brands));
      check(f['508'], encBag('508', '508', sim.cross(r, log, '508')));
      check(f['702'], encBag('702', '702', sim.cross(r, log, '702')));
      check(f['301'], enc('301', '301', log.context[r]));
    }
    expect(mismatches).toBe(0);
    // A category id means the same row whether it is the item's or in the history.
    expect(enc('206', 'category', 7)).toBe(enc('109_14', 'category', 7));
    // And the batches of the read data satisfy the derived schema.
    let n = 0;
    for await (const b of reader.batches({ batchSize: 1000, shuffleBuffer: 500, seed: 3 })) n += b.size;
    expect(n).toBe(4000);
  });
});

describe('feature list codec round trip through the files', () => {
  it('writes what it reads', () => {
    const list: FeatureList = { fields: ['109_14', '205'], ids: [5, 6], values: [2.5, 1] };
    expect(formatFeatureList(list)).toBe('109_14\x025\x032.5\x01205\x026\x031');
  });
});
