/**
 * Property checks comparing every kernel of a backend with the reference backend.
 *
 * Shared by the Node tests (`test/gpu-backend.test.ts`, `test/wasm-backend.test.ts`) and the browser runner, so it
 * depends only on fast-check and the kernels. Inputs are float32 values; a result
 * matches when |got - want| <= atol + rtol * |want| (defaults 1e-4 and 1e-4, loosened
 * only where a kernel sums many terms in a different order than the reference).
 */
import fc from 'fast-check';
import type { Backend, BagMode, BinaryOp, MatmulGeometry, Storage, UnaryOp } from '../../kernels/backend.js';
import { ReferenceBackend } from '../../kernels/reference.js';

/** One named property check. */
export interface KernelCheck {
  /** Kernel name and what the case covers. */
  name: string;
  /** Throws on a mismatch. */
  run(backend: Backend): void;
}

/** Tolerances of a comparison. */
export interface Tol {
  atol?: number;
  rtol?: number;
}

const ref = new ReferenceBackend();

/**
 * Optional hook on a backend under test: after each comparison's reads it hears which
 * comparison they belonged to and its tolerance, so a recording backend can replay the
 * same reads elsewhere (e.g. awaited on webgpu) against the same tolerances.
 */
export interface ComparisonSink {
  noteComparison(what: string, tol: Tol): void;
}

/** Deterministic float32 data in [lo, hi) from a seed (fast for large arrays). */
export function randomArray(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/** Throws with the first differing index when two arrays disagree beyond tolerance. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol: Tol = {}): void {
  const atol = tol.atol ?? 1e-4;
  const rtol = tol.rtol ?? 1e-4;
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (w === g) continue;
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      throw new Error(`${what}: index ${i} got ${g}, want ${w} (of ${want.length})`);
    }
  }
}

/** Runs `op` on both backends with the same inputs; compares the outputs named by `outs`. */
function compare(
  backend: Backend,
  what: string,
  inputs: Float32Array[],
  outSizes: number[],
  op: (b: Backend, ins: Storage[], outs: Storage[]) => void,
  tol: Tol = {},
  initialOuts?: Float32Array[],
): void {
  const run = (b: Backend): Float32Array[] => {
    const ins = inputs.map((x) => b.fromArray(x, 'float32'));
    const outs = outSizes.map((n, i) => (initialOuts ? b.fromArray(initialOuts[i], 'float32') : b.alloc(n, 'float32')));
    op(b, ins, outs);
    const values = outs.map((o) => Float32Array.from(b.read(o)));
    // Inputs may be updated in place (optimizers), so they are returned too.
    const after = ins.map((s) => Float32Array.from(b.read(s)));
    for (const s of [...ins, ...outs]) b.free(s);
    return [...values, ...after];
  };
  const want = run(ref);
  const got = run(backend);
  (backend as Partial<ComparisonSink>).noteComparison?.(what, tol);
  got.forEach((g, i) => assertClose(g, want[i], `${what} [array ${i}]`, tol));
}

const runs = (n: number) => ({ numRuns: n, seed: 424242 });
const size = fc.integer({ min: 1, max: 3000 });
const seed = fc.integer({ min: 1, max: 2 ** 31 - 1 });

const UNARY_RANGES: Record<UnaryOp, [number, number]> = {
  neg: [-5, 5],
  exp: [-20, 20],
  log: [0.001, 50],
  log1p: [-0.9, 50],
  sqrt: [0, 50],
  square: [-5, 5],
  abs: [-5, 5],
  sigmoid: [-100, 100],
  logSigmoid: [-100, 100],
  tanh: [-60, 60],
  relu: [-5, 5],
  step: [-5, 5],
  sign: [-5, 5],
};

const BINARY_OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow'];

/** Operands for a binary op, kept inside the op's well-defined domain. */
function binaryInputs(op: BinaryOp, na: number, nb: number, s: number, aligned = true): [Float32Array, Float32Array] {
  if (op === 'pow' && !aligned) {
    // Broadcast pairs are not index-aligned: positive bases, integer and half exponents.
    const b = randomArray(nb, s + 7, -3, 3).map((v) => Math.round(v * 2) / 2);
    return [randomArray(na, s, 0.1, 3), b];
  }
  if (op === 'pow') {
    const a = randomArray(na, s, 0.1, 3);
    // Some negative bases with integer exponents: the sign must survive.
    for (let i = 0; i < na; i += 3) a[i] = -a[i];
    const b = randomArray(nb, s + 7, -3, 3).map((v) => Math.round(v));
    for (let i = 0; i < nb; i += 5) b[i] = 0.5;
    for (let i = 0; i < na; i += 15) a[i] = Math.abs(a[i]);
    // A non-integer exponent on a negative base would be NaN on the reference; keep bases positive there.
    return [a.map((v, i) => (b[i % nb] % 1 !== 0 ? Math.abs(v) : v)), b];
  }
  const a = randomArray(na, s);
  const b = randomArray(nb, s + 7);
  if (op === 'div') return [a, b.map((v) => (v >= 0 ? v + 0.5 : v - 0.5))];
  return [a, b];
}

/** A shape of rank 1..4 with small dims. */
const shapeArb = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 });
const prod = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);

