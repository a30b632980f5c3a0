#!/usr/bin/env node
/**
 * `npm run bench`: esmm-ts against TF.js and PyTorch on the ESMM reference workload
 * (benchmarks/peers/README.md), plus a vocabulary-scaling run.
 *
 * 1. Compiles benchmarks/esmm-throughput.ts with rolldown into benchmarks/out/.
 * 2. Runs the peers (benchmarks/peers/run-peers.mjs: TF.js cpu/wasm, PyTorch sparse/dense).
 * 3. Runs every esmm-ts backend/mode in its own child process.
 * 4. Key rows (esmm-ts wasm, PyTorch sparse 1 thread, TF.js wasm, batch 1024) are run again in
 *    interleaved rounds; the table shows the median over all runs of a key row.
 * 5. Scaling run: rows per field 1e4 → 1e6 (10 fields: 1e5 → 1e7 rows in total), batch 1024,
 *    esmm-ts wasm, PyTorch sparse and dense (1 thread) and TF.js wasm.
 * 6. Base models (--workloads): DIN and DeepFM towers on the same fields, esmm-ts wasm and PyTorch
 *    SparseAdam at one and two threads, interleaved rounds, same initial weights and batches.
 * 7. Writes benchmarks/results/esmm-throughput.{md,json} and esmm-scaling.svg.
 *
 * Options: --quick (fewer steps), --skip-peers (reuse benchmarks/out/peers.json),
 *   --batches 1024,256, --rounds N (key-row rounds, default 2), --no-scaling,
 *   --scaling-vocabs 10000,100000,1000000, --no-tfjs-scaling, --configs wasm,reference,...,
 *   --workloads mlp,din,deepfm (base models; mlp is the reference workload, always run),
 *   --report-only (re-render the results from benchmarks/results/esmm-throughput.json and benchmarks/out/peer-*.json)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const OUT = path.join(HERE, 'out');
const RESULTS = path.join(HERE, 'results');
const BUNDLE = path.join(OUT, 'esmm-throughput.mjs');
const KERNELS_BUNDLE = path.join(OUT, 'kernels-wasm.mjs');
const PY = process.env.PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

function parseArgs(argv) {
  const a = {
    quick: false,
    skipPeers: false,
    batches: [1024, 256],
    rounds: 2,
    scaling: true,
    scalingVocabs: [10_000, 100_000, 1_000_000],
    tfjsScaling: true,
    configs: null,
    workloads: ['mlp', 'din', 'deepfm'],
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--quick') a.quick = true;
    else if (k === '--skip-peers') a.skipPeers = true;
    else if (k === '--batches') a.batches = v().split(',').map(Number);
    else if (k === '--rounds') a.rounds = Number(v());
    else if (k === '--no-scaling') a.scaling = false;
    else if (k === '--scaling-vocabs') a.scalingVocabs = v().split(',').map(Number);
    else if (k === '--no-tfjs-scaling') a.tfjsScaling = false;
    else if (k === '--configs') a.configs = v().split(',');
    else if (k === '--report-only') a.reportOnly = true;
    else if (k === '--workloads') a.workloads = v().split(',').filter(Boolean);
    else throw new Error(`run-all: unknown argument ${k}`);
  }
  return a;
}

const log = (...x) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...x);
const median = (xs) => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—');
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const load1 = () => os.loadavg()[0];

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, cwd: ROOT, ...opts });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

function hasXvfb() {
  return sh('sh', ['-c', 'command -v xvfb-run']).status === 0;
}

// ------------------------------------------------------------------ esmm-ts children

function buildBundle() {
  const r = sh(path.join(ROOT, 'node_modules', '.bin', 'rolldown'), [
    'benchmarks/esmm-throughput.ts',
    '--platform',
    'node',
    '--format',
    'esm',
    '--external',
    'gpu.js',
    '--file',
    BUNDLE,
  ]);
  if (r.status !== 0) throw new Error(`rolldown failed:\n${r.stderr}\n${r.stdout}`);
  const k = sh(path.join(ROOT, 'node_modules', '.bin', 'rolldown'), [
    'benchmarks/kernels-wasm.ts',
    '--platform',
    'node',
    '--format',
    'esm',
    '--file',
    KERNELS_BUNDLE,
  ]);
  if (k.status !== 0) throw new Error(`rolldown failed:\n${k.stderr}\n${k.stdout}`);
}

/**
 * The tower's GEMMs alone: esmm-ts wasm (plain and relaxed SIMD, 1 and 2 threads, and the SIMD128
 * multiply-add peak) from `kernels-wasm.ts --json`, and torch.mm on OpenBLAS from the peer's `--gemm`.
 */
