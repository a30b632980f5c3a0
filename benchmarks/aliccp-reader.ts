/**
 * Streaming benchmark of the Ali-CCP reader: throughput and peak memory on a multi-GB data set.
 *
 * Run (from the repository root; bundles the TypeScript with the rolldown already in the dev tree):
 *   npx rolldown benchmarks/aliccp-reader.ts --platform node --format esm --file /tmp/aliccp-reader.mjs && node /tmp/aliccp-reader.mjs
 *
 * Options: --gb N (minimum size of skeleton + common together, default 2), --dir PATH (where the data go,
 * default /tmp/esmm-aliccp-bench), --results DIR (default benchmarks/results), --keep (do not delete the data).
 *
 * 1. Writes a train split in the raw Ali-CCP format with the funnel simulator, chunk by chunk
 *    (`generate(n)` continues the stream, so memory stays bounded by one chunk). The simulated
 *    world is tuned so the history bags have Ali-CCP's sizes (109_14 ≈ 69, 110_14 ≈ 250,
 *    127_14 ≈ 154 ids per common line; 150_14 is not simulated).
 * 2. Reads it back in separate child processes, so each pass's peak RSS is its own:
 *    `vocabulary` (one `Vocabulary.build` pass), `rows` (plain `AliCcpReader.rows()` with a
 *    hash encoder) and `batches` (batch 1024 through a 100k-row shuffle buffer).
 *    Then `prepare` (`prepareAliCcp` of the split into Parquet shards, vocabulary pass included)
 *    and, on its shards, `parquet-rows` (`ParquetRowReader.rows()`) and `parquet-batches` (batch
 *    1024 through the default shuffle buffer, as the training worker does), each on the first
 *    `--parquet-rows` rows (default 600,000).
 * 3. Writes benchmarks/results/aliccp-reader.md and .json, then deletes the data.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AliCcpReader,
  HashEncoder,
  Vocabulary,
  aliCcpFiles,
  type AliCcpFiles,
  type AliCcpStats,
} from '../models/data/aliccp.js';
import { FunnelSimulator, type SimulatorConfig } from '../models/data/simulator.js';
import { AliCcpAppender } from '../models/data/aliccp-writer.js';
import { openPrepared, prepareAliCcp } from '../models/data/prepare.js';
import { ParquetStream } from '../models/data/parquet-stream.js';
import { DEFAULT_SHUFFLE_BUFFER } from '../models/data/rows.js';

/** A simulated world whose history bags have Ali-CCP's average sizes. */
export const BENCH_SIMULATOR: Partial<SimulatorConfig> = {
  seed: 7,
  numUsers: 2000,
  numItems: 100_000,
  numCategories: 150,
  numShops: 100_000,
  numBrands: 400,
  meanHistory: 280,
};

const BATCH_SIZE = 1024;
const SHUFFLE_BUFFER = DEFAULT_SHUFFLE_BUFFER;
/** A larger buffer, to show how memory follows the buffer and not the file. */
const LARGE_SHUFFLE_BUFFER = 100_000;
const HASH_BUCKETS = 1 << 20;
const RSS_TARGET_MB = 512;

type PassName = 'vocabulary' | 'rows' | 'batches' | 'batches-large' | 'prepare' | 'parquet-rows' | 'parquet-batches';
const PASSES: readonly PassName[] = [
  'vocabulary',
  'rows',
  'batches',
  'batches-large',
  'prepare',
  'parquet-rows',
  'parquet-batches',
];
const TEXT_PASSES: readonly PassName[] = ['rows', 'batches', 'batches-large'];

/** What one child process measured. */
export interface PassResult {
  pass: PassName;
  seconds: number;
  rows: number;
  skeletonLines: number;
  commonLines: number;
  batches?: number;
  /** Bytes of the two files (each pass reads both in full). */
  bytes: number;
  rowsPerSecond: number;
  linesPerSecond: number;
  mbPerSecond: number;
  /** Peak resident set size of the child, MiB: max of `process.resourceUsage().maxRSS` and /proc/self/status VmHWM. */
  peakRssMb: number;
  /** Peak RSS so far after each tenth of the rows: flat when memory does not grow with the file. */
  peakRssByProgress: { fraction: number; peakRssMb: number }[];
  heapUsedMb: number;
  note?: string;
}

