/**
 * The wasm backend against the reference backend, kernel by kernel, on random shapes and values.
 *
 * Tolerances (float32): relative 1e-4 plus absolute 1e-5 for elementwise kernels. GEMM and
 * other sums reorder additions, so their absolute tolerance scales with the summed length
 * (1e-5 · max(1, k/8)). Transcendental kernels (exp, log, sigmoid, BCE, …) call the same host
 * Math functions in f64 as the reference does and are held to the default tolerance too.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ReferenceBackend,
  createBackend,
  listBackends,
  type AdamHyper,
  type BagMode,
  type BinaryOp,
  type MatmulGeometry,
  type Storage,
  type UnaryOp,
} from '../kernels/index.js';
import {
  WasmBackend,
  checkLayouts,
  createWasmBackend,
  kernelModule,
  planBroadcast,
  planOuterBroadcast,
  sizeClass,
  LAYOUTS,
  MATH_IMPORTS,
  MAX_PAGES,
  ModuleBuilder,
  buildKernelModule,
  relaxedSimdSupported,
  type Layout,
  type WasmBackendOptions,
  type WasmSimd,
} from '../kernels/wasm/index.js';
import { TOUCH_CHUNK } from '../kernels/wasm/kernels.js';
import { MAX_ARGS } from '../kernels/wasm/pool.js';
import { kernelChecks } from './gpu/kernel-checks.js';
import { assertClose, F32_TOL, randomArray, rng, simdVariants, type Tol } from './wasm/helpers-wasm.js';

const ref = new ReferenceBackend();
/**
 * The kernel suites run once per SIMD variant and thread count. The two-thread backend cuts
 * every kernel, however small, so the fast-check shapes exercise the chunked paths and their edges.
 */
const suites = simdVariants().flatMap((simd) => [
  { simd, threads: 1, make: () => new WasmBackend({ threads: 1, simd }) },
  {
    simd,
    threads: 2,
    make: () =>
      new WasmBackend({ threads: 2, simd, parallelMin: { gemm: 0, simd: 0, math: 0, rows: 0 }, adaptive: false }),
  },
]);
let wasm: WasmBackend = new WasmBackend({ threads: 1, simd: suites[0].simd });
const RUNS = { numRuns: 60 };

/** Upload one host array to both backends. */
function pair(data: Float32Array): [Storage, Storage] {
  return [ref.fromArray(data, 'float32'), wasm.fromArray(data, 'float32')];
}

/** Compare the two storages of a pair, then free the wasm one (exercising the pool). */
function check([r, w]: [Storage, Storage], tol: Tol, what: string): void {
  assertClose(wasm.read(w), ref.read(r), tol, what);
}

function freeAll(...pairs: [Storage, Storage][]): void {
  for (const [, w] of pairs) wasm.free(w);
}

const sumTol = (len: number): Tol => ({ rel: 1e-4, abs: 1e-5 * Math.max(1, len / 8) });