function gemmRun() {
  const wasmFile = path.join(OUT, 'gemm-wasm.json');
  const torchFile = path.join(OUT, 'gemm-torch.json');
  const w = sh(process.execPath, [...relaxedSimdFlags(), KERNELS_BUNDLE, '--json', wasmFile], { timeout: 10 * 60_000 });
  if (w.status !== 0) log(`  wasm GEMM run failed: ${w.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const t = sh(PY, [path.join(HERE, 'peers', 'torch_esmm.py'), '--gemm', '--out', torchFile], { timeout: 10 * 60_000 });
  if (t.status !== 0) log(`  torch GEMM run failed: ${t.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return { wasm: w.status === 0 ? readJson(wasmFile) : null, torch: t.status === 0 ? readJson(torchFile) : null };
}

/** One esmm-ts configuration in its own process. */
function esmmChild(cfg, { xvfb = false, timeoutMs = 15 * 60_000 } = {}) {
  const argv = [...(cfg.simd === 'relaxed' ? relaxedSimdFlags() : []), BUNDLE, '--child', JSON.stringify(cfg)];
  const before = load1();
  const r = xvfb
    ? sh('xvfb-run', ['-a', process.execPath, ...argv], { timeout: timeoutMs })
    : sh(process.execPath, argv, { timeout: timeoutMs });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line)
    return {
      error: `${r.error ?? 'exit ' + r.status}: ${r.stderr.trim().split('\n').slice(-4).join(' | ')}`,
      config: cfg,
    };
  const res = JSON.parse(line.slice(7));
  res.loadAvg1 = [before, load1()];
  return res;
}

let relaxedFlags;
/** `--experimental-wasm-relaxed-simd` where this Node accepts it (Node 20 needs it for relaxed SIMD), else nothing. */
function relaxedSimdFlags() {
  const flag = '--experimental-wasm-relaxed-simd';
  relaxedFlags ??= sh(process.execPath, [flag, '-e', '0']).status === 0 ? [flag] : [];
  return relaxedFlags;
}

function esmmConfigs(batches, quick, only) {
  const fast = quick ? { warmup: 2, repeats: 3, steps: 5 } : { warmup: 5, repeats: 5, steps: 20 };
  const ref = quick ? { warmup: 1, repeats: 2, steps: 2 } : { warmup: 2, repeats: 3, steps: 5 };
  const slow = quick ? { warmup: 1, repeats: 2, steps: 1 } : { warmup: 1, repeats: 3, steps: 1 };
  const list = [];
  const gl = quick
    ? { lossSteps: 1, warmup: 0, repeats: 2, steps: 1 }
    : { lossSteps: 2, warmup: 0, repeats: 2, steps: 1 };
  for (const batch of batches) {
    list.push({ label: 'wasm', cfg: { backend: 'wasm', threads: 1, batch, lossSteps: 20, ...fast } });
    list.push({
      label: 'wasm relaxed SIMD',
      cfg: { backend: 'wasm', threads: 1, simd: 'relaxed', batch, lossSteps: 20, ...fast },
    });
    list.push({ label: 'wasm 2 threads', cfg: { backend: 'wasm', threads: 2, batch, lossSteps: 20, ...fast } });
    list.push({
      label: 'wasm 2 threads relaxed SIMD',
      cfg: { backend: 'wasm', threads: 2, simd: 'relaxed', batch, lossSteps: 20, ...fast },
    });
    list.push({ label: 'reference', cfg: { backend: 'reference', batch, lossSteps: 20, ...ref } });
    if (batch !== 1024) continue; // the gpu.js modes take seconds per step: batch 1024 only
    list.push({ label: 'gpu:webasm', cfg: { backend: 'gpu', mode: 'webasm', batch, lossSteps: 3, ...slow } });
    list.push({ label: 'gpu:cpu', cfg: { backend: 'gpu', mode: 'cpu', batch, lossSteps: 3, ...slow } });
    list.push({ label: 'gpu:headlessgl', xvfb: true, cfg: { backend: 'gpu', mode: 'headlessgl', batch, ...gl } });
  }
  return only ? list.filter((c) => only.includes(c.label)) : list;
}

// ------------------------------------------------------------------ peers

function runPeers(batches, quick) {
  const args = ['benchmarks/peers/run-peers.mjs', '--batches', batches.join(',')];
  if (quick) args.push('--quick');
  log('peers:', 'node', args.join(' '));
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) log(`peers exited with ${r.status}; using whatever benchmarks/out/peers.json holds`);
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function torchRun({
  variants = 'sparse',
  batch = 1024,
  vocab,
  warmup,
  repeats,
  steps,
  lossSteps = 20,
  out,
  workload = 'mlp',
  threads = 1,
  profile = 0,
}) {
  const args = [
    'benchmarks/peers/torch_esmm.py',
    '--workload',
    workload,
    '--profile',
    String(profile),
    '--omp-wait',
    'passive',
    '--variants',
    variants,
    '--threads',
    String(threads),
    '--batches',
    String(batch),
    '--blas',
    'system',
    '--warmup',
    String(warmup),
    '--repeats',
    String(repeats),
    '--steps',
    String(steps),
    '--loss-steps',
    String(lossSteps),
    '--out',
    out,
  ];
  if (vocab) args.push('--vocab', String(vocab));
  const before = load1();
  const r = sh(PY, args, { timeout: 20 * 60_000 });
  const j = readJson(out);
  if (r.status !== 0 || !j || j.skipped) return [];
  return j.results.map((x) => ({ ...x, loadAvg1: [before, load1()] }));
}

function tfjsRun({ batch = 1024, vocab, warmup, repeats, steps, out }) {
  const args = [
    'benchmarks/peers/tfjs.mjs',
    '--backends',
    'wasm',
    '--batches',
    String(batch),
    '--warmup',
    String(warmup),
    '--repeats',
    String(repeats),
    '--steps',
    String(steps),
    '--out',
    out,
  ];
  if (vocab) args.push('--vocab', String(vocab));
  const before = load1();
  const r = sh(process.execPath, args, { timeout: 20 * 60_000 });
  const j = readJson(out);
  if (r.status !== 0 || !j || j.skipped) {
    const why =
      (j?.failures?.[0]?.stderr ?? r.stderr ?? '').split('\n').find((l) => /Error/.test(l)) ?? `exit ${r.status}`;
    return [{ framework: 'tfjs', variant: 'wasm', vocabPerField: vocab ?? 100_000, batch, error: why.trim() }];
  }
  return j.results.map((x) => ({ ...x, loadAvg1: [before, load1()] }));
}

// ------------------------------------------------------------------ machine

function machine(peers) {
  const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const flags = /flags\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? '';
  const simd = ['avx2', 'fma', 'avx512f'].filter((f) => flags.split(' ').includes(f));
  const pm = peers?.machine ?? {};
  return {
    cpuModel: model,
    simd: simd.join(', '),
    logicalCores: os.cpus().length,
    memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${os.type()} ${os.arch()}`,
    node: process.version,
    tfjs: pm.tfjs ?? readJson(path.join(ROOT, 'node_modules/@tensorflow/tfjs/package.json'))?.version ?? null,
    python: pm.python ?? null,
    torch: pm.torch ?? null,
    blas: pm.blas ?? null,
  };
}

// ------------------------------------------------------------------ report

function peerLabel(r) {
  if (r.framework === 'tfjs') return { framework: `TF.js ${r.tfjsVersion ?? ''}`.trim(), mode: r.backend };
  const v = r.variant === 'sparse' ? 'EmbeddingBag sparse + SparseAdam' : 'EmbeddingBag dense + Adam';
  const extra = [
    r.blasMode === 'reference' ? 'netlib BLAS' : 'OpenBLAS',
    r.ompWaitPolicy && r.ompWaitPolicy !== 'default' ? `OMP ${r.ompWaitPolicy}` : null,
  ]
    .filter(Boolean)
    .join(', ');
  return { framework: 'PyTorch', mode: `${v} (${extra})` };
}

function svgScaling(series, title) {
  const W = 760,
    H = 440,
    L = 70,
    R = 200,
    T = 40,
    B = 60;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y > 0);
  if (xs.length === 0) return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>';
  const lx0 = Math.floor(Math.log10(Math.min(...xs))),
    lx1 = Math.ceil(Math.log10(Math.max(...xs)));
  const ly0 = Math.floor(Math.log10(Math.min(...ys))),
    ly1 = Math.ceil(Math.log10(Math.max(...ys)));
  const X = (x) => L + ((Math.log10(x) - lx0) / (lx1 - lx0 || 1)) * (W - L - R);
  const Y = (y) => H - B - ((Math.log10(y) - ly0) / (ly1 - ly0 || 1)) * (H - T - B);
  const colors = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const el = [];
  el.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  el.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-family="sans-serif">${title}</text>`);
  for (let e = lx0; e <= lx1; e++) {
    el.push(`<line x1="${X(10 ** e)}" y1="${T}" x2="${X(10 ** e)}" y2="${H - B}" stroke="#ddd"/>`);
    el.push(
      `<text x="${X(10 ** e)}" y="${H - B + 18}" text-anchor="middle" font-size="12" font-family="sans-serif">1e${e}</text>`,
    );
  }
  for (let e = ly0; e <= ly1; e++) {
    for (const m of [1, 2, 5]) {
      const y = m * 10 ** e;
      if (y < 10 ** ly0 || y > 10 ** ly1) continue;
      el.push(`<line x1="${L}" y1="${Y(y)}" x2="${W - R}" y2="${Y(y)}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`);
      el.push(
        `<text x="${L - 6}" y="${Y(y) + 4}" text-anchor="end" font-size="11" font-family="sans-serif">${y >= 1 ? y : y.toPrecision(1)}</text>`,
      );
    }
  }
  el.push(
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
  );
  el.push(
    `<text x="${(L + W - R) / 2}" y="${H - 18}" text-anchor="middle" font-size="13" font-family="sans-serif">embedding rows, all 10 fields (log)</text>`,
  );
  el.push(
    `<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" font-size="13" font-family="sans-serif" transform="rotate(-90 18 ${(T + H - B) / 2})">ms per training step, batch 1024 (log)</text>`,
  );
  series.forEach((s, i) => {
    const c = colors[i % colors.length];
    const pts = s.points.filter((p) => p.y > 0).sort((p, q) => p.x - q.x);
    if (pts.length > 1)
      el.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ')}"/>`,
      );
    for (const p of pts) el.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3.5" fill="${c}"/>`);
    el.push(`<rect x="${W - R + 14}" y="${T + 10 + i * 22}" width="14" height="4" fill="${c}"/>`);
    el.push(`<text x="${W - R + 34}" y="${T + 16 + i * 22}" font-size="12" font-family="sans-serif">${s.name}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">\n${el.join('\n')}\n</svg>\n`;
}

// ------------------------------------------------------------------ main

function main() {
  const args = parseArgs(process.argv.slice(2));
  args.command = ['npm run bench --', ...process.argv.slice(2)].join(' ');
  if (args.reportOnly) return reportOnly(args);
  const started = new Date();
  fs.mkdirSync(OUT, { recursive: true });
  fs.mkdirSync(RESULTS, { recursive: true });
  log('compiling benchmarks/esmm-throughput.ts');
  buildBundle();
  spawnSync(process.execPath, ['benchmarks/peers/make-init.mjs'], { cwd: ROOT, stdio: 'inherit' });

  // Peers.
  if (!args.skipPeers) runPeers(args.batches, args.quick);
  const peers = readJson(path.join(OUT, 'peers.json'));
  const peerRows = [
    ...(readJson(path.join(OUT, 'peer-tfjs.json'))?.results ?? []),
    ...(readJson(path.join(OUT, 'peer-torch.json'))?.results ?? []),
  ];

  // esmm-ts configurations.
  const xvfb = hasXvfb();
  const esmm = [];
  for (const { label, cfg, xvfb: needsX } of esmmConfigs(args.batches, args.quick, args.configs)) {
    log(`esmm-ts ${label} batch ${cfg.batch}`);
    const r = esmmChild(cfg, { xvfb: needsX && xvfb });
    r.label = label;
    esmm.push(r);
    log(
      r.error
        ? `  failed: ${r.error}`
        : `  ${fmtInt(r.samplesPerSec)} samples/s, ${fmt(r.msPerStep, 1)} ms/step, peak RSS ${fmtInt(r.peakRssMB)} MB`,
    );
  }

  // Key rows again, interleaved, so that load from other processes hits every framework alike.
  const key = { esmm: [], eager: [], relaxed: [], plain: [], fusionFlipped: {}, torch: [], tfjs: [] };
  for (const f of MEASURED_FUSIONS) key.fusionFlipped[f] = [];
  const keyPlan = args.quick ? { warmup: 2, repeats: 3, steps: 5 } : { warmup: 5, repeats: 5, steps: 20 };
  for (let round = 0; round < args.rounds; round++) {
    log(`key rows, round ${round + 1}/${args.rounds}`);
    const e = esmmChild({
      backend: 'wasm',
      threads: 1,
      batch: 1024,
      lossSteps: 0,
      ...keyPlan,
      profileSteps: round === 0 ? 20 : 0,
    });
    if (!e.error) key.esmm.push(e);
    // The same captured step on relaxed SIMD (fused multiply-add) and on plain SIMD, the SIMD lever.
    // The default run above is plain where this Node has no relaxed SIMD without a flag (Node 20).
    const relaxed = esmmChild({ backend: 'wasm', threads: 1, batch: 1024, lossSteps: 0, ...keyPlan, simd: 'relaxed' });
    if (!relaxed.error) key.relaxed.push(relaxed);
    else log(`  relaxed SIMD run failed: ${relaxed.error}`);
    if (!e.error && e.simd !== 'plain') {
      const plain = esmmChild({ backend: 'wasm', threads: 1, batch: 1024, lossSteps: 0, ...keyPlan, simd: 'plain' });
      if (!plain.error) key.plain.push(plain);
    }
    // The same step run eagerly (every op dispatched, graph built and walked): the captured step's lever.
    const eager = esmmChild({
      backend: 'wasm',
      threads: 1,
      batch: 1024,
      lossSteps: 0,
      ...keyPlan,
      stepMode: 'eager',
      profileSteps: round === 0 ? 20 : 0,
    });
    if (!eager.error) key.eager.push(eager);
    // The captured step with one fusion switched from its default: that fusion's lever.
    for (const f of MEASURED_FUSIONS) {
      const flipped = esmmChild({
        backend: 'wasm',
        threads: 1,
        batch: 1024,
        lossSteps: 0,
        ...keyPlan,
        fusions: { [f]: e.fusions?.[f] === false },
        profileSteps: round === 0 && f === 'linearPrelu' ? 20 : 0,
      });
      if (!flipped.error) key.fusionFlipped[f].push(flipped);
    }
    key.torch.push(
      ...torchRun({ ...keyPlan, lossSteps: 1, profile: round === 0 ? 20 : 0, out: path.join(OUT, 'key-torch.json') }),
    );
    key.tfjs.push(...tfjsRun({ ...keyPlan, out: path.join(OUT, 'key-tfjs.json') }).filter((x) => !x.error));
    log(
      `  esmm-ts ${fmtInt(e.samplesPerSec)}, torch sparse ${fmtInt(key.torch.at(-1)?.samplesPerSec)}, tfjs wasm ${fmtInt(key.tfjs.at(-1)?.samplesPerSec)}`,
    );
  }

  log('GEMM at the tower shapes: esmm-ts wasm and torch.mm');
  const gemm = gemmRun();

  // Base models: DIN and DeepFM, esmm-ts wasm and PyTorch SparseAdam at one and two threads, interleaved.
  const bases = [];
  for (const workload of args.workloads.filter((w) => w !== 'mlp')) {
    for (let round = 0; round < Math.max(1, args.rounds); round++) {
      log(`base model ${workload}, round ${round + 1}/${Math.max(1, args.rounds)}`);
      const lossSteps = round === 0 ? 20 : 0;
      for (const threads of [1, 2]) {
        // The first one-thread round is profiled on both sides too (after its timed steps).
        const profileSteps = round === 0 && threads === 1 ? 20 : 0;
        const e = esmmChild({ workload, backend: 'wasm', threads, batch: 1024, lossSteps, ...keyPlan, profileSteps });
        bases.push(e.error ? { framework: 'esmm-ts', workload, threads, error: e.error } : e);
        if (threads === 1) {
          const eager = esmmChild({
            workload,
            backend: 'wasm',
            threads,
            batch: 1024,
            lossSteps: 0,
            ...keyPlan,
            stepMode: 'eager',
            profileSteps,
          });
          if (!eager.error) bases.push(eager);
        }
        const t = torchRun({
          workload,
          threads,
          ...keyPlan,
          profile: profileSteps,
          lossSteps: Math.max(1, lossSteps),
          out: path.join(OUT, `base-torch-${workload}.json`),
        });
        bases.push(...(t.length ? t : [{ framework: 'pytorch', workload, threads, error: 'torch peer failed' }]));
        log(`  ${threads} thr: esmm-ts ${fmtInt(e.samplesPerSec)}, torch sparse ${fmtInt(t.at(-1)?.samplesPerSec)}`);
      }
    }
  }

  // Scaling.
  const scaling = [];
  if (args.scaling) {
    // Without --quick, esmm-ts warms up over every batch once, so it is timed in its steady state.
    const plan = args.quick
      ? { warmup: 1, repeats: 2, steps: 3 }
      : { warmup: 3, repeats: 3, steps: 10, steadyState: true };
    for (const vocab of args.scalingVocabs) {
      log(`scaling: ${fmtInt(vocab)} rows per field`);
      for (let run = 0; run < 2; run++) {
        const e = esmmChild({ backend: 'wasm', threads: 1, batch: 1024, lossSteps: 1, vocab, ...plan });
        scaling.push(
          e.error
            ? { framework: 'esmm-ts', variant: 'wasm', vocabPerField: vocab, error: e.error }
            : { ...e, variant: 'wasm' },
        );
      }
      const sparse = torchRun({
        variants: 'sparse',
        vocab,
        ...plan,
        lossSteps: 1,
        out: path.join(OUT, 'scaling-torch.json'),
      });
      const bigDense = vocab >= 300_000;
      const dense = torchRun({
        variants: 'dense',
        vocab,
        ...(bigDense ? { warmup: 1, repeats: 3, steps: 3 } : plan),
        lossSteps: 1,
        out: path.join(OUT, 'scaling-torch.json'),
      });
      scaling.push(...sparse, ...dense);
      if (args.tfjsScaling) {
        const tplan = vocab >= 300_000 ? { warmup: 1, repeats: 2, steps: 2 } : { warmup: 2, repeats: 3, steps: 3 };
        scaling.push(
          ...tfjsRun({ vocab, ...tplan, out: path.join(OUT, 'scaling-tfjs.json') }).map((r) => ({
            ...r,
            variant: 'wasm',
          })),
        );
      }
      for (const r of scaling.filter((x) => x.vocabPerField === vocab && !x.error))
        log(
          `  ${r.framework} ${r.variant}: ${fmt((1000 * r.batch) / r.samplesPerSec, 1)} ms/step, peak RSS ${fmtInt(r.peakRssMB)} MB`,
        );
    }
  }

  writeReport(buildReport({ args, started, peers, peerRows, esmm, key, scaling, bases, gemm }));
}

function reportOnly(args) {
  const prev = readJson(path.join(RESULTS, 'esmm-throughput.json'));
  if (!prev) throw new Error('run-all --report-only: benchmarks/results/esmm-throughput.json is missing');
  const peers = readJson(path.join(OUT, 'peers.json'));
  const peerRows = [
    ...(readJson(path.join(OUT, 'peer-tfjs.json'))?.results ?? []),
    ...(readJson(path.join(OUT, 'peer-torch.json'))?.results ?? []),
  ];
  writeReport(
    buildReport({
      args: { ...args, rounds: prev.rounds ?? args.rounds, quick: prev.quick ?? args.quick, command: prev.command },
      started: new Date(prev.generatedAt),
      peers,
      peerRows,
      esmm: prev.esmm,
      key: prev.key,
      scaling: prev.scaling,
      bases: prev.bases ?? [],
      gemm: prev.gemm ?? null,
    }),
  );
}

function writeReport(report) {
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, 'esmm-throughput.json'), JSON.stringify(report.json, null, 2) + '\n');
  fs.writeFileSync(path.join(RESULTS, 'esmm-throughput.md'), report.md);
  fs.writeFileSync(path.join(RESULTS, 'esmm-scaling.svg'), report.svg);
  log('wrote benchmarks/results/esmm-throughput.md, .json and esmm-scaling.svg');
  console.log('\n' + report.table);
}

function buildReport({ args, started, peers, peerRows, esmm, key, scaling, bases = [], gemm = null }) {
  const mach = machine(peers);
  const ok = esmm.filter((r) => !r.error);
  const isKeyTorch = (r) =>
    r.framework === 'pytorch' &&
    r.variant === 'sparse' &&
    r.threads === 1 &&
    r.blasMode === 'system' &&
    r.batch === 1024;
  const isKeyTfjs = (r) => r.framework === 'tfjs' && r.backend === 'wasm' && r.batch === 1024;

  // Rows of the one table.
  const rows = [];
  for (const r of ok) {
    let sps = r.samplesPerSec;
    let runs = [sps];
    const notes = [];
    if (r.label === 'wasm' && r.batch === 1024 && key.esmm.length) {
      runs = [sps, ...key.esmm.map((k) => k.samplesPerSec)];
      sps = median(runs);
    }
    if (runs.length > 1) notes.push(`median of ${runs.length} runs (${runs.map(fmtInt).join(', ')})`);
    notes.push(`${r.warmupSteps}+${r.repeats}×${r.stepsPerRepeat} steps`);
    if (r.stepsPerRepeat < 20) notes.push('fewer steps (slow backend)');
    if (r.label === 'gpu:headlessgl')
      notes.push('headless-gl under xvfb-run; the machine has no GPU, so WebGL runs in software');
    if (r.label.startsWith('gpu:')) notes.push('batch 1024 only');
    notes.push(...r.notes, 'lazy (sparse) Adam on table rows');
    rows.push({
      framework: 'esmm-ts',
      mode: r.label,
      threads: r.threads ?? 1,
      batch: r.batch,
      sps,
      runs,
      rss: r.peakRssMB,
      notes,
      esmm: true,
    });
  }
  for (const r of peerRows) {
    const { framework, mode } = peerLabel(r);
    let sps = r.samplesPerSec;
    let runs = [sps];
    if (isKeyTorch(r) && key.torch.length) runs = [sps, ...key.torch.map((k) => k.samplesPerSec)];
    if (isKeyTfjs(r) && key.tfjs.length) runs = [sps, ...key.tfjs.map((k) => k.samplesPerSec)];
    sps = median(runs);
    const notes = [];
    if (runs.length > 1) notes.push(`median of ${runs.length} runs (${runs.map(fmtInt).join(', ')})`);
    notes.push(`${r.warmupSteps}+${r.repeats}×${r.stepsPerRepeat} steps`);
    if (r.framework === 'tfjs') notes.push('gather + customGrad(scatterND); dense Adam over all rows');
    rows.push({ framework, mode, threads: r.threads, batch: r.batch, sps, runs, rss: r.peakRssMB, notes });
  }
  const best = new Map();
  for (const r of rows.filter((x) => x.esmm)) best.set(r.batch, Math.max(best.get(r.batch) ?? 0, r.sps));
  rows.sort((a, b) => b.batch - a.batch || b.sps - a.sps);
  const table = [
    '| framework | backend / mode | threads | batch | samples/s (median) | × esmm-ts best | peak RSS MB | notes |',
    '|---|---|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.esmm ? '**esmm-ts**' : r.framework} | ${r.mode} | ${r.threads} | ${r.batch} | ${fmtInt(r.sps)} | ${fmt(r.sps / best.get(r.batch), 2)} | ${fmtInt(r.rss)} | ${r.notes.join('; ')} |`,
    ),
  ].join('\n');
  const failed = esmm.filter((r) => r.error);

  // Goals (batch 1024).
  const at = (pred) => rows.find((r) => r.batch === 1024 && pred(r));
  const esmmBest = best.get(1024);
  const esmmWasm = at((r) => r.esmm && r.mode === 'wasm');
  const tfjsFaster = Math.max(
    ...rows.filter((r) => r.batch === 1024 && r.framework.startsWith('TF.js')).map((r) => r.sps),
  );
  const torchFast = at(
    (r) =>
      r.framework === 'PyTorch' &&
      r.threads === 1 &&
      r.mode.startsWith('EmbeddingBag sparse') &&
      r.mode.includes('OpenBLAS'),
  );
  // Two threads: esmm-ts's 2-thread wasm row against PyTorch's faster 2-thread sparse row (OMP default or passive).
  const esmmTwo = at((r) => r.esmm && r.mode === 'wasm 2 threads');
  // Relaxed SIMD is Node 22+'s and Chromium's default and needs a flag on Node 20: its rows are goals of their own.
  const esmmRelaxed = at((r) => r.esmm && r.mode === 'wasm relaxed SIMD');
  const esmmTwoRelaxed = at((r) => r.esmm && r.mode === 'wasm 2 threads relaxed SIMD');
  const torchTwo = rows
    .filter(
      (r) =>
        r.batch === 1024 &&
        r.framework === 'PyTorch' &&
        r.threads === 2 &&
        r.mode.startsWith('EmbeddingBag sparse') &&
        r.mode.includes('OpenBLAS'),
    )
    .sort((a, b) => b.sps - a.sps)[0];
  // The fastest PyTorch configuration at batch 1024, whatever its threads, variant or BLAS.
  const torchBest = rows.filter((r) => r.batch === 1024 && r.framework === 'PyTorch').sort((a, b) => b.sps - a.sps)[0];
  const ratioGoal = (a, b, target) => {
    const ratio = a && b ? a.sps / b.sps : NaN;
    return { ratio, target, met: ratio >= target };
  };
  const goals = {
    vsTfjs: { ratio: esmmBest / tfjsFaster, target: 3, met: esmmBest / tfjsFaster >= 3 },
    vsTorch: ratioGoal(esmmWasm, torchFast, 1),
    vsTorch2: ratioGoal(esmmTwo, torchTwo, 1),
    vsTorchBest: ratioGoal(esmmTwo, torchBest, 1.5),
    vsTorchRelaxed: ratioGoal(esmmRelaxed, torchFast, 1),
    vsTorchBestRelaxed: ratioGoal(esmmTwoRelaxed, torchBest, 1.5),
    peakRss: { mb: esmmWasm?.rss, target: 400, met: (esmmWasm?.rss ?? Infinity) < 400 },
  };
  // The least disturbed run of each side (the fastest), as a check on the medians.
  const bestRun = (r) => (r ? Math.max(...r.runs) : NaN);
  const bestRatioTorch = bestRun(esmmWasm) / bestRun(torchFast);
  const tfjsWasm = at((r) => r.framework.startsWith('TF.js') && r.mode === 'wasm');
  const bestRatioTfjs = bestRun(esmmWasm) / bestRun(tfjsWasm);

  // Losses.
  const steps = [1, 5, 10, 20];
  const lossRows = [];
  for (const r of ok.filter((x) => x.batch === 1024 || x.batch === 256))
    lossRows.push({ who: `esmm-ts ${r.label}`, batch: r.batch, losses: r.losses });
  for (const r of peerRows.filter(
    (x) =>
      (x.framework === 'tfjs' && x.backend === 'wasm') ||
      (x.framework === 'pytorch' && x.threads === 1 && x.blasMode === 'system'),
  )) {
    const { framework, mode } = peerLabel(r);
    lossRows.push({ who: `${framework} ${mode}`, batch: r.batch, losses: r.losses });
  }
  lossRows.sort((a, b) => b.batch - a.batch);
  const refFor = (batch) =>
    peerRows.find(
      (r) =>
        r.framework === 'pytorch' &&
        r.variant === 'sparse' &&
        r.threads === 1 &&
        r.blasMode === 'system' &&
        r.batch === batch,
    )?.losses;
  const maxDiff = (ls, batch) => {
    const ref = refFor(batch);
    if (!ref || !ls?.length) return NaN;
    let m = 0;
    for (let i = 0; i < Math.min(ls.length, ref.length); i++) m = Math.max(m, Math.abs(ls[i] - ref[i]));
    return m;
  };
  const lossTable = [
    `| run | batch | ${steps.map((s) => `loss@${s}`).join(' | ')} | max abs diff vs PyTorch SparseAdam (steps) |`,
    `|---|---:|${steps.map(() => '---:').join('|')}|---|`,
    ...lossRows.map(
      (l) =>
        `| ${l.who} | ${l.batch} | ${steps.map((s) => (l.losses?.[s - 1] !== undefined ? l.losses[s - 1].toFixed(4) : '')).join(' | ')} | ${fmt(maxDiff(l.losses, l.batch), 5)} (${Math.min(l.losses?.length ?? 0, refFor(l.batch)?.length ?? 0)}) |`,
    ),
  ].join('\n');

  // Scaling table and chart.
  const sOk = scaling.filter((r) => !r.error);
  const seriesName = (r) =>
    r.framework === 'esmm-ts'
      ? 'esmm-ts wasm (lazy Adam)'
      : r.framework === 'tfjs'
        ? 'TF.js wasm (dense Adam)'
        : r.variant === 'sparse'
          ? 'PyTorch SparseAdam, 1 thr'
          : 'PyTorch dense Adam, 1 thr';
  const groups = new Map();
  for (const r of sOk) {
    const k = seriesName(r);
    if (!groups.has(k)) groups.set(k, new Map());
    const g = groups.get(k);
    if (!g.has(r.vocabPerField)) g.set(r.vocabPerField, []);
    g.get(r.vocabPerField).push(r);
  }
  const vocabs = [...new Set(sOk.map((r) => r.vocabPerField))].sort((a, b) => a - b);
  const series = [...groups].map(([name, g]) => ({
    name,
    points: [...g].map(([v, rs]) => ({
      x: v * 10,
      y: median(rs.map((r) => (1000 * r.batch) / r.samplesPerSec)),
      rss: Math.max(...rs.map((r) => r.peakRssMB)),
      n: rs.length,
    })),
  }));
  const scalingTable = [
    `| framework | ${vocabs.map((v) => `${(v * 10).toExponential(0).replace('+', '')} rows`).join(' | ')} | max/min |`,
    `|---|${vocabs.map(() => '---:').join('|')}|---:|`,
    ...series.map((s) => {
      const cells = vocabs.map((v) => {
        const p = s.points.find((q) => q.x === v * 10);
        return p ? `${fmt(p.y, 1)} ms (${fmtInt(p.rss)} MB)` : '—';
      });
      const ys = s.points.map((p) => p.y);
      return `| ${s.name} | ${cells.join(' | ')} | ${fmt(Math.max(...ys) / Math.min(...ys), 2)}× |`;
    }),
  ].join('\n');
  // CPU time and page faults of the esmm-ts runs: on a shared machine wall time also counts waiting for a core.
  const esmmScaling = sOk.filter((r) => r.framework === 'esmm-ts' && Number.isFinite(r.cpuMsPerStep));
  const cpuAt = (v, f) => median(esmmScaling.filter((r) => r.vocabPerField === v).map(f));
  const cpuVocabs = vocabs.filter((v) => esmmScaling.some((r) => r.vocabPerField === v));
  const cpuYs = cpuVocabs.map((v) => cpuAt(v, (r) => r.cpuMsPerStep));
  const scalingCpuTable = cpuVocabs.length
    ? [
        `| esmm-ts wasm, per step | ${cpuVocabs.map((v) => `${(v * 10).toExponential(0).replace('+', '')} rows`).join(' | ')} | max/min |`,
        `|---|${cpuVocabs.map(() => '---:').join('|')}|---:|`,
        `| CPU ms (user + sys) | ${cpuYs.map((y) => fmt(y, 1)).join(' | ')} | ${fmt(Math.max(...cpuYs) / Math.min(...cpuYs), 2)}× |`,
        `| of which sys ms | ${cpuVocabs
          .map((v) =>
            fmt(
              cpuAt(v, (r) => r.sysMsPerStep ?? NaN),
              1,
            ),
          )
          .join(' | ')} | |`,
        `| minor page faults | ${cpuVocabs.map((v) => fmtInt(cpuAt(v, (r) => r.faultsPerStep ?? NaN))).join(' | ')} | |`,
      ].join('\n')
    : '';
  const esmmSeries = series.find((s) => s.name.startsWith('esmm-ts'));
  const esmmScale = esmmSeries
    ? Math.max(...esmmSeries.points.map((p) => p.y)) / Math.min(...esmmSeries.points.map((p) => p.y))
    : NaN;
  const svg = svgScaling(series, 'ESMM training step time vs. embedding rows (batch 1024)');

  const profile = (key.eager ?? []).find((k) => k.kernelProfile)?.kernelProfile;
  const capturedProfile = key.esmm.find((k) => k.kernelProfile)?.kernelProfile;
  const levers = leverTable(key, bases, capturedProfile, profile);
  const fusion = fusionTable(key);
  const profileTable = profile
    ? [
        '| backend method | ms/step | calls/step |',
        '|---|---:|---:|',
        ...profile.rows
          .filter((r) => r.msPerStep >= 0.1)
          .map((r) => `| ${r.method} | ${fmt(r.msPerStep, 2)} | ${r.callsPerStep ? fmt(r.callsPerStep, 0) : ''} |`),
      ].join('\n') + `\n\nStep time while profiled: ${fmt(profile.stepMs, 1)} ms (timers add a little overhead).`
    : '_not profiled_';

  const base = baseModels(bases);
  const baseGoalRows = base.goalRows;
  const baseSideBySide = args.workloads
    .filter((w) => w !== 'mlp')
    .map((w) => baseStepByStep(w, bases))
    .join('\n\n');
  const torchProfile = key.torch.find((k) => k.profile)?.profile;
  const sideBySide = profileSideBySide(profile, torchProfile);

  const loads = [
    ...ok,
    ...key.esmm,
    ...(key.eager ?? []),
    ...(key.relaxed ?? []),
    ...(key.plain ?? []),
    ...key.torch,
    ...key.tfjs,
    ...sOk,
    ...bases,
  ].flatMap((r) => r.loadAvg1 ?? []);
  const md = `# ESMM training throughput: esmm-ts vs TensorFlow.js and PyTorch

Generated by \`npm run bench\` (\`benchmarks/run-all.mjs\`) on ${started.toISOString().slice(0, 10)}${args.command ? `: \`${args.command}\`` : ''}.

