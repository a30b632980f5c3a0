/**
 * Load, soak and fuzz benchmark of the scoring server on loopback (benchmarks/results/serving.md).
 *
 * One ESMM model as the paper's (MLP towers 200-80, shared embeddings of 18) over the simulator's
 * schema (17 fields, 8 of them bags) is served by the same server code with each engine, in a child process whose RSS is
 * sampled from /proc. Each request scores 256 candidates of one user (the user's fields once,
 * under "common").
 *   1. load: autocannon, fixed duration, 8 connections, per engine: requests/s, p50/p99, peak RSS;
 *   2. soak: a fixed rate for --soak-seconds (default 300) on the esmm-ts engine, RSS every 5 s;
 *   3. fuzz: --fuzz (default 12,000) malformed requests of many kinds; every answer must be a 4xx,
 *      and the server must still be healthy and score correctly afterwards.
 *
 * Usage: npx esbuild benchmarks/serving.ts --bundle --platform=node --format=esm --packages=external \
 *          --outfile=benchmarks/out/serving.mjs && node benchmarks/out/serving.mjs [--quick]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { cpus } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { createModel, FunnelSimulator, type Batch, type CvrMethod } from '../models/index.js';
import {
  EagerEngine,
  exportOnnx,
  IDENTITY_IDS,
  OnnxRuntimeEngine,
  startServer,
  type ServedModel,
} from '../models/serving/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
// Run from the bundle in benchmarks/out/; results go to benchmarks/results/.
const RESULTS = join(HERE, basename(HERE) === 'out' ? '..' : '.', 'results');
const CANDIDATES = 256;
const USER_FIELDS = ['101', '124', '125', '126', '129', '109_14', '110_14', '127_14', '205_14'];

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const quick = args.includes('--quick');
const LOAD_SECONDS = flag('load-seconds', quick ? 5 : 20);
const SOAK_SECONDS = flag('soak-seconds', quick ? 20 : 300);
const SOAK_RATE = flag('soak-rate', 10);
const FUZZ = flag('fuzz', quick ? 1000 : 12000);

function buildModel(): { sim: FunnelSimulator; method: CvrMethod } {
  const sim = new FunnelSimulator({ seed: 1 });
  const method = createModel({ method: 'esmm', schema: sim.schema, base: 'mlp', seed: 1, embeddingStd: 0.05 });
  return { sim, method };
}

/** One user's fields once and 256 candidates' item and context fields, as JSON. */
function requestBody(sim: FunnelSimulator): { body: string; batch: Batch } {
  const log = sim.generate(CANDIDATES * 4);
  const batch = sim.batch(
    log,
    Int32Array.from({ length: CANDIDATES }, (_, i) => i),
  );
  const rows: Record<string, unknown>[] = [];
  for (let r = 0; r < CANDIDATES; r++) {
    const row: Record<string, unknown> = {};
    for (const f of sim.schema.fields) {
      const d = batch.fields[f.name];
      // Every candidate is scored for the user of row 0.
      const src = USER_FIELDS.includes(f.name) ? 0 : r;
      if (d.kind === 'categorical') row[f.name] = d.ids[src];
      else if (d.kind === 'bag')
        row[f.name] = {
          ids: Array.from(d.ids.subarray(d.offsets[src], d.offsets[src + 1])),
          values: Array.from(d.values!.subarray(d.offsets[src], d.offsets[src + 1])),
        };
    }
    rows.push(row);
  }
  const common = Object.fromEntries(USER_FIELDS.map((f) => [f, rows[0][f]]));
  const candidates = rows.map((row) =>
    Object.fromEntries(Object.entries(row).filter(([k]) => !USER_FIELDS.includes(k))),
  );
  return { body: JSON.stringify({ common, rows: candidates }), batch };
}

// ---------------------------------------------------------------------------
// Child: the server

async function serverChild(engine: string): Promise<void> {
  const { method } = buildModel();
  const model: ServedModel = {
    schema: method.schema,
    ids: IDENTITY_IDS,
    engine:
      engine === 'onnxruntime'
        ? await OnnxRuntimeEngine.create(exportOnnx(method), method.schema, { threads: 1 })
        : new EagerEngine(method),
    metadata: { method: 'esmm', base_model: 'mlp', schema: JSON.stringify(method.schema) },
    ranking: { a: 1, b: 1 },
  };
  const server = await startServer(model, { port: 0 });
  process.stdout.write(`LISTENING ${server.port}\n`);
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

// ---------------------------------------------------------------------------
// Parent: load generator and measurements

function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

async function startChild(engine: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--server', engine], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /LISTENING (\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`server child exited with ${code}`)));
  });
  return { child, port };
}

