/**
 * GEMM throughput of the wasm backend at one and two threads, against the reference backend,
 * and of its relaxed SIMD kernels (fused multiply-add) against its plain ones.
 *
 * Run (bundles the TypeScript with the rolldown already in devDependencies' tree, then runs it):
 *   npx rolldown benchmarks/kernels-wasm.ts --platform node --format esm --file /tmp/kernels-wasm.mjs && node /tmp/kernels-wasm.mjs
 * Node 20 has relaxed SIMD only behind a flag: `node --experimental-wasm-relaxed-simd /tmp/kernels-wasm.mjs`
 * adds the relaxed-vs-plain table (without it the table is left out, with a note).
 *
 * Shapes are the ESMM tower's: batch 1024 through 180→200→80→1, forward (A·B) and the two
 * backward layouts (Aᵀ·B for weight gradients, A·Bᵀ for input gradients). A second table
 * times smaller square products at one and two threads, which is where the threads'
 * size threshold (`PARALLEL_MIN`) comes from.
 *
 * The ceiling: `peakGflops` times a loop of independent f32x4 multiply-adds on registers only (no
 * memory), the most any SIMD128 GEMM can reach on this CPU. `--json FILE` (used by `npm run bench`)
 * skips the tables and writes the tower shapes' GFLOP/s per variant and thread count, and the peaks.
 */
import fs from 'node:fs';
import type { Backend, MatmulGeometry, Storage } from '../kernels/backend.js';
import { ReferenceBackend } from '../kernels/reference.js';
import { ModuleBuilder } from '../kernels/wasm/builder.js';
import { relaxedSimdSupported, WasmBackend, type SimdVariant } from '../kernels/wasm/index.js';