**Figures come from a small shared machine that other jobs were using at the same time**
(1-minute load average between ${fmt(Math.min(...loads), 1)} and ${fmt(Math.max(...loads), 1)} on ${mach.logicalCores} cores during the runs).
They are noisy. The key rows (esmm-ts wasm, PyTorch SparseAdam 1 thread, TF.js wasm, batch 1024) were
run ${1 + args.rounds} times, in interleaved rounds, and the table shows the median of those runs.
Compare rows from the same run only.

## Machine

| | |
|---|---|
| CPU | ${mach.cpuModel} (${mach.simd}) |
| logical cores | ${mach.logicalCores} |
| memory | ${mach.memoryGB} GB |
| OS | ${mach.platform} |
| Node | ${mach.node} |
| TF.js | ${mach.tfjs} (no tfjs-node) |
| Python / PyTorch | ${mach.python} / ${mach.torch} |
| BLAS (PyTorch) | ${mach.blas} |

## Workload

The reference workload of \`benchmarks/peers/README.md\`: ESMM with an MLP base; 8 single-valued fields and
2 bag fields of exactly 10 ids (sum pooling), 100,000 ids each, one table per field (dim 18) shared by both
towers; towers 180 → 200 → PReLU → 80 → PReLU → 1; loss mean BCE(pCTR, click) + mean BCE(pCTR·pCVR,
click·conversion); Adam lr 1e-3. Every framework starts from the same initial weights
(\`make-init.mjs\`, seed 2018) and sees the same batches. Throughput is samples/s over forward + backward +
optimizer step after warm-up, the median of repeats; every configuration runs in its own process, which
gives its peak RSS.

esmm-ts is built with the public API only: \`createModel({ method: 'esmm', schema, tower: { hidden: [200, 80] } })\`,
\`optim.Adam\` over \`model.parameters()\` (lazy, SparseAdam-style updates of the embedding rows), one step =
\`tidy(() => { zeroGrad; loss = model.loss(batch); loss.backward(); step })\`, compiled with \`compileStep\` as the
Trainer does by default (rows marked eager run it uncompiled). The loss is read back after the
last step of each timed repeat (and after each of the first 20, untimed, steps for the loss comparison).
The wasm backend runs on one thread, or on both cores with a worker pool (\`threads: 2\`); both rows are measured.

## Throughput

${table}
${failed.length ? `\nConfigurations that failed: ${failed.map((f) => `${f.label} batch ${f.config.batch} (${f.error})`).join('; ')}\n` : ''}
## Goals (batch 1024)

| goal | measured (medians) | met |
|---|---|---|
| esmm-ts ≥ 3× the faster TF.js backend | ${fmt(goals.vsTfjs.ratio, 2)}× (esmm-ts ${fmtInt(esmmBest)} vs TF.js ${fmtInt(tfjsFaster)} samples/s) | ${goals.vsTfjs.met ? 'yes' : 'no'}; fastest runs: ${fmt(bestRatioTfjs, 2)}× |
| one thread: esmm-ts ≥ 1.0× PyTorch (OpenBLAS, SparseAdam, 1 thread) | ${fmt(goals.vsTorch.ratio, 2)}× (${fmtInt(esmmWasm?.sps)} vs ${fmtInt(torchFast?.sps)} samples/s) | ${goals.vsTorch.met ? 'yes, on medians' : 'no'}; fastest run vs fastest run: ${fmt(bestRatioTorch, 2)}× (${fmtInt(bestRun(esmmWasm))} vs ${fmtInt(bestRun(torchFast))}) |
| both cores: esmm-ts ≥ 1.5× the fastest PyTorch configuration | ${fmt(goals.vsTorchBest.ratio, 2)}× (${fmtInt(esmmTwo?.sps)} vs ${fmtInt(torchBest?.sps)} samples/s, ${torchBest ? `${torchBest.threads} thr, ${torchBest.mode}` : '—'}); vs PyTorch SparseAdam at 2 threads: ${fmt(goals.vsTorch2.ratio, 2)}× | ${goals.vsTorchBest.met ? 'yes' : 'no'} |
| one thread, relaxed SIMD: esmm-ts ≥ 1.0× PyTorch (OpenBLAS, SparseAdam, 1 thread) | ${fmt(goals.vsTorchRelaxed.ratio, 2)}× (${fmtInt(esmmRelaxed?.sps)} vs ${fmtInt(torchFast?.sps)} samples/s; single run) | ${esmmRelaxed ? (goals.vsTorchRelaxed.met ? 'yes' : 'no') : 'not run'} |
| both cores, relaxed SIMD: esmm-ts ≥ 1.5× the fastest PyTorch configuration | ${fmt(goals.vsTorchBestRelaxed.ratio, 2)}× (${fmtInt(esmmTwoRelaxed?.sps)} vs ${fmtInt(torchBest?.sps)} samples/s; single run) | ${esmmTwoRelaxed ? (goals.vsTorchBestRelaxed.met ? 'yes' : 'no') : 'not run'} |
${baseGoalRows}
| esmm-ts peak RSS < 400 MB (wasm) | ${fmtInt(goals.peakRss.mb)} MB | ${goals.peakRss.met ? 'yes' : 'no'} |
| esmm-ts step time within 1.3× from 1e5 to 1e7 rows | ${fmt(esmmScale, 2)}× (max/min over the scaling run) | ${Number.isFinite(esmmScale) ? (esmmScale <= 1.3 ? 'yes' : 'no') : 'not run'} |

## Levers: eager vs captured step, fused tower kernels, plain vs relaxed SIMD (wasm, 1 thread, batch 1024, same run)

The captured step (\`compileStep\`, the Trainer's default) replays a plan recorded from an eager step:
the same kernels, with no graph building, allocation or op dispatch; host work that follows the data
(id grouping, padding, the sparse rows of Adam) still runs per batch. Wall time is what the run saw on a
loaded machine; CPU time (user + system of the process) is the steadier figure there. The fused tower
kernels and relaxed SIMD have their own tables below.

${levers}

### Fused vs unfused tower kernels (mlp, captured step)

Fused (\`linearPrelu\`, the default): each Linear → PReLU pair of the towers is one GEMM whose epilogue
adds the bias and applies PReLU to each output tile in registers, writing the pre-activation and the
activation; its backward forms the pre-activation gradient, the bias and the slope gradients in one pass
before Linear's two GEMMs. Unfused (\`setFusions({ linearPrelu: false })\`): matmul, a bias add and prelu as
three ops, and in the backward preluBackward and a reduceSum for the bias. Same parameters, same forward
values bit for bit; the run above alternates the two in each round.

${fusion}
${
  embeddingFusionTable(key)
    ? `
