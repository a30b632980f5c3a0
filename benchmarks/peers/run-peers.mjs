#!/usr/bin/env node
/**
 * Runs the peer benchmarks of the ESMM reference workload (TensorFlow.js and PyTorch) one
 * after the other, collects their JSON, prints one markdown table and writes
 * benchmarks/out/peers.json (with a machine description).
 *
 * Usage:
 *   node benchmarks/peers/run-peers.mjs [--quick] [--batches 1024,256] [--only tfjs|torch]
 *        [--python /usr/bin/python3] [--torch-keep-env] [--report-only]
 *
 * --report-only re-renders the tables and peers.json from the existing peer-*.json files.
 *
 * PyTorch is run with the first interpreter that can `import torch` among $PYTHON,
 * /usr/bin/python3, python3, python (skipped with a message when none can). For that run
 * only, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the environment (OpenBLAS
 * then detects the CPU and cache sizes itself) and glibc's MALLOC_MMAP_THRESHOLD_ /
 * MALLOC_TRIM_THRESHOLD_ are raised so that freed buffers are reused rather than returned
 * to the kernel and faulted in again every step. --torch-keep-env skips these adjustments.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureInit, OUT_DIR } from './make-init.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const LOSS_COLUMNS = [1, 5, 10, 20];

function parseArgs(argv) {
  const a = { quick: false, batches: '1024,256', only: null, python: process.env.PYTHON || null, torchKeepEnv: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--quick') a.quick = true;
    else if (k === '--batches') a.batches = argv[++i];
    else if (k === '--only') a.only = argv[++i];
    else if (k === '--python') a.python = argv[++i];
    else if (k === '--torch-keep-env') a.torchKeepEnv = true;
    else if (k === '--report-only') a.reportOnly = true;
    else if (k === '--help' || k === '-h') a.help = true;
    else throw new Error(`run-peers: unknown argument ${k}`);
  }
  return a;
}

function torchEnv(keep) {
  const env = { ...process.env };
  if (!keep) {
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    // glibc ignores an mmap threshold above 32 MiB (HEAP_MAX_SIZE / 2 on 64-bit), so that is the
    // largest value that takes effect; the trim threshold has no such cap.
    env.MALLOC_MMAP_THRESHOLD_ = String(32 * 1024 * 1024);
    env.MALLOC_TRIM_THRESHOLD_ = String(1_000_000_000);
  }
  return env;
}

function findPython(preferred) {
  const candidates = [preferred, '/usr/bin/python3', 'python3', 'python'].filter(Boolean);
  let anyPython = null;
  for (const py of candidates) {
    const p = spawnSync(py, ['-c', 'import torch, sys; print(torch.__version__)'], {
      encoding: 'utf8',
      env: torchEnv(false),
    });
    if (p.error) continue;
    anyPython ??= py;
    if (p.status === 0) return { python: py, torch: p.stdout.trim() };
  }
  return { python: anyPython, torch: null };
}

function run(cmd, args, env) {
  console.log(`\n$ ${[cmd, ...args].join(' ')}`);
  const t0 = performance.now();
  const p = spawnSync(cmd, args, { cwd: ROOT, env, stdio: 'inherit', timeout: 30 * 60 * 1000 });
  const sec = (performance.now() - t0) / 1000;
  if (p.error) console.error(`run-peers: ${cmd} failed to start: ${p.error.message}`);
  else if (p.status !== 0) console.error(`run-peers: ${cmd} exited with ${p.status ?? p.signal}`);
  return { ok: !p.error && p.status === 0, sec };
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function machine(tfjs, torch) {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const line = fs
      .readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) cpuModel = line.split(':')[1].trim();
  } catch {
    /* not Linux */
  }
  let tfjsVersion = tfjs?.tfjsVersion ?? null;
  if (!tfjsVersion) {
    try {
      tfjsVersion = JSON.parse(
        fs.readFileSync(path.join(ROOT, 'node_modules/@tensorflow/tfjs/package.json'), 'utf8'),
      ).version;
    } catch {
      /* not installed */
    }
  }
  return {
    cpuModel,
    logicalCores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${os.type()} ${os.arch()}`,
    node: process.version,
    tfjs: tfjsVersion,
    python: torch && !torch.skipped ? torch.python : null,
    torch: torch && !torch.skipped ? torch.torchVersion : null,
    blas: torch && !torch.skipped ? torch.blas : null,
    referenceBlas: torch && !torch.skipped ? (torch.referenceBlas ?? null) : null,
  };
}

const fmtInt = (x) => Math.round(x).toLocaleString('en-US');

function rowsOf(tfjs, torch) {
  const rows = [];
  for (const r of tfjs?.results ?? []) {
    rows.push({
      framework: `TF.js ${r.tfjsVersion}`,
      variant: r.backend,
      threads: r.threads,
      batch: r.batch,
      samplesPerSec: r.samplesPerSec,
      peakRssMB: r.peakRssMB,
      losses: r.losses,
      notes:
        'gather w/ customGrad(scatterND); dense Adam' +
        (r.backend === 'wasm'
          ? `; ${r.notes.some((n) => n.includes('SIMD')) ? 'SIMD' : 'no SIMD'}, no threads under Node`
          : ''),
      steps: `${r.warmupSteps}+${r.repeats}x${r.stepsPerRepeat}`,
    });
  }
  for (const r of torch?.results ?? []) {
    const ob = r.openblas;
    rows.push({
      framework: `PyTorch ${torch.torchVersion}`,
      variant: r.variant === 'sparse' ? 'EmbeddingBag sparse + SparseAdam' : 'EmbeddingBag dense + Adam',
      threads: r.threads,
      batch: r.batch,
      samplesPerSec: r.samplesPerSec,
      peakRssMB: r.peakRssMB,
      losses: r.losses,
      notes:
        (r.blasMode === 'reference'
          ? 'reference BLAS (netlib libblas3)'
          : ob
            ? `OpenBLAS ${ob.config.split(' ')[1] ?? ''} core ${ob.corename}`
            : r.blas) +
        (r.ompWaitPolicy && r.ompWaitPolicy !== 'default' ? `, OMP_WAIT_POLICY=${r.ompWaitPolicy.toUpperCase()}` : '') +
        (r.envAdjusted ? '' : ', env as inherited'),
      steps: `${r.warmupSteps}+${r.repeats}x${r.stepsPerRepeat}`,
    });
  }
  return rows;
}

function markdown(rows) {
  const lines = [
    '| framework | backend / variant | threads | batch | samples/s (median) | peak RSS MB | notes |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.framework} | ${r.variant} | ${r.threads} | ${r.batch} | ${fmtInt(r.samplesPerSec)} | ${fmtInt(r.peakRssMB)} | ${r.notes}; ${r.steps} steps |`,
    );
  }
  return lines.join('\n');
}

