/**
 * The float32 kernels, written against the assembler in `builder.ts`.
 *
 * Conventions: every pointer is a byte offset into the arena; counts are elements.
 * SIMD loops handle four floats at a time and finish with a scalar tail that reuses
 * the same vector code on a splatted lane, so each op is written once.
 * Multiply-adds (GEMM, dot products, row updates of bags and segment sums, affine, axpby,
 * Adam) go through one helper that emits either plain SIMD or relaxed SIMD's fused
 * multiply-add, so the module is built in two variants ({@link SimdVariant}).
 * Transcendental math (exp, log1p, tanh, pow) calls the host's `Math` functions, which
 * V8 binds directly to its C implementations. The stable scalar helpers below (sigmoid,
 * log-sigmoid, log-add-exp, BCE, product BCE and its gradient) transcribe
 * `kernels/stable-math.ts` into the assembler and compute in f64, so they match the
 * reference backend bit for bit; change them together (the kernel checks compare them).
 */
import { FunctionBuilder, ModuleBuilder, type FuncRef, type Local } from './builder.js';
import { argNames, argSpecs, type LAYOUTS, type Layout } from './layouts.js';

/** Unary ops with a SIMD body. */
export const SIMD_UNARY = ['neg', 'square', 'abs', 'relu', 'step', 'sign', 'sqrt'] as const;
/** Unary ops computed in f64 with host math. */
export const MATH_UNARY = ['exp', 'log', 'log1p', 'tanh', 'sigmoid', 'logSigmoid'] as const;
/** Binary ops with a SIMD body. */
export const SIMD_BINARY = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const;

/** GEMM register tile: rows of A per micro-kernel. */
export const TILE_M = 4;
/** GEMM register tile: columns of B per micro-kernel (two v128). */
export const TILE_N = 8;
/** GEMM register tile: v128 columns of B per micro-kernel. */
const TILE_V = TILE_N / 4;

/** Lanes of a 32-bit shuffle of two vectors (0–3 the first, 4–7 the second). */
type Lanes = readonly [number, number, number, number];
/** The 4×4 transpose's shuffles: interleave the low and the high halves of two rows… */
const UNPACK: readonly Lanes[] = [
  [0, 4, 1, 5],
  [2, 6, 3, 7],
];
/** …then join the low and the high 64-bit halves of two interleaved pairs. */
const HALVES: readonly Lanes[] = [
  [0, 1, 4, 5],
  [2, 3, 6, 7],
];

/** The parameters of a kernel of layout `L`, as locals by name. */
type KernelParams<L extends Layout> = { readonly [K in keyof (typeof LAYOUTS)[L]]: Local };

type Body<L extends Layout> = (f: FunctionBuilder, p: KernelParams<L>) => void;

/**
 * Defines an exported kernel with the parameters of `layout` (`layouts.ts`), handed to its body
 * by name; unary and binary kernels are exported as `<layout>_<op>`.
 */
function kernel<L extends Layout>(mb: ModuleBuilder, layout: L, body: Body<L>): FuncRef;
function kernel<L extends 'unary' | 'binary'>(mb: ModuleBuilder, layout: L, op: string, body: Body<L>): FuncRef;
function kernel<L extends Layout>(mb: ModuleBuilder, layout: L, a: string | Body<L>, b?: Body<L>): FuncRef {
  const [name, body] = typeof a === 'string' ? [`${layout}_${a}`, b as Body<L>] : [layout, a];
  const names = argNames(layout);
  const types = argSpecs(layout).map((spec) => spec.type);
  return mb.func(name, types, [], (f) => {
    const params = Object.fromEntries(names.map((n, i) => [n, f.param(i)]));
    body(f, params as KernelParams<L>);
  });
}

/**
 * The extra parameters of a GEMM with the linear + PReLU epilogue: the bias (a row of it per `group`
 * consecutive rows, counted from `row0`, the call's first row in the whole product), the per-column
 * slope and the pre-activation output.
 */
interface GemmEpilogue {
  bias: Local;
  slope: Local;
  pre: Local;
  row0: Local;
  group: Local;
}

/**
 * Where the full tiles of one column panel find their bias rows: `pb`, the address of column j of
 * the current row's bias row, and `end`, the first row of the next run. Rows reach the epilogue one
 * after another, so each moves on by at most one run: a compare per row, where a division per row
 * measured 1.4 ms more per DIN unit layer (k = 36) than the plain GEMM.
 */
interface BiasCursor {
  pb: Local;
  end: Local;
}

/** Starts a {@link BiasCursor} at the first row of the call, for the column panel at `j`. */
function biasCursorStart(f: FunctionBuilder, epi: GemmEpilogue, cur: BiasCursor, n: Local, j: Local): void {
  const g0 = f.local('i32');
  f.get(epi.row0).get(epi.group).i32DivU().set(g0);
  f.get(g0).get(n).i32Mul().get(j).i32Add().i32(2).i32Shl().get(epi.bias).i32Add().set(cur.pb);
  f.get(g0).i32(1).i32Add().get(epi.group).i32Mul().set(cur.end);
}

/** Sets `dst` to the address of column `j` of the bias row of tile row `i` (+ `q`), by division (edge tiles). */
function biasRowAt(
  f: FunctionBuilder,
  epi: GemmEpilogue,
  i: Local,
  q: number | Local,
  n: Local,
  j: Local,
  dst: Local,
): void {
  f.get(epi.row0).get(i).i32Add();
  if (typeof q === 'number') {
    if (q) f.i32(q).i32Add();
  } else f.get(q).i32Add();
  f.get(epi.group).i32DivU().get(n).i32Mul().get(j).i32Add().i32(2).i32Shl().get(epi.bias).i32Add().set(dst);
}

/** Pushes `v > 0 ? v : s·v` for a local vector `v`, `slope()` pushing the slopes: the select of the prelu kernel. */
function preluOf(f: FunctionBuilder, v: Local, slope: () => void): void {
  f.get(v);
  slope();
  f.get(v).f32x4Mul();
  f.get(v).f32(0).f32x4Splat().f32x4Gt().v128Bitselect();
}

/**
 * Epilogue of a full tile of TILE_M rows of `nv` vectors in `acc` (row q's vector h at
 * acc[TILE_V·q + h]) whose out address is in `o`: adds the bias of columns j.. j+4nv, stores the
 * sum to `pre` and its PReLU to `out` (the same rounding as a separate bias add and prelu pass,
 * with no second trip through memory).
 */
function epilogueTile(
  f: FunctionBuilder,
  epi: GemmEpilogue,
  cur: BiasCursor,
  acc: Local[],
  nv: number,
  o: Local,
  out: Local,
  i: Local,
  j: Local,
  n: Local,
): void {
  const sv: Local[] = [];
  for (let h = 0; h < nv; h++) sv.push(f.local('v128'));
  const t = f.local('v128');
  const po = f.local('i32');
  const pb = cur.pb;
  for (let h = 0; h < nv; h++)
    f.elemAt(epi.slope, j)
      .v128Load(16 * h)
      .set(sv[h]);
  f.get(epi.pre).get(o).i32Add().get(out).i32Sub().set(po);
  for (let q = 0; q < TILE_M; q++) {
    // Row row0 + i + q past its run's end: the next bias row.
    f.get(epi.row0)
      .get(i)
      .i32Add()
      .i32(q)
      .i32Add()
      .get(cur.end)
      .i32GeS()
      .ifElse(() => {
        f.get(pb).get(n).i32(2).i32Shl().i32Add().set(pb);
        f.get(cur.end).get(epi.group).i32Add().set(cur.end);
      });
    for (let h = 0; h < nv; h++) {
      f.get(acc[TILE_V * q + h])
        .get(pb)
        .v128Load(16 * h)
        .f32x4Add()
        .set(t);
      f.get(po)
        .get(t)
        .v128Store(16 * h);
      f.get(o);
      preluOf(f, t, () => f.get(sv[h]));
      f.v128Store(16 * h);
    }
    if (q < TILE_M - 1) {
      f.get(o).get(n).i32(2).i32Shl().i32Add().set(o);
      f.get(po).get(n).i32(2).i32Shl().i32Add().set(po);
    }
  }
}

/**
 * Epilogue of one element of an edge tile, with its out address in `o` and on the stack below
 * its spilled sum's address: column j + c gets its bias and PReLU, stored to `pre` and `out`.
 */
function epilogueElement(
  f: FunctionBuilder,
  epi: GemmEpilogue,
  o: Local,
  out: Local,
  i: Local,
  r: Local,
  j: Local,
  c: Local,
  n: Local,
): void {
  const t = f.local('v128');
  const col = f.local('i32');
  const pb = f.local('i32');
  f.get(j).get(c).i32Add().i32(2).i32Shl().set(col);
  biasRowAt(f, epi, i, r, n, j, pb);
  f.v128Load32Splat().elemAt(pb, c).v128Load32Splat().f32x4Add().set(t);
  f.get(epi.pre).get(o).i32Add().get(out).i32Sub().get(t).f32x4ExtractLane(0).f32Store();
  preluOf(f, t, () => f.at(epi.slope, col).v128Load32Splat());
  f.f32x4ExtractLane(0).f32Store();
}

