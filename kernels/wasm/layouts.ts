/**
 * The argument layout of every exported wasm kernel, declared once.
 *
 * A layout names each parameter in order and says how a threaded call moves it: the module
 * builder takes the parameter types and names from it (`kernels.ts`), and the backend calls a
 * kernel with named arguments, from which both the serial call and each chunk of a threaded
 * call are derived (`backend.ts`). A kernel cut into chunks of elements or of rows gets, per
 * chunk, its moving pointers advanced to the chunk's first element or row and its count
 * argument set to the chunk's length; every other argument is passed as it is.
 */
import type { ValType } from './builder.js';

/** How one kernel argument is passed. */
export interface ArgSpec {
  /** Its WebAssembly type: integers and byte pointers are i32, scalars f64. */
  readonly type: Extract<ValType, 'i32' | 'f64'>;
  /**
   * In a split by elements: a pointer to float32 data, advanced 4 bytes per element; with
   * `unless`, it stays where that argument is nonzero (a splatted operand).
   */
  readonly perElem?: true | { readonly unless: string };
  /** In a split by rows: a pointer advanced 4·stride bytes per row, stride a number or the argument holding it. */
  readonly perRow?: number | string;
  /** The argument that receives a chunk's length, in a split by this unit. */
  readonly count?: SplitUnit;
}

/**
 * Most arguments a kernel may take: a threaded call passes each chunk's arguments in a row of this
 * many (and `pool.ts` calls a kernel with exactly this many).
 */
export const MAX_KERNEL_ARGS = 20;

/** What a threaded call is cut into. */
export type SplitUnit = 'elems' | 'rows';

/** An integer, or a pointer that every chunk shares. */
const i32: ArgSpec = { type: 'i32' };
/** A float scalar. */
const f64: ArgSpec = { type: 'f64' };
/** A pointer to float32 data that chunks of elements advance. */
const elems: ArgSpec = { type: 'i32', perElem: true };
/** A pointer that chunks of rows advance by `stride` 4-byte values per row. */
const rows = (stride: number | string): ArgSpec => ({ type: 'i32', perRow: stride });
/** The length of the call, in `unit`s: a chunk's length in a threaded call. */
const count = (unit: SplitUnit): ArgSpec => ({ type: 'i32', count: unit });

/** Adam's f64 hyper-parameters, shared by both Adam kernels (the last one is √(1−β₂ᵗ)). */
const ADAM = {
  beta1: f64,
  oneMinusBeta1: f64,
  beta2: f64,
  oneMinusBeta2: f64,
  eps: f64,
  weightDecay: f64,
  stepSize: f64,
  sqrtC2: f64,
} as const;

/** The GEMM over packed panels. */
const GEMM_PACKED = { aPack: i32, bPack: i32, out: i32, m: i32, n: i32, k: i32, tmp: i32 } as const;

/** Packing A's rows and the GEMM in one call (a threaded chunk's row panel). */
const PACK_GEMM = {
  aSrc: i32,
  strideRow: i32,
  strideK: i32,
  aPack: i32,
  rows: i32,
  k: i32,
  bPack: i32,
  out: i32,
  n: i32,
  tmp: i32,
} as const;

/**
 * What the linear + PReLU epilogue adds to a GEMM's arguments, after them: `row0` is the index of
 * the call's first row in the whole product (a threaded chunk starts inside it) and `group` the
 * number of consecutive rows that share one bias row.
 */
const PRELU_EPILOGUE = { bias: i32, slope: i32, pre: i32, row0: i32, group: i32 } as const;