### Embedding-side fusions on vs off (captured step, wasm, 1 thread, batch 1024, same rounds)

The key rows run each fusion of \`core/fusion.ts\` at its default (\`FUSION_DEFAULTS\`); in each round another
child runs the same captured step with that one fusion switched (\`setFusions\`). \`segmentSumAdam\`: lazy
Adam sums each embedding row's gradient contributions and updates the row in one kernel
(\`sparseAdamSegments\`) instead of \`segmentSumRows\` into a [rows, dim] buffer and then \`sparseAdam\`; both
give the same bits.

${embeddingFusionTable(key)}
`
    : ''
}
## Loss agreement (same initial weights, same batches)

esmm-ts updates embedding rows lazily, like PyTorch's SparseAdam, so its reference is the PyTorch
SparseAdam row; dense Adam (TF.js, PyTorch dense) moves untouched rows too and diverges slightly.
Its lazy update is PyTorch's SparseAdam rule (ε added to √v), so the two agree step by step.

${lossTable}

## Scaling with the vocabulary (batch 1024)

Rows per field 1e4 → 1e6 (10 fields, so 1e5 → 1e7 rows in all). Scaling runs use each framework's own
seeded N(0, 0.01²) tables and remap every id to \`(id · 7919) mod rows\`, so the touched rows per batch stay
about the same while the tables grow. Cells: median ms per step (peak RSS). esmm-ts: 2 runs per size; dense
Adam rows at ≥ 3e6 rows run fewer steps.${
    args.quick
      ? ' This run used `--quick`: each size times a few steps right after the first ones, while the' +
        ' lazy updates still touch table rows for the first time (a page fault per 4 KiB of table, m and v), so' +
        ' the large tables look slower than they are in a long run; compare frameworks within this run only.'
      : ' Each esmm-ts size first runs over every batch once (every row a timed step updates was updated' +
        ' before), so it is timed in the steady state of a long run.'
  }

${scalingTable}
${scalingCpuTable ? `\n${scalingCpuTable}\n` : ''}${scaling
    .filter((r) => r.error)
    .map(
      (r) =>
        `\nFailed: ${r.framework} ${r.variant} at ${fmtInt(r.vocabPerField * 10)} rows: ${r.error}${r.framework === 'tfjs' ? ' (dense Adam needs the tables, m, v and a dense gradient inside one wasm memory, which does not fit)' : ''}.`,
    )
    .join('')}

![scaling](esmm-scaling.svg)

## Where esmm-ts spends a step (wasm, batch 1024, 100,000 rows per field)

Every backend method timed (outermost calls only), eager step; \`(outside kernels)\` is the rest: autodiff
bookkeeping and host-side index work (grouping ids for the sparse gradients), batch-to-tensor copies. The
captured step's \`(outside kernels)\` is in the lever table above.

${profileTable}

## esmm-ts and PyTorch step by step (MLP, 1 thread, batch 1024)

Phases timed the same way on both sides (wall time around the loss, \`backward()\` and the optimizer step;
PyTorch's without its profiler), then each side's ten most expensive operations: esmm-ts backend methods
(timers around each call) and PyTorch's \`torch.profiler\` self CPU time per aten op. The profilers add
their own overhead, so their totals exceed the timed step.

${sideBySide}

${gemmTable(gemm)}

## Base models: DIN and DeepFM (batch 1024)

Both towers DIN (attention over bag b0 against field f0, activation unit 72 → 80 → PReLU → 40 → PReLU → 1,
unnormalised scores as in the paper; esmm-ts computes the unit's first layer as W_e+W_d on e, W_p on e ⊙ q per
position and W_q−W_d on q once per row, the same function, while PyTorch builds the 72-wide input) or DeepFM (first-order tables per field, FM term, the same MLP) on the
reference workload's fields; PyTorch peer \`torch_esmm.py --workload din|deepfm\` with SparseAdam for every
table (DeepFM's first-order ones too); initial weights from \`make-init.mjs\`. Medians of ${Math.max(1, args.rounds)} interleaved round(s).

${base.table}

${baseSideBySide}
`;
  return {
    md,
    svg,
    table,
    json: {
      generatedAt: started.toISOString(),
      rounds: args.rounds,
      quick: args.quick,
      command: args.command,
      machine: mach,
      note: 'figures from a shared, noisy machine; medians',
      goals,
      rows,
      esmm,
      key,
      scaling,
      bases,
      gemm,
      lossRows,
      series,
    },
  };
}