/**
 * Emits a loop over `n` floats (n in a local) in byte offsets: `vec(off)` for each full
 * group of four, then `tail(off)` for the remaining ones.
 */
function simdLoop(f: FunctionBuilder, n: Local, vec: (off: Local) => void, tail: (off: Local) => void): void {
  const off = f.local('i32');
  const endVec = f.local('i32');
  const end = f.local('i32');
  f.get(n).i32(-4).i32And().i32(2).i32Shl().set(endVec);
  f.get(n).i32(2).i32Shl().set(end);
  f.forUpTo(off, endVec, 16, () => vec(off));
  f.forRange(
    off,
    () => f.get(endVec),
    () => f.get(end),
    4,
    () => tail(off),
  );
}

/**
 * Row by row over a [rows, channels] f32 matrix: `rowStart` sets the row's pointers from its byte
 * offset, then `body` runs on vectors of four channels and on the tail one lane at a time (a splatted
 * load and a lane-0 store, so the tail rounds like the vector body).
 */
function perRowChannels(
  f: FunctionBuilder,
  rows: Local,
  channels: Local,
  rowBytes: Local,
  rowStart: (base: Local) => void,
  body: (load: (b: Local, o: Local) => void, o: Local, store: () => void) => void,
): void {
  const r = f.local('i32');
  const base = f.local('i32');
  f.forUpTo(r, rows, 1, () => {
    f.get(r).get(rowBytes).i32Mul().set(base);
    rowStart(base);
    simdLoop(
      f,
      channels,
      (o) =>
        body(
          (b, off) => f.at(b, off).v128Load(),
          o,
          () => f.v128Store(),
        ),
      (o) =>
        body(
          (b, off) => f.at(b, off).v128Load32Splat(),
          o,
          () => f.f32x4ExtractLane(0).f32Store(),
        ),
    );
  });
}

/**
 * PReLU's backward over [rows, channels]: gx = x > 0 ? g : s * g and gs[c] += x > 0 ? 0 : x * g;
 * with `bias` (linearPrelu's pass) also gb[r / group, c] += gx, the bias gradient, in the same pass.
 */
function preluBackwardBody(
  f: FunctionBuilder,
  x: Local,
  slope: Local,
  g: Local,
  gx: Local,
  gs: Local,
  bias: { gb: Local; group: Local } | null,
  rows: Local,
  channels: Local,
): void {
  const vx = f.local('v128');
  const vg = f.local('v128');
  const vd = f.local('v128');
  const mask = f.local('v128');
  const rowBytes = f.local('i32');
  const px = f.local('i32');
  const pg = f.local('i32');
  const pgx = f.local('i32');
  const gb = f.local('i32');
  const groupBytes = f.local('i32');
  f.get(channels).i32(2).i32Shl().set(rowBytes);
  f.get(gs).i32(0).get(rowBytes).memoryFill();
  if (bias) {
    f.get(bias.group).get(rowBytes).i32Mul().set(groupBytes);
    // Bias rows = rows / group, all zeroed before the pass adds to them.
    f.get(bias.gb).i32(0).get(rows).get(bias.group).i32DivU().get(rowBytes).i32Mul().memoryFill();
  }
  const body = (load: (b: Local, o: Local) => void, o: Local, store: () => void): void => {
    load(px, o);
    f.set(vx);
    load(pg, o);
    f.set(vg);
    f.get(vx).f32(0).f32x4Splat().f32x4Gt().set(mask);
    f.get(vg);
    load(slope, o);
    f.get(vg).f32x4Mul().get(mask).v128Bitselect().set(vd);
    f.at(pgx, o).get(vd);
    store();
    f.at(gs, o);
    load(gs, o);
    f.get(vx).get(vg).f32x4Mul().get(mask).v128AndNot().f32x4Add();
    store();
    if (!bias) return;
    f.at(gb, o);
    load(gb, o);
    f.get(vd).f32x4Add();
    store();
  };
  perRowChannels(
    f,
    rows,
    channels,
    rowBytes,
    (base) => {
      f.get(x).get(base).i32Add().set(px);
      f.get(g).get(base).i32Add().set(pg);
      f.get(gx).get(base).i32Add().set(pgx);
      if (bias) f.get(base).get(groupBytes).i32DivU().get(rowBytes).i32Mul().get(bias.gb).i32Add().set(gb);
    },
    body,
  );
}

// Vector bodies of the SIMD unary ops: they pop one f32x4 and push the result.
const unaryBodies: Record<(typeof SIMD_UNARY)[number], (f: FunctionBuilder, t: Local) => void> = {
  neg: (f) => f.f32x4Neg(),
  square: (f, t) => f.tee(t).get(t).f32x4Mul(),
  abs: (f) => f.f32x4Abs(),
  // x > 0 ? x : 0, and NaN maps to 0 as in the reference.
  relu: (f, t) => f.tee(t).get(t).f32(0).f32x4Splat().f32x4Gt().v128And(),
  step: (f) => f.f32(0).f32x4Splat().f32x4Gt().f32(1).f32x4Splat().v128And(),
  sign: (f, t) =>
    f
      .tee(t)
      .f32(0)
      .f32x4Splat()
      .f32x4Gt()
      .f32(1)
      .f32x4Splat()
      .v128And()
      .get(t)
      .f32(0)
      .f32x4Splat()
      .f32x4Lt()
      .f32(-1)
      .f32x4Splat()
      .v128And()
      .v128Or(),
  sqrt: (f) => f.f32x4Sqrt(),
};

// Vector bodies of the SIMD binary ops: they pop a, b (f32x4) and push the result.
const binaryBodies: Record<(typeof SIMD_BINARY)[number], (f: FunctionBuilder, a: Local, b: Local) => void> = {
  add: (f) => f.f32x4Add(),
  sub: (f) => f.f32x4Sub(),
  mul: (f) => f.f32x4Mul(),
  div: (f) => f.f32x4Div(),
  // a >= b ? a : b (NaN in a yields b, NaN in b yields b), exactly the reference's choice.
  maximum: (f, a, b) => f.set(b).set(a).get(a).get(b).get(a).get(b).f32x4Ge().v128Bitselect(),
  minimum: (f, a, b) => f.set(b).set(a).get(a).get(b).get(a).get(b).f32x4Le().v128Bitselect(),
};

/** Host `Math` functions the module imports (as `math.<name>`); worker threads bind the same ones. */
export const MATH_IMPORTS = ['exp', 'log', 'log1p', 'tanh', 'pow'] as const;

/** Runs of at least this many bytes are copied with memory.copy rather than vector moves. */
const COPY_RUN_NATIVE = 512;

/**
 * Rows per chunk of the row kernels that read table rows at random (the gathers, the bags, lazy Adam):
 * each chunk first touches its rows, then works on them.
 */
export const TOUCH_CHUNK = 64;

/**
 * Splits [0, count) into chunks of {@link TOUCH_CHUNK}: `body(c0, c1)` for each [c0, c1).
 */
function chunked(f: FunctionBuilder, count: Local, body: (c0: Local, c1: Local) => void): void {
  const [c0, c1] = [f.local('i32'), f.local('i32')];
  f.forUpTo(c0, count, TOUCH_CHUNK, () => {
    f.get(c0)
      .i32(TOUCH_CHUNK)
      .i32Add()
      .tee(c1)
      .get(count)
      .i32GtS()
      .ifElse(() => f.get(count).set(c1));
    body(c0, c1);
  });
}

/**
 * Loads one word of every 64-byte line of the rows i in [i0, i1) (row i at byte offset `rowOff(i)`,
 * `rowBytes` long) in each of `bases`, xor-ing them into `sink`. In a large table every row sits in a
 * page and lines of its own: a loop that only loads keeps a chunk's cache and TLB misses in flight
 * together, where the work on a row (a few hundred instructions) would let only two or three overlap.
 * It only reads, and only lines the work reads anyway; a line's first word may belong to a neighbouring
 * row that another thread is updating, which is harmless since the loaded values are never used.
 */
function touchRows(
  f: FunctionBuilder,
  bases: readonly Local[],
  rowOff: (i: Local) => void,
  i0: Local,
  i1: Local,
  rowBytes: Local,
  sink: Local,
): void {
  const [i, off, a, end] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  f.forRange(
    i,
    () => f.get(i0),
    () => f.get(i1),
    1,
    () => {
      rowOff(i);
      f.set(off);
      for (const base of bases) {
        f.at(base, off).tee(a).get(rowBytes).i32Add().set(end);
        f.get(a).i32(-64).i32And().set(a);
        f.forRange(
          a,
          () => f.get(a),
          () => f.get(end),
          64,
          () => f.get(sink).get(a).i32Load().i32Xor().set(sink),
        );
      }
    },
  );
}

/**
 * Uses the touched words so that the engine keeps their loads: traps when `guard` (a parameter that is
 * never negative, unknown to the compiler) is negative and the sink odd, which never happens.
 */
function keepTouches(f: FunctionBuilder, sink: Local, guard: Local): void {
  f.get(guard)
    .i32(0)
    .i32LtS()
    .get(sink)
    .i32And()
    .ifElse(() => f.unreachable());
}

/** Most 64 KiB pages an arena memory may have (the i32 address space). */
export const MAX_PAGES = 65536;

