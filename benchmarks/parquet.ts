/**
 * Parquet benchmark: the common-file index on 730,600 keys (the public train split's sessions),
 * `prepareAliCcp` throughput and peak memory, and training samples/s at batch 1024 on the wasm
 * backend from in-memory simulator batches, from the same rows held in memory, from the raw
 * Ali-CCP text and from prepared Parquet; and what making each source's batches costs alone.
 *
 * Run (from the repository root):
 *   npx rolldown benchmarks/parquet.ts --platform node --format esm --external esbuild --file benchmarks/out/parquet.mjs && node benchmarks/out/parquet.mjs
 *
 * Options: --rows N (training rows, default 100000), --prepare-rows N (rows of the heavy prepare
 * data, default 60000), --rounds N (of the interleaved training passes, default 2), --only train
 * (re-measure training, keep the index and prepare figures of the last results), --dir PATH
 * (default /tmp/esmm-parquet-bench), --results DIR (default benchmarks/results). Each
 * measurement runs in its own child process, so peak RSS is its own. Writes
 * benchmarks/results/parquet.md and .json, then deletes the data.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { setBackend } from '../kernels/index.js';
import { AliCcpReader, Vocabulary, aliCcpFiles } from '../models/data/aliccp.js';
import { AliCcpAppender, sessionKey, writeSimulatorAliCcp } from '../models/data/aliccp-writer.js';
import { CommonIndex } from '../models/data/common-index.js';
import { openPrepared, prepareAliCcp } from '../models/data/prepare.js';
import type { ColumnsSpec, GroupColumns } from '../models/data/parquet.js';
import { BatchGatherer, BatchPool } from '../models/data/parquet-gather.js';
import { ParquetStream, epochSeed } from '../models/data/parquet-stream.js';
import type { BatchWithExtras } from '../models/data/rows.js';
import { FunnelSimulator, type SimulatorConfig } from '../models/data/simulator.js';
import { createModel } from '../models/model-factory.js';
import { aliCcpSource, simulatorSource } from '../models/training/sources.js';
import { preparedSources } from '../models/training/sources-parquet.js';
import { Trainer, type BatchSource } from '../models/training/trainer.js';
import type { Batch, Schema } from '../models/schema.js';

const BATCH = 1024;
/** Where a training pass takes its batches from. */
type Source = 'simulator' | 'memory' | 'text' | 'parquet';
/** Rounds of the interleaved training passes (`--rounds`). */
const ROUNDS = Number(arg('rounds', '2'));
/** Ali-CCP-sized history bags (see benchmarks/aliccp-reader.ts), for the prepare measurement. */
const HEAVY: Partial<SimulatorConfig> = {
  seed: 7,
  numUsers: 2000,
  numItems: 100_000,
  numCategories: 150,
  numShops: 100_000,
  numBrands: 400,
  meanHistory: 280,
};

interface Measured {
  name: string;
  seconds: number;
  rows?: number;
  rowsPerSecond?: number;
  samplesPerSecond?: number;
  peakRssMb: number;
  /** Seconds the trainer waited for its next batch in the measured epoch (training passes). */
  waitSeconds?: number;
  /** Of which for the first batch: the shuffle buffer filling before any row can leave it. */
  firstWaitSeconds?: number;
  /** CPU seconds (user + system, every thread of the process) of the measured epoch. */
  cpuSeconds?: number;
  note?: string;
  extra?: Record<string, number | string>;
}

function peakRssMb(): number {
  let hwm = 0;
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) hwm = Number(m[1]) / 1024;
  } catch {
    // Not Linux.
  }
  return Math.max(hwm, process.resourceUsage().maxRSS / 1024);
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

// ---------------------------------------------------------------------------
// Children