/** Every kernel check. `scale` multiplies run counts (browser runs use fewer). */
export function kernelChecks(scale = 1): KernelCheck[] {
  const n = (k: number) => Math.max(1, Math.round(k * scale));
  const checks: KernelCheck[] = [];
  const add = (name: string, run: (b: Backend) => void) => checks.push({ name, run });

  add('storage: fromArray/read/write/fill/copy/alloc', (b) => {
    fc.assert(
      fc.property(size, seed, (len, s) => {
        const x = randomArray(len, s);
        const st = b.fromArray(x, 'float32');
        assertClose(b.read(st), x, 'fromArray');
        const y = randomArray(len, s + 1);
        b.write(st, y);
        assertClose(b.read(st), y, 'write');
        const c = b.alloc(len, 'float32');
        assertClose(b.read(c), new Float32Array(len), 'alloc zero');
        b.copy(st, c);
        b.fill(st, 2.5);
        assertClose(b.read(c), y, 'copy survives source overwrite');
        assertClose(b.read(st), new Float32Array(len).fill(2.5), 'fill');
        b.free(st);
        b.free(c);
      }),
      runs(n(8)),
    );
  });

  for (const op of Object.keys(UNARY_RANGES) as UnaryOp[]) {
    const [lo, hi] = UNARY_RANGES[op];
    add(`unary ${op}`, (b) => {
      fc.assert(
        fc.property(size, seed, (len, s) => {
          compare(b, `unary ${op}`, [randomArray(len, s, lo, hi)], [len], (bk, [x], [o]) => bk.unary(op, x, o), {
            atol: 2e-5,
            rtol: 2e-4,
          });
        }),
        runs(n(4)),
      );
    });
  }

  add('unary in place (out === x)', (b) => {
    const x = randomArray(5000, 3);
    compare(b, 'unary in place', [x], [], (bk, [xs]) => bk.unary('sigmoid', xs, xs));
  });

  add('affine and axpby', (b) => {
    fc.assert(
      fc.property(
        size,
        seed,
        fc.double({ min: -3, max: 3, noNaN: true }),
        fc.double({ min: -3, max: 3, noNaN: true }),
        (len, s, p, q) => {
          const x = randomArray(len, s);
          const y = randomArray(len, s + 1);
          compare(b, 'affine', [x], [len], (bk, [xs], [o]) => bk.affine(xs, p, q, o));
          compare(b, 'axpby', [x, y], [len], (bk, [xs, ys], [o]) => bk.axpby(p, xs, q, ys, o));
        },
      ),
      runs(n(6)),
    );
  });

  for (const op of BINARY_OPS) {
    add(`binary ${op} (same shape and broadcast)`, (b) => {
      fc.assert(
        fc.property(
          shapeArb,
          fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
          fc.integer({ min: 0, max: 2 }),
          seed,
          (outShape, ones, drop, s) => {
            // b's shape: some dims set to 1, some leading dims dropped.
            const bShape = outShape.map((d, i) => (ones[i] ? 1 : d)).slice(Math.min(drop, outShape.length - 1));
            const aShape = outShape.map((d, i) => (!ones[i] && i % 2 === 0 ? 1 : d));
            const [a, bb] = binaryInputs(op, prod(aShape), prod(bShape), s, false);
            compare(b, `binary ${op} broadcast`, [a, bb], [prod(outShape)], (bk, [x, y], [o]) =>
              bk.binary(op, x, aShape, y, bShape, o, outShape),
            );
            const [a2, b2] = binaryInputs(op, prod(outShape) * 40, prod(outShape) * 40, s + 3);
            const flat = [prod(outShape) * 40];
            compare(b, `binary ${op} same`, [a2, b2], flat, (bk, [x, y], [o]) =>
              bk.binary(op, x, flat, y, flat, o, flat),
            );
          },
        ),
        runs(n(5)),
      );
    });
  }

  add('reduceSum (any axes)', (b) => {
    fc.assert(
      fc.property(shapeArb, fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), seed, (shape, pick, s) => {
        const axes = shape.map((_, i) => i).filter((i) => pick[i]);
        const outSize = prod(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
        compare(
          b,
          'reduceSum',
          [randomArray(prod(shape), s)],
          [outSize],
          (bk, [x], [o]) => bk.reduceSum(x, shape, axes, o),
          {
            atol: 1e-4 * prod(shape),
          },
        );
      }),
      runs(n(12)),
    );
  });

  add('reduceSum with a loop past 1000', (b) => {
    const shape = [3, 1500];
    compare(b, 'reduceSum long', [randomArray(4500, 9)], [3], (bk, [x], [o]) => bk.reduceSum(x, shape, [1], o), {
      atol: 2e-3,
    });
    compare(b, 'reduceSum all', [randomArray(4500, 9)], [1], (bk, [x], [o]) => bk.reduceSum(x, shape, [0, 1], o), {
      atol: 5e-3,
    });
  });

  add('reduceMaxLast', (b) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 1200 }), seed, (rows, cols, s) => {
        compare(b, 'reduceMaxLast', [randomArray(rows * cols, s)], [rows], (bk, [x], [o]) =>
          bk.reduceMaxLast(x, rows, cols, o),
        );
      }),
      runs(n(6)),
    );
  });

  add('permute', (b) => {
    fc.assert(
      fc.property(shapeArb, seed, (shape, s) => {
        const perm = shape.map((_, i) => i);
        for (let i = perm.length - 1; i > 0; i--) {
          const j = (s >>> i) % (i + 1);
          [perm[i], perm[j]] = [perm[j], perm[i]];
        }
        compare(b, 'permute', [randomArray(prod(shape), s)], [prod(shape)], (bk, [x], [o]) =>
          bk.permute(x, shape, perm, o),
        );
      }),
      runs(n(12)),
    );
  });

  add('copyBlock (slice/concat)', (b) => {
    fc.assert(
      fc.property(shapeArb, seed, (extent, s) => {
        const srcShape = extent.map((d, i) => d + ((s >>> i) % 3));
        const outShape = extent.map((d, i) => d + ((s >>> (i + 5)) % 4));
        const srcBegin = extent.map((d, i) => (s >>> (i + 2)) % (srcShape[i] - d + 1));
        const outBegin = extent.map((d, i) => (s >>> (i + 9)) % (outShape[i] - d + 1));
        compare(
          b,
          'copyBlock',
          [randomArray(prod(srcShape), s)],
          [prod(outShape)],
          (bk, [x], [o]) => bk.copyBlock(x, srcShape, srcBegin, o, outShape, outBegin, extent),
          {},
          [randomArray(prod(outShape), s + 1)],
        );
      }),
      runs(n(12)),
    );
  });

  add('matmul (transposes, batches, broadcast)', (b) => {
    const geom = fc.record({
      batch: fc.integer({ min: 1, max: 3 }),
      m: fc.integer({ min: 1, max: 9 }),
      n: fc.integer({ min: 1, max: 9 }),
      k: fc.integer({ min: 1, max: 40 }),
      transA: fc.boolean(),
      transB: fc.boolean(),
      batchA: fc.boolean(),
      batchB: fc.boolean(),
    });
    fc.assert(
      fc.property(geom, seed, (g: MatmulGeometry, s) => {
        const aSize = (g.batchA ? g.batch : 1) * g.m * g.k;
        const bSize = (g.batchB ? g.batch : 1) * g.k * g.n;
        compare(
          b,
          'matmul',
          [randomArray(aSize, s), randomArray(bSize, s + 1)],
          [g.batch * g.m * g.n],
          (bk, [x, y], [o]) => bk.matmul(x, y, o, g),
          { atol: 1e-4 * g.k },
        );
      }),
      runs(n(15)),
    );
  });

  add('matmul with k past 1000 and output past one texture row', (b) => {
    const g: MatmulGeometry = {
      batch: 1,
      m: 3,
      n: 4,
      k: 1100,
      transA: false,
      transB: true,
      batchA: true,
      batchB: true,
    };
    compare(
      b,
      'matmul long k',
      [randomArray(3 * 1100, 1), randomArray(4 * 1100, 2)],
      [12],
      (bk, [x, y], [o]) => bk.matmul(x, y, o, g),
      {
        atol: 5e-3,
      },
    );
    const wide: MatmulGeometry = {
      batch: 2,
      m: 150,
      n: 140,
      k: 3,
      transA: true,
      transB: false,
      batchA: false,
      batchB: true,
    };
    compare(
      b,
      'matmul wide',
      [randomArray(150 * 3, 3), randomArray(2 * 3 * 140, 4)],
      [2 * 150 * 140],
      (bk, [x, y], [o]) => bk.matmul(x, y, o, wide),
    );
  });

  add('gatherRows (repeated ids, large)', (b) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 17 }), seed, (rows, dim, s) => {
        const ids = Int32Array.from(randomArray(40, s, 0, rows).map(Math.floor));
        compare(b, 'gatherRows', [randomArray(rows * dim, s)], [ids.length * dim], (bk, [x], [o]) =>
          bk.gatherRows(x, dim, ids, o),
        );
      }),
      runs(n(10)),
    );
    const ids = Int32Array.from({ length: 20000 }, (_, i) => (i * 7919) % 300);
    compare(b, 'gatherRows 20000x4', [randomArray(300 * 4, 5)], [80000], (bk, [x], [o]) => bk.gatherRows(x, 4, ids, o));
  });

  const bagArb = fc.record({
    rows: fc.integer({ min: 1, max: 30 }),
    dim: fc.integer({ min: 1, max: 9 }),
    bags: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 12 }),
    weighted: fc.boolean(),
    mode: fc.constantFrom<BagMode>('sum', 'mean', 'sqrtn'),
    s: seed,
  });
  const bagData = (rows: number, bags: number[], weighted: boolean, s: number) => {
    const offsets = Int32Array.from([0, ...bags.map((_, i) => bags.slice(0, i + 1).reduce((p, q) => p + q, 0))]);
    const total = offsets[offsets.length - 1];
    const ids = Int32Array.from(randomArray(total, s, 0, rows).map(Math.floor));
    const weights = weighted ? randomArray(total, s + 3, 0.1, 2) : null;
    return { offsets, ids, weights };
  };

  add('embeddingBag (modes, weights, empty bags, repeated ids)', (b) => {
    fc.assert(
      fc.property(bagArb, ({ rows, dim, bags, weighted, mode, s }) => {
        const { offsets, ids, weights } = bagData(rows, bags, weighted, s);
        compare(b, `embeddingBag ${mode}`, [randomArray(rows * dim, s)], [bags.length * dim], (bk, [t], [o]) =>
          bk.embeddingBag(t, dim, ids, offsets, weights, mode, o),
        );
      }),
      runs(n(20)),
    );
  });

  add('embeddingBag with a bag past 1000 ids', (b) => {
    const { offsets, ids, weights } = bagData(50, [1500, 0, 3], true, 11);
    for (const mode of ['sum', 'mean', 'sqrtn'] as BagMode[]) {
      compare(
        b,
        `embeddingBag long ${mode}`,
        [randomArray(50 * 4, 2)],
        [12],
        (bk, [t], [o]) => bk.embeddingBag(t, 4, ids, offsets, weights, mode, o),
        { atol: 5e-3, rtol: 1e-3 },
      );
    }
  });

  add('segmentSumRows', (b) => {
    fc.assert(
      fc.property(bagArb, fc.integer({ min: 0, max: 3 }), ({ rows, dim, bags, weighted, s }, extraRows) => {
        const { offsets, ids, weights } = bagData(rows, bags, weighted, s);
        compare(
          b,
          'segmentSumRows',
          [randomArray(rows * dim, s)],
          [(bags.length + extraRows) * dim],
          (bk, [src], [o]) => bk.segmentSumRows(src, dim, offsets, ids, weights, o),
        );
      }),
      runs(n(15)),
    );
  });

  add('scatterAddRows (distinct rows)', (b) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 9 }), seed, (rows, dim, s) => {
        const chosen = Int32Array.from([...new Set(Array.from(randomArray(rows, s, 0, rows), Math.floor))]);
        compare(
          b,
          'scatterAddRows',
          [randomArray(chosen.length * dim, s)],
          [rows * dim],
          (bk, [v], [o]) => bk.scatterAddRows(v, dim, chosen, o),
          {},
          [randomArray(rows * dim, s + 1)],
        );
      }),
      runs(n(12)),
    );
  });

  add('prelu and preluBackward (rows past 1000)', (b) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1300 }), fc.integer({ min: 1, max: 6 }), seed, (rows, ch, s) => {
        const x = randomArray(rows * ch, s);
        const slope = randomArray(ch, s + 1, -0.5, 0.5);
        const g = randomArray(rows * ch, s + 2);
        compare(b, 'prelu', [x, slope], [rows * ch], (bk, [xs, ss], [o]) => bk.prelu(xs, ss, ch, o));
        compare(
          b,
          'preluBackward',
          [x, slope, g],
          [rows * ch, ch],
          (bk, [xs, ss, gs], [gx, gsl]) => bk.preluBackward(xs, ss, gs, ch, gx, gsl),
          { atol: 1e-5 * rows + 1e-4 },
        );
      }),
      runs(n(8)),
    );
  });

  // Row and column counts cross the 4×8 GEMM tile and the wasm thread cut; 1 takes the vector paths.
  // The bias has one row for all rows or one per run of `per` rows (runs that cross tiles and thread cuts).
  add('linearPrelu and linearPreluBackward (edge tiles, one row or column, per-run bias)', (b) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 21 }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 14 }),
        seed,
        (drawn, ch, k, per, s) => {
          const groups = per === 0 ? 1 : Math.ceil(drawn / per);
          const rows = per === 0 ? drawn : groups * per;
          const x = randomArray(rows * k, s);
          const w = randomArray(ch * k, s + 1);
          const bias = randomArray(ch * groups, s + 2);
          const slope = randomArray(ch, s + 3, -0.5, 0.5);
          const g = randomArray(rows * ch, s + 4);
          compare(
            b,
            'linearPrelu',
            [x, w, bias, slope],
            [rows * ch, rows * ch],
            (bk, [xs, ws, bs, ss], [pre, o]) => bk.linearPrelu(xs, ws, bs, ss, rows, ch, k, pre, o, groups),
            { atol: 1e-5 * k + 1e-4 },
          );
          compare(
            b,
            'linearPreluBackward',
            [randomArray(rows * ch, s + 5), slope, g],
            [rows * ch, ch, ch * groups],
            (bk, [ps, ss, gs], [gp, gsl, gb]) => bk.linearPreluBackward(ps, ss, gs, ch, gp, gsl, gb, groups),
            { atol: 1e-5 * rows + 1e-4 },
          );
        },
      ),
      runs(n(10)),
    );
  });

  add('softmaxLast (mask, all-masked rows, long rows)', (b) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 1200 }),
        fc.boolean(),
        seed,
        (rows, cols, masked, s) => {
          const x = randomArray(rows * cols, s, -10, 10);
          const mask = randomArray(rows * cols, s + 1, 0, 1).map((v) => (v < 0.3 ? 0 : 1));
          if (rows > 1) mask.fill(0, 0, cols);
          compare(
            b,
            'softmaxLast',
            masked ? [x, mask] : [x],
            [rows * cols],
            (bk, ins, [o]) => bk.softmaxLast(ins[0], masked ? ins[1] : null, rows, cols, o),
            { atol: 1e-5 },
          );
        },
      ),
      runs(n(10)),
    );
  });

  add('bceWithLogits and backward (|x| up to 100)', (b) => {
    fc.assert(
      fc.property(size, seed, (len, s) => {
        const x = randomArray(len, s, -100, 100);
        const y = randomArray(len, s + 1, 0, 1).map((v) => (v < 0.4 ? 0 : v < 0.8 ? 1 : v));
        const g = randomArray(len, s + 2);
        compare(b, 'bce', [x, y], [len], (bk, [xs, ys], [o]) => bk.bceWithLogits(xs, ys, o));
        compare(b, 'bceBackward', [x, y, g], [len], (bk, [xs, ys, gs], [o]) => bk.bceWithLogitsBackward(xs, ys, gs, o));
      }),
      runs(n(6)),
    );
  });

  add('productBce and backward (|a|, |b| up to 100)', (b) => {
    fc.assert(
      fc.property(size, seed, (len, s) => {
        const a = randomArray(len, s, -100, 100);
        const c = randomArray(len, s + 3, -100, 100);
        const y = randomArray(len, s + 1, 0, 1).map((v) => (v < 0.5 ? 0 : 1));
        const g = randomArray(len, s + 2);
        compare(b, 'productBce', [a, c, y], [len], (bk, [as, cs, ys], [o]) => bk.productBce(as, cs, ys, o), {
          rtol: 2e-4,
        });
        compare(b, 'productBceBackward', [a, c, y, g], [len, len], (bk, [as, cs, ys, gs], [ga, gb]) =>
          bk.productBceBackward(as, cs, ys, gs, ga, gb),
        );
      }),
      runs(n(6)),
    );
  });

  add('bce and productBce exact at ±Inf logits', (b) => infiniteLogitChecks(b));

  const hyperArb = fc.record({
    lr: fc.double({ min: 1e-4, max: 0.1, noNaN: true }),
    beta1: fc.constantFrom(0.9, 0.8),
    beta2: fc.constantFrom(0.999, 0.99),
    eps: fc.constantFrom(1e-8, 1e-6),
    weightDecay: fc.constantFrom(0, 0.01),
    step: fc.integer({ min: 1, max: 50 }),
  });

  add('adam (three steps)', (b) => {
    fc.assert(
      fc.property(size, hyperArb, seed, (len, h, s) => {
        const p = randomArray(len, s);
        const m = randomArray(len, s + 1, -0.1, 0.1);
        const v = randomArray(len, s + 2, 0, 0.1);
        compare(
          b,
          'adam',
          [p, randomArray(len, s + 3), m, v],
          [],
          (bk, [ps, gs, ms, vs]) => {
            for (let t = 0; t < 3; t++) bk.adam(ps, gs, ms, vs, { ...h, step: h.step + t });
          },
          { atol: 1e-5, rtol: 1e-4 },
        );
      }),
      runs(n(6)),
    );
  });

  add('sparseAdam (distinct rows)', (b) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 80 }),
        fc.integer({ min: 1, max: 9 }),
        hyperArb,
        seed,
        (rows, dim, h, s) => {
          const chosen = Int32Array.from([
            ...new Set(Array.from(randomArray(Math.ceil(rows / 2), s, 0, rows), Math.floor)),
          ]);
          const size2 = rows * dim;
          compare(
            b,
            'sparseAdam',
            [
              randomArray(size2, s),
              randomArray(size2, s + 1, -0.1, 0.1),
              randomArray(size2, s + 2, 0, 0.1),
              randomArray(chosen.length * dim, s + 3),
            ],
            [],
            (bk, [ps, ms, vs, gs]) => {
              bk.sparseAdam(ps, ms, vs, dim, chosen, gs, h);
              bk.sparseAdam(ps, ms, vs, dim, chosen, gs, { ...h, step: h.step + 1 });
            },
            { atol: 1e-5, rtol: 1e-4 },
          );
        },
      ),
      runs(n(8)),
    );
  });

  add('sparseAdamSegments (distinct rows, segment sums of a source)', (b) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 80 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 40 }),
        fc.boolean(),
        hyperArb,
        seed,
        (rows, dim, srcCount, scaled, h, s) => {
          const chosen = Int32Array.from([
            ...new Set(Array.from(randomArray(Math.ceil(rows / 2), s, 0, rows), Math.floor)),
          ]);
          // Each chosen row sums 0..3 source rows (repeats allowed), as a lookup's gradient does.
          const lengths = Array.from(randomArray(chosen.length, s + 4, 0, 4), Math.floor);
          const segments = Int32Array.from([
            0,
            ...lengths.map((_, i) => lengths.slice(0, i + 1).reduce((a, c) => a + c, 0)),
          ]);
          const terms = segments[segments.length - 1];
          const srcRows = Int32Array.from(randomArray(terms, s + 5, 0, srcCount), Math.floor);
          const scales = scaled ? randomArray(terms, s + 6, -1.5, 1.5) : null;
          const size2 = rows * dim;
          compare(
            b,
            'sparseAdamSegments',
            [
              randomArray(size2, s),
              randomArray(size2, s + 1, -0.1, 0.1),
              randomArray(size2, s + 2, 0, 0.1),
              randomArray(srcCount * dim, s + 3),
            ],
            [],
            (bk, [ps, ms, vs, src]) => {
              bk.sparseAdamSegments(ps, ms, vs, dim, chosen, src, segments, srcRows, scales, h);
              bk.sparseAdamSegments(ps, ms, vs, dim, chosen, src, segments, srcRows, scales, {
                ...h,
                step: h.step + 1,
              });
            },
            { atol: 1e-5, rtol: 1e-4 },
          );
        },
      ),
      runs(n(8)),
    );
  });

  return checks;
}