function mb(bytes: number): number {
  return bytes / (1 << 20);
}

function peakRssBytes(): number {
  const fromUsage = process.resourceUsage().maxRSS * 1024;
  let hwm = 0;
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) hwm = Number(m[1]) * 1024;
  } catch {
    // Not Linux: resourceUsage alone.
  }
  return Math.max(fromUsage, hwm);
}

// ---------------------------------------------------------------------------
// Child: one pass over the files

async function child(pass: PassName, dir: string, expectedRows: number): Promise<PassResult> {
  const files = aliCcpFiles(dir, 'train');
  let bytes = (await stat(files.skeleton)).size + (await stat(files.common)).size;
  const progress: { fraction: number; peakRssMb: number }[] = [];
  let nextMark = 1;
  const mark = (rows: number): void => {
    while (nextMark <= 10 && rows >= (expectedRows * nextMark) / 10) {
      progress.push({ fraction: nextMark / 10, peakRssMb: mb(peakRssBytes()) });
      nextMark++;
    }
  };
  const t0 = performance.now();
  let rows = 0;
  let batches: number | undefined;
  let stats: AliCcpStats | undefined;
  let note: string | undefined;
  if (pass === 'vocabulary') {
    const vocabulary = await Vocabulary.build(files);
    const sizes = vocabulary.tableSizes;
    note = `table sizes: ${Object.entries(sizes)
      .filter(([, n]) => n > 2)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ')}`;
  } else if (pass === 'prepare') {
    const m = await prepareAliCcp({
      dir,
      out: join(dir, 'prepared'),
      splits: ['train'],
      onProgress: (p) => {
        if (p.phase === 'rows') mark(p.rows);
      },
    });
    rows = m.splits.train?.rows ?? 0;
    let shardBytes = 0;
    for (const f of m.splits.train?.files ?? []) shardBytes += (await stat(join(dir, 'prepared', f))).size;
    note = `${m.splits.train?.files.length} shards, ${(shardBytes / 2 ** 30).toFixed(2)} GiB of Parquet`;
  } else if (pass === 'parquet-rows' || pass === 'parquet-batches') {
    const { manifest, files: shards } = await openPrepared(join(dir, 'prepared'));
    bytes = 0;
    for (const f of shards.train ?? []) bytes += (await stat(f)).size;
    const stream = new ParquetStream({
      files: shards.train ?? [],
      spec: manifest.columns,
      limit: expectedRows,
      batchSize: BATCH_SIZE,
      shuffleBuffer: pass === 'parquet-batches' ? SHUFFLE_BUFFER : 0,
      shuffleOrder: pass === 'parquet-batches',
      seed: 1,
    });
    if (pass === 'parquet-rows') {
      for await (const row of stream.reader.rows()) {
        rows++;
        if (row.click > 1) throw new Error('unreachable');
        if ((rows & 0x3fff) === 0) mark(rows);
      }
    } else {
      batches = 0;
      for await (const batch of stream.batches(1)) {
        batches++;
        rows += batch.size;
        mark(rows);
      }
    }
    // The rows read are a prefix of the shards: MB/s counts the share of the bytes they hold.
    bytes *= rows / (manifest.splits.train?.rows ?? rows);
    mark(rows);
  } else {
    const reader = new AliCcpReader(files, { encoder: new HashEncoder(HASH_BUCKETS) });
    if (pass === 'rows') {
      for await (const row of reader.rows()) {
        rows++;
        if (row.click > 1) throw new Error('unreachable');
        if ((rows & 0x3fff) === 0) mark(rows);
      }
    } else {
      batches = 0;
      const options = {
        batchSize: BATCH_SIZE,
        shuffleBuffer: pass === 'batches' ? SHUFFLE_BUFFER : LARGE_SHUFFLE_BUFFER,
        seed: 1,
      };
      const stream = reader.batches(options);
      for await (const batch of stream) {
        batches++;
        rows += batch.size;
        mark(rows);
      }
    }
    mark(rows);
    stats = reader.stats;
  }
  const seconds = (performance.now() - t0) / 1000;
  // The vocabulary pass does not join: it reads each file once, line by line.
  const skeletonLines = stats?.skeletonLines ?? expectedRows;
  const commonLines = stats?.commonLines ?? Number.NaN;
  const lines = TEXT_PASSES.includes(pass) ? skeletonLines + commonLines : Number.NaN;
  return {
    pass,
    seconds,
    rows,
    skeletonLines,
    commonLines,
    batches,
    bytes,
    rowsPerSecond: rows / seconds,
    linesPerSecond: lines / seconds,
    mbPerSecond: mb(bytes) / seconds,
    peakRssMb: mb(peakRssBytes()),
    peakRssByProgress: progress,
    heapUsedMb: mb(process.memoryUsage().heapUsed),
    note,
  };
}

