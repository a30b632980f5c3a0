/**
 * The wasm backend's worker threads: every kernel that is cut into chunks must give
 * bit-identical results at one and two threads (the cuts keep each output element's
 * summation order), across memory growth and after the pool is disposed.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdamHyper, BagMode, MatmulGeometry, Storage } from '../../kernels/index.js';
import { WasmBackend, autoThreads, poolSupported } from '../../kernels/wasm/index.js';
import { jobLost } from '../../kernels/wasm/pool.js';
import { randomArray, rng, simdVariants } from './helpers-wasm.js';

const one = new WasmBackend({ threads: 1 });
/** Default thresholds: the sizes below are large enough to be cut. */
const two = new WasmBackend({ threads: 2 });
/** Every kernel cut, however small. */
const twoAll = new WasmBackend({ threads: 2, parallelMin: { gemm: 0, simd: 0, math: 0, rows: 0 }, adaptive: false });

beforeAll(async () => {
  await two.ready();
  await twoAll.ready();
});
afterAll(() => {
  two.dispose();
  twoAll.dispose();
});

/** Run the same computation on several backends and return each one's output. */
function outputs(backends: WasmBackend[], run: (be: WasmBackend) => Storage[]): Float32Array[][] {
  return backends.map((be) => {
    const outs = run(be);
    const values = outs.map((o) => be.read(o) as Float32Array);
    for (const o of outs) be.free(o);
    return values;
  });
}

function expectIdentical(results: Float32Array[][], what: string): void {
  for (let b = 1; b < results.length; b++) {
    results[b].forEach((arr, i) => {
      const want = results[0][i];
      expect(arr.length, what).toBe(want.length);
      for (let j = 0; j < arr.length; j++) {
        if (!Object.is(arr[j], want[j]))
          throw new Error(`${what}: output ${i} differs at ${j}: ${arr[j]} vs ${want[j]} (backend ${b})`);
      }
    });
  }
}

