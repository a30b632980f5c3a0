/** The Ali-CCP join by key (any file order) and the reader's handling of damaged files. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AliCcpFormatError, AliCcpReader, HashEncoder, Vocabulary, aliCcpFiles } from '../models/data/aliccp.js';
import { CommonIndex, CommonLineReader } from '../models/data/common-index.js';
import { formatFeatureList } from '../models/data/aliccp-format.js';
import { writeSimulatorAliCcp } from '../models/data/aliccp-writer.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import { Rng } from '../core/random.js';
import type { Row } from '../models/data/rows.js';
import { createModel } from '../models/model-factory.js';
import { aliCcpSource } from '../models/training/sources.js';
import { Trainer } from '../models/training/trainer.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'esmm-join-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function collect(reader: AliCcpReader): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const r of reader.rows()) rows.push(r);
  return rows;
}

/** A row as plain JSON: all fields (session's and own), labels and user. */
function flat(r: Row): string {
  const out: Record<string, unknown> = {};
  for (const part of [r.shared, r.features]) {
    if (!part) continue;
    for (const [k, v] of part instanceof Map ? part.entries() : Object.entries(part)) {
      if (v === undefined) continue;
      out[k] =
        typeof v === 'number'
          ? v
          : 'ids' in v
            ? { ids: Array.from(v.ids), values: v.values ? Array.from(v.values) : null }
            : Array.from(v);
    }
  }
  return JSON.stringify([r.click, r.conversion, r.userId, Object.entries(out).sort()]);
}

const fl = (entries: [string, number, number][]): string =>
  formatFeatureList({
    fields: entries.map((e) => e[0]),
    ids: entries.map((e) => e[1]),
    values: entries.map((e) => e[2]),
  });
const common = (key: string, user: number): string => `${key},1,${fl([['101', user, 1]])}`;
const skel = (id: number, key: string): string => `${id},0,0,${key},1,${fl([['205', 10 + id, 1]])}`;

async function writeSplit(name: string, skeleton: string[], commonLines: string[], eol = '\n') {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  const files = aliCcpFiles(dir, 'train');
  await writeFile(files.skeleton, skeleton.map((l) => l + eol).join(''), 'latin1');
  await writeFile(files.common, commonLines.map((l) => l + eol).join(''), 'latin1');
  return files;
}

