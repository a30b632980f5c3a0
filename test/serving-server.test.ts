// The scoring server over real HTTP on 127.0.0.1: answers, micro-batching, 400s, draining, both engines.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createModel, FunnelSimulator, Vocabulary, type Batch, type CvrMethod } from '../models/index.js';
import {
  closeOnSignals,
  EagerEngine,
  exportOnnx,
  IDENTITY_IDS,
  openServedModel,
  startServer,
  type ScoringServer,
  type ServedModel,
} from '../models/serving/index.js';

const sim = new FunnelSimulator({
  seed: 4,
  numUsers: 50,
  numItems: 80,
  numCategories: 12,
  numShops: 15,
  numBrands: 10,
  meanHistory: 4,
});
const schema = sim.schema;

function model(seed = 2): CvrMethod {
  return createModel({
    method: 'esmm',
    schema,
    base: 'din',
    tower: { hidden: [8], attention: { hidden: [4] } },
    seed,
    embeddingStd: 0.2,
  } as never);
}

function served(method: CvrMethod, ranking = { a: 1, b: 1 }): ServedModel {
  return {
    schema,
    ids: IDENTITY_IDS,
    engine: new EagerEngine(method),
    metadata: { method: method.method, base_model: 'din', schema: JSON.stringify(schema), training_commit: 'test' },
    ranking,
  };
}