interface Case {
  label: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

/** The three products of one layer y = x·W with x [batch, fin], W [fin, fout]. */
function layerCases(batch: number, fin: number, fout: number): Case[] {
  return [
    { label: `${batch}x${fin} · ${fin}x${fout}`, m: batch, n: fout, k: fin, transA: false, transB: false },
    { label: `(${batch}x${fin})ᵀ · ${batch}x${fout}`, m: fin, n: fout, k: batch, transA: true, transB: false },
    { label: `${batch}x${fout} · (${fin}x${fout})ᵀ`, m: batch, n: fin, k: fout, transA: false, transB: true },
  ];
}

function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/**
 * Median seconds per call after warm-up, running for about `budgetMs`; with `cpu`, the CPU time
 * (user + system) of the whole loop per call instead, which a busy machine disturbs less.
 */
function time(backend: Backend, c: Case, budgetMs: number, cpu = false): number {
  const g: MatmulGeometry = {
    batch: 1,
    m: c.m,
    n: c.n,
    k: c.k,
    transA: c.transA,
    transB: c.transB,
    batchA: false,
    batchB: false,
  };
  const a = backend.fromArray(random(c.m * c.k, 1), 'float32');
  const b = backend.fromArray(random(c.k * c.n, 2), 'float32');
  const out = backend.alloc(c.m * c.n, 'float32');
  const warmEnd = performance.now() + budgetMs / 4;
  do backend.matmul(a, b, out, g);
  while (performance.now() < warmEnd);
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  const cpu0 = process.cpuUsage();
  while (performance.now() < end || samples.length < 3) {
    const t0 = performance.now();
    backend.matmul(a, b, out, g);
    samples.push(performance.now() - t0);
  }
  const used = process.cpuUsage(cpu0);
  for (const s of [a, b, out]) backend.free(s);
  if (cpu) return (used.user + used.system) / 1e6 / samples.length;
  samples.sort((x, y) => x - y);
  return samples[samples.length >> 1] / 1000;
}

/** Independent accumulators of the peak loop: enough to cover the multiply-add latency on two FMA pipes. */
const PEAK_CHAINS = 12;

/**
 * GFLOP/s of f32x4 multiply-adds with no memory traffic: `PEAK_CHAINS` independent accumulator
 * chains, each step `acc = x·y + acc` as in a GEMM's inner loop (relaxed: one fused multiply-add;
 * plain: a multiply off the chain and an add on it). The median of several timed calls after a warm-up.
 */
export function peakGflops(simd: SimdVariant, iters = 2_000_000): number {
  const mb = new ModuleBuilder();
  mb.importMemory('env', 'memory', 1);
  mb.func('peak', ['i32'], [], (f) => {
    const n = f.param(0);
    const i = f.local('i32');
    const x = f.local('v128');
    const y = f.local('v128');
    const acc = Array.from({ length: PEAK_CHAINS }, () => f.local('v128'));
    f.f32(0.999).f32x4Splat().set(x);
    f.f32(0.001).f32x4Splat().set(y);
    for (const [q, a] of acc.entries()) f.f32(q).f32x4Splat().set(a);
    f.forUpTo(i, n, 1, () => {
      for (const a of acc) {
        if (simd === 'relaxed') f.get(x).get(y).get(a).f32x4RelaxedMadd().set(a);
        else f.get(x).get(y).f32x4Mul().get(a).f32x4Add().set(a);
      }
    });
    // Keep the chains live: sum them into memory.
    f.i32(0);
    f.get(acc[0]);
    for (const a of acc.slice(1)) f.get(a).f32x4Add();
    f.v128Store();
  });
  const memory = new WebAssembly.Memory({ initial: 1 });
  const { peak } = new WebAssembly.Instance(new WebAssembly.Module(mb.build()), { env: { memory } }).exports as {
    peak: (n: number) => void;
  };
  peak(iters / 10);
  const samples: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    peak(iters);
    samples.push((performance.now() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  return (iters * PEAK_CHAINS * 8) / samples[samples.length >> 1] / 1e9;
}

/** One tower shape's GFLOP/s per SIMD variant at one thread and at two (`--json`). */
interface GemmRow extends Case {
  gflops: Record<string, number>;
}

/** The `--json` report: tower shapes (one thread: plain and relaxed; two threads: the default variant) and peaks. */
async function writeJson(file: string): Promise<void> {
  const variants: SimdVariant[] = relaxedSimdSupported() ? ['plain', 'relaxed'] : ['plain'];
  const one = Object.fromEntries(variants.map((v) => [v, new WasmBackend({ threads: 1, simd: v })]));
  const two = Object.fromEntries(variants.map((v) => [v, new WasmBackend({ threads: 2, simd: v })]));
  for (const be of Object.values(two)) await be.ready();
  const rounds = 5;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const rows: GemmRow[] = [];
  for (const c of [...layerCases(1024, 180, 200), ...layerCases(1024, 200, 80)]) {
    const flops = 2 * c.m * c.n * c.k;
    const times: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++)
      for (const v of variants) {
        (times[`${v} 1T`] ??= []).push(time(one[v], c, 150));
        (times[`${v} 2T`] ??= []).push(time(two[v], c, 150));
      }
    const gflops = Object.fromEntries(Object.entries(times).map(([key, t]) => [key, flops / median(t) / 1e9]));
    rows.push({ ...c, gflops });
  }
  const peak = Object.fromEntries(variants.map((v) => [v, peakGflops(v)]));
  for (const be of Object.values(two)) be.dispose();
  fs.writeFileSync(file, JSON.stringify({ variants, rows, peak }, null, 2));
}

async function main(): Promise<void> {
  const jsonAt = process.argv.indexOf('--json');
  if (jsonAt >= 0) return writeJson(process.argv[jsonAt + 1]);
  const wasm = new WasmBackend({ threads: 1 });
  const wasm2 = new WasmBackend({ threads: 2 });
  await wasm2.ready();
  // Two threads that cut even when a cut does not pay (no adaptive pause): the raw parallel speed.
  const wasm2f = new WasmBackend({ threads: 2, adaptive: false });
  await wasm2f.ready();
  // Cut every GEMM, however small, to find where two threads start to pay.
  const wasm2all = new WasmBackend({
    threads: 2,
    parallelMin: { gemm: 0, simd: 0, math: 0, rows: 0 },
    adaptive: false,
  });
  await wasm2all.ready();
  const ref = new ReferenceBackend();
  const cases = [...layerCases(1024, 180, 200), ...layerCases(1024, 200, 80), ...layerCases(1024, 80, 1)];
  const rows: string[][] = [
    ['shape', 'MFLOP', '1T ms', '1T GFLOP/s', '2T ms', '2T GFLOP/s', '2T/1T', '2T forced GFLOP/s', 'ref GFLOP/s'],
  ];
  for (const c of cases) {
    const flops = 2 * c.m * c.n * c.k;
    const tw = time(wasm, c, 400);
    const t2 = time(wasm2, c, 400);
    const t2f = time(wasm2f, c, 400);
    const tr = time(ref, c, 100);
    rows.push([
      c.label,
      (flops / 1e6).toFixed(2),
      (tw * 1e3).toFixed(3),
      (flops / tw / 1e9).toFixed(1),
      (t2 * 1e3).toFixed(3),
      (flops / t2 / 1e9).toFixed(1),
      `${(tw / t2).toFixed(2)}x`,
      (flops / t2f / 1e9).toFixed(1),
      (flops / tr / 1e9).toFixed(2),
    ]);
  }
  printTable(rows);
  console.log();
  const peaks = [['SIMD128 multiply-add peak (registers only, 1 thread)', 'GFLOP/s']];
  for (const v of relaxedSimdSupported() ? (['plain', 'relaxed'] as const) : (['plain'] as const))
    peaks.push([v, peakGflops(v).toFixed(1)]);
  printTable(peaks);
  console.log();
  simdVariants(cases);
  console.log();
  const small: string[][] = [['square GEMM (forced split)', 'm·n·k', '1T µs', '2T µs', '2T/1T']];
  for (const d of [16, 32, 48, 64, 96, 128]) {
    const c: Case = { label: `${d}x${d} · ${d}x${d}`, m: d, n: d, k: d, transA: false, transB: false };
    const t1 = time(wasm, c, 150);
    const t2 = time(wasm2all, c, 150);
    small.push([c.label, String(d * d * d), (t1 * 1e6).toFixed(1), (t2 * 1e6).toFixed(1), `${(t1 / t2).toFixed(2)}x`]);
  }
  printTable(small);
  console.log();
  printTable(
    elementwise([
      ['wasm 1T', wasm],
      ['wasm 2T', wasm2],
      ['ref', ref],
    ]),
  );
  console.log();
  printTable(elementSizes(wasm, wasm2all));
  wasm2.dispose();
  wasm2f.dispose();
  wasm2all.dispose();
}

/**
 * One thread, plain vs relaxed SIMD on the tower's shapes: rounds alternate the two variants
 * (so a neighbour's load hits both alike) and each cell is the median over the rounds, of wall
 * time per call and, in the CPU columns, of CPU time per call (steadier on a shared machine).
 */
function simdVariants(cases: Case[]): void {
  if (!relaxedSimdSupported()) {
    console.log('relaxed SIMD: not supported by this runtime (Node 20: run with --experimental-wasm-relaxed-simd)');
    return;
  }
  const plain = new WasmBackend({ threads: 1, simd: 'plain' });
  const relaxed = new WasmBackend({ threads: 1, simd: 'relaxed' });
  const rounds = 5;
  const rows: string[][] = [
    [
      'shape (1 thread)',
      'plain GFLOP/s',
      'relaxed GFLOP/s',
      'relaxed/plain',
      'plain CPU GFLOP/s',
      'relaxed CPU GFLOP/s',
    ],
  ];
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  for (const c of cases) {
    const flops = 2 * c.m * c.n * c.k;
    const [tp, tr, cp, cr]: number[][] = [[], [], [], []];
    for (let r = 0; r < rounds; r++) {
      tp.push(time(plain, c, 150));
      tr.push(time(relaxed, c, 150));
      cp.push(time(plain, c, 150, true));
      cr.push(time(relaxed, c, 150, true));
    }
    const gflops = (t: number[]): string => (flops / median(t) / 1e9).toFixed(1);
    rows.push([c.label, gflops(tp), gflops(tr), `${(median(tp) / median(tr)).toFixed(2)}x`, gflops(cp), gflops(cr)]);
  }
  printTable(rows);
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows)
    console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
}

/** Elements per second of `run` on `be` over `n` elements. */
function rate(
  be: Backend,
  n: number,
  run: (be: Backend, x: Storage, y: Storage, out: Storage) => void,
  ms = 200,
): number {
  const x = be.fromArray(random(n, 3), 'float32');
  const y = be.fromArray(random(n, 4), 'float32');
  const out = be.alloc(n, 'float32');
  run(be, x, y, out);
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    run(be, x, y, out);
    calls++;
  }
  const elapsed = (performance.now() - t0) / calls;
  for (const s of [x, y, out]) be.free(s);
  return n / elapsed / 1e3;
}