describe('join by key in any file order', () => {
  const orders: Record<string, (lines: string[]) => string[]> = {
    skeleton: (l) => l,
    sorted: (l) => [...l].sort((a, b) => (a.split(',')[0] < b.split(',')[0] ? -1 : 1)),
    shuffled: (l) => {
      const out = [...l];
      new Rng(99).shuffle(out);
      return out;
    },
  };
  const dirs: Record<string, ReturnType<typeof aliCcpFiles>> = {};
  const sim = new FunnelSimulator({
    seed: 4,
    numUsers: 120,
    numItems: 400,
    numCategories: 30,
    numShops: 60,
    numBrands: 40,
  });

  beforeAll(async () => {
    const written = await writeSimulatorAliCcp(sim, sim.generate(2500), join(tmp, 'skeleton'), 'train');
    const lines = (await readFile(written.files.common, 'latin1')).split('\n').filter(Boolean);
    expect(lines.length).toBe(written.sessions);
    for (const [name, order] of Object.entries(orders)) {
      const dir = join(tmp, name);
      await mkdir(dir, { recursive: true });
      const files = aliCcpFiles(dir, 'train');
      await writeFile(files.skeleton, await readFile(written.files.skeleton));
      await writeFile(files.common, order(lines).join('\n') + '\n', 'latin1');
      dirs[name] = files;
    }
    // The orders really differ.
    expect(await readFile(dirs.sorted.common, 'latin1')).not.toBe(await readFile(dirs.skeleton.common, 'latin1'));
    expect(await readFile(dirs.shuffled.common, 'latin1')).not.toBe(await readFile(dirs.sorted.common, 'latin1'));
  });

  it('gives identical rows and identical trained weights for the common file in skeleton, sorted and shuffled order', async () => {
    const vocab = await Vocabulary.build(dirs.skeleton);
    const results: { rows: string[]; weights: number[] }[] = [];
    for (const name of Object.keys(orders)) {
      // The vocabulary does not depend on the order either.
      expect((await Vocabulary.build(dirs[name])).toJSON()).toEqual(vocab.toJSON());
      const reader = new AliCcpReader(dirs[name], { encoder: vocab });
      const rows = (await collect(reader)).map(flat);
      expect(rows).toHaveLength(2500);
      const method = createModel({ method: 'esmm', schema: reader.schema, seed: 3, tower: { hidden: [8] } });
      const trainer = new Trainer(method, { epochs: 2, lr: 0.01, progress: 'none' });
      await trainer.fit(aliCcpSource(() => reader, { batchSize: 256, shuffleBuffer: 500, seed: 2 }));
      const weights = method.parameters().flatMap((p) => Array.from(p.toArray()));
      results.push({ rows, weights });
    }
    for (const r of results.slice(1)) {
      expect(r.rows).toEqual(results[0].rows);
      expect(r.weights).toEqual(results[0].weights);
    }
  });

  it('joins skeleton rows of a key that come back after other keys, parsing a session once per run', async () => {
    const files = await writeSplit(
      'runs',
      [skel(1, 'aa'), skel(2, 'aa'), skel(3, 'bb'), skel(4, 'aa'), skel(5, 'cc')],
      [common('cc', 3), common('aa', 1), common('bb', 2)],
    );
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), sessionCache: 1 });
    expect((await collect(reader)).map((r) => r.userId)).toEqual([1, 1, 2, 1, 3]);
    expect(reader.stats.commonRowsParsed).toBe(4);
    const cached = new AliCcpReader(files, { encoder: new HashEncoder(50) });
    await collect(cached);
    expect(cached.stats.commonRowsParsed).toBe(3);
  });
});