/** The embedding-side fusions of core/fusion.ts, in their own table. */
const EMBEDDING_FUSIONS = ['segmentSumAdam'];
/** The kernel fusions of core/fusion.ts that the key rounds measure off as well as on (their default). */
const MEASURED_FUSIONS = [...EMBEDDING_FUSIONS, 'linearPrelu'];

/** Each measured fusion on vs off: the key rows run its default, the flipped rows the same captured step with only it switched. */
function embeddingFusionTable(key) {
  const med = (rs, f) => median(rs.map(f));
  const rows = [
    '| fusion | off samples/s | on samples/s | on / off | off CPU ms/step | on CPU ms/step | CPU off / on | runs |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const f of EMBEDDING_FUSIONS) {
    // The key rows run the default; the flipped rows the other setting.
    const all = [...key.esmm, ...(key.fusionFlipped?.[f] ?? [])].filter((r) => r.fusions);
    const off = all.filter((r) => r.fusions[f] === false);
    const on = all.filter((r) => r.fusions[f] === true);
    if (!off.length || !on.length) continue;
    const [so, sn] = [med(off, (r) => r.samplesPerSec), med(on, (r) => r.samplesPerSec)];
    const [co, cn] = [med(off, (r) => r.cpuMsPerStep), med(on, (r) => r.cpuMsPerStep)];
    rows.push(
      `| ${f} | ${fmtInt(so)} | ${fmtInt(sn)} | ${fmt(sn / so, 2)}× | ${fmt(co, 1)} | ${fmt(cn, 1)} | ${fmt(co / cn, 2)}× | ${off.length} + ${on.length} |`,
    );
  }
  return rows.length > 2 ? rows.join('\n') : '';
}