async function stopChild(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

function cannon(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(opts, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

interface LoadResult {
  engine: string;
  seconds: number;
  connections: number;
  requests: number;
  requestsPerSecond: number;
  candidatesPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  non2xx: number;
  errors: number;
  peakRssMiB: number;
  batchesNote: string;
}

async function load(engine: string, body: string): Promise<LoadResult> {
  const { child, port } = await startChild(engine);
  const url = `http://127.0.0.1:${port}/score`;
  // Warm-up: JIT, first-touch pages, ONNX Runtime's first run.
  await cannon({ url, method: 'POST', body, connections: 4, duration: 3 });
  const connections = 8;
  const r = await cannon({ url, method: 'POST', body, connections, duration: LOAD_SECONDS });
  const peak = rssMiB(child.pid!).hwm;
  const code = await stopChild(child);
  return {
    engine,
    seconds: LOAD_SECONDS,
    connections,
    requests: r.requests.total,
    requestsPerSecond: r.requests.average,
    candidatesPerSecond: r.requests.average * CANDIDATES,
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
    peakRssMiB: peak,
    batchesNote: `server exit code after SIGTERM: ${code}`,
  };
}

async function soak(body: string): Promise<{
  rate: number;
  seconds: number;
  samples: { t: number; rss: number }[];
  non2xx: number;
  errors: number;
  requests: number;
  latencyP99Ms: number;
}> {
  const { child, port } = await startChild('esmm-ts');
  const url = `http://127.0.0.1:${port}/score`;
  await cannon({ url, method: 'POST', body, connections: 2, duration: 3 });
  const samples: { t: number; rss: number }[] = [];
  const t0 = Date.now();
  const timer = setInterval(() => samples.push({ t: (Date.now() - t0) / 1000, rss: rssMiB(child.pid!).rss }), 5000);
  const r = await cannon({ url, method: 'POST', body, connections: 4, overallRate: SOAK_RATE, duration: SOAK_SECONDS });
  clearInterval(timer);
  samples.push({ t: (Date.now() - t0) / 1000, rss: rssMiB(child.pid!).rss });
  await stopChild(child);
  return {
    rate: SOAK_RATE,
    seconds: SOAK_SECONDS,
    samples,
    non2xx: r.non2xx,
    errors: r.errors,
    requests: r.requests.total,
    latencyP99Ms: r.latency.p99,
  };
}

/** Deterministic malformed requests: [kind, method, path, body]. */
function malformed(valid: string, n: number): [string, string, string, Buffer][] {
  const parsed = JSON.parse(valid) as { common: Record<string, unknown>; rows: Record<string, unknown>[] };
  let seed = 12345;
  const rand = (k: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % k;
  };
  const fields = [...Object.keys(parsed.common), ...Object.keys(parsed.rows[0])];
  // None of these is a valid value of any field or exponent (an empty list would be a valid empty bag).
  const garbage = [null, true, -1, 1.5, 'x', '', {}, [[]], { ids: 3 }, { ids: [1], values: ['a'] }, [-5], ['1'], [0.5]];
  const kinds: ((i: number) => [string, string, string, Buffer])[] = [
    () => ['truncated JSON', 'POST', '/score', Buffer.from(valid.slice(0, 1 + rand(valid.length - 1)))],
    () => {
      const rows = parsed.rows.slice(0, 4).map((r) => ({ ...r }));
      const row = rand(rows.length);
      const f = Object.keys(rows[row])[rand(Object.keys(rows[row]).length)];
      rows[row][f] = garbage[rand(garbage.length)];
      return ['wrong type in a row', 'POST', '/score', Buffer.from(JSON.stringify({ common: parsed.common, rows }))];
    },
    () => {
      const rows = parsed.rows.slice(0, 4).map((r) => ({ ...r }));
      delete rows[rand(rows.length)][Object.keys(rows[0])[rand(Object.keys(rows[0]).length)]];
      return ['missing field', 'POST', '/score', Buffer.from(JSON.stringify({ common: parsed.common, rows }))];
    },
    () => {
      const common = { ...parsed.common };
      delete common[Object.keys(common)[rand(Object.keys(common).length)]];
      return [
        'missing common field',
        'POST',
        '/score',
        Buffer.from(JSON.stringify({ common, rows: parsed.rows.slice(0, 3) })),
      ];
    },
    () => {
      const common = { ...parsed.common, [fields[rand(fields.length)]]: garbage[rand(garbage.length)] };
      return [
        'wrong type in common',
        'POST',
        '/score',
        Buffer.from(JSON.stringify({ common, rows: parsed.rows.slice(0, 3) })),
      ];
    },
    () => [
      'unknown field',
      'POST',
      '/score',
      Buffer.from(JSON.stringify({ common: parsed.common, rows: [{ ...parsed.rows[0], [`f${rand(1000)}`]: 1 }] })),
    ],
    () => [
      'too many rows',
      'POST',
      '/score',
      Buffer.from(JSON.stringify({ common: parsed.common, rows: Array.from({ length: 4097 }, () => ({})) })),
    ],
    () => ['not an object', 'POST', '/score', Buffer.from(JSON.stringify(garbage[rand(garbage.length)]))],
    () => [
      'bad exponent',
      'POST',
      '/score',
      Buffer.from(
        JSON.stringify({ ...parsed, rows: parsed.rows.slice(0, 2), a: [-1, 'x', null, true, [], {}, '1'][rand(7)] }),
      ),
    ],
    () => ['random bytes', 'POST', '/score', Buffer.from(Array.from({ length: 1 + rand(300) }, () => rand(256)))],
    () => ['oversized body', 'POST', '/score', Buffer.alloc(4 * 1024 * 1024 + 1 + rand(1000), 32)],
    () => ['wrong method', ['GET', 'PUT', 'DELETE'][rand(3)], '/score', Buffer.alloc(0)],
    () => ['unknown path', 'POST', `/${'x'.repeat(rand(50))}`, Buffer.from(valid.slice(0, 50))],
    () => [
      'id out of range',
      'POST',
      '/score',
      Buffer.from(JSON.stringify({ common: { ...parsed.common, '101': 10 ** 9 }, rows: parsed.rows.slice(0, 2) })),
    ],
    () => ['deep nesting', 'POST', '/score', Buffer.from(`${'['.repeat(5000 + rand(5000))}${']'.repeat(100)}`)],
  ];
  const out: [string, string, string, Buffer][] = [];
  for (let i = 0; i < n; i++) {
    const kind = kinds[i % kinds.length];
    // The oversized kind is rarer: each costs 4 MiB on the wire.
    out.push(kind === kinds[10] && i % 150 !== 10 ? kinds[0](i) : kind(i));
  }
  return out;
}

function send(port: number, method: string, path: string, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    // An oversized body is answered before it is all sent and the connection closed: EPIPE here, 400 there.
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

async function fuzz(valid: string, batch: Batch): Promise<Record<string, unknown>> {
  const { child, port } = await startChild('esmm-ts');
  const cases = malformed(valid, FUZZ);
  const byStatus: Record<string, number> = {};
  const byKind: Record<string, Record<string, number>> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const [kind, method, path, body] = cases[next++];
      const status = await send(port, method, path, body);
      byStatus[status] = (byStatus[status] ?? 0) + 1;
      byKind[kind] ??= {};
      byKind[kind][status] = (byKind[kind][status] ?? 0) + 1;
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 8 }, worker));
  const seconds = (Date.now() - t0) / 1000;
  const health = await send(port, 'GET', '/healthz', Buffer.alloc(0));
  const validStatus = await send(port, 'POST', '/score', Buffer.from(valid));
  const rss = rssMiB(child.pid!);
  await stopChild(child);
  void batch;
  const fiveXX = Object.entries(byStatus)
    .filter(([s]) => Number(s) >= 500)
    .reduce((n, [, c]) => n + c, 0);
  return {
    requests: cases.length,
    seconds,
    byStatus,
    byKind,
    fiveXX,
    healthAfter: health,
    validAfter: validStatus,
    rssAfterMiB: rss.rss,
    peakRssMiB: rss.hwm,
  };
}

async function main(): Promise<void> {
  if (args[0] === '--server') return serverChild(args[1]);
  const { sim } = buildModel();
  const { body, batch } = requestBody(sim);
  console.log(`request: ${CANDIDATES} candidates, ${(body.length / 1024).toFixed(1)} KiB of JSON`);
  const loads: LoadResult[] = [];
  for (const engine of ['esmm-ts', 'onnxruntime']) {
    const r = await load(engine, body);
    console.log(JSON.stringify(r));
    loads.push(r);
  }
  const soaked = await soak(body);
  console.log(
    `soak: ${soaked.requests} requests, RSS ${soaked.samples[0]?.rss.toFixed(1)} → ${soaked.samples.at(-1)?.rss.toFixed(1)} MiB`,
  );
  const fuzzed = await fuzz(body, batch);
  console.log(JSON.stringify(fuzzed));
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    requestBytes: body.length,
    candidates: CANDIDATES,
    loads,
    soak: soaked,
    fuzz: fuzzed,
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'serving.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${join(RESULTS, 'serving.json')}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
