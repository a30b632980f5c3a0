/**
 * Every backend's kernels at ESMM sizes, side by side: batch 1024, embedding dim 18,
 * towers 360-200-80-1, a 100,000-row table with bags of 10 ids.
 *
 *   npx rolldown benchmarks/kernels.ts --platform node --format esm --external gpu.js --file benchmarks/out/kernels.mjs
 *   xvfb-run -a node benchmarks/out/kernels.mjs   # headless-gl needs a display
 *
 * Prints a table (ms per call, GFLOP/s or GB/s, ratio to reference) and writes
 * benchmarks/results/kernels.md and .json. Each figure is the median over repeats of
 * the mean time of a burst of calls followed by one read (which waits for a device).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { GpuBackend, isModeSupported } from '../kernels/gpu/index.js';
import { ReferenceBackend, WasmBackend, type Backend, type Storage } from '../kernels/index.js';

interface Case {
  name: string;
  /** Floating-point operations per call (for GFLOP/s), or 0. */
  flops: number;
  /** Bytes moved per call (for GB/s) when flops is 0. */
  bytes: number;
  setup(b: Backend): () => void;
}

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * s) / 4294967296;
  }
  return out;
}

const B = 1024;
const D = 18;
const ROWS = 100_000;
const BAG = 10;

function filled(b: Backend, n: number, seed: number, lo = -1, hi = 1): Storage {
  return b.fromArray(random(n, seed, lo, hi), 'float32');
}

function gemm(name: string, m: number, n: number, k: number, transA: boolean, transB: boolean): Case {
  return {
    name,
    flops: 2 * m * n * k,
    bytes: 0,
    setup(b) {
      const a = filled(b, m * k, 1);
      const w = filled(b, k * n, 2);
      const out = b.alloc(m * n, 'float32');
      const geometry = { batch: 1, m, n, k, transA, transB, batchA: false, batchB: false };
      return () => b.matmul(a, w, out, geometry);
    },
  };
}

const bagIds = Int32Array.from(random(B * BAG, 7, 0, ROWS), (x) => Math.floor(x));
const bagOffsets = Int32Array.from({ length: B + 1 }, (_, i) => i * BAG);
const sortedUnique = [...new Set(bagIds)].sort((x, y) => x - y);
const uniqueRows = Int32Array.from(sortedUnique);