/** Eager vs captured per workload: samples/s and CPU ms per step (medians), and the time outside kernels. */
function leverTable(key, bases, capturedProfile, eagerProfile) {
  const med = (rs, f) => median(rs.map(f));
  const rows = [
    '| base model | eager samples/s | captured samples/s | captured / eager | eager CPU ms/step | captured CPU ms/step | CPU eager / captured | runs |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const line = (w, eager, captured) => {
    if (!eager.length || !captured.length) return;
    const [se, sc] = [med(eager, (r) => r.samplesPerSec), med(captured, (r) => r.samplesPerSec)];
    const [ce, cc] = [med(eager, (r) => r.cpuMsPerStep), med(captured, (r) => r.cpuMsPerStep)];
    rows.push(
      `| ${w} | ${fmtInt(se)} | ${fmtInt(sc)} | ${fmt(sc / se, 2)}× | ${fmt(ce, 1)} | ${fmt(cc, 1)} | ${fmt(ce / cc, 2)}× | ${eager.length} + ${captured.length} |`,
    );
  };
  line('mlp', key.eager ?? [], key.esmm);
  for (const w of [...new Set(bases.map((r) => r.workload))]) {
    const mine = bases.filter((r) => !r.error && r.framework === 'esmm-ts' && r.workload === w && r.threads === 1);
    line(
      w,
      mine.filter((r) => r.stepMode === 'eager'),
      mine.filter((r) => r.stepMode !== 'eager'),
    );
  }
  const outside = (p) => p?.rows.find((r) => r.method === '(outside kernels)')?.msPerStep;
  if (eagerProfile && capturedProfile)
    rows.push(
      '',
      `Profiled (mlp, 20 steps, every backend method timed): step ${fmt(eagerProfile.stepMs, 1)} ms eager, ${fmt(capturedProfile.stepMs, 1)} ms captured; outside kernels ${fmt(outside(eagerProfile), 1)} ms eager, ${fmt(outside(capturedProfile), 1)} ms captured.`,
    );
  const captured = [...key.esmm, ...bases.filter((r) => r.framework === 'esmm-ts' && r.stepMode !== 'eager')];
  const fell = captured.filter((r) => r.capture?.fallbackReason);
  rows.push(
    '',
    fell.length
      ? `Fell back to eager: ${fell.map((r) => `${r.workload}: ${r.capture.fallbackReason}`).join('; ')}`
      : `Every captured run replayed its plan (${captured.map((r) => `${r.capture?.replays ?? '?'} replays / ${r.capture?.recordings ?? '?'} recorded`).join(', ')}).`,
  );
  const simdRows = simdTable(key);
  if (simdRows) rows.push('', simdRows);
  return rows.join('\n');
}