describe('damaged files', () => {
  it('names the skeleton file and line of a missing key, or skips and counts its rows', async () => {
    const files = await writeSplit(
      'missing',
      [skel(1, 'aa'), skel(2, 'zz'), skel(3, 'zz'), skel(4, 'aa')],
      [common('aa', 1)],
    );
    await expect(collect(new AliCcpReader(files, { encoder: new HashEncoder(50) }))).rejects.toThrow(
      /sample_skeleton_train\.csv:2: common key zz not found in .*common_features_train\.csv/,
    );
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), onMalformed: 'skip' });
    expect((await collect(reader)).map((r) => r.userId)).toEqual([1, 1]);
    expect(reader.stats).toMatchObject({ skippedMalformed: 2, missingCommonKey: 2 });
  });

  it('names both lines of a duplicate key; skip mode drops the rows of that key only', async () => {
    const hexA = '0123456789abcdef';
    const hexB = 'fedcba9876543210';
    for (const [name, a, b] of [
      ['dup-hex', hexA, hexB],
      ['dup-named', 'k1', 'k2'],
    ] as const) {
      const files = await writeSplit(name, [skel(1, a), skel(2, b)], [common(a, 1), common(b, 2), common(a, 3)]);
      const err = await collect(new AliCcpReader(files, { encoder: new HashEncoder(50) })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AliCcpFormatError);
      expect((err as Error).message).toMatch(
        new RegExp(`common_features_train\\.csv:3: duplicate common key ${a}: line 1 has it too`),
      );
      const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), onMalformed: 'skip' });
      expect((await collect(reader)).map((r) => r.userId)).toEqual([2]);
      expect(reader.stats.skippedMalformed).toBe(2); // the duplicate line and the skeleton row of its key
    }
  });

  it('reads CRLF line ends and a UTF-8 byte-order mark', async () => {
    const files = await writeSplit('crlf', [skel(1, 'aa'), skel(2, 'bb')], [common('bb', 2), common('aa', 1)], '\r\n');
    await writeFile(files.common, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), await readFile(files.common)]));
    await writeFile(files.skeleton, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), await readFile(files.skeleton)]));
    const rows = await collect(new AliCcpReader(files, { encoder: new HashEncoder(50) }));
    expect(rows.map((r) => r.userId)).toEqual([1, 2]);
    const vocab = await Vocabulary.build(files);
    expect(vocab.tables['101']).toEqual([1, 2]);
  });

  it('treats a truncated last line as malformed, in either file', async () => {
    const cut = (l: string): string => l.slice(0, l.length - 2); // drops the value separator and the value
    const files = await writeSplit('trunc', [skel(1, 'aa'), skel(2, 'bb')], [common('aa', 1), cut(common('bb', 2))]);
    await writeFile(files.common, (await readFile(files.common, 'latin1')).trimEnd(), 'latin1');
    await expect(collect(new AliCcpReader(files, { encoder: new HashEncoder(50) }))).rejects.toThrow(
      /common_features_train\.csv:2: bad feature list: entry 1 lacks the value separator/,
    );
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), onMalformed: 'skip' });
    expect((await collect(reader)).map((r) => r.userId)).toEqual([1]);
    expect(reader.stats.skippedMalformed).toBe(2);

    const files2 = await writeSplit('trunc2', [skel(1, 'aa'), cut(skel(2, 'aa'))], [common('aa', 1)]);
    await writeFile(files2.skeleton, (await readFile(files2.skeleton, 'latin1')).trimEnd(), 'latin1');
    await expect(collect(new AliCcpReader(files2, { encoder: new HashEncoder(50) }))).rejects.toThrow(
      /sample_skeleton_train\.csv:2: bad feature list/,
    );
  });

  it('skip mode never aborts: a common line with a bad key, too few columns or a bad list is recorded under its key', async () => {
    const files = await writeSplit(
      'never-abort',
      [skel(1, 'aa'), skel(2, 'bb'), skel(3, 'cc'), skel(4, 'dd'), skel(5, 'bb'), skel(6, 'ee')],
      [
        common('aa', 1),
        'bb,1',
        'cc,1,101\x02x\x031',
        ',1,' + fl([['101', 4, 1]]),
        'garbage-without-commas',
        common('ee', 5),
      ],
    );
    const strict = await collect(new AliCcpReader(files, { encoder: new HashEncoder(50) })).catch((e: unknown) => e);
    expect((strict as Error).message).toMatch(/common_features_train\.csv:4: empty common_feature_index/);
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), onMalformed: 'skip' });
    expect((await collect(reader)).map((r) => r.userId)).toEqual([1, 5]);
    // Common lines 2, 3, 4, 5, and skeleton lines 2, 3, 4 (dd is missing: its line had no key) and 5.
    expect(reader.stats.skippedMalformed).toBe(8);
    expect(reader.stats.missingCommonKey).toBe(1);
    expect(reader.stats.malformedExamples.join('\n')).toMatch(
      /common_features_train\.csv:2: expected 3 comma-separated/,
    );
  });

  it('rejects a value beyond the float32 range naming file and line', async () => {
    const files = await writeSplit('f32', [skel(1, 'aa'), '2,0,0,aa,1,508\x023\x033.5e38'], [common('aa', 1)]);
    await expect(collect(new AliCcpReader(files, { encoder: new HashEncoder(50) }))).rejects.toThrow(
      /sample_skeleton_train\.csv:2: bad feature list: .*"3\.5e38" that is non-finite in float32/,
    );
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), onMalformed: 'skip' });
    expect(await collect(reader)).toHaveLength(1);
  });

  it('raises a format error naming file:line for a line over the limit, in linear time', async () => {
    const files = await writeSplit('long', [skel(1, 'aa')], [common('aa', 1)]);
    const long = 'x'.repeat(3 << 20);
    await writeFile(files.skeleton, `${skel(1, 'aa')}\n2,0,0,aa,1,${long}\n`, 'latin1');
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(50), lineReader: { maxLineBytes: 1 << 20 } });
    const err = await collect(reader).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AliCcpFormatError);
    expect((err as Error).message).toMatch(/sample_skeleton_train\.csv:2: line longer than 1048576 bytes/);
    await writeFile(files.common, `aa,1,${long}\n`, 'latin1');
    const err2 = await collect(
      new AliCcpReader(files, { encoder: new HashEncoder(50), lineReader: { maxLineBytes: 1 << 20 } }),
    ).catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/common_features_train\.csv:1: line longer than 1048576 bytes/);
    // Under the limit, a 3 MiB line read in 4 KiB chunks is one join of its pieces, not one per chunk.
    await writeFile(files.skeleton, `2,0,0,aa,1,${fl([['205', 1, 1]])}${'\x01205\x021\x031'.repeat(300_000)}\n`);
    await writeFile(files.common, common('aa', 1) + '\n');
    const t0 = performance.now();
    const ok = await collect(
      new AliCcpReader(files, { encoder: new HashEncoder(50), lineReader: { chunkBytes: 4096 } }),
    );
    expect(ok).toHaveLength(1);
    expect(performance.now() - t0).toBeLessThan(20_000); // quadratic concatenation took minutes here
  });
});