const CASES: Case[] = [
  gemm('matmul 1024×360 · (200×360)ᵀ (Linear forward)', B, 200, 360, false, true),
  gemm('matmul 1024×200 · 200×360 (input gradient)', B, 360, 200, false, false),
  gemm('matmul (1024×200)ᵀ · 1024×360 (weight gradient)', 200, 360, B, true, false),
  gemm('matmul 1024×200 · (80×200)ᵀ', B, 80, 200, false, true),
  gemm('matmul 1024×80 · (1×80)ᵀ', B, 1, 80, false, true),
  {
    name: 'bias add [1024, 200] + [200]',
    flops: 0,
    bytes: B * 200 * 8,
    setup(b) {
      const x = filled(b, B * 200, 3);
      const bias = filled(b, 200, 4);
      const out = b.alloc(B * 200, 'float32');
      return () => b.binary('add', x, [B, 200], bias, [200], out, [B, 200]);
    },
  },
  {
    name: 'prelu [1024, 200]',
    flops: 0,
    bytes: B * 200 * 8,
    setup(b) {
      const x = filled(b, B * 200, 5);
      const slope = filled(b, 200, 6, 0, 0.5);
      const out = b.alloc(B * 200, 'float32');
      return () => b.prelu(x, slope, 200, out);
    },
  },
  {
    name: 'prelu backward [1024, 200]',
    flops: 0,
    bytes: B * 200 * 12,
    setup(b) {
      const x = filled(b, B * 200, 5);
      const g = filled(b, B * 200, 8);
      const slope = filled(b, 200, 6, 0, 0.5);
      const dx = b.alloc(B * 200, 'float32');
      const ds = b.alloc(200, 'float32');
      return () => b.preluBackward(x, slope, g, 200, dx, ds);
    },
  },
  {
    name: 'linearPrelu 1024×360 · (200×360)ᵀ + bias, PReLU (fused Linear forward)',
    flops: 2 * B * 200 * 360,
    bytes: 0,
    setup(b) {
      const x = filled(b, B * 360, 1);
      const w = filled(b, 200 * 360, 2);
      const bias = filled(b, 200, 4);
      const slope = filled(b, 200, 6, 0, 0.5);
      const pre = b.alloc(B * 200, 'float32');
      const out = b.alloc(B * 200, 'float32');
      return () => b.linearPrelu(x, w, bias, slope, B, 200, 360, pre, out, 1);
    },
  },
  {
    name: 'linearPrelu backward pass [1024, 200] (pre-activation, bias and slope gradients)',
    flops: 0,
    bytes: B * 200 * 12,
    setup(b) {
      const pre = filled(b, B * 200, 5);
      const g = filled(b, B * 200, 8);
      const slope = filled(b, 200, 6, 0, 0.5);
      const gp = b.alloc(B * 200, 'float32');
      const gs = b.alloc(200, 'float32');
      const gb = b.alloc(200, 'float32');
      return () => b.linearPreluBackward(pre, slope, g, 200, gp, gs, gb, 1);
    },
  },
  {
    name: 'sigmoid [1024, 200]',
    flops: 0,
    bytes: B * 200 * 8,
    setup(b) {
      const x = filled(b, B * 200, 9);
      const out = b.alloc(B * 200, 'float32');
      return () => b.unary('sigmoid', x, out);
    },
  },
  {
    name: 'productBce forward+backward [1024]',
    flops: 0,
    bytes: B * 4 * 7,
    setup(b) {
      const x = filled(b, B, 10, -5, 5);
      const y = filled(b, B, 11, -5, 5);
      const labels = b.fromArray(
        Float32Array.from(random(B, 12, 0, 1), (v) => (v < 0.1 ? 1 : 0)),
        'float32',
      );
      const g = filled(b, B, 13);
      const out = b.alloc(B, 'float32');
      const ga = b.alloc(B, 'float32');
      const gb = b.alloc(B, 'float32');
      return () => {
        b.productBce(x, y, labels, out);
        b.productBceBackward(x, y, labels, g, ga, gb);
      };
    },
  },
  {
    name: `embeddingBag sum, ${ROWS}×${D} table, ${B} bags of ${BAG}`,
    flops: 0,
    bytes: B * BAG * D * 4,
    setup(b) {
      const table = filled(b, ROWS * D, 14);
      const out = b.alloc(B * D, 'float32');
      return () => b.embeddingBag(table, D, bagIds, bagOffsets, null, 'sum', out);
    },
  },
  {
    name: `segmentSumRows (sparse bag gradient, ${uniqueRows.length} rows)`,
    flops: 0,
    bytes: B * BAG * D * 4,
    setup(b) {
      // Group contributions by row on the host, as the core does.
      const order = Int32Array.from({ length: bagIds.length }, (_, i) => i).sort(
        (x, y) => bagIds[x] - bagIds[y] || x - y,
      );
      const segments: number[] = [0];
      for (let i = 1; i < order.length; i++) if (bagIds[order[i]] !== bagIds[order[i - 1]]) segments.push(i);
      segments.push(order.length);
      const srcRows = Int32Array.from(order, (j) => Math.floor(j / BAG));
      const g = filled(b, B * D, 15);
      const out = b.alloc(uniqueRows.length * D, 'float32');
      const seg = Int32Array.from(segments);
      return () => b.segmentSumRows(g, D, seg, srcRows, null, out);
    },
  },
  {
    name: `sparseAdam on ${uniqueRows.length} of ${ROWS} rows`,
    flops: 0,
    bytes: uniqueRows.length * D * 4 * 7,
    setup(b) {
      const table = filled(b, ROWS * D, 16);
      const m = b.alloc(ROWS * D, 'float32');
      const v = b.alloc(ROWS * D, 'float32');
      const g = filled(b, uniqueRows.length * D, 17);
      let step = 0;
      return () =>
        b.sparseAdam(table, m, v, D, uniqueRows, g, {
          lr: 1e-3,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0,
          step: ++step,
        });
    },
  },
  {
    name: 'adam dense [200, 360]',
    flops: 0,
    bytes: 200 * 360 * 4 * 7,
    setup(b) {
      const p = filled(b, 200 * 360, 18);
      const g = filled(b, 200 * 360, 19);
      const m = b.alloc(200 * 360, 'float32');
      const v = b.alloc(200 * 360, 'float32');
      let step = 0;
      return () => b.adam(p, g, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: ++step });
    },
  },
];