/** Fused vs unfused Linear → PReLU (mlp, captured): samples/s, CPU ms per step and the kernels the fusion replaces. */
function fusionTable(key) {
  // The key rows run the default; the flipped rows the other setting.
  const all = [...key.esmm, ...(key.fusionFlipped?.linearPrelu ?? [])].filter((r) => r.fusions);
  const fused = all.filter((r) => r.fusions.linearPrelu === true);
  const unfused = all.filter((r) => r.fusions.linearPrelu === false);
  if (!fused.length || !unfused.length) return '_not run_';
  const fusedProfile = fused.find((r) => r.kernelProfile)?.kernelProfile;
  const unfusedProfile = unfused.find((r) => r.kernelProfile)?.kernelProfile;
  const med = (rs, f) => median(rs.map(f));
  const [sf, su] = [med(fused, (r) => r.samplesPerSec), med(unfused, (r) => r.samplesPerSec)];
  const [cf, cu] = [med(fused, (r) => r.cpuMsPerStep), med(unfused, (r) => r.cpuMsPerStep)];
  const rows = [
    '| | unfused | fused | unfused / fused |',
    '|---|---:|---:|---:|',
    `| samples/s (median) | ${fmtInt(su)} | ${fmtInt(sf)} | ${fmt(sf / su, 2)}× faster |`,
    `| CPU ms/step (median) | ${fmt(cu, 1)} | ${fmt(cf, 1)} | ${fmt(cu / cf, 2)}× |`,
    `| runs | ${unfused.length} | ${fused.length} | |`,
  ];
  if (fusedProfile && unfusedProfile) {
    const methods = ['matmul', 'linearPrelu', 'linearPreluBackward', 'binary', 'prelu', 'preluBackward', 'reduceSum'];
    const cell = (p, m) => {
      const r = p.rows.find((x) => x.method === m);
      return r ? `${fmt(r.msPerStep, 2)} (${fmt(r.callsPerStep, 0)})` : '—';
    };
    rows.push(
      '',
      'Profiled (20 captured steps, every backend method timed): ms/step (calls/step).',
      '',
      '| backend method | unfused | fused |',
      '|---|---:|---:|',
      ...methods.map((m) => `| ${m} | ${cell(unfusedProfile, m)} | ${cell(fusedProfile, m)} |`),
      `| step | ${fmt(unfusedProfile.stepMs, 1)} | ${fmt(fusedProfile.stepMs, 1)} |`,
    );
  }
  return rows.join('\n');
}

/** Relaxed vs plain SIMD on the captured mlp step (wasm, 1 thread, batch 1024), from the interleaved key rounds. */
function simdTable(key) {
  const plain = [...key.esmm.filter((r) => r.simd === 'plain'), ...(key.plain ?? [])];
  const relaxed = (key.relaxed ?? []).filter((r) => r.simd === 'relaxed');
  if (!plain.length || !relaxed.length) return '';
  const med = (rs, f) => median(rs.map(f));
  const [sp, sr] = [med(plain, (r) => r.samplesPerSec), med(relaxed, (r) => r.samplesPerSec)];
  const [cp, cr] = [med(plain, (r) => r.cpuMsPerStep), med(relaxed, (r) => r.cpuMsPerStep)];
  return [
    'Relaxed SIMD (`f32x4.relaxed_madd`, one fused multiply-add where the CPU has FMA, in GEMM, the row',
    'updates of bags and segment sums, and Adam) against plain SIMD (`f32x4.mul` + `f32x4.add`), the same',
    'captured mlp step, in interleaved rounds. Node 20 runs relaxed SIMD only with',
    '`--experimental-wasm-relaxed-simd`; the bench starts the relaxed runs with it where Node accepts the flag.',
    '',
    '| SIMD | samples/s | CPU ms/step | CPU plain / this | runs |',
    '|---|---:|---:|---:|---:|',
    `| plain | ${fmtInt(sp)} | ${fmt(cp, 1)} | 1.00× | ${plain.length} |`,
    `| relaxed | ${fmtInt(sr)} | ${fmt(cr, 1)} | ${fmt(cp / cr, 2)}× | ${relaxed.length} |`,
  ].join('\n');
}

/** Medians per (framework, workload, threads), the table, the goal rows and loss agreement of the base models. */
function baseModels(allBases) {
  // Eager esmm-ts runs are the lever table's; the comparison with PyTorch uses the default (captured) step.
  const bases = allBases.filter((r) => r.stepMode !== 'eager');
  const ok = bases.filter((r) => !r.error);
  const workloads = [...new Set(bases.map((r) => r.workload))];
  const sps = (framework, workload, threads) =>
    median(
      ok
        .filter((r) => r.framework === framework && r.workload === workload && r.threads === threads)
        .map((r) => r.samplesPerSec),
    );
  const losses = (framework, workload) =>
    ok.find((r) => r.framework === framework && r.workload === workload && r.threads === 1 && r.losses?.length > 1)
      ?.losses;
  const lines = [
    '| base model | esmm-ts wasm 1 thr | PyTorch 1 thr | ratio | esmm-ts wasm 2 thr | PyTorch 2 thr (OMP passive) | ratio | loss max abs diff (steps) |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  const goalRows = [];
  for (const w of workloads) {
    const [e1, t1, e2, t2] = [sps('esmm-ts', w, 1), sps('pytorch', w, 1), sps('esmm-ts', w, 2), sps('pytorch', w, 2)];
    const le = losses('esmm-ts', w) ?? [];
    const lt = losses('pytorch', w) ?? [];
    const n = Math.min(le.length, lt.length);
    let diff = n ? 0 : NaN;
    for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(le[i] - lt[i]));
    lines.push(
      `| ${w} | ${fmtInt(e1)} | ${fmtInt(t1)} | ${fmt(e1 / t1, 2)}× | ${fmtInt(e2)} | ${fmtInt(t2)} | ${fmt(e2 / t2, 2)}× | ${fmt(diff, 7)} (${n}) |`,
    );
    goalRows.push(
      `| ${w === 'din' ? 'DIN' : 'DeepFM'} towers, one thread: esmm-ts ≥ 1.0× PyTorch SparseAdam | ${fmt(e1 / t1, 2)}× (${fmtInt(e1)} vs ${fmtInt(t1)} samples/s) | ${e1 / t1 >= 1 ? 'yes' : 'no'} |`,
    );
  }
  const failed = bases.filter((r) => r.error);
  if (failed.length)
    lines.push(
      '',
      `Failed: ${failed.map((f) => `${f.framework} ${f.workload} ${f.threads} thr: ${f.error}`).join('; ')}`,
    );
  return { table: workloads.length ? lines.join('\n') : '_not run (--workloads mlp)_', goalRows: goalRows.join('\n') };
}