async function indexChild(dir: string): Promise<Measured> {
  const path = join(dir, 'index-common.csv');
  const before = process.memoryUsage();
  const index = await CommonIndex.build(path);
  const after = process.memoryUsage();
  let found = 0;
  const t0 = performance.now();
  for (let s = 0; s < index.size; s += 7) if (index.find(sessionKey(s)) >= 0) found++;
  const lookupSeconds = (performance.now() - t0) / 1000;
  return {
    name: 'index',
    seconds: index.seconds,
    rows: index.size,
    peakRssMb: peakRssMb(),
    extra: {
      keys: index.size,
      fileMb: +(index.fileBytes / 2 ** 20).toFixed(1),
      indexMb: +(index.bytes / 2 ** 20).toFixed(2),
      bytesPerKey: +(index.bytes / index.size).toFixed(1),
      arrayBuffersDeltaMb: +((after.arrayBuffers - before.arrayBuffers) / 2 ** 20).toFixed(2),
      lookupsPerSecond: Math.round(found / lookupSeconds),
    },
  };
}

async function prepareChild(dir: string): Promise<Measured> {
  const out = join(dir, 'prepared-heavy');
  const t0 = performance.now();
  const rssAt: string[] = [];
  let next = 0.25;
  const m = await prepareAliCcp({
    dir: join(dir, 'heavy'),
    out,
    splits: ['train'],
    onProgress: (p) => {
      if (p.phase === 'rows' && p.bytesRead / p.totalBytes >= next) {
        rssAt.push(`${Math.round(next * 100)}%: ${Math.round(peakRssMb())} MiB`);
        next += 0.25;
      }
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const rows = m.splits.train?.rows ?? 0;
  const files = aliCcpFiles(join(dir, 'heavy'), 'train');
  const rawMb = ((await stat(files.skeleton)).size + (await stat(files.common)).size) / 2 ** 20;
  let parquetBytes = 0;
  for (const f of m.splits.train?.files ?? []) parquetBytes += (await stat(join(out, f))).size;
  return {
    name: 'prepare',
    seconds,
    rows,
    rowsPerSecond: rows / seconds,
    peakRssMb: peakRssMb(),
    note: `peak RSS so far at ${rssAt.join(', ')}`,
    extra: { rawMb: +rawMb.toFixed(1), parquetMb: +(parquetBytes / 2 ** 20).toFixed(1) },
  };
}

/** The files and column spec of the prepared train split. */
async function preparedConfig(dir: string): Promise<{ files: string[]; spec: ColumnsSpec }> {
  const { manifest, files } = await openPrepared(join(dir, 'prepared'));
  return { files: files.train ?? [], spec: manifest.columns };
}

/** A training source of the benchmark's data; Parquet through the worker bundle, or in this thread. */
async function openSource(
  dir: string,
  source: Source,
  rows: number,
  worker: boolean,
): Promise<{ train: BatchSource; schema: Schema; close: () => Promise<void>; note: string }> {
  const sim = new FunnelSimulator({ seed: 1 });
  if (source === 'simulator') {
    const train = simulatorSource(sim, sim.generate(rows), { batchSize: BATCH, shuffle: true, seed: 1 });
    return { train, schema: sim.schema, close: async () => {}, note: 'in-memory log, shuffled each epoch' };
  }
  if (source === 'memory') {
    // The prepared rows held in memory as typed columns (read once), shuffled in full each epoch
    // and gathered into batches in this thread: in-memory batches of the same rows and schema as
    // the text and Parquet passes (the simulator's own schema has 17 fields, these 23).
    const reader = new ParquetStream({
      ...(await preparedConfig(dir)),
      batchSize: BATCH,
      shuffleBuffer: 0,
      shuffleOrder: false,
      seed: 1,
    }).reader;
    const groups: GroupColumns[] = [];
    for await (const g of reader.groups()) groups.push(g);
    const total = groups.reduce((a, g) => a + g.rows, 0);
    const pool = new BatchPool(reader.schema, BATCH, true);
    const train: BatchSource = {
      rows: total,
      *batches(epoch: number): Generator<Batch> {
        const options = { batchSize: BATCH, shuffleBuffer: total, seed: epochSeed(1, epoch), dropLast: false };
        const g = new BatchGatherer(reader.schema, options, pool);
        for (const group of groups) {
          g.add(group);
          for (let b = g.take(); b; b = g.take()) yield b;
        }
        g.finish();
        for (let b = g.take(); b; b = g.take()) yield b;
      },
      recycle: (b) => pool.recycle(b as BatchWithExtras),
    };
    return {
      train,
      schema: reader.schema,
      close: async () => {},
      note: 'prepared rows in memory, shuffled in full each epoch',
    };
  }
  if (source === 'text') {
    const vocab = Vocabulary.fromJSON(JSON.parse(readFileSync(join(dir, 'prepared', 'vocabulary.json'), 'utf8')));
    const reader = new AliCcpReader(aliCcpFiles(join(dir, 'raw'), 'train'), { encoder: vocab });
    const train = aliCcpSource(() => reader, { batchSize: BATCH, shuffleBuffer: 20_000, seed: 1 });
    return {
      train,
      schema: reader.schema,
      close: async () => {},
      note: 'raw text, common file shuffled, 20k shuffle buffer',
    };
  }
  const s = await preparedSources(join(dir, 'prepared'), {
    batchSize: BATCH,
    seed: 1,
    worker: worker ? pathToFileURL(join(dir, 'parquet-worker.mjs')) : false,
  });
  return {
    train: s.train,
    schema: s.schema,
    close: async () => {
      await s.train.close();
      await s.test.close();
    },
    note: worker ? 'prepared shards, worker thread, 20k shuffle buffer' : 'prepared shards, this thread',
  };
}

/** Batches alone, in this thread (no training): what each source costs to make an epoch's batches. */
async function batchesChild(dir: string, source: Source, rows: number): Promise<Measured> {
  const { train, close, note } = await openSource(dir, source, rows, false);
  const epoch = async (e: number): Promise<number> => {
    let n = 0;
    for await (const b of train.batches(e) as AsyncIterable<Batch>) {
      n += b.size;
      train.recycle?.(b);
    }
    return n;
  };
  await epoch(1);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const n = await epoch(2);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await close();
  return {
    name: `batches-${source}`,
    seconds,
    rows: n,
    rowsPerSecond: n / seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    peakRssMb: peakRssMb(),
    note,
  };
}

async function trainChild(dir: string, source: Source, rows: number): Promise<Measured> {
  setBackend('wasm', { threads: 1 });
  const { train, schema, close, note } = await openSource(dir, source, rows, true);
  // Time the trainer spends awaiting its next batch: zero when data never holds a step up.
  let waited = 0;
  let firstWait = 0;
  const inner = train;
  const timed: BatchSource = {
    rows: inner.rows,
    // Batches go back to a source that reuses their buffers, as without this wrapper.
    ...(inner.recycle ? { recycle: (b: Batch) => inner.recycle?.(b) } : {}),
    async *batches(epoch: number): AsyncGenerator<Batch> {
      const src = inner.batches(epoch);
      const it =
        Symbol.asyncIterator in src
          ? (src as AsyncIterable<Batch>)[Symbol.asyncIterator]()
          : (src as Iterable<Batch>)[Symbol.iterator]();
      for (let first = true; ; first = false) {
        const t = performance.now();
        const r = await it.next();
        waited += performance.now() - t;
        if (first) firstWait = performance.now() - t;
        if (r.done) return;
        yield r.value;
      }
    },
  };
  const model = createModel({ method: 'esmm', schema, seed: 1 });
  const trainer = new Trainer(model, { epochs: 2, lr: 0.002, progress: 'none' });
  // Epoch 1 warms the backend (and for text, builds the index); epoch 2 is measured.
  await trainer.trainEpoch(timed);
  waited = 0;
  const cpu0 = process.cpuUsage();
  const r = await trainer.trainEpoch(timed);
  const cpu = process.cpuUsage(cpu0);
  await close();
  return {
    name: `train-${source}`,
    seconds: r.seconds,
    rows: r.samples,
    samplesPerSecond: r.samplesPerSecond,
    peakRssMb: peakRssMb(),
    waitSeconds: waited / 1000,
    firstWaitSeconds: firstWait / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    note,
  };
}

// ---------------------------------------------------------------------------
// Parent

function runChild(args: string[]): Promise<Measured> {
  return new Promise((resolveResult, reject) => {
    const p = spawn(process.execPath, [process.argv[1], '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`child ${args[0]} exited with code ${code}`));
      resolveResult(JSON.parse(out.trim().split('\n').pop() as string) as Measured);
    });
  });
}

async function parent(): Promise<void> {
  const dir = resolve(arg('dir', '/tmp/esmm-parquet-bench'));
  const resultsDir = resolve(arg('results', 'benchmarks/results'));
  const rows = Number(arg('rows', '100000'));
  const prepareRows = Number(arg('prepare-rows', '60000'));
  // `--only train` re-measures training and keeps the index and prepare figures of the last full run.
  const onlyTrain = arg('only', 'all') === 'train';
  const kept: Measured[] = [];
  let keptFrom = '';
  if (onlyTrain) {
    const old = JSON.parse(readFileSync(join(resultsDir, 'parquet.json'), 'utf8')) as {
      results: Measured[];
      measured?: string;
      load: string[];
    };
    kept.push(...old.results.filter((r) => r.name === 'index' || r.name === 'prepare'));
    keptFrom = `${old.measured ?? 'an earlier run'} (load average ${old.load.slice(0, 2).join(', ')})`;
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    // 730,600 keys as in the public train split, in a shuffled order.
    const keys = Array.from({ length: 730_600 }, (_, s) => s);
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(((Math.imul(i, 2654435761) >>> 0) / 2 ** 32) * (i + 1));
      [keys[i], keys[j]] = [keys[j], keys[i]];
    }
    if (!onlyTrain) {
      await writeFile(
        join(dir, 'index-common.csv'),
        keys.map((s) => `${sessionKey(s)},1,101\x02${s}\x031\n`).join(''),
        'latin1',
      );
      // Heavy (Ali-CCP-sized) raw data for prepare; light default-simulator data for training.
      const heavySim = new FunnelSimulator(HEAVY);
      const app = await AliCcpAppender.create(heavySim, join(dir, 'heavy'), 'train');
      for (let done = 0; done < prepareRows; done += 20_000)
        await app.append(heavySim.generate(Math.min(20_000, prepareRows - done)));
      await app.close();
    }
    const sim = new FunnelSimulator({ seed: 1 });
    const w = await writeSimulatorAliCcp(sim, sim.generate(rows), join(dir, 'raw'), 'train');
    await writeSimulatorAliCcp(sim, sim.generate(2000), join(dir, 'raw'), 'test');
    // Shuffle the common file: the join is by key.
    const common = readFileSync(w.files.common, 'latin1').split('\n').filter(Boolean);
    for (let i = common.length - 1; i > 0; i--) {
      const j = Math.floor(((Math.imul(i + 7, 2246822519) >>> 0) / 2 ** 32) * (i + 1));
      [common[i], common[j]] = [common[j], common[i]];
    }
    await writeFile(w.files.common, common.join('\n') + '\n', 'latin1');
    await prepareAliCcp({ dir: join(dir, 'raw'), out: join(dir, 'prepared') });
    await build({
      entryPoints: [resolve('models/data/parquet-worker.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: join(dir, 'parquet-worker.mjs'),
      logLevel: 'silent',
    });
    const results: Measured[] = [...kept];
    const load: string[] = [];
    // The training sources interleaved, twice: the machine's load drifts, and every source sees it alike.
    const plan = onlyTrain
      ? []
      : [
          ['index', dir],
          ['prepare', dir],
        ];
    for (let round = 0; round < ROUNDS; round++)
      for (const source of ['simulator', 'memory', 'text', 'parquet']) plan.push(['train', dir, source, String(rows)]);
    for (const source of ['simulator', 'memory', 'text', 'parquet']) plan.push(['batches', dir, source, String(rows)]);
    for (const a of plan) {
      load.push(loadavg()[0].toFixed(1));
      const r = await runChild(a);
      console.error(JSON.stringify(r));
      results.push(r);
    }
    await writeResults(
      resultsDir,
      results,
      rows,
      onlyTrain ? Number(kept.find((r) => r.name === 'prepare')?.rows) : prepareRows,
      load,
      keptFrom,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeResults(
  dir: string,
  results: Measured[],
  rows: number,
  prepareRows: number,
  load: string[],
  keptFrom: string,
): Promise<void> {
  const by = (n: string): Measured => results.find((r) => r.name === n) as Measured;
  const all = (n: string): Measured[] => results.filter((r) => r.name === n);
  const idx = by('index');
  const prep = by('prepare');
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}`;
  const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
  const rate = (n: string): number => mean(all(n).map((r) => r.samplesPerSecond ?? 0));
  const simRate = rate('train-simulator');
  const memRate = rate('train-memory');
  const perCpuOf = (n: string): number => mean(all(n).map((r) => (r.rows ?? 0) / (r.cpuSeconds ?? NaN)));
  const memPerCpu = perCpuOf('train-memory');
  const sources: [string, string][] = [
    ['train-simulator', 'simulator batches'],
    ['train-memory', 'in-memory batches, same rows'],
    ['train-text', 'raw Ali-CCP text'],
    ['train-parquet', 'prepared Parquet'],
  ];
  const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
  const rounds = sources
    .map(([n, label]) => {
      const rs = all(n);
      const per = rs.map((r) => fmt(r.samplesPerSecond ?? 0)).join(' | ');
      const wait = rs
        .map(
          (r) =>
            `${(r.firstWaitSeconds ?? 0).toFixed(2)} + ${((r.waitSeconds ?? 0) - (r.firstWaitSeconds ?? 0)).toFixed(2)} s of ${r.seconds.toFixed(1)} s`,
        )
        .join(', ');
      const cpu = rs.map((r) => `${(r.cpuSeconds ?? 0).toFixed(1)} s`).join(', ');
      const perCpu = perCpuOf(n);
      const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
      return `| ${label} | ${per} | ${fmt(rate(n))} | ${pct(rate(n) / simRate)} | ${pct(rate(n) / memRate)} | ${cpu} | ${fmt(perCpu)} | ${pct(perCpu / memPerCpu)} | ${wait} | ${Math.round(Math.max(...rs.map((r) => r.peakRssMb)))} MiB | ${rs[0].note} |`;
    })
    .join('\n');
  const made = sources
    .map(([n, label]) => {
      const r = by(n.replace('train-', 'batches-'));
      if (!r) return `| ${label} | not measured | | | | |`;
      return `| ${label} | ${fmt(r.rowsPerSecond ?? 0)} | ${(r.cpuSeconds ?? 0).toFixed(2)} s | ${(((r.cpuSeconds ?? 0) / (r.rows ?? 1)) * 1e6).toFixed(1)} µs | ${Math.round(r.peakRssMb)} MiB | ${r.note} |`;
    })
    .join('\n');
  const header = Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`).join(' | ');
  const md = `# Parquet benchmark

Measured ${new Date().toISOString().slice(0, 10)} on ${machine}. **The machine was shared with
other work** (1-minute load average before each measurement: ${load.join(', ')}, on 2 cores):
compare figures only within this run. Command:

\`\`\`sh
npx rolldown benchmarks/parquet.ts --platform node --format esm --external esbuild --file benchmarks/out/parquet.mjs && node benchmarks/out/parquet.mjs${process.argv
    .slice(2)
    .map((a) => ` ${a}`)
    .join('')}
\`\`\`

## Index of the common file (730,600 keys, shuffled)
${keptFrom ? `\nNot re-run here: the figures of ${keptFrom}.\n` : ''}
| keys | file | build | index | per key | lookups/s | peak RSS |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| ${idx.extra?.keys} | ${idx.extra?.fileMb} MiB | ${idx.seconds.toFixed(2)} s | ${idx.extra?.indexMb} MiB | ${idx.extra?.bytesPerKey} B | ${Number(idx.extra?.lookupsPerSecond).toLocaleString('en-US')} | ${Math.round(idx.peakRssMb)} MiB |

Keys are two 32-bit words sorted by key (binary search) beside each line's entry number and the
low word of its offset; the build time is a pass over the file's bytes plus a radix sort.

## prepareAliCcp (Ali-CCP-sized history bags, ${prepareRows.toLocaleString('en-US')} rows)
${keptFrom ? `\nNot re-run here: the figures of ${keptFrom}.\n` : ''}
| rows | raw text | Parquet | seconds | rows/s | peak RSS |
| ---: | ---: | ---: | ---: | ---: | ---: |
| ${prep.rows} | ${prep.extra?.rawMb} MiB | ${prep.extra?.parquetMb} MiB | ${prep.seconds.toFixed(1)} | ${Math.round(prep.rowsPerSecond ?? 0).toLocaleString('en-US')} | ${Math.round(prep.peakRssMb)} MiB |

${prep.note}. Includes the vocabulary pass. Rows carry about 480 history ids with counts
each (as the public data), all written as \`list<int32>\` / \`list<float>\`. The 2.8 GiB run is in
[aliccp-reader.md](aliccp-reader.md).

## Training at batch 1024, wasm backend, one thread (${rows.toLocaleString('en-US')} rows, default simulator world)

Epoch 2 of each source (epoch 1 warms up; for text it also builds the index), the four sources
interleaved ${ROUNDS} times (samples/s per round, then their mean). "waited" is the time the trainer
spent awaiting batches in the measured epoch: for the first batch (a shuffle buffer fills before
any row leaves it, so this grows with \`--shuffle-buffer\`, not with the data; the Parquet worker
fills epoch 2's buffer while epoch 1 ends) + for all the others (the steady state). "CPU per
epoch" is user + system time of the whole process (every thread, the Parquet worker's too) in
the measured epoch, per round: on a machine whose other users take most of the cores, samples
per CPU second compare the work each source costs better than samples/s do. Peak RSS is the
child process's, over both epochs. The simulator trains its own 17-field schema; the other three
train the 23 fields of the Ali-CCP format that \`writeSimulatorAliCcp\` writes (a larger model), so
"in-memory batches, same rows" (the prepared rows held in memory as typed columns, shuffled in
full and gathered in the training thread) is the baseline that differs from Parquet only in
where batches come from.

| source | ${header} | mean | vs simulator | vs in-memory, same rows | CPU per epoch | samples per CPU s | vs in-memory, same rows | waited | peak RSS | how |
| --- | ${Array.from({ length: ROUNDS }, () => '---:').join(' | ')} | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |
${rounds}

## Making the batches alone (epoch 2, in one thread, no training)

What each source costs to make an epoch's batches, with the Parquet reader in the calling
thread (\`worker: false\`) so that its time is measured by itself; batches are handed back as the
trainer does.

| source | rows/s | CPU | CPU per row | peak RSS | how |
| --- | ---: | ---: | ---: | ---: | --- |
${made}
`;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'parquet.md'), md);
  await writeFile(
    join(dir, 'parquet.json'),
    JSON.stringify(
      { machine, measured: new Date().toISOString().slice(0, 16), rows, prepareRows, load, results },
      null,
      2,
    ) + '\n',
  );
  console.log(md);
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--child');
  if (i < 0) return parent();
  const [kind, dir, source, rows] = process.argv.slice(i + 1);
  let r: Measured;
  if (kind === 'index') r = await indexChild(dir);
  else if (kind === 'prepare') r = await prepareChild(dir);
  else if (kind === 'batches') r = await batchesChild(dir, source as Source, Number(rows));
  else r = await trainChild(dir, source as Source, Number(rows));
  console.log(JSON.stringify(r));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