describe('CommonIndex', () => {
  it('indexes lines across chunk boundaries, lines longer than a chunk included', async () => {
    const dir = join(tmp, 'index');
    await mkdir(dir, { recursive: true });
    const path = join(dir, 'common.csv');
    const keys = Array.from({ length: 300 }, (_, i) =>
      i % 3 === 0 ? `k${i}` : (i * 7919).toString(16).padStart(16, '0'),
    );
    const lines = keys.map((k, i) => `${k},1,${'101\x021\x031\x01'.repeat((i % 50) * 3)}101\x02${i}\x031`);
    await writeFile(path, lines.join('\n'), 'latin1');
    const text = await readFile(path, 'latin1');
    const index = await CommonIndex.build(path, { chunkBytes: 1024 });
    expect(index.size).toBe(300);
    expect(index.lineCount).toBe(300);
    const reader = new CommonLineReader(index, 2048);
    for (let i = 0; i < keys.length; i++) {
      const e = index.find(keys[i]);
      expect(index.line(e)).toBe(i + 1);
      expect(text.startsWith(lines[i], index.offset(e))).toBe(true);
      expect(await reader.line(e)).toBe(lines[i]);
    }
    await reader.close();
    expect(index.find('0000000000000000')).toBe(-1);
    expect(index.find('nope')).toBe(-1);
    expect(index.bytes).toBeLessThan(300 * 64);
  });

  it('numbers lines past blank and keyless lines, sorts keys of any order, keeps 16 bytes a key', async () => {
    const dir = join(tmp, 'index-gaps');
    await mkdir(dir, { recursive: true });
    const path = join(dir, 'common.csv');
    const hex = (i: number): string => ((i * 2654435761) >>> 0).toString(16).padStart(8, '0') + 'ffff0000';
    const body: string[] = [];
    const expected = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      if (i % 97 === 5) body.push('');
      if (i % 311 === 7) body.push(',1,keyless');
      body.push(`${hex(i)},1,101\x02${i}\x031`);
      expected.set(hex(i), body.length);
    }
    await writeFile(path, body.join('\r\n') + '\r\n\r\n', 'latin1');
    const index = await CommonIndex.build(path, { onMalformed: 'skip' });
    expect(index.issues.map((x) => x.line)).toEqual(body.flatMap((l, i) => (l.startsWith(',') ? [i + 1] : [])));
    expect(index.size).toBe(2000);
    const reader = new CommonLineReader(index);
    for (const [key, line] of expected) {
      const e = index.find(key);
      expect(index.line(e)).toBe(line);
      expect(await reader.line(e)).toBe(body[line - 1]);
    }
    await reader.close();
    expect(index.bytes / index.size).toBeLessThan(17);
  });
});