/**
 * How the kernels multiply-add four floats: `plain` with `f32x4.mul` then `f32x4.add`
 * (two roundings, in every runtime with SIMD), `relaxed` with relaxed SIMD's
 * `f32x4.relaxed_madd`, which the engine may fuse into one FMA instruction (one rounding)
 * where the CPU has one. Results of the two differ in the last bits; within one variant
 * every run, thread count and captured replay computes the same bits.
 */
export type SimdVariant = 'plain' | 'relaxed';

let relaxedSupport: boolean | undefined;

/** Whether this runtime validates a module using `f32x4.relaxed_madd` (relaxed SIMD). */
export function relaxedSimdSupported(): boolean {
  relaxedSupport ??= (() => {
    const mb = new ModuleBuilder();
    mb.func('madd', ['v128', 'v128', 'v128'], ['v128'], (f) => {
      f.get(f.param(0)).get(f.param(1)).get(f.param(2)).f32x4RelaxedMadd();
    });
    return WebAssembly.validate(mb.build());
  })();
  return relaxedSupport;
}

/**
 * Builds the module's bytes. `shared` declares the imported memory shared, which is what
 * lets worker threads instantiate the same kernels over the same arena.
 */
export function buildKernelModule(shared = false, simd: SimdVariant = 'plain'): Uint8Array<ArrayBuffer> {
  const mb = new ModuleBuilder();
  /**
   * Pushes a·b + c, the operands pushed by the three emitters (which only load). Plain SIMD
   * pushes c first and adds the product to it, the order the kernels have always summed in.
   */
  const madd = (f: FunctionBuilder, a: () => void, b: () => void, c: () => void): FunctionBuilder => {
    if (simd === 'relaxed') {
      a();
      b();
      c();
      return f.f32x4RelaxedMadd();
    }
    c();
    a();
    b();
    return f.f32x4Mul().f32x4Add();
  };
  mb.importMemory('env', 'memory', 1, MAX_PAGES, shared);
  const exp = mb.importFunc('math', 'exp', ['f64'], ['f64']);
  const log = mb.importFunc('math', 'log', ['f64'], ['f64']);
  const log1p = mb.importFunc('math', 'log1p', ['f64'], ['f64']);
  const tanh = mb.importFunc('math', 'tanh', ['f64'], ['f64']);
  const pow = mb.importFunc('math', 'pow', ['f64', 'f64'], ['f64']);

  // ---- scalar f64 helpers mirroring stable-math.ts ----
  const sigmoid = mb.func(null, ['f64'], ['f64'], (f) => {
    const x = f.param(0);
    const e = f.local('f64');
    f.get(x)
      .f64(0)
      .f64Ge()
      .select2(
        'f64',
        () => f.f64(1).f64(1).get(x).f64Neg().call(exp).f64Add().f64Div(),
        () => f.get(x).call(exp).tee(e).f64(1).get(e).f64Add().f64Div(),
      );
  });
  const logSigmoid = mb.func(null, ['f64'], ['f64'], (f) => {
    const x = f.param(0);
    f.get(x)
      .f64(0)
      .f64Ge()
      .select2(
        'f64',
        () => f.get(x).f64Neg().call(exp).call(log1p).f64Neg(),
        () => f.get(x).get(x).call(exp).call(log1p).f64Sub(),
      );
  });
  const logAddExp = mb.func(null, ['f64', 'f64'], ['f64'], (f) => {
    const [a, b] = [f.param(0), f.param(1)];
    const hi = f.local('f64');
    f.get(a)
      .get(b)
      .f64Max()
      .tee(hi)
      .f64(-Infinity)
      .f64Eq()
      .select2(
        'f64',
        () => f.f64(-Infinity),
        () => f.get(hi).get(a).get(b).f64Sub().f64Abs().f64Neg().call(exp).call(log1p).f64Add(),
      );
  });
  /** c·v with a zero weight giving 0 even for v = ±∞ (stable-math's `weighted`). */
  const weighted = mb.func(null, ['f64', 'f64'], ['f64'], (f) => {
    const [c, v] = [f.param(0), f.param(1)];
    f.get(c)
      .f64(0)
      .f64Eq()
      .select2(
        'f64',
        () => f.f64(0),
        () => f.get(c).get(v).f64Mul(),
      );
  });
  const bceScalar = mb.func(null, ['f64', 'f64'], ['f64'], (f) => {
    const [x, y] = [f.param(0), f.param(1)];
    f.get(x)
      .f64(0)
      .f64Ge()
      .select2(
        'f64',
        () => f.f64(1).get(y).f64Sub().get(x).call(weighted),
        () => f.get(y).get(x).f64Neg().call(weighted),
      );
    f.get(x).f64Abs().f64Neg().call(exp).call(log1p).f64Add();
  });
  // logσ(x) and logσ(-x) share log1p(e^{-|x|}) (stable-math's logSigmoid takes e^{-x} for x ≥ 0 and
  // e^{x} below, both e^{-|x|}): the product BCE kernels take it once per input, half the host math
  // calls, with the same bits as calling logSigmoid on each sign.
  const logSigmoidTail = mb.func(null, ['f64'], ['f64'], (f) => {
    f.get(f.param(0)).f64Abs().f64Neg().call(exp).call(log1p);
  });
  /** logσ(x) from x and its tail log1p(e^{-|x|}): stable-math's logSigmoid(x), bit for bit. */
  const logSigmoidWith = mb.func(null, ['f64', 'f64'], ['f64'], (f) => {
    const [x, tail] = [f.param(0), f.param(1)];
    f.get(x)
      .f64(0)
      .f64Ge()
      .select2(
        'f64',
        () => f.get(tail).f64Neg(),
        () => f.get(x).get(tail).f64Sub(),
      );
  });
  const productBceScalar = mb.func(null, ['f64', 'f64', 'f64'], ['f64'], (f) => {
    const [a, b, y] = [f.param(0), f.param(1), f.param(2)];
    const [tailA, tailB, logSigA] = [f.local('f64'), f.local('f64'), f.local('f64')];
    const logP = f.local('f64');
    const logQ = f.local('f64');
    f.get(a).call(logSigmoidTail).set(tailA);
    f.get(b).call(logSigmoidTail).set(tailB);
    f.get(a).get(tailA).call(logSigmoidWith).tee(logSigA);
    f.get(b).get(tailB).call(logSigmoidWith).f64Add().set(logP);
    f.get(a).f64Neg().get(tailA).call(logSigmoidWith);
    f.get(logSigA).get(b).f64Neg().get(tailB).call(logSigmoidWith).f64Add();
    f.call(logAddExp).set(logQ);
    f.get(y).get(logP).f64Neg().call(weighted);
    f.f64(1).get(y).f64Sub().get(logQ).f64Neg().call(weighted).f64Add();
  });
  /**
   * stable-math's productBceGradA(a, b, y) from p = σ(a)σ(b) and logσ(-b), which the gradients of
   * both inputs share: (1 - y)·p·σ(-(a + logσ(-b))) - y·σ(-a), zero weights giving 0.
   */
  const productBceGradWith = mb.func(null, ['f64', 'f64', 'f64', 'f64'], ['f64'], (f) => {
    const [a, logSigNegB, p, y] = [f.param(0), f.param(1), f.param(2), f.param(3)];
    f.f64(1).get(y).f64Sub().get(p).get(a).get(logSigNegB).f64Add().f64Neg().call(sigmoid).f64Mul().call(weighted);
    f.get(y).get(a).f64Neg().call(sigmoid).call(weighted).f64Sub();
  });

  /** dst[0..len) += w * src[0..len), the row update behind bags, segment sums and scatters. */
  const axpyRow = mb.func(null, ['i32', 'i32', 'f32', 'i32'], [], (f) => {
    const [dst, src, w, len] = [f.param(0), f.param(1), f.param(2), f.param(3)];
    const wv = f.local('v128');
    f.get(w).f32x4Splat().set(wv);
    // The tail computes on splatted lanes so that it rounds like the vector body.
    simdLoop(
      f,
      len,
      (o) => {
        f.at(dst, o);
        madd(
          f,
          () => f.get(wv),
          () => f.at(src, o).v128Load(),
          () => f.at(dst, o).v128Load(),
        ).v128Store();
      },
      (o) => {
        f.at(dst, o);
        madd(
          f,
          () => f.get(wv),
          () => f.at(src, o).v128Load32Splat(),
          () => f.at(dst, o).v128Load32Splat(),
        )
          .f32x4ExtractLane(0)
          .f32Store();
      },
    );
  });

  // ---- elementwise ----
  for (const op of SIMD_UNARY) {
    kernel(mb, 'unary', op, (f, { x, out, n }) => {
      const t = f.local('v128');
      simdLoop(
        f,
        n,
        (o) => {
          f.at(out, o);
          f.at(x, o).v128Load();
          unaryBodies[op](f, t);
          f.v128Store();
        },
        (o) => {
          f.at(out, o);
          f.at(x, o).v128Load32Splat();
          unaryBodies[op](f, t);
          f.f32x4ExtractLane(0).f32Store();
        },
      );
    });
  }
  const mathUnary: Record<(typeof MATH_UNARY)[number], FuncRef> = { exp, log, log1p, tanh, sigmoid, logSigmoid };
  for (const op of MATH_UNARY) {
    kernel(mb, 'unary', op, (f, { x, out, n }) => {
      const i = f.local('i32');
      f.forUpTo(i, n, 1, () => {
        f.elemAt(out, i);
        f.elemAt(x, i).f32Load().f64PromoteF32().call(mathUnary[op]).f32DemoteF64().f32Store();
      });
    });
  }

  // Broadcast binary over a [rows, cols] view: each operand advances by its row stride per row
  // and is either contiguous along the row or one splatted value.
  const binaryKernel = (op: string, body: ((f: FunctionBuilder, a: Local, b: Local) => void) | null): void => {
    kernel(mb, 'binary', op, (f, { a, aRow, aSplat, b, bRow, bSplat, out, rows, cols }) => {
      const r = f.local('i32');
      const pa = f.local('i32');
      const pb = f.local('i32');
      const po = f.local('i32');
      const va = f.local('v128');
      const vb = f.local('v128');
      const ta = f.local('v128');
      const tb = f.local('v128');
      const sa = f.local('f64');
      const sb = f.local('f64');
      const rowLoop = (splatA: boolean, splatB: boolean): void => {
        f.forUpTo(r, rows, 1, () => {
          f.get(a).get(r).get(aRow).i32Mul().i32(2).i32Shl().i32Add().set(pa);
          f.get(b).get(r).get(bRow).i32Mul().i32(2).i32Shl().i32Add().set(pb);
          f.get(out).get(r).get(cols).i32Mul().i32(2).i32Shl().i32Add().set(po);
          if (body === null) {
            // pow: scalar f64 through the host's Math.pow.
            if (splatA) f.get(pa).f32Load().f64PromoteF32().set(sa);
            if (splatB) f.get(pb).f32Load().f64PromoteF32().set(sb);
            const j = f.local('i32');
            f.forUpTo(j, cols, 1, () => {
              f.elemAt(po, j);
              if (splatA) f.get(sa);
              else f.elemAt(pa, j).f32Load().f64PromoteF32();
              if (splatB) f.get(sb);
              else f.elemAt(pb, j).f32Load().f64PromoteF32();
              f.call(pow).f32DemoteF64().f32Store();
            });
            return;
          }
          if (splatA) f.get(pa).v128Load32Splat().set(va);
          if (splatB) f.get(pb).v128Load32Splat().set(vb);
          // Four lanes at a time, then the tail one element at a time (splat in, lane 0 out).
          const lanes = (vector: boolean) => (o: Local) => {
            const load = (p: Local) => (vector ? f.at(p, o).v128Load() : f.at(p, o).v128Load32Splat());
            f.at(po, o);
            if (splatA) f.get(va);
            else load(pa);
            if (splatB) f.get(vb);
            else load(pb);
            body(f, ta, tb);
            if (vector) f.v128Store();
            else f.f32x4ExtractLane(0).f32Store();
          };
          simdLoop(f, cols, lanes(true), lanes(false));
        });
      };
      f.get(aSplat).ifElse(
        () =>
          f.get(bSplat).ifElse(
            () => rowLoop(true, true),
            () => rowLoop(true, false),
          ),
        () =>
          f.get(bSplat).ifElse(
            () => rowLoop(false, true),
            () => rowLoop(false, false),
          ),
      );
    });
  };
  for (const op of SIMD_BINARY) binaryKernel(op, binaryBodies[op]);
  binaryKernel('pow', null);

  kernel(mb, 'affine', (f, { x, out, n, alpha, beta }) => {
    const av = f.local('v128');
    const bv = f.local('v128');
    f.get(alpha).f32DemoteF64().f32x4Splat().set(av);
    f.get(beta).f32DemoteF64().f32x4Splat().set(bv);
    const lanes = (vector: boolean) => (o: Local) => {
      f.at(out, o);
      madd(
        f,
        () => f.get(av),
        () => (vector ? f.at(x, o).v128Load() : f.at(x, o).v128Load32Splat()),
        () => f.get(bv),
      );
      if (vector) f.v128Store();
      else f.f32x4ExtractLane(0).f32Store();
    };
    simdLoop(f, n, lanes(true), lanes(false));
  });
  kernel(mb, 'axpby', (f, { a, x, b, y, out, n }) => {
    const av = f.local('v128');
    const bv = f.local('v128');
    f.get(a).f32DemoteF64().f32x4Splat().set(av);
    f.get(b).f32DemoteF64().f32x4Splat().set(bv);
    const lanes = (vector: boolean) => (o: Local) => {
      const load = (p: Local) => (vector ? f.at(p, o).v128Load() : f.at(p, o).v128Load32Splat());
      f.at(out, o);
      madd(
        f,
        () => f.get(av),
        () => load(x),
        () => load(y).get(bv).f32x4Mul(),
      );
      if (vector) f.v128Store();
      else f.f32x4ExtractLane(0).f32Store();
    };
    simdLoop(f, n, lanes(true), lanes(false));
  });

  // ---- reductions ----
  // Sum over the middle axis of [outer, rows, cols], each of the `outer` blocks into its own row
  // of `out`: adding whole rows in order gives every column the reference's summation order, so
  // results are exact. One call covers every block (a reduction over a sequence axis has one per row).
  kernel(mb, 'colSum', (f, { x, out, outer, rows, cols }) => {
    const o = f.local('i32');
    const r = f.local('i32');
    const src = f.local('i32');
    const dst = f.local('i32');
    const rowBytes = f.local('i32');
    f.get(cols).i32(2).i32Shl().set(rowBytes);
    f.get(x).set(src);
    f.get(out).set(dst);
    f.forUpTo(o, outer, 1, () => {
      f.get(dst).i32(0).get(rowBytes).memoryFill();
      f.forUpTo(r, rows, 1, () => {
        f.get(dst).get(src).f32(1).get(cols).call(axpyRow);
        f.get(src).get(rowBytes).i32Add().set(src);
      });
      f.get(dst).get(rowBytes).i32Add().set(dst);
    });
  });
  // Sum over trailing axes, sequentially in f32 as the reference does.
  kernel(mb, 'rowSum', (f, { x, out, rows, cols }) => {
    const r = f.local('i32');
    const j = f.local('i32');
    const acc = f.local('f32');
    const p = f.local('i32');
    f.get(x).set(p);
    f.forUpTo(r, rows, 1, () => {
      f.f32(0).set(acc);
      f.forUpTo(j, cols, 1, () => {
        f.get(acc).get(p).f32Load().f32Add().set(acc);
        f.get(p).i32(4).i32Add().set(p);
      });
      f.elemAt(out, r).get(acc).f32Store();
    });
  });

  // ---- GEMM ----
  // Pack `count` rows (of length k, element (row, p) at row*strideRow + p*strideK) into
  // panels of `width` rows interleaved as [panel][p][width], zero-padding the last panel.
  // Every layout (A, Aᵀ, B, Bᵀ) becomes the one the micro-kernel streams.
  const pack = kernel(mb, 'pack', (f, { src, dst, count, width, k, strideRow, strideK }) => {
    const row0 = f.local('i32');
    const p = f.local('i32');
    const pStart = f.local('i32');
    const r = f.local('i32');
    const row = f.local('i32');
    const d = f.local('i32');
    const padded = f.local('i32');
    f.get(dst).set(d);
    f.get(count).get(width).i32Add().i32(1).i32Sub().get(width).i32DivS().get(width).i32Mul().set(padded);
    const q = f.local('i32');
    const s0 = f.local('i32');
    const kStep = f.local('i32');
    // Byte offsets of rows 1.. of a panel from its first, for the row-major path.
    const rowOff: Local[] = [];
    for (let g = 1; g < TILE_N; g++) rowOff.push(f.local('i32'));
    for (const [g, off] of rowOff.entries())
      f.get(strideRow)
        .i32(4 * (g + 1))
        .i32Mul()
        .set(off);
    const v = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')];
    const t = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')];
    const pushFull = (): void => {
      f.get(row0).get(width).i32Add().get(count).i32LeS();
    };
    // Rows contiguous along p (A, and B transposed, as stored): four p of `w` rows are w/4
    // 4×4 blocks, each loaded as four row vectors and transposed by two rounds of unpacks
    // into the four p-slices of the panel; a k that is not a multiple of 4 leaves its last
    // p to the element loop.
    const rowMajor = (w: number): void => {
      const kBytes = f.local('i32');
      f.get(k).i32(-4).i32And().tee(pStart).i32(2).i32Shl().set(kBytes);
      f.get(src).get(row0).get(strideRow).i32Mul().i32(2).i32Shl().i32Add().set(s0);
      f.forUpTo(q, kBytes, 16, () => {
        for (let g = 0; g < w / 4; g++) {
          for (let e = 0; e < 4; e++) {
            const rr = 4 * g + e;
            if (rr === 0) f.at(s0, q);
            else
              f.at(s0, q)
                .get(rowOff[rr - 1])
                .i32Add();
            f.v128Load().set(v[e]);
          }
          // Interleave rows 0, 1 and rows 2, 3 (unpack low and high), then take 64-bit halves.
          for (const [h, lanes] of UNPACK.entries()) {
            f.get(v[0])
              .get(v[1])
              .shuffle32(lanes)
              .set(t[2 * h]);
            f.get(v[2])
              .get(v[3])
              .shuffle32(lanes)
              .set(t[2 * h + 1]);
          }
          for (let u = 0; u < 4; u++) {
            f.get(d)
              .get(t[2 * (u >> 1)])
              .get(t[2 * (u >> 1) + 1])
              .shuffle32(HALVES[u & 1])
              .v128Store(4 * (u * w + 4 * g));
          }
        }
        f.get(d)
          .i32(16 * w)
          .i32Add()
          .set(d);
      });
    };
    // Step 0: the panel width is a runtime value, so the body advances row0 itself.
    f.forUpTo(row0, padded, 0, () => {
      f.i32(0).set(pStart);
      // Rows adjacent in memory (Aᵀ, and B as stored): a whole panel's slice at p is one
      // contiguous run of `width` floats, moved as vectors (width is a multiple of 4).
      f.get(strideRow).i32(1).i32Eq();
      pushFull();
      f.i32And().ifElse(
        () => {
          f.get(src).get(row0).i32(2).i32Shl().i32Add().set(s0);
          f.get(strideK).i32(2).i32Shl().set(kStep);
          // The micro-kernel's two panel widths, with the copies of each p unrolled (a loop over
          // one or two vectors costs more than their copy); any other width is left to the
          // element loop, as in the row-major path.
          const contiguous = (w: number): void => {
            f.get(k).set(pStart);
            f.forUpTo(p, k, 1, () => {
              for (let h = 0; h < w / 4; h++)
                f.get(d)
                  .get(s0)
                  .v128Load(16 * h)
                  .v128Store(16 * h);
              f.get(d)
                .i32(4 * w)
                .i32Add()
                .set(d);
              f.get(s0).get(kStep).i32Add().set(s0);
            });
          };
          f.get(width)
            .i32(TILE_M)
            .i32Eq()
            .ifElse(
              () => contiguous(TILE_M),
              () =>
                f
                  .get(width)
                  .i32(TILE_N)
                  .i32Eq()
                  .ifElse(() => contiguous(TILE_N)),
            );
        },
        () => {
          f.get(strideK).i32(1).i32Eq();
          pushFull();
          f.i32And().ifElse(() => {
            f.get(width)
              .i32(TILE_M)
              .i32Eq()
              .ifElse(
                () => rowMajor(TILE_M),
                () =>
                  f
                    .get(width)
                    .i32(TILE_N)
                    .i32Eq()
                    .ifElse(() => rowMajor(TILE_N)),
              );
          });
        },
      );
      // Whatever the paths above left (all of it in the general case): element by element.
      f.forRange(
        p,
        () => f.get(pStart),
        () => f.get(k),
        1,
        () => {
          f.forUpTo(r, width, 1, () => {
            f.get(row0)
              .get(r)
              .i32Add()
              .tee(row)
              .get(count)
              .i32LtS()
              .ifElse(
                () => {
                  f.get(d);
                  f.get(src)
                    .get(row)
                    .get(strideRow)
                    .i32Mul()
                    .get(p)
                    .get(strideK)
                    .i32Mul()
                    .i32Add()
                    .i32(2)
                    .i32Shl()
                    .i32Add();
                  f.f32Load().f32Store();
                },
                () => f.get(d).f32(0).f32Store(),
              );
            f.get(d).i32(4).i32Add().set(d);
          });
        },
      );
      f.get(row0).get(width).i32Add().set(row0);
    });
  });

  // The 4×8 register-tiled micro-kernel over packed panels. B's panel (k×8) stays in L1
  // while the A panels stream past it; each k step loads two B vectors and splats four
  // A values, for 8 multiplies and 8 adds on 8 accumulators. (Larger tiles or an unrolled k
  // loop measured slower: V8 issues every load of the loop body first, so 8 accumulators,
  // 6 loaded vectors and a product already take the 15 vector registers it allocates.)
  // A last panel of at most four columns computes only its first vector. With an epilogue
  // (linearPrelu) each finished tile gets its bias added and PReLU applied while still in
  // registers, and is stored twice: the pre-activation to `pre`, the activation to `out`.
  const gemmTiles = (f: FunctionBuilder, params: KernelParams<'gemmPacked'>, epi: GemmEpilogue | null): void => {
    const { aPack, bPack, out, m, n, k, tmp } = params;
    const i = f.local('i32');
    const j = f.local('i32');
    const p = f.local('i32');
    const ap = f.local('i32');
    const bp = f.local('i32');
    const bPanel = f.local('i32');
    const o = f.local('i32');
    const r = f.local('i32');
    const c = f.local('i32');
    const rEnd = f.local('i32');
    const cEnd = f.local('i32');
    const bv: Local[] = [];
    for (let h = 0; h < TILE_V; h++) bv.push(f.local('v128'));
    const av = f.local('v128');
    const apEnd = f.local('i32');
    const acc: Local[] = [];
    for (let q = 0; q < TILE_M * TILE_V; q++) acc.push(f.local('v128'));

    // The row tiles of the panel at column j, with its first `nv` column vectors.
    const cur: BiasCursor | null = epi ? { pb: f.local('i32'), end: f.local('i32') } : null;
    const panel = (nv: number): void => {
      const cols = 4 * nv;
      const tileAcc = (q: number, h: number): Local => acc[TILE_V * q + h];
      f.get(aPack).set(ap);
      if (epi && cur) biasCursorStart(f, epi, cur, n, j);
      f.forUpTo(i, m, TILE_M, () => {
        for (let q = 0; q < TILE_M; q++) for (let h = 0; h < nv; h++) f.f32(0).f32x4Splat().set(tileAcc(q, h));
        f.get(bPanel).set(bp);
        // Plain SIMD: a bottom-tested loop counted by the A pointer itself (k ≥ 1 here), with no
        // counter to bump and no jump back over a top test, measured 2–4% faster in V8; with
        // relaxed SIMD's fused multiply-adds the same loop measured 3–5% slower, so it keeps the
        // counted loop.
        const kLoop = (body: () => void): void => {
          if (simd === 'relaxed') {
            f.forUpTo(p, k, 1, body);
            return;
          }
          f.get(ap)
            .get(k)
            .i32(4 * TILE_M)
            .i32Mul()
            .i32Add()
            .set(apEnd);
          f.loop(() => {
            body();
            f.get(ap).get(apEnd).i32LtS().brIf(0);
          });
        };
        kLoop(() => {
          for (let h = 0; h < nv; h++)
            f.get(bp)
              .v128Load(16 * h)
              .set(bv[h]);
          for (let q = 0; q < TILE_M; q++) {
            f.get(ap)
              .v128Load32Splat(4 * q)
              .set(av);
            for (let h = 0; h < nv; h++) {
              const a = tileAcc(q, h);
              madd(
                f,
                () => f.get(av),
                () => f.get(bv[h]),
                () => f.get(a),
              ).set(a);
            }
          }
          f.get(ap)
            .i32(4 * TILE_M)
            .i32Add()
            .set(ap);
          f.get(bp)
            .i32(4 * TILE_N)
            .i32Add()
            .set(bp);
        });
        // Full tile: store straight into out; edge tile: spill to tmp and copy the valid part.
        f.get(i)
          .i32(TILE_M)
          .i32Add()
          .get(m)
          .i32LeS()
          .get(j)
          .i32(cols)
          .i32Add()
          .get(n)
          .i32LeS()
          .i32And()
          .ifElse(
            () => {
              f.get(out).get(i).get(n).i32Mul().get(j).i32Add().i32(2).i32Shl().i32Add().set(o);
              if (epi && cur) epilogueTile(f, epi, cur, acc, nv, o, out, i, j, n);
              else
                for (let q = 0; q < TILE_M; q++) {
                  for (let h = 0; h < nv; h++)
                    f.get(o)
                      .get(tileAcc(q, h))
                      .v128Store(16 * h);
                  if (q < TILE_M - 1) f.get(o).get(n).i32(2).i32Shl().i32Add().set(o);
                }
            },
            () => {
              for (let q = 0; q < TILE_M; q++)
                for (let h = 0; h < nv; h++)
                  f.get(tmp)
                    .get(tileAcc(q, h))
                    .v128Store(16 * (nv * q + h));
              f.get(m).get(i).i32Sub().set(rEnd);
              f.get(rEnd)
                .i32(TILE_M)
                .i32GtS()
                .ifElse(() => f.i32(TILE_M).set(rEnd));
              f.get(n).get(j).i32Sub().set(cEnd);
              f.get(cEnd)
                .i32(cols)
                .i32GtS()
                .ifElse(() => f.i32(cols).set(cEnd));
              f.forUpTo(r, rEnd, 1, () => {
                f.forUpTo(c, cEnd, 1, () => {
                  f.get(out)
                    .get(i)
                    .get(r)
                    .i32Add()
                    .get(n)
                    .i32Mul()
                    .get(j)
                    .i32Add()
                    .get(c)
                    .i32Add()
                    .i32(2)
                    .i32Shl()
                    .i32Add();
                  if (epi) f.tee(o);
                  f.get(tmp).get(r).i32(cols).i32Mul().get(c).i32Add().i32(2).i32Shl().i32Add();
                  if (epi) epilogueElement(f, epi, o, out, i, r, j, c, n);
                  else f.f32Load().f32Store();
                });
              });
            },
          );
      });
    };

    f.get(bPack).set(bPanel);
    f.forUpTo(j, n, TILE_N, () => {
      f.get(n)
        .get(j)
        .i32Sub()
        .i32(TILE_N - 4)
        .i32LeS()
        .ifElse(
          () => panel(1),
          () => panel(TILE_V),
        );
      f.get(bPanel)
        .get(k)
        .i32(4 * TILE_N)
        .i32Mul()
        .i32Add()
        .set(bPanel);
    });
  };
  const gemmPacked = kernel(mb, 'gemmPacked', (f, params) => gemmTiles(f, params, null));
  const gemmPrelu = kernel(mb, 'gemmPrelu', (f, params) => gemmTiles(f, params, params));

  // One row panel of a GEMM: pack `rows` rows of op(A) then multiply them by the packed B.
  // Row panels are independent and each output element keeps its summation order, so
  // threads can take panels in any order and the result stays bit-identical.
  kernel(mb, 'packGemm', (f, { aSrc, strideRow, strideK, aPack, rows, k, bPack, out, n, tmp }) => {
    f.get(aSrc).get(aPack).get(rows).i32(TILE_M).get(k).get(strideRow).get(strideK).call(pack);
    f.get(aPack).get(bPack).get(out).get(rows).get(n).get(k).get(tmp).call(gemmPacked);
  });
  kernel(
    mb,
    'packGemmPrelu',
    (f, { aSrc, strideRow, strideK, aPack, rows, k, bPack, out, n, tmp, bias, slope, pre, row0, group }) => {
      f.get(aSrc).get(aPack).get(rows).i32(TILE_M).get(k).get(strideRow).get(strideK).call(pack);
      f.get(aPack).get(bPack).get(out).get(rows).get(n).get(k).get(tmp);
      f.get(bias).get(slope).get(pre).get(row0).get(group).call(gemmPrelu);
    },
  );

  // Matrix–vector with contiguous rows: out[r] = x[r, :] · v.
  kernel(mb, 'dotRows', (f, { x, v, out, rows, len }) => {
    const r = f.local('i32');
    const row = f.local('i32');
    const acc = f.local('v128');
    const s = f.local('f32');
    f.get(x).set(row);
    f.forUpTo(r, rows, 1, () => {
      f.f32(0).f32x4Splat().set(acc);
      f.f32(0).set(s);
      simdLoop(
        f,
        len,
        (o) =>
          madd(
            f,
            () => f.at(row, o).v128Load(),
            () => f.at(v, o).v128Load(),
            () => f.get(acc),
          ).set(acc),
        (o) => f.get(s).at(row, o).f32Load().at(v, o).f32Load().f32Mul().f32Add().set(s),
      );
      f.elemAt(out, r);
      f.get(acc).f32x4ExtractLane(0).get(acc).f32x4ExtractLane(1).f32Add();
      f.get(acc).f32x4ExtractLane(2).get(acc).f32x4ExtractLane(3).f32Add().f32Add();
      f.get(s).f32Add().f32Store();
      f.get(row).get(len).i32(2).i32Shl().i32Add().set(row);
    });
  });
  // Vector–matrix: out[:] = sum over r of coef[r] * x[r, :].
  kernel(mb, 'axpyRows', (f, { x, coef, out, rows, len }) => {
    const r = f.local('i32');
    f.get(out).i32(0).get(len).i32(2).i32Shl().memoryFill();
    f.forUpTo(r, rows, 1, () => {
      f.get(out).get(x).get(r).get(len).i32Mul().i32(2).i32Shl().i32Add();
      f.elemAt(coef, r).f32Load().get(len).call(axpyRow);
    });
  });

  // Many small products in one call: out[b] = op(A[b])·op(B[b]) for every b, each operand read
  // through byte strides (batch, row or column, and along k), so every layout and broadcast is the
  // same loop. For the per-row products of a batch (DIN's attention pooling, [1, len]·[len, d] per
  // row) one call replaces a JS call per row, which at these sizes costs more than the arithmetic.
  // Columns adjacent in B go four at a time; every output sums along k in order, as the reference.
  kernel(mb, 'batchedSmallGemm', (f, { a, b, out, batch, m, n, k, aBatch, aRow, aK, bBatch, bK, bCol }) => {
    const bi = f.local('i32');
    const i = f.local('i32');
    const j = f.local('i32');
    const p = f.local('i32');
    const aRowPtr = f.local('i32');
    const pa = f.local('i32');
    const pb = f.local('i32');
    const o = f.local('i32');
    const nVec = f.local('i32');
    const acc = f.local('v128');
    const s = f.local('f32');
    f.get(bCol)
      .i32(4)
      .i32Eq()
      .ifElse(() => f.get(n).i32(-4).i32And().set(nVec));
    f.get(out).set(o);
    f.forUpTo(bi, batch, 1, () => {
      f.get(a).set(aRowPtr);
      f.forUpTo(i, m, 1, () => {
        f.forUpTo(j, nVec, 4, () => {
          f.f32(0).f32x4Splat().set(acc);
          f.get(aRowPtr).set(pa);
          f.elemAt(b, j).set(pb);
          f.forUpTo(p, k, 1, () => {
            madd(
              f,
              () => f.get(pa).v128Load32Splat(),
              () => f.get(pb).v128Load(),
              () => f.get(acc),
            ).set(acc);
            f.get(pa).get(aK).i32Add().set(pa);
            f.get(pb).get(bK).i32Add().set(pb);
          });
          f.elemAt(o, j).get(acc).v128Store();
        });
        f.forRange(
          j,
          () => f.get(nVec),
          () => f.get(n),
          1,
          () => {
            f.f32(0).set(s);
            f.get(aRowPtr).set(pa);
            f.get(b).get(j).get(bCol).i32Mul().i32Add().set(pb);
            f.forUpTo(p, k, 1, () => {
              f.get(s).get(pa).f32Load().get(pb).f32Load().f32Mul().f32Add().set(s);
              f.get(pa).get(aK).i32Add().set(pa);
              f.get(pb).get(bK).i32Add().set(pb);
            });
            f.elemAt(o, j).get(s).f32Store();
          },
        );
        f.get(o).get(n).i32(2).i32Shl().i32Add().set(o);
        f.get(aRowPtr).get(aRow).i32Add().set(aRowPtr);
      });
      f.get(a).get(aBatch).i32Add().set(a);
      f.get(b).get(bBatch).i32Add().set(b);
    });
  });

  // ---- memory ----
  // Fills and moves of arena bytes run here rather than in typed-array natives: on a shared
  // memory (the threaded backend) V8 fills and copies a SharedArrayBuffer with relaxed atomic
  // accesses, 10–40× slower than memset, while memory.fill and memory.copy stay plain memset and
  // memmove. On an unshared memory both are the same speed.
  kernel(mb, 'fill', (f, { out, n, value }) => {
    const v = f.local('v128');
    f.get(value).f32DemoteF64().f32x4Splat().set(v);
    simdLoop(
      f,
      n,
      (o) => f.at(out, o).get(v).v128Store(),
      (o) => f.at(out, o).get(v).f32x4ExtractLane(0).f32Store(),
    );
  });
  kernel(mb, 'zeroBytes', (f, { dst, bytes }) => f.get(dst).i32(0).get(bytes).memoryFill());
  kernel(mb, 'copyBytes', (f, { src, dst, bytes }) => f.get(dst).get(src).get(bytes).memoryCopy());

  // ---- layout ----
  // count runs of runBytes bytes (a multiple of 4), run r from src + r·srcStride to dst +
  // r·dstStride. The runs of concat and split are short (a field's embedding row), where
  // inline vector moves beat a memory.copy call per run; long runs take memory.copy.
  kernel(mb, 'copyRuns', (f, { src, srcStride, dst, dstStride, runBytes, count }) => {
    const r = f.local('i32');
    const off = f.local('i32');
    const endVec = f.local('i32');
    const s0 = f.local('i32');
    const d0 = f.local('i32');
    f.get(src).set(s0);
    f.get(dst).set(d0);
    f.get(runBytes).i32(-16).i32And().set(endVec);
    f.get(runBytes)
      .i32(COPY_RUN_NATIVE)
      .i32GeS()
      .ifElse(
        () => {
          f.forUpTo(r, count, 1, () => {
            f.get(d0).get(s0).get(runBytes).memoryCopy();
            f.get(s0).get(srcStride).i32Add().set(s0);
            f.get(d0).get(dstStride).i32Add().set(d0);
          });
        },
        () => {
          f.forUpTo(r, count, 1, () => {
            f.forUpTo(off, endVec, 16, () => f.at(d0, off).at(s0, off).v128Load().v128Store());
            f.get(endVec).set(off);
            f.get(runBytes)
              .i32(8)
              .i32And()
              .ifElse(() => {
                f.at(d0, off).at(s0, off).v128Load64Zero().v128Store64Lane(0);
                f.get(off).i32(8).i32Add().set(off);
              });
            f.get(runBytes)
              .i32(4)
              .i32And()
              .ifElse(() => f.at(d0, off).at(s0, off).i32Load().i32Store());
            f.get(s0).get(srcStride).i32Add().set(s0);
            f.get(d0).get(dstStride).i32Add().set(d0);
          });
        },
      );
  });

  // ---- rows and embeddings ----
  kernel(mb, 'gatherRows', (f, { x, dim, ids, count, out }) => {
    const i = f.local('i32');
    const rowBytes = f.local('i32');
    const sink = f.local('i32');
    f.get(dim).i32(2).i32Shl().set(rowBytes);
    const rowOff = (r: Local): void => void f.elemAt(ids, r).i32Load().get(rowBytes).i32Mul();
    chunked(f, count, (c0, c1) => {
      touchRows(f, [x], rowOff, c0, c1, rowBytes, sink);
      f.forRange(
        i,
        () => f.get(c0),
        () => f.get(c1),
        1,
        () => {
          f.get(out).get(i).get(rowBytes).i32Mul().i32Add();
          f.get(x);
          rowOff(i);
          f.i32Add().get(rowBytes).memoryCopy();
        },
      );
    });
    keepTouches(f, sink, dim);
  });
  // mode: 0 sum, 1 mean, 2 sqrtn; weights 0 means none. The bag scale is computed in f64
  // as bagScale() does.
  kernel(mb, 'embeddingBag', (f, { table, dim, ids, offsets, weights, mode, out, batch }) => {
    const b = f.local('i32');
    const j = f.local('i32');
    const start = f.local('i32');
    const end = f.local('i32');
    const total = f.local('f64');
    const scale = f.local('f64');
    const w = f.local('f64');
    const rowBytes = f.local('i32');
    const [touched, touchEnd, idsEnd, sink] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
    f.get(dim).i32(2).i32Shl().set(rowBytes);
    f.get(out).i32(0).get(batch).get(rowBytes).i32Mul().memoryFill();
    // Rows are touched ahead in chunks of ids, whatever the bags' lengths: [bag 0's start, touched) is done.
    f.elemAt(offsets, batch).i32Load().set(idsEnd);
    f.get(offsets).i32Load().set(touched);
    const rowOff = (r: Local): void => void f.elemAt(ids, r).i32Load().get(rowBytes).i32Mul();
    const weightAt = (): void => {
      f.get(weights).select2(
        'f64',
        () => f.elemAt(weights, j).f32Load().f64PromoteF32(),
        () => f.f64(1),
      );
    };
    f.forUpTo(b, batch, 1, () => {
      f.elemAt(offsets, b).i32Load().set(start);
      f.elemAt(offsets, b).i32Load(4).set(end);
      f.f64(1).set(scale);
      f.get(mode)
        .i32(0)
        .i32Ne()
        .get(end)
        .get(start)
        .i32Ne()
        .i32And()
        .ifElse(() => {
          f.f64(0).set(total);
          f.forRange(
            j,
            () => f.get(start),
            () => f.get(end),
            1,
            () => {
              weightAt();
              f.set(w);
              f.get(total).get(w);
              f.get(mode)
                .i32(1)
                .i32Eq()
                .select2(
                  'f64',
                  () => f.f64(1),
                  () => f.get(w),
                );
              f.f64Mul().f64Add().set(total);
            },
          );
          f.get(total)
            .f64(0)
            .f64Eq()
            .select2(
              'f64',
              () => f.f64(0),
              () =>
                f
                  .get(mode)
                  .i32(1)
                  .i32Eq()
                  .select2(
                    'f64',
                    () => f.f64(1).get(total).f64Div(),
                    () => f.f64(1).get(total).f64Sqrt().f64Div(),
                  ),
            );
          f.set(scale);
        });
      f.block(() =>
        f.loop(() => {
          f.get(touched).get(end).i32GeS().brIf(1);
          f.get(touched).i32(TOUCH_CHUNK).i32Add().tee(touchEnd).get(idsEnd).i32GtS();
          f.ifElse(() => f.get(idsEnd).set(touchEnd));
          touchRows(f, [table], rowOff, touched, touchEnd, rowBytes, sink);
          f.get(touchEnd).set(touched);
          f.br(0);
        }),
      );
      f.forRange(
        j,
        () => f.get(start),
        () => f.get(end),
        1,
        () => {
          f.get(out).get(b).get(rowBytes).i32Mul().i32Add();
          f.get(table).elemAt(ids, j).i32Load().get(rowBytes).i32Mul().i32Add();
          weightAt();
          f.get(scale).f64Mul().f32DemoteF64().get(dim).call(axpyRow);
        },
      );
    });
    keepTouches(f, sink, dim);
  });
  kernel(mb, 'segmentSumRows', (f, { src, dim, segments, nseg, srcRows, scales, out }) => {
    const u = f.local('i32');
    const c = f.local('i32');
    const rowBytes = f.local('i32');
    f.get(dim).i32(2).i32Shl().set(rowBytes);
    f.get(out).i32(0).get(nseg).get(rowBytes).i32Mul().memoryFill();
    f.forUpTo(u, nseg, 1, () => {
      f.forRange(
        c,
        () => f.elemAt(segments, u).i32Load(),
        () => f.elemAt(segments, u).i32Load(4),
        1,
        () => {
          f.get(out).get(u).get(rowBytes).i32Mul().i32Add();
          f.get(src).elemAt(srcRows, c).i32Load().get(rowBytes).i32Mul().i32Add();
          f.get(scales).select2(
            'f32',
            () => f.elemAt(scales, c).f32Load(),
            () => f.f32(1),
          );
          f.get(dim).call(axpyRow);
        },
      );
    });
  });
  kernel(mb, 'scatterAddRows', (f, { values, dim, rows, count, out }) => {
    const i = f.local('i32');
    const rowBytes = f.local('i32');
    f.get(dim).i32(2).i32Shl().set(rowBytes);
    f.forUpTo(i, count, 1, () => {
      f.get(out).elemAt(rows, i).i32Load().get(rowBytes).i32Mul().i32Add();
      f.get(values).get(i).get(rowBytes).i32Mul().i32Add();
      f.f32(1).get(dim).call(axpyRow);
    });
  });

  // ---- fused nn ----
  kernel(mb, 'prelu', (f, { x, slope, out, rows, channels }) => {
    const r = f.local('i32');
    const px = f.local('i32');
    const po = f.local('i32');
    const t = f.local('v128');
    const rowBytes = f.local('i32');
    f.get(channels).i32(2).i32Shl().set(rowBytes);
    // v > 0 ? v : s * v
    const body = (load: (base: Local, o: Local) => void, o: Local): void => {
      load(px, o);
      f.tee(t);
      load(slope, o);
      f.get(t).f32x4Mul();
      f.get(t).f32(0).f32x4Splat().f32x4Gt().v128Bitselect();
    };
    f.forUpTo(r, rows, 1, () => {
      f.get(x).get(r).get(rowBytes).i32Mul().i32Add().set(px);
      f.get(out).get(r).get(rowBytes).i32Mul().i32Add().set(po);
      simdLoop(
        f,
        channels,
        (o) => {
          f.at(po, o);
          body((base, off) => f.at(base, off).v128Load(), o);
          f.v128Store();
        },
        (o) => {
          f.at(po, o);
          body((base, off) => f.at(base, off).v128Load32Splat(), o);
          f.f32x4ExtractLane(0).f32Store();
        },
      );
    });
  });
  kernel(mb, 'linearPreluBackward', (f, { pre, slope, g, gp, gs, gb, rows, channels, group }) =>
    preluBackwardBody(f, pre, slope, g, gp, gs, { gb, group }, rows, channels),
  );
  kernel(mb, 'preluBackward', (f, { x, slope, g, gx, gs, rows, channels }) =>
    preluBackwardBody(f, x, slope, g, gx, gs, null, rows, channels),
  );

  // Elementwise f64 kernels over f32 storage: out[i] = fn(in0[i], in1[i], ...).
  // Every argument of the layout before `out` is an input.
  const mapF64 = (
    layout: 'bce' | 'bceBackward' | 'productBce',
    emit: (f: FunctionBuilder, vals: Local[]) => void,
  ): void => {
    kernel(mb, layout, (f, params) => {
      const { out, n, ...inputs } = params as Readonly<Record<string, Local>>;
      const ins = Object.values(inputs);
      const i = f.local('i32');
      const vals = ins.map(() => f.local('f64'));
      f.forUpTo(i, n, 1, () => {
        ins.forEach((p, q) => f.elemAt(p, i).f32Load().f64PromoteF32().set(vals[q]));
        f.elemAt(out, i);
        emit(f, vals);
        f.f32DemoteF64().f32Store();
      });
    });
  };
  mapF64('bce', (f, [x, y]) => f.get(x).get(y).call(bceScalar));
  mapF64('bceBackward', (f, [x, y, g]) => f.get(x).call(sigmoid).get(y).f64Sub().get(g).f64Mul());
  mapF64('productBce', (f, [a, b, y]) => f.get(a).get(b).get(y).call(productBceScalar));
  kernel(mb, 'productBceBackward', (f, { a, b, y, g, ga, gb, n }) => {
    const i = f.local('i32');
    const [va, vb, vy, vg] = [f.local('f64'), f.local('f64'), f.local('f64'), f.local('f64')];
    const [tailA, tailB, p] = [f.local('f64'), f.local('f64'), f.local('f64')];
    f.forUpTo(i, n, 1, () => {
      f.elemAt(a, i).f32Load().f64PromoteF32().set(va);
      f.elemAt(b, i).f32Load().f64PromoteF32().set(vb);
      f.elemAt(y, i).f32Load().f64PromoteF32().set(vy);
      f.elemAt(g, i).f32Load().f64PromoteF32().set(vg);
      f.get(va).call(logSigmoidTail).set(tailA);
      f.get(vb).call(logSigmoidTail).set(tailB);
      // p = exp(logσ(a) + logσ(b)): one value for both gradients (the sum commutes exactly).
      f.get(va).get(tailA).call(logSigmoidWith).get(vb).get(tailB).call(logSigmoidWith).f64Add().call(exp).set(p);
      f.elemAt(ga, i).get(va);
      f.get(vb).f64Neg().get(tailB).call(logSigmoidWith);
      f.get(p).get(vy).call(productBceGradWith).get(vg).f64Mul().f32DemoteF64().f32Store();
      f.elemAt(gb, i).get(vb);
      f.get(va).f64Neg().get(tailA).call(logSigmoidWith);
      f.get(p).get(vy).call(productBceGradWith).get(vg).f64Mul().f32DemoteF64().f32Store();
    });
  });

  // ---- optimizers ----
  // Adam in f32x4. The reference computes each update in f64 and rounds m, v and p to f32;
  // here every operation rounds to f32 (a relaxed multiply-add perhaps once for the pair) and
  // 1/√(1−β₂ᵗ) is a multiply, so m and v differ from it by a few ulp and p by a few ulp of
  // the (small) step: well inside float32 training noise, and four lanes at a time instead
  // of a sqrt and two f64 divisions per element.
  // Lanes are independent, so the result does not depend on how a call is cut into chunks.
  /** The hyper-parameters as splatted f32x4 locals, in layout order; the last (√c₂) becomes 1/√c₂. */
  const adamConsts = (
    f: FunctionBuilder,
    p: KernelParams<'adam'> | KernelParams<'sparseAdam'> | KernelParams<'sparseAdamSegments'>,
  ): Local[] => {
    const hyper = [p.beta1, p.oneMinusBeta1, p.beta2, p.oneMinusBeta2, p.eps, p.weightDecay, p.stepSize];
    const c = hyper.map((h) => {
      const l = f.local('v128');
      f.get(h).f32DemoteF64().f32x4Splat().set(l);
      return l;
    });
    const inv = f.local('v128');
    f.f64(1).get(p.sqrtC2).f64Div().f32DemoteF64().f32x4Splat().set(inv);
    return [...c, inv];
  };
  /**
   * Emits the update of `bytes` bytes at p, g, m, v: whole vectors, then a two-float and a
   * one-float tail with narrow loads and lane stores, so no neighbouring element is touched
   * (another thread may own it). With `grad`, the gradient is not loaded from g but pushed by
   * `grad(load, off)` (which loads with `load`, the load of the vector width being emitted).
   */
  const adamSpan = (
    f: FunctionBuilder,
    p: Local,
    g: Local,
    m: Local,
    v: Local,
    bytes: Local,
    c: Local[],
    grad?: (load: () => void, off: Local) => void,
  ): void => {
    const [b1, omb1, b2, omb2, eps, wd, stepSize, invSqrtC2] = c;
    const off = f.local('i32');
    const endVec = f.local('i32');
    const pv = f.local('v128');
    const gv = f.local('v128');
    const mv = f.local('v128');
    const vv = f.local('v128');
    const body = (load: () => void, store: () => void): void => {
      f.at(p, off);
      load();
      f.set(pv);
      madd(
        f,
        () => f.get(wd),
        () => f.get(pv),
        () => {
          if (grad) grad(load, off);
          else {
            f.at(g, off);
            load();
          }
        },
      ).set(gv);
      f.at(m, off);
      madd(
        f,
        () => f.get(omb1),
        () => f.get(gv),
        () => {
          f.get(b1).at(m, off);
          load();
          f.f32x4Mul();
        },
      ).tee(mv);
      store();
      f.at(v, off);
      madd(
        f,
        () => f.get(omb2).get(gv).f32x4Mul(),
        () => f.get(gv),
        () => {
          f.get(b2).at(v, off);
          load();
          f.f32x4Mul();
        },
      ).tee(vv);
      store();
      f.at(p, off);
      f.get(pv).get(stepSize).get(mv).f32x4Mul();
      madd(
        f,
        () => f.get(vv).f32x4Sqrt(),
        () => f.get(invSqrtC2),
        () => f.get(eps),
      );
      f.f32x4Div().f32x4Sub();
      store();
    };
    f.get(bytes).i32(-16).i32And().set(endVec);
    f.forUpTo(off, endVec, 16, () =>
      body(
        () => f.v128Load(),
        () => f.v128Store(),
      ),
    );
    f.get(endVec).set(off);
    f.get(bytes)
      .i32(8)
      .i32And()
      .ifElse(() => {
        body(
          () => f.v128Load64Zero(),
          () => f.v128Store64Lane(0),
        );
        f.get(off).i32(8).i32Add().set(off);
      });
    f.get(bytes)
      .i32(4)
      .i32And()
      .ifElse(() =>
        body(
          () => f.v128Load32Splat(),
          () => f.v128Store32Lane(0),
        ),
      );
  };
  kernel(mb, 'adam', (f, params) => {
    const { p, g, m, v, n } = params;
    const c = adamConsts(f, params);
    const bytes = f.local('i32');
    f.get(n).i32(2).i32Shl().set(bytes);
    adamSpan(f, p, g, m, v, bytes, c);
  });
  // Rows are distinct (the core coalesces sparse gradients), so threads may take any rows.
  kernel(mb, 'sparseAdam', (f, params) => {
    const { p, m, v, dim, rows, count, g } = params;
    const c = adamConsts(f, params);
    const i = f.local('i32');
    const off = f.local('i32');
    const rowBytes = f.local('i32');
    const [pr, mr, vr, gr] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
    const sink = f.local('i32');
    f.get(dim).i32(2).i32Shl().set(rowBytes);
    f.get(g).set(gr);
    const rowOff = (r: Local): void => void f.elemAt(rows, r).i32Load().get(rowBytes).i32Mul();
    chunked(f, count, (c0, c1) => {
      touchRows(f, [p, m, v], rowOff, c0, c1, rowBytes, sink);
      f.forRange(
        i,
        () => f.get(c0),
        () => f.get(c1),
        1,
        () => {
          rowOff(i);
          f.set(off);
          f.get(p).get(off).i32Add().set(pr);
          f.get(m).get(off).i32Add().set(mr);
          f.get(v).get(off).i32Add().set(vr);
          adamSpan(f, pr, gr, mr, vr, rowBytes, c);
          f.get(gr).get(rowBytes).i32Add().set(gr);
        },
      );
    });
    keepTouches(f, sink, dim);
  });

  // sparseAdam whose gradient vector is summed in registers, term by term as segmentSumRows'
  // axpyRow (the same multiply-add from zero), so the result is the same bits as the two kernels.
  kernel(mb, 'sparseAdamSegments', (f, params) => {
    const { p, m, v, dim, rows, count, src, segments, srcRows, scales } = params;
    const c = adamConsts(f, params);
    const [u, k, off, rowBytes, sp] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
    const [pr, mr, vr] = [f.local('i32'), f.local('i32'), f.local('i32')];
    const acc = f.local('v128');
    const wv = f.local('v128');
    f.get(dim).i32(2).i32Shl().set(rowBytes);
    const grad = (load: () => void, o: Local): void => {
      f.f32(0).f32x4Splat().set(acc);
      f.forRange(
        k,
        () => f.elemAt(segments, u).i32Load(),
        () => f.elemAt(segments, u).i32Load(4),
        1,
        () => {
          f.get(scales)
            .select2(
              'f32',
              () => f.elemAt(scales, k).f32Load(),
              () => f.f32(1),
            )
            .f32x4Splat()
            .set(wv);
          f.get(src).elemAt(srcRows, k).i32Load().get(rowBytes).i32Mul().i32Add().set(sp);
          madd(
            f,
            () => f.get(wv),
            () => {
              f.at(sp, o);
              load();
            },
            () => f.get(acc),
          ).set(acc);
        },
      );
      f.get(acc);
    };
    f.forUpTo(u, count, 1, () => {
      f.elemAt(rows, u).i32Load().get(rowBytes).i32Mul().set(off);
      f.get(p).get(off).i32Add().set(pr);
      f.get(m).get(off).i32Add().set(mr);
      f.get(v).get(off).i32Add().set(vr);
      adamSpan(f, pr, pr, mr, vr, rowBytes, c, grad);
    });
  });

  return mb.build();
}

const cached = new Map<string, WebAssembly.Module>();

/**
 * The compiled kernel module (for a shared memory or not, of one SIMD variant), built and
 * compiled synchronously once per process.
 */
export function kernelModule(shared = false, simd: SimdVariant = 'plain'): WebAssembly.Module {
  const key = `${shared}/${simd}`;
  let module = cached.get(key);
  if (!module) {
    module = new WebAssembly.Module(buildKernelModule(shared, simd));
    cached.set(key, module);
  }
  return module;
}