/**
 * Losses at saturated logits must be exact, not NaN: a label that agrees with a logit of ±∞
 * costs 0, one that disagrees costs +∞, and the gradients of a zero-cost row are 0.
 * Checked against the values themselves rather than the reference, so every backend (the
 * reference included) is held to them.
 */
export function infiniteLogitChecks(b: Backend): void {
  const inf = Infinity;
  const read = (s: Storage): number[] => Array.from(b.read(s));
  const expectExact = (got: number[], want: number[], what: string): void => {
    want.forEach((w, i) => {
      if (!Object.is(got[i] + 0, w + 0)) throw new Error(`${what}[${i}]: got ${got[i]}, want ${w}`);
    });
  };
  const x = b.fromArray(Float32Array.from([inf, -inf, inf, -inf, 0]), 'float32');
  const y = b.fromArray(Float32Array.from([1, 0, 0, 1, 1]), 'float32');
  const g = b.fromArray(Float32Array.from([1, 1, 1, 1, 1]), 'float32');
  const out = b.alloc(5, 'float32');
  b.bceWithLogits(x, y, out);
  expectExact(read(out), [0, 0, inf, inf, Math.fround(Math.LN2)], 'bceWithLogits at ±Inf');
  b.bceWithLogitsBackward(x, y, g, out);
  expectExact(read(out), [0, 0, 1, -1, -0.5], 'bceWithLogitsBackward at ±Inf');
  // productBce: p = σ(a)·σ(b); the rows are (a, b, y) with p ∈ {1, 0, 0, 1, 0, 0}.
  const a = b.fromArray(Float32Array.from([inf, -inf, inf, inf, -inf, inf]), 'float32');
  const c = b.fromArray(Float32Array.from([inf, 3, -inf, inf, -inf, -inf]), 'float32');
  const y2 = b.fromArray(Float32Array.from([1, 0, 0, 0, 1, 1]), 'float32');
  const g2 = b.fromArray(Float32Array.from([1, 1, 1, 1, 1, 1]), 'float32');
  const out2 = b.alloc(6, 'float32');
  const gb = b.alloc(6, 'float32');
  b.productBce(a, c, y2, out2);
  expectExact(read(out2), [0, 0, 0, inf, inf, inf], 'productBce at ±Inf');
  b.productBceBackward(a, c, y2, g2, out2, gb);
  const ga = read(out2);
  const gbv = read(gb);
  // Zero-cost rows (0, 1, 2) have zero gradients; the others are only required not to hide their loss.
  expectExact(ga.slice(0, 3), [0, 0, 0], 'productBce d/da at ±Inf');
  expectExact(gbv.slice(0, 3), [0, 0, 0], 'productBce d/db at ±Inf');
  for (const s of [x, y, g, out, a, c, y2, g2, out2, gb]) b.free(s);
}