function lossMarkdown(rows) {
  const lines = [
    `| framework | backend / variant | threads | batch | setting | ${LOSS_COLUMNS.map((s) => `loss@${s}`).join(' | ')} |`,
    `|---|---|---:|---:|---|${LOSS_COLUMNS.map(() => '---:').join('|')}|`,
  ];
  for (const r of rows) {
    const cells = LOSS_COLUMNS.map((s) => (r.losses[s - 1] === undefined ? '' : r.losses[s - 1].toFixed(4)));
    lines.push(
      `| ${r.framework} | ${r.variant} | ${r.threads} | ${r.batch} | ${r.notes.split(';')[0]} | ${cells.join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
    return;
  }
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const manifest = ensureInit();
  const common = ['--batches', args.batches, ...(args.quick ? ['--quick'] : [])];
  const previous = args.reportOnly ? readJson(path.join(OUT_DIR, 'peers.json')) : null;
  const timings = previous?.timings ?? {};

  const tfjsOut = path.join(OUT_DIR, 'peer-tfjs.json');
  const torchOut = path.join(OUT_DIR, 'peer-torch.json');
  if (args.only !== 'torch' && !args.reportOnly) {
    fs.rmSync(tfjsOut, { force: true });
    timings.tfjsSec = run(
      process.execPath,
      [path.join(HERE, 'tfjs.mjs'), ...common, '--out', tfjsOut],
      process.env,
    ).sec;
  }
  if (args.only !== 'tfjs' && !args.reportOnly) {
    fs.rmSync(torchOut, { force: true });
    const { python, torch } = findPython(args.python);
    if (!python) {
      const reason = 'torch peer skipped: no Python interpreter found (set PYTHON or install python3)';
      console.log(reason);
      fs.writeFileSync(
        torchOut,
        JSON.stringify({ framework: 'pytorch', skipped: true, reason, results: [] }, null, 2) + '\n',
      );
    } else {
      if (!torch) console.log(`run-peers: no interpreter could import torch; ${python} will report the skip`);
      const extra = args.torchKeepEnv ? ['--keep-env'] : [];
      timings.torchSec = run(
        python,
        [path.join(HERE, 'torch_esmm.py'), ...common, ...extra, '--out', torchOut],
        torchEnv(args.torchKeepEnv),
      ).sec;
    }
  }

  const tfjs = readJson(tfjsOut);
  const torch = readJson(torchOut);
  const rows = rowsOf(tfjs, torch);
  const m = machine(tfjs, torch);
  const header =
    `Machine: ${m.cpuModel}, ${m.logicalCores} logical cores, ${m.memoryGB} GB; Node ${m.node}; TF.js ${m.tfjs ?? 'n/a'}; ` +
    `PyTorch ${m.torch ?? 'n/a'}${m.python ? ` (Python ${m.python})` : ''}; BLAS: ${m.blas ?? 'n/a'}\n` +
    `Workload: ESMM/MLP, 8 fields + 2 bags(10) x 100,000 ids, dim 18, towers 180-200-80-1 PReLU, Adam 1e-3; init seed ${manifest.seed}.\n` +
    'Figures are medians of repeats on a shared, possibly noisy machine: compare within one run.';
  const table = markdown(rows);
  const losses = lossMarkdown(rows);
  console.log(
    `\n${header}\n\n${table}\n\nLoss after step n (same initial weights and batches for every peer):\n\n${losses}`,
  );
  for (const s of [tfjs, torch]) if (s?.skipped) console.log(`\n${s.reason}`);

  const out = {
    generatedAt: new Date().toISOString(),
    machine: m,
    workload: {
      model: 'ESMM, MLP base',
      fields:
        '8 single-valued + 2 bags of exactly 10 ids (sum pooling), 100,000 ids each, one table per field shared by both towers',
      embeddingDim: 18,
      tower: '180 -> 200 -> PReLU -> 80 -> PReLU -> 1',
      loss: 'mean BCE(pCTR, click) + mean BCE(pCTR*pCVR, click*conversion), log-space',
      optimizer: 'Adam lr 1e-3',
      init: {
        seed: manifest.seed,
        recipeVersion: manifest.recipeVersion,
        files: 'benchmarks/out/init-*.bin, data-*.bin (make-init.mjs)',
      },
    },
    note: 'figures from a shared, possibly noisy machine; median of repeats; peak RSS is per child process',
    timings,
    table,
    lossTable: losses,
    rows,
    tfjs,
    torch,
  };
  fs.writeFileSync(path.join(OUT_DIR, 'peers.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(`\nwrote ${path.join(OUT_DIR, 'peers.json')}`);
}

main();
