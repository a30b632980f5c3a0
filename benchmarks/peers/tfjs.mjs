#!/usr/bin/env node
/**
 * TensorFlow.js 4.22 peer of the ESMM reference workload (see benchmarks/peers/README.md),
 * on the `cpu` and `wasm` backends.
 *
 * The model, written the idiomatic TF.js way: tf.variable parameters, tf ops, tf.train.adam
 * (lr 1e-3, betas 0.9/0.999, epsilon 1e-8) and optimizer.minimize().
 *   - 10 tables [100000, 18] (8 single-valued fields, 2 bags of 10 ids, sum pooling),
 *     shared by the CTR and CVR towers 180 -> 200 -> PReLU -> 80 -> PReLU -> 1.
 *   - loss = mean BCE(pCTR, click) + mean BCE(pCTR*pCVR, click*conversion), both from logits
 *     in log space: log p = logsig(a) + logsig(b), log(1-p) = logaddexp(logsig(-a), logsig(a) + logsig(-b)).
 *
 * Embedding lookup: tf.gather forward with a custom gradient (tf.customGrad) whose backward is
 * tf.scatterND into a dense [100000, 18] gradient. The stock tf.gather gradient goes through
 * UnsortedSegmentSum, which on `cpu` loops over the whole vocabulary per output (minutes per
 * step) and has no kernel on `wasm`. tf.train.adam then updates every table row each step
 * (TF.js has no sparse/lazy Adam).
 *
 * The wasm backend runs single-threaded (its thread pool does not start under Node); its .wasm
 * binaries are loaded from node_modules/@tensorflow/tfjs-backend-wasm/dist/.
 *
 * Each (backend, batch) runs in its own child process, so peak RSS is per configuration.
 * Initial weights and data come from benchmarks/peers/make-init.mjs (generated on demand).
 *
 * Usage:
 *   node benchmarks/peers/tfjs.mjs [--backends cpu,wasm] [--batches 1024,256] [--quick]
 *        [--warmup N --repeats N --steps N]  (override both backends' defaults)
 *        [--loss-steps 20] [--out benchmarks/out/peer-tfjs.json]
 * Defaults: wasm 5 warm-up steps + 5 repeats x 20 steps; cpu (slow) 2 + 3 x 6 steps at batch
 * >= 1024 and 1 + 3 x 3 below; losses of the first min(20, steps run) steps.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureInit, OUT_DIR } from './make-init.mjs';

const require = createRequire(import.meta.url);
const SELF = fileURLToPath(import.meta.url);
const TFJS_VERSION = '4.22.0';

// The cpu backend spends seconds per step whatever the batch (dense Adam over 18M table
// entries in JS), so it gets fewer steps, and fewer still below batch 1024.
const DEFAULT_PLAN = {
  cpu: { warmup: 2, repeats: 3, steps: 6 },
  cpuSmallBatch: { warmup: 1, repeats: 3, steps: 3 },
  wasm: { warmup: 5, repeats: 5, steps: 20 },
};
const QUICK_PLAN = {
  cpu: { warmup: 1, repeats: 2, steps: 2 },
  wasm: { warmup: 2, repeats: 3, steps: 5 },
};

function parseArgs(argv) {
  const a = {
    backends: ['cpu', 'wasm'],
    batches: [1024, 256],
    lossSteps: undefined,
    out: path.join(OUT_DIR, 'peer-tfjs.json'),
    quick: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--backends') a.backends = v().split(',').filter(Boolean);
    else if (k === '--batches') a.batches = v().split(',').filter(Boolean).map(Number);
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--repeats') a.repeats = Number(v());
    else if (k === '--steps') a.steps = Number(v());
    else if (k === '--loss-steps') a.lossSteps = Number(v());
    else if (k === '--out') a.out = path.resolve(v());
    else if (k === '--quick') a.quick = true;
    else if (k === '--vocab') a.vocab = Number(v());
    else if (k === '--child') a.child = { backend: v(), batch: Number(v()) };
    else if (k === '--help' || k === '-h') a.help = true;
    else throw new Error(`tfjs peer: unknown argument ${k}`);
  }
  return a;
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ------------------------------------------------------------------------------- child

function readF32(file) {
  const b = fs.readFileSync(path.join(OUT_DIR, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function readI32(file) {
  const b = fs.readFileSync(path.join(OUT_DIR, file));
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

// --vocab (scaling runs): tables of `vocab` rows drawn N(0, 0.01^2) in-process, ids remapped
// (id * REMAP) % vocab, as torch_esmm.py and benchmarks/esmm-throughput.ts do.
const REMAP = 7919;

async function runChild({ backend, batch, warmup, repeats, steps, lossSteps, vocab }) {
  const tf = require('@tensorflow/tfjs');
  const notes = [
    'embedding lookup: tf.gather with tf.customGrad (tf.scatterND backward), the stock gather gradient is unusable here',
    'tf.train.adam updates all table rows every step (no sparse Adam in TF.js)',
    'log-sigmoid written as min(x,0) - log1p(exp(-|x|)): tf.logSigmoid gradient fails on intermediate tensors in 4.22',
  ];
  if (backend === 'wasm') {
    const wasm = require('@tensorflow/tfjs-backend-wasm');
    const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(dir + path.sep);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs peer: backend ${backend} failed to initialise`);
  await tf.ready();
  if (backend === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    notes.push(`wasm ${simd ? 'SIMD' : 'scalar'} binary, 1 thread`);
  }

  const m = ensureInit();
  const specs = new Map(m.tensors.map((t) => [t.name, t]));
  const scaled = vocab !== undefined && vocab !== m.vocab;
  const remap = (id) => (scaled ? (id * REMAP) % vocab : id);
  const param = (name) => {
    const s = specs.get(name);
    if (scaled && name.startsWith('emb.')) return tf.randomNormal([vocab, m.dim], 0, 0.01, 'float32', 2018);
    return tf.tidy(() => {
      const t = tf.tensor(readF32(s.file), s.shape, 'float32');
      // Linear weights are stored [out, in] (PyTorch layout); TF.js multiplies x·W with W [in, out].
      return /\.l\d\.weight$/.test(name) ? tf.transpose(t) : t;
    });
  };
  const tableNames = [...Array(m.singleFields).keys()]
    .map((i) => `emb.f${i}`)
    .concat([...Array(m.bagFields).keys()].map((i) => `emb.b${i}`));
  const tables = tableNames.map((n) => tf.variable(param(n), true, n));
  const towerVars = (prefix) => {
    const o = {};
    for (const k of [
      'l1.weight',
      'l1.bias',
      'p1.weight',
      'l2.weight',
      'l2.bias',
      'p2.weight',
      'l3.weight',
      'l3.bias',
    ]) {
      const t = param(`${prefix}.${k}`);
      o[k] = tf.variable(t, true, `${prefix}.${k}`);
      t.dispose();
    }
    return o;
  };
  const ctr = towerVars('ctr');
  const cvr = towerVars('cvr');
  const varList = [...tables, ...Object.values(ctr), ...Object.values(cvr)];

  // Batches: all distinct batches of the data pool, as int32 id tensors per field.
  const rows = m.data.rows;
  const cols = m.data.ids.shape[1];
  const ids = readI32(m.data.ids.file);
  const labels = readF32(m.data.labels.file);
  const batches = [];
  for (let r0 = 0; r0 + batch <= rows; r0 += batch) {
    const fields = [];
    for (let f = 0; f < m.singleFields; f++) {
      const a = new Int32Array(batch);
      for (let r = 0; r < batch; r++) a[r] = remap(ids[(r0 + r) * cols + f]);
      fields.push({ idx: tf.tensor1d(a, 'int32'), idx2: tf.tensor2d(a, [batch, 1], 'int32'), len: 1 });
    }
    for (let b = 0; b < m.bagFields; b++) {
      const a = new Int32Array(batch * m.bagLen);
      const c0 = m.singleFields + b * m.bagLen;
      for (let r = 0; r < batch; r++)
        for (let j = 0; j < m.bagLen; j++) a[r * m.bagLen + j] = remap(ids[(r0 + r) * cols + c0 + j]);
      fields.push({
        idx: tf.tensor1d(a, 'int32'),
        idx2: tf.tensor2d(a, [batch * m.bagLen, 1], 'int32'),
        len: m.bagLen,
      });
    }
    const click = new Float32Array(batch);
    const conv = new Float32Array(batch);
    for (let r = 0; r < batch; r++) {
      click[r] = labels[(r0 + r) * 2];
      conv[r] = labels[(r0 + r) * 2 + 1];
    }
    batches.push({ fields, click: tf.tensor1d(click), conv: tf.tensor1d(conv) });
  }

  // gather forward, scatterND backward (duplicates summed).
  const lookup = (table, idx, idx2) =>
    tf.customGrad((t) => ({
      value: tf.gather(t, idx),
      gradFunc: (dy) => tf.scatterND(idx2, dy, t.shape),
    }))(table);

  const tower = (x, p) => {
    let h = tf.prelu(tf.add(tf.matMul(x, p['l1.weight']), p['l1.bias']), p['p1.weight']);
    h = tf.prelu(tf.add(tf.matMul(h, p['l2.weight']), p['l2.bias']), p['p2.weight']);
    return tf.reshape(tf.add(tf.matMul(h, p['l3.weight']), p['l3.bias']), [-1]);
  };
  // log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)). (tf.logSigmoid's custom gradient fails with a
  // disposed-tensor error when its input is an intermediate tensor in 4.22, e.g. logSigmoid(tf.neg(a)).)
  const logSigmoid = (x) => tf.sub(tf.minimum(x, 0), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
  const logaddexp = (u, v) => tf.add(tf.maximum(u, v), tf.log1p(tf.exp(tf.neg(tf.abs(tf.sub(u, v))))));

  const lossFn = (bt) => {
    const pooled = bt.fields.map((f, i) => {
      const e = lookup(tables[i], f.idx, f.idx2);
      return f.len === 1 ? e : tf.sum(tf.reshape(e, [batch, f.len, m.dim]), 1);
    });
    const x = tf.concat(pooled, 1);
    const a = tower(x, ctr);
    const b = tower(x, cvr);
    // mean BCE from logits: relu(a) - a*y + log1p(exp(-|a|))
    const ctrLoss = tf.mean(tf.add(tf.sub(tf.relu(a), tf.mul(a, bt.click)), tf.log1p(tf.exp(tf.neg(tf.abs(a))))));
    const logP = tf.add(logSigmoid(a), logSigmoid(b));
    const log1mP = logaddexp(logSigmoid(tf.neg(a)), tf.add(logSigmoid(a), logSigmoid(tf.neg(b))));
    const ctcvrLoss = tf.neg(tf.mean(tf.add(tf.mul(bt.conv, logP), tf.mul(tf.sub(1, bt.conv), log1mP))));
    return tf.add(ctrLoss, ctcvrLoss);
  };

  const optimizer = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  const losses = [];
  let k = 0;
  const step = () => {
    const bt = batches[k++ % batches.length];
    const cost = optimizer.minimize(() => lossFn(bt), true, varList);
    const v = cost.dataSync()[0];
    cost.dispose();
    if (losses.length < lossSteps) losses.push(v);
    return v;
  };

  for (let i = 0; i < warmup; i++) step();
  const tensorsAfterWarmup = tf.memory().numTensors;
  const rates = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) step();
    rates.push((steps * batch) / ((performance.now() - t0) / 1000));
  }
  while (losses.length < lossSteps) step();
  const leaked = tf.memory().numTensors - tensorsAfterWarmup;
  if (leaked !== 0) notes.push(`tensor count grew by ${leaked} after warm-up`);

  return {
    framework: 'tfjs',
    backend,
    variant: backend,
    threads: 1,
    batch,
    vocabPerField: scaled ? vocab : m.vocab,
    samplesPerSec: median(rates),
    samplesPerSecRepeats: rates,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    losses,
    warmupSteps: warmup,
    repeats,
    stepsPerRepeat: steps,
    tfjsVersion: tf.version.tfjs,
    notes,
  };
}

// ------------------------------------------------------------------------------ parent

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(fs.readFileSync(SELF, 'utf8').split('*/')[0]);
    return;
  }
  if (args.child) {
    const res = await runChild({
      ...args.child,
      warmup: args.warmup ?? 5,
      repeats: args.repeats ?? 5,
      steps: args.steps ?? 20,
      lossSteps: args.lossSteps ?? 20,
      vocab: args.vocab,
    });
    process.stdout.write('@@RESULT@@' + JSON.stringify(res) + '\n');
    return;
  }

  try {
    require.resolve('@tensorflow/tfjs');
    require.resolve('@tensorflow/tfjs-backend-wasm');
  } catch {
    const msg = 'tfjs peer skipped: @tensorflow/tfjs / @tensorflow/tfjs-backend-wasm not installed (npm install)';
    console.log(msg);
    fs.mkdirSync(path.dirname(args.out), { recursive: true });
    fs.writeFileSync(
      args.out,
      JSON.stringify({ framework: 'tfjs', skipped: true, reason: msg, results: [] }, null, 2) + '\n',
    );
    return;
  }
  ensureInit();

  const results = [];
  const failures = [];
  for (const batch of args.batches) {
    for (const backend of args.backends) {
      const planKey = backend === 'cpu' && batch < 1024 && !args.quick ? 'cpuSmallBatch' : backend;
      const plan = { ...(args.quick ? QUICK_PLAN : DEFAULT_PLAN)[planKey] };
      for (const k of ['warmup', 'repeats', 'steps']) if (args[k] !== undefined) plan[k] = args[k];
      // Losses of the first 20 steps, but no extra steps just for them unless --loss-steps asks.
      const lossSteps = args.lossSteps ?? Math.min(20, plan.warmup + plan.repeats * plan.steps);
      const t0 = performance.now();
      const p = spawnSync(
        process.execPath,
        [
          SELF,
          '--child',
          backend,
          String(batch),
          '--warmup',
          String(plan.warmup),
          '--repeats',
          String(plan.repeats),
          '--steps',
          String(plan.steps),
          '--loss-steps',
          String(lossSteps),
          ...(args.vocab ? ['--vocab', String(args.vocab)] : []),
        ],
        { encoding: 'utf8', maxBuffer: 64 << 20 },
      );
      const line = (p.stdout || '').split('\n').find((l) => l.startsWith('@@RESULT@@'));
      if (p.status !== 0 || !line) {
        const err = `${p.stderr || ''}`.slice(-2000);
        failures.push({ backend, batch, rc: p.status, stderr: err });
        console.error(`tfjs ${backend} batch=${batch}: FAILED rc=${p.status}\n${err}`);
        continue;
      }
      const res = JSON.parse(line.slice('@@RESULT@@'.length));
      res.wallSec = (performance.now() - t0) / 1000;
      results.push(res);
      console.log(
        `tfjs ${backend.padEnd(4)} batch=${String(batch).padStart(5)}: ${res.samplesPerSec.toFixed(0).padStart(8)} samples/s, ` +
          `peak RSS ${res.peakRssMB.toFixed(0)} MB, losses ${res.losses[0].toFixed(4)} -> ${res.losses[res.losses.length - 1].toFixed(4)} (${res.wallSec.toFixed(0)} s)`,
      );
    }
  }
  const out = {
    framework: 'tfjs',
    skipped: false,
    tfjsVersion: results[0]?.tfjsVersion ?? TFJS_VERSION,
    node: process.version,
    note: 'figures from a shared, possibly noisy machine; median of repeats',
    results,
    failures,
  };
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${args.out}`);
  if (failures.length && !results.length) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
