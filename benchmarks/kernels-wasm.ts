/**
 * GEMM throughput of the wasm backend against the reference backend, single thread.
 *
 * Run (bundles the TypeScript with the rolldown already in devDependencies' tree, then runs it):
 *   npx rolldown benchmarks/kernels-wasm.ts --platform node --format esm --file /tmp/kernels-wasm.mjs && node /tmp/kernels-wasm.mjs
 *
 * Shapes are the ESMM tower's: batch 1024 through 180→200→80→1, forward (A·B) and the two
 * backward layouts (Aᵀ·B for weight gradients, A·Bᵀ for input gradients).
 */
import type { Backend, MatmulGeometry, Storage } from '../kernels/backend.js';
import { ReferenceBackend } from '../kernels/reference.js';
import { WasmBackend } from '../kernels/wasm/index.js';

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

/** Median seconds per call after warm-up, running for about `budgetMs`. */
function time(backend: Backend, c: Case, budgetMs: number): number {
  const g: MatmulGeometry = { batch: 1, m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB, batchA: false, batchB: false };
  const a = backend.fromArray(random(c.m * c.k, 1), 'float32');
  const b = backend.fromArray(random(c.k * c.n, 2), 'float32');
  const out = backend.alloc(c.m * c.n, 'float32');
  const warmEnd = performance.now() + budgetMs / 4;
  do backend.matmul(a, b, out, g);
  while (performance.now() < warmEnd);
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  while (performance.now() < end || samples.length < 3) {
    const t0 = performance.now();
    backend.matmul(a, b, out, g);
    samples.push(performance.now() - t0);
  }
  for (const s of [a, b, out]) backend.free(s);
  samples.sort((x, y) => x - y);
  return samples[samples.length >> 1] / 1000;
}

function main(): void {
  const wasm = new WasmBackend();
  const ref = new ReferenceBackend();
  const cases = [...layerCases(1024, 180, 200), ...layerCases(1024, 200, 80), ...layerCases(1024, 80, 1)];
  const rows: string[][] = [['shape', 'MFLOP', 'wasm ms', 'wasm GFLOP/s', 'ref ms', 'ref GFLOP/s', 'speed-up']];
  for (const c of cases) {
    const flops = 2 * c.m * c.n * c.k;
    const tw = time(wasm, c, 400);
    const tr = time(ref, c, 200);
    rows.push([
      c.label,
      (flops / 1e6).toFixed(2),
      (tw * 1e3).toFixed(3),
      (flops / tw / 1e9).toFixed(1),
      (tr * 1e3).toFixed(2),
      (flops / tr / 1e9).toFixed(2),
      `${(tr / tw).toFixed(0)}x`,
    ]);
  }
  printTable(rows);
  console.log();
  printTable(elementwise(wasm, ref));
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
}

/** Throughput of the host-math kernels (f64 through imported Math.exp/log1p) and a SIMD one, for scale. */
function elementwise(wasm: Backend, ref: Backend): string[][] {
  const n = 1 << 18;
  const kernels: [string, (be: Backend, x: Storage, y: Storage, out: Storage) => void][] = [
    ['relu (SIMD)', (be, x, _y, out) => be.unary('relu', x, out)],
    ['sigmoid (host exp)', (be, x, _y, out) => be.unary('sigmoid', x, out)],
    ['bceWithLogits', (be, x, y, out) => be.bceWithLogits(x, y, out)],
    ['productBce', (be, x, y, out) => be.productBce(x, y, y, out)],
  ];
  const rows: string[][] = [['kernel (262144 elements)', 'wasm Melem/s', 'ref Melem/s']];
  for (const [label, run] of kernels) {
    const rate = (be: Backend): number => {
      const x = be.fromArray(random(n, 3), 'float32');
      const y = be.fromArray(random(n, 4), 'float32');
      const out = be.alloc(n, 'float32');
      run(be, x, y, out);
      let calls = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < 200) {
        run(be, x, y, out);
        calls++;
      }
      const ms = (performance.now() - t0) / calls;
      for (const s of [x, y, out]) be.free(s);
      return n / ms / 1e3;
    };
    rows.push([label, rate(wasm).toFixed(0), rate(ref).toFixed(0)]);
  }
  return rows;
}

main();