/** Every exported kernel's parameters, in order. `unary_<op>` and `binary_<op>` share one layout per family. */
export const LAYOUTS = {
  unary: { x: elems, out: elems, n: count('elems') },
  // A broadcast over a [rows, cols] view: each operand advances by its row stride per row and is
  // contiguous along the row or one splatted value. Few long rows are cut along their columns.
  binary: {
    a: { type: 'i32', perRow: 'aRow', perElem: { unless: 'aSplat' } },
    aRow: i32,
    aSplat: i32,
    b: { type: 'i32', perRow: 'bRow', perElem: { unless: 'bSplat' } },
    bRow: i32,
    bSplat: i32,
    out: { type: 'i32', perRow: 'cols', perElem: true },
    rows: count('rows'),
    cols: count('elems'),
  },
  affine: { x: elems, out: elems, n: count('elems'), alpha: f64, beta: f64 },
  axpby: { a: f64, x: elems, b: f64, y: elems, out: elems, n: count('elems') },
  colSum: { x: i32, out: i32, outer: i32, rows: i32, cols: i32 },
  rowSum: { x: i32, out: i32, rows: i32, cols: i32 },
  pack: { src: i32, dst: i32, count: i32, width: i32, k: i32, strideRow: i32, strideK: i32 },
  gemmPacked: GEMM_PACKED,
  packGemm: PACK_GEMM,
  // The same two with the linear + PReLU epilogue (bias and slope per column, pre-activation out).
  gemmPrelu: { ...GEMM_PACKED, ...PRELU_EPILOGUE },
  packGemmPrelu: { ...PACK_GEMM, ...PRELU_EPILOGUE },
  dotRows: { x: rows('len'), v: i32, out: rows(1), rows: count('rows'), len: i32 },
  axpyRows: { x: i32, coef: i32, out: i32, rows: i32, len: i32 },
  // Strides are in bytes: op(A[b])(i, p) at a + b·aBatch + i·aRow + p·aK, op(B[b])(p, j) likewise.
  batchedSmallGemm: {
    a: i32,
    b: i32,
    out: i32,
    batch: i32,
    m: i32,
    n: i32,
    k: i32,
    aBatch: i32,
    aRow: i32,
    aK: i32,
    bBatch: i32,
    bK: i32,
    bCol: i32,
  },
  copyRuns: { src: i32, srcStride: i32, dst: i32, dstStride: i32, runBytes: i32, count: i32 },
  fill: { out: elems, n: count('elems'), value: f64 },
  zeroBytes: { dst: i32, bytes: i32 },
  copyBytes: { src: i32, dst: i32, bytes: i32 },
  gatherRows: { x: i32, dim: i32, ids: rows(1), count: count('rows'), out: rows('dim') },
  // Bags write disjoint output rows; offsets stay absolute into ids and weights.
  embeddingBag: {
    table: i32,
    dim: i32,
    ids: i32,
    offsets: rows(1),
    weights: i32,
    mode: i32,
    out: rows('dim'),
    batch: count('rows'),
  },
  segmentSumRows: {
    src: i32,
    dim: i32,
    segments: rows(1),
    nseg: count('rows'),
    srcRows: i32,
    scales: i32,
    out: rows('dim'),
  },
  scatterAddRows: { values: i32, dim: i32, rows: i32, count: i32, out: i32 },
  prelu: { x: rows('channels'), slope: i32, out: rows('channels'), rows: count('rows'), channels: i32 },
  linearPreluBackward: {
    pre: i32,
    slope: i32,
    g: i32,
    gp: i32,
    gs: i32,
    gb: i32,
    rows: i32,
    channels: i32,
    group: i32,
  },
  preluBackward: { x: i32, slope: i32, g: i32, gx: i32, gs: i32, rows: i32, channels: i32 },
  bce: { x: elems, y: elems, out: elems, n: count('elems') },
  bceBackward: { x: elems, y: elems, g: elems, out: elems, n: count('elems') },
  productBce: { a: elems, b: elems, y: elems, out: elems, n: count('elems') },
  productBceBackward: { a: elems, b: elems, y: elems, g: elems, ga: elems, gb: elems, n: count('elems') },
  adam: { p: elems, g: elems, m: elems, v: elems, n: count('elems'), ...ADAM },
  // Rows are distinct (the core coalesces sparse gradients), so chunks of rows update disjoint
  // parts of p, m and v, which the row ids index and which therefore stay put.
  sparseAdam: { p: i32, m: i32, v: i32, dim: i32, rows: rows(1), count: count('rows'), g: rows('dim'), ...ADAM },
  // As sparseAdam; segments move with rows and stay absolute into srcRows and scales.
  sparseAdamSegments: {
    p: i32,
    m: i32,
    v: i32,
    dim: i32,
    rows: rows(1),
    count: count('rows'),
    src: i32,
    segments: rows(1),
    srcRows: i32,
    scales: i32,
    ...ADAM,
  },
} as const satisfies Record<string, Readonly<Record<string, ArgSpec>>>;

/** A kernel layout's name. */
export type Layout = keyof typeof LAYOUTS;

/** The arguments of a kernel of layout `L`, by name. */
export type KernelArgs<L extends Layout> = { readonly [K in keyof (typeof LAYOUTS)[L]]: number };

/** The exported name of a kernel of layout `L`: the layout's own, or `<family>_<op>` for unary and binary. */
export type KernelName<L extends Layout> = L extends 'unary' | 'binary' ? `${L}_${string}` : L;

/** The argument names of `layout`, in parameter order. */
export function argNames(layout: Layout): readonly string[] {
  return Object.keys(LAYOUTS[layout]);
}

/** The argument specs of `layout`, in parameter order. */
export function argSpecs(layout: Layout): readonly ArgSpec[] {
  return Object.values(LAYOUTS[layout]);
}

/**
 * Checks one layout: its argument names are identifiers (the backend generates its serial call
 * from them) and every name it refers to (row strides, splat flags) is one of its arguments.
 */
export function checkLayout(layout: Layout): void {
  const names = new Set(argNames(layout));
  if (names.size > MAX_KERNEL_ARGS)
    throw new Error(`wasm kernel layout '${layout}' has ${names.size} arguments, more than ${MAX_KERNEL_ARGS}`);
  for (const n of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(n))
      throw new Error(`wasm kernel layout '${layout}': bad argument name '${n}'`);
  }
  for (const spec of argSpecs(layout)) {
    for (const r of [spec.perRow, typeof spec.perElem === 'object' ? spec.perElem.unless : undefined]) {
      if (typeof r === 'string' && !names.has(r)) {
        throw new Error(`wasm kernel layout '${layout}' refers to '${r}', which is not one of its arguments`);
      }
    }
  }
}

/** {@link checkLayout} on every layout. */
export function checkLayouts(): void {
  for (const layout of Object.keys(LAYOUTS) as Layout[]) checkLayout(layout);
}