/** The step-by-step section of one base model (its first one-thread round, profiled on both sides). */
function baseStepByStep(workload, bases) {
  const name = workload === 'din' ? 'DIN' : workload === 'deepfm' ? 'DeepFM' : workload;
  const mine = bases.filter((r) => !r.error && r.framework === 'esmm-ts' && r.workload === workload && r.threads === 1);
  const eager = mine.find((r) => r.stepMode === 'eager' && r.kernelProfile);
  const captured = mine.find((r) => r.stepMode !== 'eager' && r.kernelProfile);
  const torch = bases.find((r) => r.framework === 'pytorch' && r.workload === workload && r.threads === 1 && r.profile);
  if (!eager && !torch) return `### ${name} step by step (1 thread, batch 1024)\n\n_not profiled_`;
  const cpu = [
    captured && `esmm-ts captured ${fmt(captured.cpuMsPerStep, 1)} ms`,
    eager && `esmm-ts eager ${fmt(eager.cpuMsPerStep, 1)} ms`,
    torch?.cpuMsPerStep !== undefined && `PyTorch ${fmt(torch.cpuMsPerStep, 1)} ms`,
  ].filter(Boolean);
  const replayed = captured
    ? `The captured run's profiled steps (kernels only: a replay has no phases) took ${fmt(captured.kernelProfile.stepMs, 1)} ms, ` +
      `${fmt(captured.kernelProfile.rows.find((r) => r.method === '(outside kernels)')?.msPerStep, 1)} ms of it outside kernels.`
    : '';
  return `### ${name} step by step (1 thread, batch 1024)

As for the MLP above: phases and the ten most expensive operations of the eager esmm-ts step
(backend methods timed) and of PyTorch's step (\`torch.profiler\` self CPU time), same run.
CPU time per timed step (user + system, the steadier figure on a shared machine): ${cpu.join(', ') || '—'}. ${replayed}

${profileSideBySide(eager?.kernelProfile, torch?.profile)}`;
}

/** Phases and the top operations of one esmm-ts step and one PyTorch step, side by side. */
function profileSideBySide(esmm, torch) {
  if (!esmm || !torch) return '_not profiled_';
  const ph = ['forward', 'backward', 'optimizer', 'other'];
  const phaseTable = [
    '| phase | esmm-ts ms | PyTorch ms | esmm-ts / PyTorch |',
    '|---|---:|---:|---:|',
    ...ph.map(
      (k) =>
        `| ${k} | ${fmt(esmm.phases?.[k], 2)} | ${fmt(torch.phases?.[k], 2)} | ${fmt(esmm.phases?.[k] / torch.phases?.[k], 2)}× |`,
    ),
  ];
  const sum = (o) => ph.reduce((a, k) => a + (o?.[k] ?? 0), 0);
  phaseTable.push(
    `| step | ${fmt(sum(esmm.phases), 2)} | ${fmt(sum(torch.phases), 2)} | ${fmt(sum(esmm.phases) / sum(torch.phases), 2)}× |`,
  );
  const top = (rows, name) =>
    rows
      .filter((r) => r.msPerStep > 0)
      .slice(0, 10)
      .map((r) => ({ name: r[name], ms: r.msPerStep, calls: r.callsPerStep }));
  const a = top(esmm.rows, 'method');
  const b = top(torch.rows, 'op');
  const opTable = [
    '| # | esmm-ts backend method | ms/step | calls | PyTorch op (self) | ms/step | calls |',
    '|---:|---|---:|---:|---|---:|---:|',
  ];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    opTable.push(
      `| ${i + 1} | ${x ? x.name : ''} | ${x ? fmt(x.ms, 2) : ''} | ${x?.calls ? fmt(x.calls, 0) : ''} | ${y ? `\`${y.name}\`` : ''} | ${y ? fmt(y.ms, 2) : ''} | ${y ? fmt(y.calls, 0) : ''} |`,
    );
  }
  return `${phaseTable.join('\n')}\n\n${opTable.join('\n')}`;
}

main();

/**
 * The tower's GEMMs alone, GFLOP/s: where the one-thread gap comes from. esmm-ts's SIMD128 kernels
 * against the SIMD128 multiply-add peak of this CPU, and OpenBLAS (PyTorch's torch.mm) on the same shapes.
 */
function gemmTable(gemm) {
  const head = '## The tower GEMMs alone (batch 1024, GFLOP/s)';
  if (!gemm?.wasm || !gemm?.torch) return `${head}\n\nNot measured in this run (a GEMM run failed; see the log).`;
  const torchAt = (threads) => gemm.torch.runs.find((r) => r.threads === threads);
  const t1 = torchAt(1);
  const t2 = torchAt(2);
  const variants = gemm.wasm.variants;
  const best1 = (r) => Math.max(...variants.map((v) => r.gflops[`${v} 1T`]));
  const lines = [
    `| shape | ${variants.map((v) => `esmm-ts ${v} 1 thr`).join(' | ')} | ${variants.map((v) => `esmm-ts ${v} 2 thr`).join(' | ')} | OpenBLAS 1 thr | OpenBLAS 2 thr | OpenBLAS / esmm-ts, 1 thr |`,
    `|---|${variants.map(() => '---:|').join('')}${variants.map(() => '---:|').join('')}---:|---:|---:|`,
  ];
  let wasmFlopTime = 0;
  let torchFlopTime = 0;
  for (const r of gemm.wasm.rows) {
    const o1 = t1?.rows.find((x) => x.label === r.label)?.gflops;
    const o2 = t2?.rows.find((x) => x.label === r.label)?.gflops;
    const flops = 2 * r.m * r.n * r.k;
    wasmFlopTime += flops / best1(r);
    torchFlopTime += flops / (o1 ?? NaN);
    lines.push(
      `| ${r.label} | ${variants.map((v) => fmt(r.gflops[`${v} 1T`], 1)).join(' | ')} | ${variants.map((v) => fmt(r.gflops[`${v} 2T`], 1)).join(' | ')} | ${fmt(o1, 1)} | ${fmt(o2, 1)} | ${fmt(o1 / best1(r), 2)}× |`,
    );
  }
  const peak = variants.map((v) => `${v} ${fmt(gemm.wasm.peak[v], 1)}`).join(', ');
  // Each tower runs each of the six products once per step (forward, weight and input gradient).
  const stepWasm = (2 * wasmFlopTime) / 1e6;
  const stepTorch = (2 * torchFlopTime) / 1e6;
  return `${head}

The six products of the two tower layers with weights (180 → 200, 200 → 80), each timed alone in a loop
(operands hot in cache): esmm-ts's packed SIMD128 GEMM (\`benchmarks/kernels-wasm.ts --json\`) and torch.mm
on ${t1?.blas ?? 'its BLAS'} (\`torch_esmm.py --gemm\`). WebAssembly has 128-bit vectors only; the CPU's
multiply-add peak at that width, measured with independent accumulator chains on registers (no memory), is
${peak} GFLOP/s on one thread, which bounds any SIMD128 GEMM here. OpenBLAS uses the CPU's 512-bit vectors.

${lines.join('\n')}

At these rates the two towers' products (the six above, once per tower) take ${fmt(stepWasm, 1)} ms per step
on esmm-ts's best one-thread variant and ${fmt(stepTorch, 1)} ms on OpenBLAS: ${fmt(stepWasm - stepTorch, 1)} ms of
the one-thread step gap comes from GEMM width alone.`;
}