/** Throughput of the host-math kernels (f64 through imported Math.exp/log1p) and a SIMD one, for scale. */
function elementwise(backends: [string, Backend][]): string[][] {
  const n = 1 << 18;
  const kernels: [string, (be: Backend, x: Storage, y: Storage, out: Storage) => void][] = [
    ['relu (SIMD)', (be, x, _y, out) => be.unary('relu', x, out)],
    ['sigmoid (host exp)', (be, x, _y, out) => be.unary('sigmoid', x, out)],
    ['bceWithLogits', (be, x, y, out) => be.bceWithLogits(x, y, out)],
    ['productBce', (be, x, y, out) => be.productBce(x, y, y, out)],
  ];
  const rows: string[][] = [['kernel (262144 elements), Melem/s', ...backends.map(([name]) => name)]];
  for (const [label, run] of kernels) rows.push([label, ...backends.map(([, be]) => rate(be, n, run).toFixed(0))]);
  return rows;
}

/** One and two threads (every kernel cut) over growing sizes: where elementwise splits start to pay. */
function elementSizes(one: Backend, two: Backend): string[][] {
  const rows: string[][] = [['elements', 'relu 1T', 'relu 2T', 'add 1T', 'add 2T', 'sigmoid 1T', 'sigmoid 2T']];
  const relu = (be: Backend, x: Storage, _y: Storage, out: Storage): void => be.unary('relu', x, out);
  const sigmoid = (be: Backend, x: Storage, _y: Storage, out: Storage): void => be.unary('sigmoid', x, out);
  for (const log2 of [10, 12, 14, 16, 18, 20]) {
    const n = 1 << log2;
    const add = (be: Backend, x: Storage, y: Storage, out: Storage): void => be.binary('add', x, [n], y, [n], out, [n]);
    rows.push([
      `2^${log2}`,
      ...[relu, add, sigmoid].flatMap((k) => [rate(one, n, k, 100).toFixed(0), rate(two, n, k, 100).toFixed(0)]),
    ]);
  }
  return rows;
}

await main();
