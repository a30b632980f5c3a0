/**
 * Per-kernel timings of the gpu backend against the reference backend.
 *
 * Build and run (headlessgl needs a display, e.g. `xvfb-run -a`):
 *   npx tsc -p tsconfig.json --outDir /tmp/esmm-bench && node /tmp/esmm-bench/benchmarks/kernels-gpu.js [modes]
 * `modes` is a comma-separated list (default: every mode that starts). Times include one
 * read() per kernel so device modes cannot hide queued work; the first call (compilation)
 * is reported separately.
 */
import type { Backend, MatmulGeometry, Storage } from '../kernels/backend.js';
import { ReferenceBackend } from '../kernels/reference.js';
import { GpuBackend, isModeSupported, type ConcreteGpuMode } from '../kernels/gpu/index.js';

interface Case {
  name: string;
  run(b: Backend, s: Record<string, Storage>): Storage;
}

const N = 1 << 18;
const ROWS = 4096;
const DIM = 32;
const BAGS = 2048;
const BAG = 8;

function data(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = (s / 4294967296) * 4 - 2;
  }
  return out;
}

const ids = Int32Array.from({ length: BAGS * BAG }, (_, i) => (i * 7919) % ROWS);
const offsets = Int32Array.from({ length: BAGS + 1 }, (_, i) => i * BAG);
const mm: MatmulGeometry = {
  batch: 1,
  m: 256,
  n: 256,
  k: 256,
  transA: false,
  transB: false,
  batchA: true,
  batchB: true,
};

const cases: Case[] = [
  { name: `unary sigmoid ${N}`, run: (b, s) => (b.unary('sigmoid', s.x, s.out), s.out) },
  { name: `binary add ${N}`, run: (b, s) => (b.binary('add', s.x, [N], s.y, [N], s.out, [N]), s.out) },
  {
    name: 'binary mul broadcast [512,512]x[512]',
    run: (b, s) => (b.binary('mul', s.x, [512, 512], s.row, [512], s.out, [512, 512]), s.out),
  },
  { name: 'reduceSum [512,512] axis 0', run: (b, s) => (b.reduceSum(s.x, [512, 512], [0], s.small), s.small) },
  { name: 'matmul 256^3', run: (b, s) => (b.matmul(s.x, s.y, s.out, mm), s.out) },
  {
    name: `embeddingBag ${BAGS}x${BAG}, dim ${DIM}`,
    run: (b, s) => (b.embeddingBag(s.table, DIM, ids, offsets, null, 'mean', s.bag), s.bag),
  },
  { name: 'softmaxLast [512,512]', run: (b, s) => (b.softmaxLast(s.x, null, 512, 512, s.out), s.out) },
  {
    name: `adam ${N}`,
    run: (b, s) => (
      b.adam(s.p, s.y, s.m, s.v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 }),
      s.p
    ),
  },
];

function setup(b: Backend): Record<string, Storage> {
  const f = (n: number, seed: number) => b.fromArray(data(n, seed), 'float32');
  return {
    x: f(N, 1),
    y: f(N, 2),
    row: f(512, 3),
    out: b.alloc(N, 'float32'),
    small: b.alloc(512, 'float32'),
    table: f(ROWS * DIM, 4),
    bag: b.alloc(BAGS * DIM, 'float32'),
    p: f(N, 5),
    m: b.alloc(N, 'float32'),
    v: b.alloc(N, 'float32'),
  };
}

function time(b: Backend, c: Case, s: Record<string, Storage>, reps: number): { first: number; mean: number } {
  let t = performance.now();
  b.read(c.run(b, s));
  const first = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < reps; i++) b.read(c.run(b, s));
  return { first, mean: (performance.now() - t) / reps };
}

function main(): void {
  const asked = process.argv[2]?.split(',') as ConcreteGpuMode[] | undefined;
  const modes = (asked ?? (['cpu', 'webasm', 'headlessgl'] as ConcreteGpuMode[])).filter((m) => isModeSupported(m));
  const backends: Backend[] = [new ReferenceBackend(), ...modes.map((mode) => new GpuBackend({ mode }))];
  const rows: string[][] = [['kernel', ...backends.map((b) => `${b.name} ms (first)`)]];
  const states = backends.map(setup);
  for (const c of cases) {
    rows.push([
      c.name,
      ...backends.map((b, i) => {
        const { first, mean } = time(b, c, states[i], 3);
        return `${mean.toFixed(1)} (${first.toFixed(0)})`;
      }),
    ]);
  }
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  for (const r of rows) console.log(r.map((v, j) => v.padEnd(widths[j])).join('  '));
}

main();