function time(b: Backend, run: () => void, sink: Storage, budgetMs: number): number {
  run();
  b.read(sink); // first call compiles on gpu.js modes
  let burst = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < burst; i++) run();
    b.read(sink);
    const ms = performance.now() - t;
    if (ms > 20 || burst >= 256) break;
    burst *= 2;
  }
  const samples: number[] = [];
  const started = performance.now();
  while (samples.length < 3 || (performance.now() - started < budgetMs && samples.length < 15)) {
    const t = performance.now();
    for (let i = 0; i < burst; i++) run();
    b.read(sink);
    samples.push((performance.now() - t) / burst);
  }
  samples.sort((x, y) => x - y);
  return samples[Math.floor(samples.length / 2)];
}

function backends(): [string, () => Backend][] {
  const list: [string, () => Backend][] = [
    ['reference', () => new ReferenceBackend()],
    ['wasm 1 thread', () => new WasmBackend({ threads: 1 })],
    ['wasm 2 threads', () => new WasmBackend({ threads: 2, adaptive: false })],
    ['gpu.js cpu', () => new GpuBackend({ mode: 'cpu' })],
    ['gpu.js webasm', () => new GpuBackend({ mode: 'webasm' })],
  ];
  if (isModeSupported('headlessgl')) list.push(['gpu.js headlessgl', () => new GpuBackend({ mode: 'headlessgl' })]);
  return list;
}

function main(): void {
  const names = backends().map(([n]) => n);
  const results: Record<string, Record<string, number>> = {};
  for (const [name, make] of backends()) {
    const backend = make();
    results[name] = {};
    for (const c of CASES) {
      const run = c.setup(backend);
      const sink = backend.alloc(1, 'float32');
      const budget = name === 'reference' || name.startsWith('gpu') ? 600 : 300;
      results[name][c.name] = time(backend, run, sink, budget);
      process.stderr.write(`${name.padEnd(18)} ${c.name.padEnd(56)} ${results[name][c.name].toFixed(3)} ms\n`);
    }
  }
  const rate = (c: Case, ms: number): string =>
    c.flops > 0 ? `${(c.flops / ms / 1e6).toFixed(1)} GFLOP/s` : `${(c.bytes / ms / 1e6).toFixed(1)} GB/s`;
  const header = `| kernel | ${names.map((n) => `${n} ms (rate, × reference)`).join(' | ')} |`;
  const rows = CASES.map((c) => {
    const ref = results.reference[c.name];
    return `| ${c.name} | ${names
      .map((n) => {
        const ms = results[n][c.name];
        return `${ms < 1 ? ms.toFixed(3) : ms.toFixed(2)} (${rate(c, ms)}, ${(ref / ms).toFixed(1)}×)`;
      })
      .join(' | ')} |`;
  });
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const gpuVersion = (JSON.parse(readFileSync('node_modules/gpu.js/package.json', 'utf8')) as { version: string })
    .version;
  const md = [
    '# Kernel benchmarks',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpu}, ${cpus().length} cores (shared, so figures are noisy), Node ${process.version}, gpu.js ${gpuVersion}; one thread per backend except the wasm 2-thread column.`,
    'ESMM sizes: batch 1024, embedding dim 18, towers 360-200-80-1, a 100,000-row table with bags of 10 ids.',
    'Each entry: milliseconds per call (median of repeats of a burst ended by one read), the rate, and the speed-up over `reference`.',
    'headless-gl here draws with Mesa’s software renderer (no GPU on this machine), so its figures say nothing about a real GPU.',
    '',
    header,
    `| --- | ${names.map(() => '---').join(' | ')} |`,
    ...rows,
    '',
  ].join('\n');
  console.log(md);
  mkdirSync(join('benchmarks', 'results'), { recursive: true });
  writeFileSync(join('benchmarks', 'results', 'kernels.md'), md);
  writeFileSync(
    join('benchmarks', 'results', 'kernels.json'),
    JSON.stringify({ date: new Date().toISOString(), cpu, results }, null, 2),
  );
}

main();