function runChild(pass: PassName, dir: string, expectedRows: number): Promise<PassResult> {
  const script = process.argv[1];
  return new Promise((resolvePass, reject) => {
    const p = spawn(process.execPath, [script, '--child', pass, '--dir', dir, '--rows', String(expectedRows)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (s: string) => (out += s));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`child pass ${pass} exited with code ${code}`));
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolvePass(JSON.parse(last) as PassResult);
      } catch (e) {
        reject(new Error(`child pass ${pass} printed no result: ${(e as Error).message}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------
// Parent: write, measure, report

interface Written {
  files: AliCcpFiles;
  impressions: number;
  sessions: number;
  skeletonBytes: number;
  commonBytes: number;
  meanBag: Record<string, number>;
  seconds: number;
  writerPeakRssMb: number;
}

async function writeData(dir: string, minBytes: number, log: (s: string) => void): Promise<Written> {
  const t0 = performance.now();
  const sim = new FunnelSimulator(BENCH_SIMULATOR);
  const w = await AliCcpAppender.create(sim, dir, 'train');
  try {
    let lastReport = 0;
    while (w.stats.skeletonBytes + w.stats.commonBytes < minBytes) {
      await w.append(sim.generate(100_000));
      const total = w.stats.skeletonBytes + w.stats.commonBytes;
      if (total - lastReport >= 256 << 20) {
        lastReport = total;
        log(`  wrote ${(total / 2 ** 30).toFixed(2)} GiB (${w.stats.impressions} impressions)`);
      }
    }
  } finally {
    await w.close();
  }
  const s = w.stats;
  const meanBag: Record<string, number> = {};
  for (const f of ['109_14', '110_14', '127_14']) meanBag[f] = (s.entries[f] ?? 0) / s.sessions;
  for (const f of ['508', '509', '702']) meanBag[f] = (s.entries[f] ?? 0) / s.impressions;
  return {
    files: w.files,
    impressions: s.impressions,
    sessions: s.sessions,
    skeletonBytes: (await stat(w.files.skeleton)).size,
    commonBytes: (await stat(w.files.common)).size,
    meanBag,
    seconds: (performance.now() - t0) / 1000,
    writerPeakRssMb: mb(peakRssBytes()),
  };
}

function machine(): { cpu: string; cores: number; node: string } {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {
    // Not Linux.
  }
  return { cpu, cores: cpus().length, node: process.version };
}

function fmt(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function markdown(
  date: string,
  m: ReturnType<typeof machine>,
  data: Written,
  passes: PassResult[],
  load: string,
): string {
  const gib = (b: number): string => (b / 2 ** 30).toFixed(2);
  const lines = [
    `# Ali-CCP streaming reader benchmark`,
    ``,
    `Produced by \`benchmarks/aliccp-reader.ts\` (run command at the top of that file).`,
    ``,
    `| | |`,
    `| --- | --- |`,
    `| date | ${date} |`,
    `| machine | ${m.cpu}, ${m.cores} cores, Node ${m.node} |`,
    `| skeleton file | ${gib(data.skeletonBytes)} GiB, ${fmt(data.impressions)} lines (impressions) |`,
    `| common file | ${gib(data.commonBytes)} GiB, ${fmt(data.sessions)} lines (sessions) |`,
    `| together | ${gib(data.skeletonBytes + data.commonBytes)} GiB |`,
    `| mean ids per common line | 109_14 ${data.meanBag['109_14'].toFixed(1)}, 110_14 ${data.meanBag['110_14'].toFixed(1)}, 127_14 ${data.meanBag['127_14'].toFixed(1)} (Ali-CCP: ≈ 69, 250, 154) |`,
    `| generation | ${data.seconds.toFixed(0)} s with the funnel simulator, writer peak RSS ${data.writerPeakRssMb.toFixed(0)} MiB |`,
    `| machine load | shared with other work; 1-minute load average ${load} |`,
    ``,
    `Each pass runs in its own child process; peak RSS is that process's high-water mark (VmHWM / \`resourceUsage().maxRSS\`).`,
    `MB/s counts both files (MiB read per second; for the Parquet passes, MiB of shards); lines/s counts skeleton + common lines. Rows are joined impressions.`,
    ``,
    `| pass | rows | lines | seconds | rows/s | lines/s | MB/s | peak RSS (MiB) | under ${RSS_TARGET_MB} MiB |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |`,
  ];
  const describe: Record<PassName, string> = {
    vocabulary: '`Vocabulary.build` (one pass per file, no join)',
    rows: '`AliCcpReader.rows()`, hash encoder',
    batches: `\`reader.batches\`: batch ${BATCH_SIZE}, shuffle buffer ${fmt(SHUFFLE_BUFFER)} rows (the default)`,
    'batches-large': `\`reader.batches\`: batch ${BATCH_SIZE}, shuffle buffer ${fmt(LARGE_SHUFFLE_BUFFER)} rows`,
    prepare: '`prepareAliCcp` to Parquet shards (vocabulary pass + one joining pass)',
    'parquet-rows': '`ParquetRowReader.rows()` on the shards',
    'parquet-batches': `Parquet batches: batch ${BATCH_SIZE}, shuffled row groups + ${fmt(SHUFFLE_BUFFER)}-row buffer`,
  };
  for (const p of passes) {
    const lineCount =
      p.pass === 'vocabulary' || p.pass === 'prepare'
        ? data.impressions + data.sessions
        : TEXT_PASSES.includes(p.pass)
          ? p.skeletonLines + p.commonLines
          : Number.NaN;
    const lps = lineCount / p.seconds;
    lines.push(
      `| ${describe[p.pass]} | ${p.pass === 'vocabulary' ? '—' : fmt(p.rows)} | ${fmt(lineCount)} | ${p.seconds.toFixed(1)} | ${p.pass === 'vocabulary' ? '—' : fmt(p.rowsPerSecond)} | ${fmt(lps)} | ${p.mbPerSecond.toFixed(1)} | ${p.peakRssMb.toFixed(0)} | ${p.peakRssMb < RSS_TARGET_MB ? 'yes' : 'NO'} |`,
    );
  }
  lines.push('', 'Peak RSS so far after each fifth of the rows:', '');
  lines.push(`| pass | 20% | 40% | 60% | 80% | 100% |`, `| --- | ---: | ---: | ---: | ---: | ---: |`);
  for (const p of passes) {
    if (p.peakRssByProgress.length === 0) continue;
    const at = (f: number): string => {
      const hit = p.peakRssByProgress.find((x) => Math.abs(x.fraction - f) < 1e-9);
      return hit ? hit.peakRssMb.toFixed(0) : '—';
    };
    lines.push(`| ${p.pass} | ${at(0.2)} | ${at(0.4)} | ${at(0.6)} | ${at(0.8)} | ${at(1)} |`);
  }
  const vocab = passes.find((p) => p.pass === 'vocabulary');
  if (vocab?.note) lines.push('', `Vocabulary pass: ${vocab.note}.`);
  const prep = passes.find((p) => p.pass === 'prepare');
  if (prep?.note)
    lines.push(
      '',
      `Prepare: ${prep.note}. A prepared row is joined: it carries its session's history bags itself ` +
        '(about 1,000 list values), where a text row refers to its session parsed once; so a Parquet row ' +
        'decodes several times the values of a text row, and the shards are read without any text parsing.',
    );
  lines.push(
    '',
    'What the shuffle buffer holds: each buffered row keeps its own fields (a Map, with bags as typed arrays) and a reference to its ' +
      "session's common row (about 480 ids with counts here); rows leave the buffer in random order, so a 100k-row buffer keeps many " +
      'sessions alive. That cost scales with `shuffleBuffer`, not with the file; `rows` grows slowly because the reader keeps one number per finished session.',
  );
  lines.push('');
  return lines.join('\n');
}

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const name = a.slice(2);
    if (name === 'keep') out.set(name, 'true');
    else {
      const v = argv[++i];
      if (v === undefined) throw new Error(`--${name} needs a value`);
      out.set(name, v);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = resolve(args.get('dir') ?? '/tmp/esmm-aliccp-bench');
  const childPass = args.get('child');
  if (childPass !== undefined) {
    if (!PASSES.includes(childPass as PassName)) throw new Error(`--child must be one of ${PASSES.join(', ')}`);
    const result = await child(childPass as PassName, dir, Number(args.get('rows')));
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const gb = Number(args.get('gb') ?? '2');
  const parquetRows = Number(args.get('parquet-rows') ?? '600000');
  if (!(gb > 0)) throw new Error(`--gb must be positive, got ${args.get('gb')}`);
  const resultsDir = resolve(args.get('results') ?? 'benchmarks/results');
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const date = new Date().toISOString().slice(0, 10);
  const m = machine();
  log(`writing ≥ ${gb} GB of simulated Ali-CCP data to ${dir}`);
  await rm(dir, { recursive: true, force: true });
  let data: Written;
  const passes: PassResult[] = [];
  const load: string[] = [];
  try {
    data = await writeData(dir, gb * 1e9, log);
    log(
      `wrote ${data.impressions} impressions / ${data.sessions} sessions: skeleton ${mb(data.skeletonBytes).toFixed(0)} MiB, ` +
        `common ${mb(data.commonBytes).toFixed(0)} MiB in ${data.seconds.toFixed(0)} s`,
    );
    for (const pass of PASSES) {
      load.push(loadavg()[0].toFixed(1));
      log(`pass ${pass} ... (load average ${load[load.length - 1]})`);
      const rows = pass.startsWith('parquet-') ? Math.min(parquetRows, data.impressions) : data.impressions;
      const r = await runChild(pass, dir, rows);
      passes.push(r);
      log(
        `  ${r.seconds.toFixed(1)} s, ${pass === 'vocabulary' ? '' : `${fmt(r.rowsPerSecond)} rows/s, `}${r.mbPerSecond.toFixed(1)} MB/s, peak RSS ${r.peakRssMb.toFixed(0)} MiB`,
      );
    }
  } finally {
    if (!args.has('keep')) await rm(dir, { recursive: true, force: true });
  }
  await mkdir(resultsDir, { recursive: true });
  const md = markdown(date, m, data, passes, load.join(' / '));
  await writeFile(join(resultsDir, 'aliccp-reader.md'), md);
  const json = {
    date,
    machine: m,
    simulator: BENCH_SIMULATOR,
    batchSize: BATCH_SIZE,
    shuffleBuffer: SHUFFLE_BUFFER,
    largeShuffleBuffer: LARGE_SHUFFLE_BUFFER,
    hashBuckets: HASH_BUCKETS,
    rssTargetMb: RSS_TARGET_MB,
    data: { ...data, files: undefined },
    passes,
  };
  await writeFile(join(resultsDir, 'aliccp-reader.json'), `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(md);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