describe('wasm backend threads', () => {
  it('resolves the thread count', () => {
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(poolSupported() ? 2 : 1);
    // 'auto' reads the load average, which may move between calls: only its range is stable.
    expect([1, poolSupported() ? 2 : 1]).toContain(new WasmBackend({ threads: 'auto' }).threads);
    expect([1, 2]).toContain(autoThreads());
    expect(new WasmBackend({ threads: 0 }).threads).toBe(1);
    expect(one.poolStats()).toEqual({ workers: 0, ready: 0, workerChunks: 0 });
  });

  it('builds one SIMD variant for all its backends, so the identity checks below compare like with like', () => {
    // The relaxed project lists only relaxed; elsewhere 'auto' picks the last variant the runtime has.
    const variant = simdVariants().at(-1);
    for (const be of [one, two, twoAll]) expect(be.simd).toBe(variant);
  });

  it('GEMM is bit-identical at one and two threads in every layout', () => {
    fc.assert(
      fc.property(
        fc.record({
          m: fc.integer({ min: 1, max: 300 }),
          n: fc.integer({ min: 2, max: 90 }),
          k: fc.integer({ min: 1, max: 120 }),
          transA: fc.boolean(),
          transB: fc.boolean(),
          batch: fc.integer({ min: 1, max: 2 }),
          batchA: fc.boolean(),
          batchB: fc.boolean(),
          seed: fc.integer(),
        }),
        (g: MatmulGeometry & { seed: number }) => {
          const res = outputs([one, two, twoAll], (be) => {
            const a = be.fromArray(randomArray(g.seed, (g.batchA ? g.batch : 1) * g.m * g.k), 'float32');
            const b = be.fromArray(randomArray(g.seed + 1, (g.batchB ? g.batch : 1) * g.k * g.n), 'float32');
            const o = be.alloc(g.batch * g.m * g.n, 'float32');
            be.matmul(a, b, o, g);
            be.free(a);
            be.free(b);
            return [o];
          });
          expectIdentical(res, `matmul ${JSON.stringify(g)}`);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('the ESMM tower products are bit-identical at one and two threads', () => {
    for (const [m, n, k, transA, transB] of [
      [1024, 200, 180, false, false],
      [180, 200, 1024, true, false],
      [1024, 180, 200, false, true],
      [1024, 1, 80, false, false],
      // DIN's activation-unit weight gradients sum over batch × sequence rows, in blocks of k.
      [40, 80, 10240, true, false],
      [80, 36, 5000, true, false],
    ] as const) {
      const g = { batch: 1, m, n, k, transA, transB, batchA: false, batchB: false };
      const res = outputs([one, two], (be) => {
        const a = be.fromArray(randomArray(m, m * k), 'float32');
        const b = be.fromArray(randomArray(n, k * n), 'float32');
        const o = be.alloc(m * n, 'float32');
        be.matmul(a, b, o, g);
        be.free(a);
        be.free(b);
        return [o];
      });
      expectIdentical(res, `matmul ${JSON.stringify(g)}`);
    }
  });

  it('elementwise, row and optimizer kernels are bit-identical at one and two threads', () => {
    const hyper: AdamHyper = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer(),
        (rows, cols, seed) => {
          const n = rows * cols;
          const r = rng(seed);
          const bags = Array.from({ length: rows }, () => Math.floor(r() * 5));
          const offsets = new Int32Array(rows + 1);
          bags.forEach((s, i) => (offsets[i + 1] = offsets[i] + s));
          const ids = Int32Array.from({ length: offsets[rows] }, () => Math.floor(r() * 9));
          const weights = randomArray(seed + 9, ids.length, 0, 2);
          const labels = Float32Array.from({ length: n }, () => (r() < 0.5 ? 0 : 1));
          const mode: BagMode = (['sum', 'mean', 'sqrtn'] as const)[Math.abs(seed) % 3];
          const res = outputs([one, twoAll], (be) => {
            const x = be.fromArray(randomArray(seed, n, -5, 5), 'float32');
            const y = be.fromArray(randomArray(seed + 1, n, -5, 5), 'float32');
            const lab = be.fromArray(labels, 'float32');
            const bias = be.fromArray(randomArray(seed + 2, cols), 'float32');
            const outs = Array.from({ length: 14 }, () => be.alloc(n, 'float32'));
            be.unary('relu', x, outs[0]);
            be.unary('sigmoid', x, outs[1]);
            be.affine(x, 0.5, -1, outs[2]);
            be.axpby(0.3, x, -2, y, outs[3]);
            be.binary('mul', x, [rows, cols], y, [rows, cols], outs[4], [rows, cols]);
            be.binary('add', x, [rows, cols], bias, [cols], outs[5], [rows, cols]);
            be.binary('pow', lab, [rows, cols], bias, [cols], outs[6], [rows, cols]);
            be.prelu(x, bias, cols, outs[7]);
            be.bceWithLogits(x, lab, outs[8]);
            be.bceWithLogitsBackward(x, lab, y, outs[9]);
            be.productBce(x, y, lab, outs[10]);
            be.productBceBackward(x, y, lab, y, outs[11], outs[12]);
            be.copy(x, outs[13]);
            const m = be.alloc(n, 'float32');
            const v = be.alloc(n, 'float32');
            be.adam(outs[13], y, m, v, hyper);
            const table = be.fromArray(randomArray(seed + 3, 9 * cols), 'float32');
            const bag = be.alloc(rows * cols, 'float32');
            be.embeddingBag(table, cols, ids, offsets, weights, mode, bag);
            const seg = be.alloc(rows * cols, 'float32');
            be.segmentSumRows(table, cols, offsets, ids, weights, seg);
            const gathered = be.alloc(ids.length * cols, 'float32');
            be.gatherRows(table, cols, ids, gathered);
            const mv = be.alloc(rows, 'float32');
            be.matmul(x, bias, mv, {
              batch: 1,
              m: rows,
              n: 1,
              k: cols,
              transA: false,
              transB: false,
              batchA: false,
              batchB: false,
            });
            for (const s of [x, y, lab, bias, table]) be.free(s);
            return [...outs, m, v, bag, seg, gathered, mv];
          });
          expectIdentical(res, `kernels ${JSON.stringify({ rows, cols, seed })}`);
        },
      ),
      { numRuns: 60 },
    );
    expect(twoAll.poolStats().workerChunks).toBeGreaterThan(0);
  });

  it('keeps working while the shared memory grows', () => {
    const be = new WasmBackend({
      threads: 2,
      initialPages: 1,
      parallelMin: { gemm: 0, simd: 0, math: 0, rows: 0 },
      adaptive: false,
    });
    const ref = new WasmBackend({ threads: 1, initialPages: 1 });
    const g = { batch: 1, m: 64, n: 48, k: 40, transA: false, transB: false, batchA: false, batchB: false };
    const run = (b: WasmBackend, round: number): Float32Array => {
      const a = b.fromArray(randomArray(round, g.m * g.k), 'float32');
      const w = b.fromArray(randomArray(round + 1, g.k * g.n), 'float32');
      const o = b.alloc(g.m * g.n, 'float32');
      b.matmul(a, w, o, g);
      return b.read(o) as Float32Array;
    };
    for (let round = 0; round < 6; round++) {
      // Never freed: the heap keeps growing between parallel jobs.
      be.alloc(200_000 * (round + 1), 'float32');
      expect(run(be, round)).toEqual(run(ref, round));
    }
    expect(be.stats().grows).toBeGreaterThan(2);
    be.dispose();
  });

  it('pauses a kernel only for jobs where the caller waited on a worker that claimed work', () => {
    // A 1 ms serial job cut into 8 chunks of 0.125 ms.
    const serial = 1;
    const chunk = 0.125;
    // Both threads computed: about half the serial time.
    expect(jobLost(0.55, serial, 0.02, chunk)).toBe(false);
    // The worker woke too late to claim a chunk: the caller did the job alone and lost nothing.
    expect(jobLost(1.01, serial, 0.005, chunk)).toBe(false);
    // The worker claimed a chunk and lost its core: the caller waited 3 ms for it.
    expect(jobLost(3.6, serial, 3, chunk)).toBe(true);
    // It waited, but the job still gained: keep cutting.
    expect(jobLost(0.8, serial, 0.2, chunk)).toBe(false);
  });

  it('runs on the calling thread after dispose', () => {
    const be = new WasmBackend({ threads: 2, parallelMin: { gemm: 0, simd: 0, math: 0, rows: 0 }, adaptive: false });
    const x = be.fromArray(randomArray(1, 1000), 'float32');
    const o = be.alloc(1000, 'float32');
    be.unary('neg', x, o);
    be.dispose();
    be.dispose();
    be.unary('neg', o, o);
    expect(be.read(o)).toEqual(randomArray(1, 1000));
  });
});