describe('wasm backend: registry and building blocks', () => {
  it('is registered and creates synchronously', () => {
    expect(listBackends()).toContain('wasm');
    expect(createBackend('wasm').name).toBe('wasm');
    expect(createWasmBackend().supportsDtype('float64')).toBe(true);
  });

  it('picks its SIMD variant: auto is relaxed where supported; relaxed elsewhere and unknown values are errors', () => {
    const supported = relaxedSimdSupported();
    expect(new WasmBackend({ threads: 1 }).simd).toBe(supported ? 'relaxed' : 'plain');
    expect(new WasmBackend({ threads: 1, simd: 'auto' }).simd).toBe(supported ? 'relaxed' : 'plain');
    expect(new WasmBackend({ threads: 1, simd: 'plain' }).simd).toBe('plain');
    expect((createBackend('wasm', { threads: 1, simd: 'plain' }) as WasmBackend).simd).toBe('plain');
    if (supported) expect(new WasmBackend({ threads: 1, simd: 'relaxed' }).simd).toBe('relaxed');
    else {
      expect(() => new WasmBackend({ threads: 1, simd: 'relaxed' })).toThrow(
        /relaxed SIMD, which Node [\d.]+ \(V8 [^)]+\) does not enable.*node --experimental-wasm-relaxed-simd.*'plain'/,
      );
    }
    expect(() => new WasmBackend({ simd: 'fast' as WasmSimd })).toThrow(
      /unknown simd 'fast'; expected auto, relaxed, plain/,
    );
    expect(() => new WasmBackend({ thread: 2 } as WasmBackendOptions)).toThrow(/unknown option 'thread'/);
  });

  it('emits f32x4.relaxed_madd (0xfd 0x105) only in the relaxed variant, which runtimes with relaxed SIMD accept', () => {
    const madds = (bytes: Uint8Array): number => {
      let count = 0;
      for (let i = 0; i + 2 < bytes.length; i++)
        if (bytes[i] === 0xfd && bytes[i + 1] === 0x85 && bytes[i + 2] === 0x02) count++;
      return count;
    };
    const relaxed = buildKernelModule(false, 'relaxed');
    // GEMM's 8 accumulators, the row update, dot products, affine, axpby and Adam's four.
    expect(madds(relaxed)).toBeGreaterThanOrEqual(16);
    expect(madds(buildKernelModule(false, 'plain'))).toBe(0);
    expect(madds(buildKernelModule(true, 'relaxed'))).toBe(madds(relaxed));
    expect(WebAssembly.validate(relaxed)).toBe(relaxedSimdSupported());
  });

  it('assembles a module that runs', () => {
    const mb = new ModuleBuilder();
    mb.func('addmul', ['i32', 'i32'], ['i32'], (f) => {
      f.get(f.param(0)).get(f.param(1)).i32Add().i32(3).i32Mul();
    });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(mb.build()));
    const fn = inst.exports.addmul as (a: number, b: number) => number;
    expect(fn(2, 5)).toBe(21);
  });

  it('declares every exported kernel once: one layout per export, with its parameter count', () => {
    checkLayouts();
    const module = kernelModule(false);
    const exported = WebAssembly.Module.exports(module).filter((e) => e.kind === 'function');
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
    const math = Object.fromEntries(MATH_IMPORTS.map((n) => [n, Math[n]]));
    const exports = new WebAssembly.Instance(module, { env: { memory }, math }).exports;
    const used = new Set<string>();
    for (const { name } of exported) {
      const layout = (name in LAYOUTS ? name : name.slice(0, name.indexOf('_'))) as Layout;
      expect(LAYOUTS[layout], `layout of ${name}`).toBeDefined();
      used.add(layout);
      const params = Object.keys(LAYOUTS[layout]).length;
      expect((exports[name] as (...a: number[]) => void).length, name).toBe(params);
      expect(params, `${name} fits a pool argument row`).toBeLessThanOrEqual(MAX_ARGS);
    }
    expect([...used].sort()).toEqual(Object.keys(LAYOUTS).sort());
  });

  it('size classes bound waste at 25% and keep 64-byte alignment', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1 << 26 }), (n) => {
        const c = sizeClass(n);
        return c >= n && c % 64 === 0 && (n <= 64 || c <= n * 1.25 + 64);
      }),
    );
  });

  it('alloc reads as zeros on reused blocks, also through partial writes and aliased outputs', () => {
    const be = new WasmBackend({ threads: 1 });
    for (let round = 0; round < 3; round++) {
      const junk = Array.from({ length: 4 }, (_, i) => be.fromArray(randomArray(round * 10 + i, 300, 1, 2), 'float32'));
      for (const j of junk) be.free(j);
      // These reuse the freed blocks.
      const a = be.alloc(300, 'float32');
      expect(Array.from(be.read(a)).every((x) => x === 0)).toBe(true);
      const b = be.alloc(300, 'float32');
      be.copyBlock(be.fromArray(Float32Array.of(5), 'float32'), [1, 1], [0, 0], b, [3, 100], [1, 7], [1, 1]);
      const bv = be.read(b);
      expect(bv[107]).toBe(5);
      expect(Array.from(bv).reduce((p, x) => p + x, 0)).toBe(5);
      const c = be.alloc(300, 'float32');
      be.unary('neg', c, c);
      be.affine(c, 1, 1, c);
      expect(Array.from(be.read(c)).every((x) => x === 1)).toBe(true);
      const d = be.alloc(300, 'float32');
      be.unary('neg', be.fromArray(randomArray(7, 300), 'float32'), d);
      expect(be.read(d)).toEqual(randomArray(7, 300).map((x) => -x));
      for (const s of [a, b, c, d]) be.free(s);
    }
    be.dispose();
  });

  it('plans broadcasts into a [rows, cols] view or declines', () => {
    expect(planBroadcast([4, 5], [5], [4, 5])).toEqual({
      rows: 4,
      cols: 5,
      aRow: 5,
      aSplat: false,
      bRow: 0,
      bSplat: false,
    });
    expect(planBroadcast([4, 5], [4, 1], [4, 5])).toMatchObject({ rows: 4, cols: 5, bRow: 1, bSplat: true });
    expect(planBroadcast([], [3, 2], [3, 2])).toMatchObject({ rows: 1, cols: 6, aSplat: true, bSplat: false });
    expect(planBroadcast([3, 1, 5], [1, 4, 5], [3, 4, 5])).toBeNull();
    // A per-row term added at every position ([B, L, H] + [B, 1, H]) runs the plan once per leading index.
    expect(planOuterBroadcast([2, 4, 5], [2, 1, 5], [2, 4, 5])).toEqual({
      outer: 2,
      aStep: 20,
      bStep: 5,
      outStep: 20,
      plan: { rows: 4, cols: 5, aRow: 5, aSplat: false, bRow: 0, bSplat: false },
    });
    expect(planOuterBroadcast([3, 1, 5], [1, 4, 5], [3, 4, 5])).toBeNull();
  });

  it('reuses freed blocks: the heap stops growing', () => {
    const be = new WasmBackend();
    const cycle = (): void => {
      const xs = [10, 1000, 4097, 77].map((n) => be.alloc(n, 'float32'));
      for (const x of xs) be.free(x);
    };
    cycle();
    const before = be.stats().reserved;
    for (let i = 0; i < 20; i++) cycle();
    expect(be.stats().reserved).toBe(before);
    // Reused blocks come back zeroed.
    const s = be.fromArray(Float32Array.from([1, 2, 3]), 'float32');
    be.free(s);
    expect([...be.read(be.alloc(3, 'float32'))]).toEqual([0, 0, 0]);
  });

  it('survives memory growth (views are rebuilt)', () => {
    const be = new WasmBackend({ initialPages: 1 });
    const a = be.fromArray(randomArray(1, 1000), 'float32');
    const big = be.alloc(3_000_000, 'float32');
    expect(be.stats().grows).toBeGreaterThan(0);
    be.fill(big, 2);
    expect(be.read(big)[2_999_999]).toBe(2);
    expect(be.read(a)).toEqual(randomArray(1, 1000));
  });

  // Byte addresses are unsigned i32: a block at or above 2 GiB must not turn into a negative view
  // index (ten tables of 1e6 rows with their Adam state reach it). The 2 GiB block is reserved,
  // never written, so the test touches only the pages it reads.
  it('views, uploads and gathers blocks above 2 GiB', () => {
    const be = new WasmBackend({ initialPages: 1 });
    const low = be.alloc(2 ** 29, 'float32');
    const table = be.fromArray(randomArray(3, 40), 'float32');
    expect(be.stats().reserved).toBeGreaterThan(2 ** 31);
    expect(be.read(table)).toEqual(randomArray(3, 40));
    const out = be.alloc(8, 'float32');
    // gatherRows uploads its ids to scratch above the table, past 2 GiB too.
    be.gatherRows(table, 4, Int32Array.from([9, 0]), out);
    expect(Array.from(be.read(out))).toEqual([...randomArray(3, 40).slice(36, 40), ...randomArray(3, 40).slice(0, 4)]);
    be.free(low);
    be.dispose();
  });
});