/** JSON rows of a batch: a categorical id, a bag as { ids, values }. */
function jsonRows(batch: Batch): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (let r = 0; r < batch.size; r++) {
    const row: Record<string, unknown> = {};
    for (const f of schema.fields) {
      const d = batch.fields[f.name];
      if (d.kind === 'categorical') row[f.name] = d.ids[r];
      else if (d.kind === 'bag') {
        const ids = Array.from(d.ids.subarray(d.offsets[r], d.offsets[r + 1]));
        row[f.name] = d.values ? { ids, values: Array.from(d.values.subarray(d.offsets[r], d.offsets[r + 1])) } : ids;
      }
    }
    rows.push(row);
  }
  return rows;
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/score`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(tol);
}

describe('scoring server', () => {
  const method = model();
  const batch = sim.batch(sim.generate(40));
  let server: ScoringServer;
  beforeAll(async () => {
    server = await startServer(served(method, { a: 1, b: 1 }), { port: 0, maxRows: 64, maxBytes: 64 * 1024 });
  });
  afterAll(async () => server.close());

  test('GET /healthz, GET /metadata, 404 and 405', async () => {
    const h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok', engine: 'esmm-ts' });
    const m = (await (await fetch(`${server.url}/metadata`)).json()) as Record<string, unknown>;
    expect(m.method).toBe('esmm');
    expect(m.schema).toEqual(schema);
    expect(m.limits).toEqual({ maxRows: 64, maxBytes: 64 * 1024 });
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/score`)).status).toBe(405);
  });

  test('POST /score returns the model’s pCTR, pCVR, pCTCVR and pCTR^a·pCVR^b', async () => {
    const expected = method.predict(batch);
    const { status, json } = await post(server.url, { rows: jsonRows(batch), a: 2, b: 0.5 });
    expect(status).toBe(200);
    close(json.pctr as number[], expected.pctr, 1e-7);
    close(json.pcvr as number[], expected.pcvr, 1e-7);
    close(json.pctcvr as number[], expected.pctcvr, 1e-7);
    close(
      json.score as number[],
      Array.from(expected.pctr, (p, i) => p ** 2 * Math.sqrt(expected.pcvr[i])),
      1e-7,
    );
    const defaults = await post(server.url, { rows: jsonRows(batch) });
    close(defaults.json.score as number[], expected.pctcvr, 1e-7);
  });

  test('fields shared by every row can be sent once in "common"', async () => {
    const rows = jsonRows(batch).slice(0, 8);
    const user = ['101', '124', '125', '126', '129', '109_14', '110_14', '127_14', '205_14'];
    const common = Object.fromEntries(user.map((f) => [f, rows[0][f]]));
    const candidates = rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !user.includes(k))));
    const full = rows.map((r) => ({ ...r, ...common }));
    const a = await post(server.url, { common, rows: candidates });
    const b = await post(server.url, { rows: full });
    expect(a.status).toBe(200);
    expect(a.json).toEqual(b.json);
  });

  test.each([
    ['malformed JSON', '{"rows": [', /malformed JSON/],
    ['not an object', '[1, 2]', /must be a JSON object/],
    ['no rows', {}, /"rows" must be an array/],
    ['empty rows', { rows: [] }, /"rows" is empty/],
    ['unknown key', { rows: [{}], extra: 1 }, /unknown key "extra"/],
    ['a missing field', 'MISSING', /row 1, field "205": missing/],
    ['a wrong type', 'WRONGTYPE', /row 2, field "101": expected a non-negative integer id, got the string "x"/],
    ['an id out of range without a vocabulary', 'RANGE', /row 0, field "206": id 99999 is outside the table/],
    ['a bag that is not a list', 'BAG', /row 3, field "109_14": expected an array of ids/],
    ['bag values of the wrong length', 'VALUES', /row 0, field "508": 1 values for 2 ids/],
    ['an unknown field', 'UNKNOWN', /row 0, field "nope": not a field of the model/],
    ['a negative exponent', 'EXPONENT', /"a" must be a finite number ≥ 0/],
    ['more rows than --max-rows', 'TOOMANY', /65 rows is more than the limit of 64/],
    ['a body over --max-bytes', 'TOOBIG', /over the limit of 65536 bytes/],
  ])('%s is a 400 naming the row and field', async (_name, body, message) => {
    const rows = jsonRows(batch).slice(0, 5);
    let payload: unknown = body;
    if (body === 'MISSING') payload = { rows: rows.map((r, i) => (i === 1 ? { ...r, 205: undefined } : r)) };
    if (body === 'WRONGTYPE') payload = { rows: rows.map((r, i) => (i === 2 ? { ...r, 101: 'x' } : r)) };
    if (body === 'RANGE') payload = { rows: rows.map((r, i) => (i === 0 ? { ...r, 206: 99999 } : r)) };
    if (body === 'BAG') payload = { rows: rows.map((r, i) => (i === 3 ? { ...r, '109_14': 7 } : r)) };
    if (body === 'VALUES')
      payload = { rows: rows.map((r, i) => (i === 0 ? { ...r, 508: { ids: [1, 2], values: [1] } } : r)) };
    if (body === 'UNKNOWN') payload = { rows: rows.map((r, i) => (i === 0 ? { ...r, nope: 1 } : r)) };
    if (body === 'EXPONENT') payload = { rows, a: -1 };
    if (body === 'TOOMANY') payload = { rows: Array.from({ length: 65 }, () => rows[0]) };
    if (body === 'TOOBIG') payload = { rows, pad: 'x'.repeat(70 * 1024) };
    const { status, json } = await post(server.url, payload);
    expect(status).toBe(400);
    expect(json.error).toMatch(message);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  test('malformed HTTP gets a 400 and the server stays healthy', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(server.port, '127.0.0.1', () => s.write('NOT HTTP AT ALL\r\n\r\n'));
      let text = '';
      s.on('data', (d) => (text += d.toString()));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe('micro-batching, draining and engines', () => {
  test('concurrent requests are scored in shared batches, each getting its own rows', async () => {
    const method = model(5);
    const server = await startServer(served(method), { port: 0, batchWindowMs: 25 });
    try {
      const batches = Array.from({ length: 16 }, () => sim.batch(sim.generate(7)));
      const replies = await Promise.all(batches.map((b) => post(server.url, { rows: jsonRows(b) })));
      replies.forEach((r, i) => {
        expect(r.status).toBe(200);
        close(r.json.pctcvr as number[], method.predict(batches[i]).pctcvr, 1e-7);
      });
      const stats = server.stats();
      expect(stats.rows).toBe(16 * 7);
      expect(stats.batches).toBeLessThan(16);
    } finally {
      await server.close();
    }
  });

  test('SIGTERM drains: a request in flight is answered, then the server exits', async () => {
    const method = model(6);
    // A long batch window keeps the request in flight when the signal arrives.
    const server = await startServer(served(method), { port: 0, batchWindowMs: 500 });
    const exits: number[] = [];
    const remove = closeOnSignals(server, { signals: ['SIGTERM'], exit: (code) => exits.push(code) });
    try {
      const b = sim.batch(sim.generate(5));
      const pending = post(server.url, { rows: jsonRows(b) });
      while (server.stats().inFlight === 0) await new Promise((r) => setTimeout(r, 5));
      expect(server.stats().scored).toBe(0);
      process.emit('SIGTERM', 'SIGTERM');
      const reply = await pending;
      expect(reply.status).toBe(200);
      close(reply.json.pctr as number[], method.predict(b).pctr, 1e-7);
      await server.close();
      expect(exits).toEqual([0]);
      await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    } finally {
      remove();
    }
  });

  test('an .onnx file is served by ONNX Runtime with the vocabulary from its metadata (unknown ids → OOV row)', async () => {
    // A vocabulary over raw ids 1000 + row: row r + 2 of each table is raw id 1000 + r.
    const sizes = new Map<string, number>();
    for (const f of schema.fields) if (f.kind !== 'numeric') sizes.set(f.table ?? f.name, f.vocabSize);
    const tables: Record<string, number[]> = {};
    for (const [t, n] of sizes) tables[t] = Array.from({ length: n - 2 }, (_, r) => 1000 + r);
    const vocabulary = new Vocabulary(tables);
    const method = model(8);
    const dir = mkdtempSync(join(tmpdir(), 'esmm-serve-'));
    const path = join(dir, 'model.onnx');
    writeFileSync(path, exportOnnx(method, { vocabulary: vocabulary.toJSON(), trainingCommit: 'c0ffee' }));
    const servedModel = await openServedModel(path);
    const server = await startServer(servedModel, { port: 0 });
    try {
      const b = sim.batch(sim.generate(30));
      // Rows 0 and 1 of a table are "missing" and OOV; the raw ids map every other row to 1000 + row − 2.
      const raw = jsonRows(b).map((row) => {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(row)) {
          const toRaw = (id: number): number => (id >= 2 ? 1000 + id - 2 : id === 1 ? 5 : 7);
          if (typeof v === 'number') out[k] = toRaw(v);
          else {
            const bag = v as { ids: number[]; values: number[] };
            out[k] = { ids: bag.ids.map(toRaw), values: bag.values };
          }
        }
        return out;
      });
      // Raw ids 5 and 7 are unknown: both become the OOV row 1.
      const expectedBatch: Batch = { size: b.size, fields: {}, click: b.click, conversion: b.conversion };
      const remap = (a: Int32Array): Int32Array => a.map((id) => (id === 0 ? 1 : id));
      for (const f of schema.fields) {
        const d = b.fields[f.name];
        if (d.kind === 'categorical') expectedBatch.fields[f.name] = { kind: 'categorical', ids: remap(d.ids) };
        else if (d.kind === 'bag') expectedBatch.fields[f.name] = { ...d, ids: remap(d.ids) };
      }
      const expected = method.predict(expectedBatch);
      const reply = await post(server.url, { rows: raw });
      expect(reply.status).toBe(200);
      close(reply.json.pctr as number[], expected.pctr, 1e-5);
      close(reply.json.pctcvr as number[], expected.pctcvr, 1e-5);
      const meta = (await (await fetch(`${server.url}/metadata`)).json()) as Record<string, unknown>;
      expect(meta.engine).toBe('onnxruntime');
      expect(meta.training_commit).toBe('c0ffee');
      expect(meta.unknown_ids).toMatch(/out-of-vocabulary row 1/);
    } finally {
      await server.close();
    }
  });
});