describe.each(suites)('simd=$simd threads=$threads', ({ simd, threads, make }) => {
  beforeAll(async () => {
    wasm = make();
    expect(wasm.simd).toBe(simd);
    await wasm.ready();
  });
  afterAll(() => {
    wasm.dispose();
  });

  describe('wasm backend: the kernel checks every backend runs', () => {
    for (const c of kernelChecks(0.5)) it(c.name, () => c.run(wasm));
  });

  describe('wasm backend: GEMM', () => {
    /** One product from seeded operands (and a seeded output, which it overwrites) on both backends, compared. */
    const matmulAgrees = (g: MatmulGeometry, seed: number): void => {
      const A = pair(randomArray(seed, (g.batchA ? g.batch : 1) * g.m * g.k));
      const B = pair(randomArray(seed + 1, (g.batchB ? g.batch : 1) * g.k * g.n));
      const O = pair(randomArray(seed + 2, g.batch * g.m * g.n));
      ref.matmul(A[0], B[0], O[0], g);
      wasm.matmul(A[1], B[1], O[1], g);
      check(O, sumTol(g.k), `matmul ${JSON.stringify(g)}`);
      freeAll(A, B, O);
    };

    it('matches the reference in every layout, batched and broadcast, past the tile sizes', () => {
      fc.assert(
        fc.property(
          fc.record({
            m: fc.integer({ min: 1, max: 70 }),
            n: fc.integer({ min: 1, max: 70 }),
            k: fc.integer({ min: 0, max: 70 }),
            transA: fc.boolean(),
            transB: fc.boolean(),
            batch: fc.integer({ min: 1, max: 3 }),
            batchA: fc.boolean(),
            batchB: fc.boolean(),
            seed: fc.integer(),
          }),
          (g) => matmulAgrees(g, g.seed),
        ),
        { numRuns: 150 },
      );
    });

    it('runs many small products in one call: per-row pooling shapes, every layout and broadcast', () => {
      // DIN's attention pooling and its two gradients ([1, 10]·[10, 18], [1, 18]·[10, 18]ᵀ, [10, 1]·[1, 18])
      // over a batch of rows, and odd widths that leave a column tail.
      for (const [batch, m, n, k] of [
        [1024, 1, 18, 10],
        [1024, 1, 10, 18],
        [1024, 10, 18, 1],
        [37, 3, 7, 5],
        [5, 9, 4, 13],
      ]) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const [batchA, batchB] of [
              [true, true],
              [true, false],
              [false, true],
            ]) {
              matmulAgrees({ batch, m, n, k, transA, transB, batchA, batchB }, m + k);
            }
          }
        }
      }
    });

    it('sums a long k in blocks (weight gradients over many rows) as the reference does', () => {
      // k past one block, an uneven last block and edge tiles in both directions.
      for (const [m, n, k] of [
        [40, 80, 10240],
        [13, 9, 4099],
        [5, 3, 2049],
      ]) {
        matmulAgrees({ batch: 1, m, n, k, transA: true, transB: false, batchA: false, batchB: false }, m + n);
      }
    });

    it('packs the contiguous layouts (Aᵀ, B as stored) in whole panels and tails, short and long k', () => {
      // Aᵀ and B as stored are copied a panel slice per p (4 or 8 floats); counts that leave a
      // partial last panel send it to the element loop, and k = 1024 is the weight gradients'.
      for (const [m, n, k] of [
        [4, 8, 1],
        [13, 21, 37],
        [16, 24, 3],
        [180, 200, 1024],
        [7, 9, 1024],
      ]) {
        for (const transB of [false, true]) {
          matmulAgrees({ batch: 1, m, n, k, transA: true, transB, batchA: false, batchB: false }, m + 2 * k);
        }
      }
    });

    it('handles the vector shapes (n = 1, m = 1) in all layouts', () => {
      for (const [m, n, k] of [
        [33, 1, 70],
        [1, 45, 19],
        [1, 1, 9],
        [70, 1, 1],
      ]) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const g = { batch: 1, m, n, k, transA, transB, batchA: false, batchB: false };
            const A = pair(randomArray(m + k, m * k));
            const B = pair(randomArray(n + k, k * n));
            const O = pair(new Float32Array(m * n));
            ref.matmul(A[0], B[0], O[0], g);
            wasm.matmul(A[1], B[1], O[1], g);
            check(O, sumTol(k), `matmul ${JSON.stringify(g)}`);
            freeAll(A, B, O);
          }
        }
      }
    });
  });

  describe('wasm backend: linearPrelu', () => {
    // The last number is the bias rows: 1 is one bias for all rows; more split the rows into runs
    // (10 and 14 rows, which cross the 4-row tiles, and one run per row).
    it('equals matmul, bias add and prelu bit for bit (the epilogue rounds as the separate passes do)', () => {
      for (const [m, n, k, groups] of [
        [1024, 200, 180, 1],
        [37, 13, 9, 1],
        [5, 8, 1, 1],
        [1024, 80, 36, 1024 / 8],
        [40, 80, 36, 4],
        [42, 13, 9, 3],
        [7, 12, 5, 7],
      ]) {
        const g = { batch: 1, m, n, k, transA: false, transB: true, batchA: false, batchB: false };
        const [x, w, b, s] = [m * k, n * k, n * groups, n].map((len, i) =>
          wasm.fromArray(randomArray(i + 7, len), 'float32'),
        );
        const [pre, out, z, sep] = [0, 1, 2, 3].map(() => wasm.alloc(m * n, 'float32'));
        const label = `${m}×${n}×${k}, ${groups} bias rows`;
        wasm.linearPrelu(x, w, b, s, m, n, k, pre, out, groups);
        wasm.matmul(x, w, z, g);
        const shape = [groups, m / groups, n];
        wasm.binary('add', z, shape, b, [groups, 1, n], z, shape);
        wasm.prelu(z, s, n, sep);
        expect(Array.from(wasm.read(pre)), `pre ${label}`).toEqual(Array.from(wasm.read(z)));
        expect(Array.from(wasm.read(out)), `out ${label}`).toEqual(Array.from(wasm.read(sep)));
        // The backward's bias gradient sums each run's rows: the reference's order, so bit for bit.
        const gOut = wasm.fromArray(randomArray(41, m * n), 'float32');
        const [gp, gs, gb] = [m * n, n, n * groups].map((len) => wasm.alloc(len, 'float32'));
        const [rgp, rgs, rgb] = [m * n, n, n * groups].map((len) => ref.alloc(len, 'float32'));
        wasm.linearPreluBackward(pre, s, gOut, n, gp, gs, gb, groups);
        const [rp, rs, rg] = [pre, s, gOut].map((t) => ref.fromArray(wasm.read(t), 'float32'));
        ref.linearPreluBackward(rp, rs, rg, n, rgp, rgs, rgb, groups);
        expect(Array.from(wasm.read(gb)), `bias gradient ${label}`).toEqual(Array.from(ref.read(rgb)));
        expect(Array.from(wasm.read(gp)), `pre gradient ${label}`).toEqual(Array.from(ref.read(rgp)));
        for (const t of [x, w, b, s, pre, out, z, sep, gOut, gp, gs, gb]) wasm.free(t);
      }
    });
  });

  describe('wasm backend: elementwise', () => {
    const unaryOps: UnaryOp[] = [
      'neg',
      'exp',
      'log',
      'log1p',
      'sqrt',
      'square',
      'abs',
      'sigmoid',
      'logSigmoid',
      'tanh',
      'relu',
      'step',
      'sign',
    ];

    it('unary ops match, including tails, zeros and negatives', () => {
      fc.assert(
        fc.property(fc.constantFrom(...unaryOps), fc.integer({ min: 0, max: 67 }), fc.integer(), (op, n, seed) => {
          const data = randomArray(seed, n, -30, 30);
          if (n > 2) data[1] = 0;
          const X = pair(data);
          const O = pair(new Float32Array(n));
          ref.unary(op, X[0], O[0]);
          wasm.unary(op, X[1], O[1]);
          check(O, F32_TOL, `unary ${op}`);
          // In place (out === x) as the core may do.
          wasm.unary(op, X[1], X[1]);
          check([O[0], X[1]], F32_TOL, `unary ${op} in place`);
          freeAll(X, O);
        }),
        RUNS,
      );
    });

    it('affine and axpby match', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 67 }),
          fc.double({ min: -3, max: 3, noNaN: true }),
          fc.double({ min: -3, max: 3, noNaN: true }),
          fc.integer(),
          (n, p, q, seed) => {
            const X = pair(randomArray(seed, n));
            const Y = pair(randomArray(seed + 1, n));
            const O = pair(new Float32Array(n));
            ref.affine(X[0], p, q, O[0]);
            wasm.affine(X[1], p, q, O[1]);
            check(O, F32_TOL, 'affine');
            ref.axpby(p, X[0], q, Y[0], O[0]);
            wasm.axpby(p, X[1], q, Y[1], O[1]);
            check(O, F32_TOL, 'axpby');
            freeAll(X, Y, O);
          },
        ),
        RUNS,
      );
    });

    const binaryOps: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow'];
    /** An output shape and operand shapes broadcast into it (dims dropped or set to 1). */
    const broadcastCase = fc
      .record({
        out: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 0, maxLength: 4 }),
        dropA: fc.nat(4),
        dropB: fc.nat(4),
        onesA: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        onesB: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      })
      .map(({ out, dropA, dropB, onesA, onesB }) => {
        const derive = (drop: number, ones: boolean[]): number[] =>
          out.slice(Math.min(drop, out.length)).map((d, i) => (ones[i] ? 1 : d));
        return { out, a: derive(dropA, onesA), b: derive(dropB, onesB) };
      });

    it('binary ops match with broadcasting (fast paths and the generic path)', () => {
      fc.assert(
        fc.property(fc.constantFrom(...binaryOps), broadcastCase, fc.integer(), (op, s, seed) => {
          const size = (sh: number[]): number => sh.reduce((p, d) => p * d, 1);
          const lo = op === 'pow' ? 0.1 : -2;
          const A = pair(randomArray(seed, size(s.a), lo, 2));
          const B = pair(randomArray(seed + 1, size(s.b), -2, 2));
          const O = pair(new Float32Array(size(s.out)));
          ref.binary(op, A[0], s.a, B[0], s.b, O[0], s.out);
          wasm.binary(op, A[1], s.a, B[1], s.b, O[1], s.out);
          check(O, F32_TOL, `binary ${op} ${JSON.stringify(s)}`);
          freeAll(A, B, O);
        }),
        { numRuns: 200 },
      );
    });

    it('binary ops accept out aliasing an operand', () => {
      const A = pair(randomArray(5, 24));
      const B = pair(randomArray(6, 6));
      ref.binary('add', A[0], [4, 6], B[0], [6], A[0], [4, 6]);
      wasm.binary('add', A[1], [4, 6], B[1], [6], A[1], [4, 6]);
      check(A, F32_TOL, 'bias add in place');
      freeAll(A, B);
    });
  });

  describe('wasm backend: reductions and layout', () => {
    it('reduceSum matches for every axis subset', () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 }),
          fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
          fc.integer(),
          (shape, pick, seed) => {
            const axes = shape.map((_, i) => i).filter((i) => pick[i]);
            const size = shape.reduce((p, d) => p * d, 1);
            const outSize = shape.reduce((p, d, i) => p * (axes.includes(i) ? 1 : d), 1);
            const X = pair(randomArray(seed, size));
            const O = pair(new Float32Array(outSize));
            ref.reduceSum(X[0], shape, axes, O[0]);
            wasm.reduceSum(X[1], shape, axes, O[1]);
            check(O, sumTol(size), `reduceSum ${JSON.stringify({ shape, axes })}`);
            freeAll(X, O);
          },
        ),
        RUNS,
      );
    });

    it('a sum over a middle axis (the gradient of a per-row term) is exact', () => {
      const X = pair(randomArray(10, 64 * 10 * 18));
      const O = pair(new Float32Array(64 * 18));
      ref.reduceSum(X[0], [64, 10, 18], [1], O[0]);
      wasm.reduceSum(X[1], [64, 10, 18], [1], O[1]);
      expect(wasm.read(O[1])).toEqual(ref.read(O[0]));
      freeAll(X, O);
    });

    it('bias-gradient reduction over the leading axis is exact', () => {
      const X = pair(randomArray(9, 1024 * 37));
      const O = pair(new Float32Array(37));
      ref.reduceSum(X[0], [1024, 37], [0], O[0]);
      wasm.reduceSum(X[1], [1024, 37], [0], O[1]);
      expect(wasm.read(O[1])).toEqual(ref.read(O[0]));
      freeAll(X, O);
    });

    it('permute, copyBlock, reduceMaxLast and softmaxLast match', () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }),
          fc.integer(),
          (shape, seed) => {
            const r = rng(seed);
            const size = shape.reduce((p, d) => p * d, 1);
            const X = pair(randomArray(seed, size));
            // permute
            const perm = shape.map((_, i) => i).sort(() => r() - 0.5);
            const P = pair(new Float32Array(size));
            ref.permute(X[0], shape, perm, P[0]);
            wasm.permute(X[1], shape, perm, P[1]);
            check(P, F32_TOL, 'permute');
            // copyBlock of a random sub-block into a larger array
            const begin = shape.map((d) => Math.floor(r() * d));
            const extent = shape.map((d, i) => 1 + Math.floor(r() * (d - begin[i])));
            const outShape = shape.map((d) => d + 2);
            const outBegin = extent.map((e, i) => Math.floor(r() * (outShape[i] - e + 1)));
            const C = pair(
              randomArray(
                seed + 3,
                outShape.reduce((p, d) => p * d, 1),
              ),
            );
            ref.copyBlock(X[0], shape, begin, C[0], outShape, outBegin, extent);
            wasm.copyBlock(X[1], shape, begin, C[1], outShape, outBegin, extent);
            check(C, { rel: 0, abs: 0 }, 'copyBlock');
            // last-axis kernels
            const cols = shape[shape.length - 1];
            const rows = size / cols;
            const M = pair(new Float32Array(rows));
            ref.reduceMaxLast(X[0], rows, cols, M[0]);
            wasm.reduceMaxLast(X[1], rows, cols, M[1]);
            check(M, F32_TOL, 'reduceMaxLast');
            const mask = pair(Float32Array.from({ length: size }, () => (r() < 0.3 ? 0 : 1)));
            const S = pair(new Float32Array(size));
            ref.softmaxLast(X[0], mask[0], rows, cols, S[0]);
            wasm.softmaxLast(X[1], mask[1], rows, cols, S[1]);
            check(S, F32_TOL, 'softmaxLast');
            freeAll(X, P, C, M, mask, S);
          },
        ),
        RUNS,
      );
    });

    it('copyBlock matches on concat and split layouts, merged runs, long runs, float64 and rank 0', () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 2 }),
          fc.integer({ min: 1, max: 150 }),
          fc.integer({ min: 1, max: 4 }),
          fc.boolean(),
          fc.boolean(),
          fc.constantFrom<'float32' | 'float64'>('float32', 'float64'),
          fc.integer(),
          (lead, inner, parts, whole, split, dtype, seed) => {
            // A block of `inner` columns at column offset `at` of a wider array, as concat (into
            // the wide one) or split (out of it); `whole` copies entire arrays (fully merged runs).
            const narrow = [...lead, inner];
            const wide = [...lead, whole ? inner : inner * parts];
            const at = whole ? 0 : inner * Math.floor(rng(seed)() * parts);
            const zeros = narrow.map(() => 0);
            const offs = [...lead.map(() => 0), at];
            const [srcShape, outShape, srcBegin, outBegin] = split
              ? [wide, narrow, offs, zeros]
              : [narrow, wide, zeros, offs];
            const size = (sh: number[]): number => sh.reduce((p, d) => p * d, 1);
            const mk = (n: number, sd: number): [Storage, Storage] => {
              const data = dtype === 'float64' ? Float64Array.from(randomArray(sd, n)) : randomArray(sd, n);
              return [ref.fromArray(data, dtype), wasm.fromArray(data, dtype)];
            };
            const X = mk(size(srcShape), seed);
            const C = mk(size(outShape), seed + 1);
            ref.copyBlock(X[0], srcShape, srcBegin, C[0], outShape, outBegin, narrow);
            wasm.copyBlock(X[1], srcShape, srcBegin, C[1], outShape, outBegin, narrow);
            expect(wasm.read(C[1])).toEqual(ref.read(C[0]));
            freeAll(X, C);
          },
        ),
        RUNS,
      );
      const X = pair(Float32Array.of(7));
      const C = pair(Float32Array.of(1));
      ref.copyBlock(X[0], [], [], C[0], [], [], []);
      wasm.copyBlock(X[1], [], [], C[1], [], [], []);
      check(C, { rel: 0, abs: 0 }, 'copyBlock rank 0');
      freeAll(X, C);
    });
  });

  describe('wasm backend: rows and embeddings', () => {
    /** Bags with empty ones, repeated ids and optional weights. */
    const bagCase = fc.record({
      rows: fc.integer({ min: 1, max: 20 }),
      dim: fc.integer({ min: 1, max: 19 }),
      bagSizes: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 9 }),
      weighted: fc.boolean(),
      mode: fc.constantFrom<BagMode>('sum', 'mean', 'sqrtn'),
      seed: fc.integer(),
    });

    it('embeddingBag and gatherRows match', () => {
      fc.assert(
        fc.property(bagCase, (c) => {
          const r = rng(c.seed);
          const offsets = new Int32Array(c.bagSizes.length + 1);
          c.bagSizes.forEach((s, i) => (offsets[i + 1] = offsets[i] + s));
          const nIds = offsets[offsets.length - 1];
          // Few distinct rows so ids repeat, within and across bags.
          const ids = Int32Array.from({ length: nIds }, () => Math.floor(r() * Math.min(c.rows, 4)));
          const weights = c.weighted ? randomArray(c.seed + 1, nIds, 0, 2) : null;
          const T = pair(randomArray(c.seed + 2, c.rows * c.dim));
          const O = pair(new Float32Array(c.bagSizes.length * c.dim));
          ref.embeddingBag(T[0], c.dim, ids, offsets, weights, c.mode, O[0]);
          wasm.embeddingBag(T[1], c.dim, ids, offsets, weights, c.mode, O[1]);
          check(O, sumTol(6), `embeddingBag ${JSON.stringify(c)}`);
          const G = pair(new Float32Array(nIds * c.dim));
          ref.gatherRows(T[0], c.dim, ids, G[0]);
          wasm.gatherRows(T[1], c.dim, ids, G[1]);
          check(G, { rel: 0, abs: 0 }, 'gatherRows');
          freeAll(T, O, G);
        }),
        RUNS,
      );
    });

    it(`embeddingBag and gatherRows match over many ids: chunks of ${TOUCH_CHUNK} rows touched ahead`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 19 }),
          // Bags longer than a chunk, empty ones, and totals on both sides of chunk multiples.
          fc.array(fc.integer({ min: 0, max: 2 * TOUCH_CHUNK + 3 }), { minLength: 1, maxLength: 6 }),
          fc.constantFrom<BagMode>('sum', 'mean', 'sqrtn'),
          fc.boolean(),
          fc.integer(),
          (dim, bagSizes, mode, weighted, seed) => {
            const rows = 700;
            const r = rng(seed);
            const offsets = new Int32Array(bagSizes.length + 1);
            bagSizes.forEach((n, i) => (offsets[i + 1] = offsets[i] + n));
            const nIds = offsets[offsets.length - 1];
            const ids = Int32Array.from({ length: nIds }, () => Math.floor(r() * rows));
            const weights = weighted ? randomArray(seed + 1, nIds, 0, 2) : null;
            const T = pair(randomArray(seed + 2, rows * dim));
            const O = pair(new Float32Array(bagSizes.length * dim));
            ref.embeddingBag(T[0], dim, ids, offsets, weights, mode, O[0]);
            wasm.embeddingBag(T[1], dim, ids, offsets, weights, mode, O[1]);
            check(O, sumTol(2 * TOUCH_CHUNK + 3), 'embeddingBag');
            const G = pair(new Float32Array(nIds * dim));
            ref.gatherRows(T[0], dim, ids, G[0]);
            wasm.gatherRows(T[1], dim, ids, G[1]);
            check(G, { rel: 0, abs: 0 }, 'gatherRows');
            freeAll(T, O, G);
          },
        ),
        { numRuns: 30 },
      );
    });

    it('segmentSumRows and scatterAddRows match', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 19 }),
          fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 8 }),
          fc.boolean(),
          fc.integer(),
          (dim, segSizes, scaled, seed) => {
            const r = rng(seed);
            const segments = new Int32Array(segSizes.length + 1);
            segSizes.forEach((s, i) => (segments[i + 1] = segments[i] + s));
            const count = segments[segments.length - 1];
            const srcRowsN = 7;
            const srcRows = Int32Array.from({ length: count }, () => Math.floor(r() * srcRowsN));
            const scales = scaled ? randomArray(seed + 1, count, -1, 1) : null;
            const S = pair(randomArray(seed + 2, srcRowsN * dim));
            const O = pair(randomArray(seed + 3, segSizes.length * dim));
            ref.segmentSumRows(S[0], dim, segments, srcRows, scales, O[0]);
            wasm.segmentSumRows(S[1], dim, segments, srcRows, scales, O[1]);
            check(O, sumTol(5), 'segmentSumRows');
            // scatter: distinct target rows
            const target = 12;
            const rows = Int32Array.from(
              Array.from({ length: target }, (_, i) => i)
                .sort(() => r() - 0.5)
                .slice(0, Math.min(segSizes.length, target)),
            );
            const V = pair(randomArray(seed + 4, rows.length * dim));
            const D = pair(randomArray(seed + 5, target * dim));
            ref.scatterAddRows(V[0], dim, rows, D[0]);
            wasm.scatterAddRows(V[1], dim, rows, D[1]);
            check(D, F32_TOL, 'scatterAddRows');
            freeAll(S, O, V, D);
          },
        ),
        RUNS,
      );
    });
  });

  describe('wasm backend: fused nn kernels', () => {
    it('prelu and its backward match', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 9 }),
          fc.integer({ min: 1, max: 23 }),
          fc.integer(),
          (rows, channels, seed) => {
            const n = rows * channels;
            const X = pair(randomArray(seed, n, -2, 2));
            const Sl = pair(randomArray(seed + 1, channels, 0, 0.5));
            const G = pair(randomArray(seed + 2, n));
            const O = pair(new Float32Array(n));
            ref.prelu(X[0], Sl[0], channels, O[0]);
            wasm.prelu(X[1], Sl[1], channels, O[1]);
            check(O, F32_TOL, 'prelu');
            const GX = pair(new Float32Array(n));
            const GS = pair(randomArray(seed + 3, channels));
            ref.preluBackward(X[0], Sl[0], G[0], channels, GX[0], GS[0]);
            wasm.preluBackward(X[1], Sl[1], G[1], channels, GX[1], GS[1]);
            check(GX, F32_TOL, 'prelu dx');
            check(GS, sumTol(rows), 'prelu dslope');
            freeAll(X, Sl, G, O, GX, GS);
          },
        ),
        RUNS,
      );
    });

    it('BCE and product-BCE (forward and backward) match, also for large logits', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 40 }), fc.integer(), (n, seed) => {
          const r = rng(seed);
          const A = pair(randomArray(seed, n, -40, 40));
          const B = pair(randomArray(seed + 1, n, -40, 40));
          const Y = pair(Float32Array.from({ length: n }, () => (r() < 0.5 ? 0 : 1)));
          const G = pair(randomArray(seed + 2, n));
          const O = pair(new Float32Array(n));
          const O2 = pair(new Float32Array(n));
          ref.bceWithLogits(A[0], Y[0], O[0]);
          wasm.bceWithLogits(A[1], Y[1], O[1]);
          check(O, F32_TOL, 'bce');
          ref.bceWithLogitsBackward(A[0], Y[0], G[0], O[0]);
          wasm.bceWithLogitsBackward(A[1], Y[1], G[1], O[1]);
          check(O, F32_TOL, 'bce backward');
          ref.productBce(A[0], B[0], Y[0], O[0]);
          wasm.productBce(A[1], B[1], Y[1], O[1]);
          check(O, F32_TOL, 'productBce');
          ref.productBceBackward(A[0], B[0], Y[0], G[0], O[0], O2[0]);
          wasm.productBceBackward(A[1], B[1], Y[1], G[1], O[1], O2[1]);
          check(O, F32_TOL, 'productBce dA');
          check(O2, F32_TOL, 'productBce dB');
          freeAll(A, B, Y, G, O, O2);
        }),
        RUNS,
      );
    });
  });

  describe('wasm backend: optimizers', () => {
    const hyper = (step: number, weightDecay: number): AdamHyper => ({
      lr: 0.01,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay,
      step,
    });

    it('adam and sparseAdam match over several steps', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 13 }),
          fc.integer({ min: 1, max: 9 }),
          fc.boolean(),
          fc.integer(),
          (rows, dim, decay, seed) => {
            const n = rows * dim;
            const P = pair(randomArray(seed, n));
            const M = pair(new Float32Array(n));
            const V = pair(new Float32Array(n));
            const P2 = pair(randomArray(seed + 1, n));
            const M2 = pair(new Float32Array(n));
            const V2 = pair(new Float32Array(n));
            const r = rng(seed);
            for (let step = 1; step <= 3; step++) {
              const h = hyper(step, decay ? 0.01 : 0);
              const Gd = pair(randomArray(seed + 10 * step, n));
              ref.adam(P[0], Gd[0], M[0], V[0], h);
              wasm.adam(P[1], Gd[1], M[1], V[1], h);
              const touched = Int32Array.from(Array.from({ length: rows }, (_, i) => i).filter(() => r() < 0.6));
              const Gs = pair(randomArray(seed + 10 * step + 1, touched.length * dim));
              ref.sparseAdam(P2[0], M2[0], V2[0], dim, touched, Gs[0], h);
              wasm.sparseAdam(P2[1], M2[1], V2[1], dim, touched, Gs[1], h);
              freeAll(Gd, Gs);
            }
            for (const [x, what] of [
              [P, 'p'],
              [M, 'm'],
              [V, 'v'],
              [P2, 'sparse p'],
              [M2, 'sparse m'],
              [V2, 'sparse v'],
            ] as const) {
              check(x, F32_TOL, `adam ${what}`);
            }
            freeAll(P, M, V, P2, M2, V2);
          },
        ),
        { numRuns: 40 },
      );
    });

    // The kernels compute in f32x4 where the reference uses f64: every step, m and v may differ
    // by a few ulp (absolutely, by a few ulp of the larger of their two terms) and p by a few ulp
    // of itself. Checked per step from identical state, so errors cannot compound unnoticed.
    const ADAM_STEP_TOL: Tol = { rel: 1e-6, abs: 3e-8 };
    it(`sparseAdam matches over many rows: chunks of ${TOUCH_CHUNK} rows touched ahead`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 4 * TOUCH_CHUNK + 5 }),
          fc.integer({ min: 1, max: 19 }),
          fc.integer(),
          (rows, dim, seed) => {
            const n = rows * dim;
            const P = pair(randomArray(seed, n));
            const M = pair(randomArray(seed + 1, n, -0.1, 0.1));
            const V = pair(randomArray(seed + 2, n, 0, 0.1));
            const r = rng(seed);
            const touched = Int32Array.from(Array.from({ length: rows }, (_, i) => i).filter(() => r() < 0.8));
            const G = pair(randomArray(seed + 3, touched.length * dim));
            const h = hyper(3, 0.01);
            ref.sparseAdam(P[0], M[0], V[0], dim, touched, G[0], h);
            wasm.sparseAdam(P[1], M[1], V[1], dim, touched, G[1], h);
            for (const [x, what] of [
              [P, 'p'],
              [M, 'm'],
              [V, 'v'],
            ] as const)
              check(x, F32_TOL, `sparseAdam ${what}`);
            freeAll(P, M, V, G);
          },
        ),
        { numRuns: 30 },
      );
    });

    it('adam and sparseAdam stay within float32 rounding of the f64 reference on every step', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 40 }),
          fc.constantFrom(1, 2, 3, 4, 5, 7, 8, 18, 19),
          fc.boolean(),
          fc.integer(),
          (rows, dim, decay, seed) => {
            const n = rows * dim;
            const r = rng(seed);
            const state = [
              randomArray(seed, n),
              randomArray(seed + 1, n, -0.1, 0.1),
              randomArray(seed + 2, n, 0, 0.01),
            ];
            for (let step = 1; step <= 4; step++) {
              const h = hyper(step, decay ? 0.01 : 0);
              const sparseEps = { ...h, eps: h.eps / Math.sqrt(1 - Math.pow(h.beta2, step)) };
              const touched = Int32Array.from(Array.from({ length: rows }, (_, i) => i).filter(() => r() < 0.6));
              const gd = randomArray(seed + 10 * step, n);
              const gs = randomArray(seed + 10 * step + 1, touched.length * dim);
              for (const sparse of [false, true]) {
                const [P, M, V] = state.map((x) => pair(x));
                const G = pair(sparse ? gs : gd);
                if (sparse) {
                  ref.sparseAdam(P[0], M[0], V[0], dim, touched, G[0], sparseEps);
                  wasm.sparseAdam(P[1], M[1], V[1], dim, touched, G[1], sparseEps);
                } else {
                  ref.adam(P[0], G[0], M[0], V[0], h);
                  wasm.adam(P[1], G[1], M[1], V[1], h);
                }
                const tag = `${sparse ? 'sparse' : 'dense'} step ${step} dim ${dim}`;
                check(P, ADAM_STEP_TOL, `adam p ${tag}`);
                check(M, ADAM_STEP_TOL, `adam m ${tag}`);
                check(V, { rel: 1e-6, abs: 1e-12 }, `adam v ${tag}`);
                // Carry the reference state forward, so the next step starts from identical values.
                if (sparse) state.splice(0, 3, ...[P, M, V].map(([x]) => ref.read(x) as Float32Array));
                freeAll(P, M, V, G);
              }
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  });

  describe('wasm backend: float64', () => {
    it('runs float64 kernels with reference results', () => {
      const a = randomArray(3, 6 * 5);
      const b = randomArray(4, 5 * 7);
      const A64 = [
        ref.fromArray(Float64Array.from(a), 'float64'),
        wasm.fromArray(Float64Array.from(a), 'float64'),
      ] as const;
      const B64 = [
        ref.fromArray(Float64Array.from(b), 'float64'),
        wasm.fromArray(Float64Array.from(b), 'float64'),
      ] as const;
      const O64 = [ref.alloc(42, 'float64'), wasm.alloc(42, 'float64')] as const;
      const g = { batch: 1, m: 6, n: 7, k: 5, transA: false, transB: false, batchA: false, batchB: false };
      ref.matmul(A64[0], B64[0], O64[0], g);
      wasm.matmul(A64[1], B64[1], O64[1], g);
      const out = wasm.read(O64[1]);
      expect(out).toBeInstanceOf(Float64Array);
      expect(out).toEqual(ref.read(O64[0]));
      wasm.unary('sigmoid', O64[1], O64[1]);
      ref.unary('sigmoid', O64[0], O64[0]);
      expect(wasm.read(O64[1])).toEqual(ref.read(O64[0]));
      const S = [ref.alloc(7, 'float64'), wasm.alloc(7, 'float64')] as const;
      ref.reduceSum(O64[0], [6, 7], [0], S[0]);
      wasm.reduceSum(O64[1], [6, 7], [0], S[1]);
      expect(wasm.read(S[1])).toEqual(ref.read(S[0]));
    });
  });

  if (threads === 2) {
    it('the worker thread took part', () => {
      expect(wasm.threads).toBe(2);
      expect(wasm.poolStats().workers).toBe(1);
      expect(wasm.poolStats().workerChunks).toBeGreaterThan(0);
    });
  }
});
