/**
 * Every kernel of {@link Backend} once, as the gpu.js launches it takes.
 *
 * A plan shapes the host-side arguments (broadcast strides, padded shapes, bag scales,
 * inverse row maps, loop bounds), yields one {@link Launch} per kernel call, is sent that
 * call's result as an opaque {@link Temp}, and returns which results replace which storages.
 * `launcher.ts` steps a plan at once for the synchronous backend and awaits each launch for
 * the webgpu one, so the two cannot drift apart in what they launch. Storages are replaced
 * only after the last launch: kernels that read a buffer another one of the same plan
 * rewrites (Adam's moments and parameter, PReLU's gradients) all see the old contents.
 *
 * A tensor too large for one kernel arrives as a {@link BlockedStorage}; the kernels that
 * support it launch once per block (row kernels with block-local ids built on the host), and
 * `PLANS` makes every other kernel refuse it by name.
 */
import type { AdamHyper, Backend, KernelMethod, Storage } from '../backend.js';
import { bagScale } from '../reference.js';
import { broadcastStrides, stridesOf } from '../shape-util.js';
import { CHUNK_ELEMENTS, MAX_KERNEL_ELEMENTS, hostArray, inverseMap, padded } from './launch-args.js';
import { MAX_RANK, SOURCES } from './sources.js';

/** The result of an earlier launch of the same plan, passed on to a later launch or to a storage. */
export class Temp {
  constructor(
    /** Position of the launch among the plan's launches. */
    readonly index: number,
  ) {}
}

/** A kernel argument: a number, a host array, a storage of the running backend, or an earlier result. */
export type PlanArg = number | Float32Array | Storage | Temp;

/** One kernel call: `source` compiled once per `key` and loop class, sized to `size` outputs. */
export interface Launch {
  /** Cache key; gpu.js fixes argument types per compiled kernel, so one key means one set of types. */
  readonly key: string;
  /** Kernel source from `sources.ts`. */
  readonly source: string;
  /** Output length. */
  readonly size: number;
  /** Arguments in the kernel's order. */
  readonly args: readonly PlanArg[];
  /** Longest loop in the kernel; gpu.js compiles loop bounds in. */
  readonly loopBound: number;
}

/** A storage and the result that replaces its contents (null: an empty result). */
export type Replacement = readonly [Storage, Temp | null];

/** A kernel as launches: yields each, is sent its result (null when empty), returns the replacements. */
export type Plan = Generator<Launch, readonly Replacement[], Temp | null>;

/** A plan per kernel, taking the kernel's own arguments. */
export type Plans = { readonly [K in KernelMethod]: (...args: Parameters<Backend[K]>) => Plan };

function launch(key: string, source: string, size: number, args: readonly PlanArg[], loopBound = 0): Launch {
  return { key, source, size, args, loopBound };
}

/** One launch that rewrites all of `out`. */
function* run(out: Storage, key: string, source: string, args: readonly PlanArg[], loopBound = 0): Plan {
  const result = yield launch(key, source, out.size, args, loopBound);
  return [[out, result]];
}

function checkRank(rank: number): void {
  if (rank > MAX_RANK) throw new Error(`gpu backend: rank ${rank} > ${MAX_RANK}`);
}

/**
 * A tensor too large for one kernel, held as blocks of {@link CHUNK_ELEMENTS} (the last one
 * shorter), each a storage of its own. Rows may straddle two blocks.
 */
export interface BlockedStorage extends Storage {
  /** The blocks in order; every one but the last holds {@link CHUNK_ELEMENTS} elements. */
  readonly chunks: readonly Storage[];
}

/** The blocks of `s`, or null when it is one plain storage. */
export function chunksOf(s: Storage): readonly Storage[] | null {
  const c = (s as Partial<BlockedStorage>).chunks;
  return Array.isArray(c) ? c : null;
}

/** Refuses blocked storages among `args` for a kernel that does not run per block. */
function refuseBlocked(kernel: string, args: readonly unknown[]): void {
  for (const a of args) {
    if (a !== null && typeof a === 'object' && 'size' in a && chunksOf(a as Storage) !== null) {
      throw new Error(
        `gpu backend: kernel '${kernel}' does not support tensors of ${MAX_KERNEL_ELEMENTS} elements or more ` +
          `(this one has ${(a as Storage).size}); only storage, elementwise, row and Adam kernels run on them`,
      );
    }
  }
}

/**
 * Runs `body` once on `storages` when none is blocked, else once per block on the matching
 * blocks; blocked and plain storages, or blocked ones of different sizes, cannot be mixed.
 */
function* perBlock(kernel: string, storages: readonly Storage[], body: (parts: readonly Storage[]) => Plan): Plan {
  const blocks = storages.map(chunksOf);
  if (blocks.every((b) => b === null)) return yield* body(storages);
  if (blocks.some((b) => b === null) || storages.some((s) => s.size !== storages[0].size))
    refuseBlocked(kernel, storages);
  const all: Replacement[] = [];
  const count = (blocks[0] as readonly Storage[]).length;
  for (let c = 0; c < count; c++) all.push(...(yield* body(blocks.map((b) => (b as readonly Storage[])[c]))));
  return all;
}

/** Per block of a blocked table of `dim`-wide rows: its offset, length and phase (cells of its first row before it). */
function blockGeometry(
  blocks: readonly Storage[],
  dim: number,
): { base: number; len: number; phase: number; firstRow: number }[] {
  if (dim > CHUNK_ELEMENTS) throw new Error(`gpu backend: rows of ${dim} elements are too wide for a blocked tensor`);
  let base = 0;
  return blocks.map((b) => {
    const firstRow = Math.floor(base / dim);
    const g = { base, len: b.size, phase: base - firstRow * dim, firstRow };
    base += b.size;
    return g;
  });
}

/** Block-local inverse maps of `rows` for the blocks they touch (null elsewhere), as {@link inverseMap} per block. */
function blockInverseMaps(blocks: readonly Storage[], dim: number, rows: Int32Array): (Float32Array | null)[] {
  const geo = blockGeometry(blocks, dim);
  const total = geo.reduce((n, g) => n + g.len, 0);
  const maps: (Float32Array | null)[] = blocks.map(() => null);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (r < 0 || r >= total / dim) throw new Error(`gpu backend: row ${r} outside [0, ${total / dim})`);
    const first = Math.floor((r * dim) / CHUNK_ELEMENTS);
    const last = Math.floor((r * dim + dim - 1) / CHUNK_ELEMENTS);
    for (let c = first; c <= last; c++) {
      const g = geo[c];
      let inv = maps[c];
      if (inv === null) {
        inv = new Float32Array(Math.ceil((g.len + g.phase) / dim)).fill(-1);
        maps[c] = inv;
      }
      inv[r - g.firstRow] = i;
    }
  }
  return maps;
}

/**
 * Runs `body` on each block of a blocked table that holds one of `rows` (untouched blocks
 * are not rewritten), with that block's inverse map and phase; the scatter-style kernels' loop.
 */
function* perTouchedBlock(
  blocks: readonly Storage[],
  dim: number,
  rows: Int32Array,
  body: (c: number, inv: Float32Array, phase: number) => Plan,
): Plan {
  const maps = blockInverseMaps(blocks, dim, rows);
  const geo = blockGeometry(blocks, dim);
  const all: Replacement[] = [];
  for (let c = 0; c < blocks.length; c++) {
    const inv = maps[c];
    if (inv !== null) all.push(...(yield* body(c, inv, geo[c].phase)));
  }
  return all;
}

/** Rows `ids` of a blocked table into a fresh result of ids.length × dim, one launch per block they touch. */
function* gatherBlocks(
  blocks: readonly Storage[],
  dim: number,
  ids: Int32Array,
): Generator<Launch, Temp | null, Temp | null> {
  const geo = blockGeometry(blocks, dim);
  const total = geo.reduce((n, g) => n + g.len, 0);
  let acc = yield launch('fill', SOURCES.fill, ids.length * dim, [0]);
  if (acc === null) return null;
  for (let c = 0; c < blocks.length; c++) {
    const { base, len } = geo[c];
    // Rows outside the block start at -dim, so every one of their cells falls before it.
    const starts = new Float32Array(ids.length).fill(-dim);
    let touched = false;
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (id < 0 || id * dim >= total) throw new Error(`gpu backend: row ${id} outside [0, ${total / dim})`);
      const s = id * dim - base;
      if (s > -dim && s < len) {
        starts[r] = s;
        touched = true;
      }
    }
    if (!touched) continue;
    acc = yield launch('gatherChunk', SOURCES.gatherChunk, ids.length * dim, [acc, blocks[c], starts, dim, len]);
    if (acc === null) return null;
  }
  return acc;
}

/** Replaces the contents of `out` with the host values `data`. */
export function upload(out: Storage, data: Float32Array): Plan {
  return run(out, 'upload', SOURCES.upload, [data]);
}

/** Sets every element of `out` (one launch per block) to `value`. */
function fillAll(out: Storage, value: number): Plan {
  return perBlock('fill', [out], ([o]) => run(o, 'fill', SOURCES.fill, [value]));
}

/** Dense Adam on one set of same-size storages (one block each when blocked). */
function* adamOne(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamHyper): Plan {
  const c1 = 1 - Math.pow(h.beta1, h.step);
  const c2 = 1 - Math.pow(h.beta2, h.step);
  const mNew = yield launch('adamM', SOURCES.adamM, m.size, [m, grad, param, h.beta1, h.weightDecay]);
  const vNew = yield launch('adamV', SOURCES.adamV, v.size, [v, grad, param, h.beta2, h.weightDecay]);
  if (mNew === null || vNew === null) return [];
  const pNew = yield launch('adamP', SOURCES.adamP, param.size, [param, mNew, vNew, h.lr / c1, Math.sqrt(c2), h.eps]);
  return [
    [m, mNew],
    [v, vNew],
    [param, pNew],
  ];
}

/** Sparse Adam on a table (or one block of it, `phase` cells into its first row) given its inverse row map. */
function* sparseAdamOne(
  param: Storage,
  m: Storage,
  v: Storage,
  dim: number,
  inv: Float32Array,
  gradRows: Storage | Temp,
  h: AdamHyper,
  phase: number | null,
): Plan {
  const c1 = 1 - Math.pow(h.beta1, h.step);
  const c2 = 1 - Math.pow(h.beta2, h.step);
  const chunked = phase !== null;
  const tag = chunked ? ':chunk' : '';
  const extra = chunked ? [phase] : [];
  const mArgs = [m, gradRows, param, inv, dim, h.beta1, h.weightDecay, ...extra];
  const mNew = yield launch(`sparseAdamM${tag}`, SOURCES.sparseAdamM(chunked), m.size, mArgs);
  const vArgs = [v, gradRows, param, inv, dim, h.beta2, h.weightDecay, ...extra];
  const vNew = yield launch(`sparseAdamV${tag}`, SOURCES.sparseAdamV(chunked), v.size, vArgs);
  if (mNew === null || vNew === null) return [];
  const pArgs = [param, mNew, vNew, inv, dim, h.lr / c1, Math.sqrt(c2), h.eps, ...extra];
  const pNew = yield launch(`sparseAdamP${tag}`, SOURCES.sparseAdamP(chunked), param.size, pArgs);
  return [
    [m, mNew],
    [v, vNew],
    [param, pNew],
  ];
}

/**
 * Kernels that run per block of a blocked storage (storage, elementwise, row and Adam
 * kernels): each handles blocks itself, by {@link perBlock} or block-local row maps.
 */
const BLOCK_AWARE = {
  fill: fillAll,
  copy(src, out) {
    // Not the 'upload' kernel: gpu.js switches kernel instances when an argument's type changes
    // (array vs texture), and the switched instances share one output texture. One type per key.
    return perBlock('copy', [src, out], ([s, o]) => run(o, 'copy', SOURCES.upload, [s]));
  },
  unary(op, x, out) {
    return perBlock('unary', [x, out], ([xx, o]) => run(o, `unary:${op}`, SOURCES.unary(op), [xx]));
  },
  affine(x, alpha, beta, out) {
    return perBlock('affine', [x, out], ([xx, o]) => run(o, 'affine', SOURCES.affine, [xx, alpha, beta]));
  },
  axpby(a, x, b, y, out) {
    return perBlock('axpby', [x, y, out], ([xx, yy, o]) => run(o, 'axpby', SOURCES.axpby, [a, xx, b, yy]));
  },
  *binary(op, a, aShape, b, bShape, out, outShape) {
    if (a.size === out.size && b.size === out.size) {
      return yield* perBlock('binary', [a, b, out], ([p, q, o]) =>
        run(o, `binary:${op}`, SOURCES.binarySame(op), [p, q]),
      );
    }
    refuseBlocked('binary', [a, b, out]);
    checkRank(outShape.length);
    return yield* run(out, `broadcast:${op}`, SOURCES.binaryBroadcast(op), [
      a,
      b,
      padded(outShape),
      padded(broadcastStrides(aShape, outShape)),
      padded(broadcastStrides(bShape, outShape)),
      outShape.length,
    ]);
  },
  *gatherRows(x, dim, ids, out) {
    refuseBlocked('gatherRows', [out]);
    const blocks = chunksOf(x);
    if (blocks === null) return yield* run(out, 'gatherRows', SOURCES.gatherRows, [x, hostArray(ids), dim]);
    return [[out, yield* gatherBlocks(blocks, dim, ids)]];
  },
  *embeddingBag(table, dim, ids, offsets, weights, mode, out) {
    refuseBlocked('embeddingBag', [out]);
    const batch = offsets.length - 1;
    const scales = new Float32Array(Math.max(1, batch));
    let longest = 0;
    for (let b = 0; b < batch; b++) {
      scales[b] = bagScale(weights, offsets[b], offsets[b + 1], mode);
      longest = Math.max(longest, offsets[b + 1] - offsets[b]);
    }
    const w = hostArray(weights ?? new Float32Array(ids.length).fill(1));
    const blocks = chunksOf(table);
    if (blocks === null) {
      const args = [table, hostArray(ids), hostArray(offsets), w, scales, dim];
      return yield* run(out, 'embeddingBag', SOURCES.embeddingBag, args, longest);
    }
    // A blocked table is gathered first, so bags pool one small table in the usual order.
    if (ids.length === 0) return yield* fillAll(out, 0);
    const rows = yield* gatherBlocks(blocks, dim, ids);
    if (rows === null) return [];
    const positions = new Float32Array(ids.length).map((_, i) => i);
    return yield* run(
      out,
      'embeddingBag',
      SOURCES.embeddingBag,
      [rows, positions, hostArray(offsets), w, scales, dim],
      longest,
    );
  },
  *scatterAddRows(values, dim, rows, out) {
    if (rows.length === 0 || dim === 0) return [];
    refuseBlocked('scatterAddRows', [values]);
    const blocks = chunksOf(out);
    if (blocks === null) {
      const inv = inverseMap(rows, out.size / dim);
      return yield* run(out, 'scatterAddRows', SOURCES.scatterAddRows(false), [out, values, inv, dim]);
    }
    return yield* perTouchedBlock(blocks, dim, rows, (c, inv, phase) =>
      run(blocks[c], 'scatterAddRows:chunk', SOURCES.scatterAddRows(true), [blocks[c], values, inv, dim, phase]),
    );
  },
  adam(param, grad, m, v, h) {
    return perBlock('adam', [param, grad, m, v], ([p, g, mm, vv]) => adamOne(p, g, mm, vv, h));
  },
  *sparseAdam(param, m, v, dim, rows, gradRows, h) {
    if (rows.length === 0 || dim === 0) return [];
    refuseBlocked('sparseAdam', [gradRows]);
    return yield* sparseAdamRows(param, m, v, dim, rows, gradRows, h);
  },
  // The segment sum as a launch whose result the Adam launches read: no storage is written for it.
  *sparseAdamSegments(param, m, v, dim, rows, src, segments, srcRows, scales, h) {
    if (rows.length === 0 || dim === 0) return [];
    refuseBlocked('sparseAdamSegments', [src]);
    const args = segmentSumArgs(src, dim, segments, srcRows, scales);
    const grad = yield launch('segmentSumRows', SOURCES.segmentSumRows, rows.length * dim, args.args, args.longest);
    if (grad === null) return [];
    return yield* sparseAdamRows(param, m, v, dim, rows, grad, h);
  },
} satisfies Partial<Plans>;

/** Sparse Adam with its gradient rows in a storage or an earlier launch's result, on a plain or blocked table. */
function* sparseAdamRows(
  param: Storage,
  m: Storage,
  v: Storage,
  dim: number,
  rows: Int32Array,
  gradRows: Storage | Temp,
  h: AdamHyper,
): Plan {
  {
    const pb = chunksOf(param);
    const mb = chunksOf(m);
    const vb = chunksOf(v);
    if (pb === null && mb === null && vb === null) {
      return yield* sparseAdamOne(param, m, v, dim, inverseMap(rows, param.size / dim), gradRows, h, null);
    }
    if (pb === null || mb === null || vb === null || m.size !== param.size || v.size !== param.size) {
      refuseBlocked('sparseAdam', [param, m, v]);
    }
    const [pc, mc, vc] = [pb, mb, vb] as (readonly Storage[])[];
    return yield* perTouchedBlock(pc, dim, rows, (c, inv, phase) =>
      sparseAdamOne(pc[c], mc[c], vc[c], dim, inv, gradRows, h, phase),
    );
  }
}

/** The segmentSumRows launch's arguments and its longest segment (its loop bound). */
function segmentSumArgs(
  src: Storage,
  dim: number,
  segments: Int32Array,
  srcRows: Int32Array,
  scales: Float32Array | null,
): { args: PlanArg[]; longest: number } {
  const segCount = Math.max(0, segments.length - 1);
  let longest = 0;
  for (let u = 0; u < segCount; u++) longest = Math.max(longest, segments[u + 1] - segments[u]);
  const s = hostArray(scales ?? new Float32Array(srcRows.length).fill(1));
  return {
    args: [src, hostArray(segments.length > 0 ? segments : [0]), hostArray(srcRows), s, dim, segCount],
    longest,
  };
}

/** Kernels that run on one kernel's worth of elements; {@link PLANS} makes them refuse blocked storages by name. */
const SINGLE_BLOCK = {
  *reduceSum(x, shape, axes, out) {
    checkRank(shape.length);
    const strides = stridesOf(shape);
    const kept = shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const red = shape.map((_, i) => i).filter((i) => axes.includes(i));
    const redCount = red.reduce((p, i) => p * shape[i], 1);
    const args = [
      x,
      padded(kept.map((i) => shape[i])),
      padded(kept.map((i) => strides[i])),
      kept.length,
      padded(red.map((i) => shape[i])),
      padded(red.map((i) => strides[i])),
      red.length,
      redCount,
    ];
    return yield* run(out, 'reduceSum', SOURCES.reduceSum, args, redCount);
  },
  reduceMaxLast(x, rows, cols, out) {
    if (cols === 0) return fillAll(out, -Infinity);
    return run(out, 'reduceMaxLast', SOURCES.reduceMaxLast, [x, cols], cols);
  },
  *permute(x, shape, perm, out) {
    checkRank(shape.length);
    const strides = stridesOf(shape);
    const args = [x, padded(perm.map((p) => shape[p])), padded(perm.map((p) => strides[p])), shape.length];
    return yield* run(out, 'permute', SOURCES.permute, args);
  },
  *copyBlock(src, srcShape, srcBegin, out, outShape, outBegin, extent) {
    checkRank(outShape.length);
    if (extent.some((e) => e === 0)) return [];
    const sStr = stridesOf(srcShape);
    const srcBase = srcBegin.reduce((acc, b, d) => acc + b * sStr[d], 0);
    const args = [src, out, padded(outShape), padded(outBegin), padded(extent), padded(sStr), outShape.length, srcBase];
    return yield* run(out, 'copyBlock', SOURCES.copyBlock, args);
  },
  matmul(a, b, out, g) {
    const { m, n, k } = g;
    if (k === 0) return fillAll(out, 0);
    // Transposes and broadcast batches become strides, so one compiled kernel serves all eight layouts.
    const aR = g.transA ? 1 : k;
    const aC = g.transA ? m : 1;
    const bR = g.transB ? 1 : n;
    const bC = g.transB ? k : 1;
    const args = [a, b, m, n, k, g.batchA ? m * k : 0, aR, aC, g.batchB ? k * n : 0, bR, bC];
    return run(out, 'matmul', SOURCES.matmul, args, k);
  },
  segmentSumRows(src, dim, segments, srcRows, scales, out) {
    const { args, longest } = segmentSumArgs(src, dim, segments, srcRows, scales);
    return run(out, 'segmentSumRows', SOURCES.segmentSumRows, args, longest);
  },
  prelu(x, slope, channels, out) {
    return run(out, 'prelu', SOURCES.prelu, [x, slope, channels]);
  },
  *preluBackward(x, slope, gradOut, channels, gradX, gradSlope) {
    const rows = channels === 0 ? 0 : x.size / channels;
    const dSlope = yield launch(
      'preluGradSlope',
      SOURCES.preluGradSlope,
      gradSlope.size,
      [x, gradOut, channels, rows],
      rows,
    );
    const dx = yield launch('preluGradX', SOURCES.preluGradX, gradX.size, [x, slope, gradOut, channels]);
    return [
      [gradX, dx],
      [gradSlope, dSlope],
    ];
  },
  // Two launches: the GEMM with its bias, then PReLU over the result.
  *linearPrelu(x, weight, bias, slope, rows, channels, k, pre, out, biasRows) {
    const group = Math.max(1, rows / biasRows);
    const z = yield launch('linearBias', SOURCES.linearBias, pre.size, [x, weight, bias, channels, k, group], k);
    if (z === null) return [];
    const y = yield launch('prelu', SOURCES.prelu, out.size, [z, slope, channels]);
    return [
      [pre, z],
      [out, y],
    ];
  },
  *linearPreluBackward(pre, slope, gradOut, channels, gradPre, gradSlope, gradBias, biasRows) {
    const rows = channels === 0 ? 0 : pre.size / channels;
    const dSlope = yield launch(
      'preluGradSlope',
      SOURCES.preluGradSlope,
      channels,
      [pre, gradOut, channels, rows],
      rows,
    );
    const dPre = yield launch('preluGradX', SOURCES.preluGradX, gradPre.size, [pre, slope, gradOut, channels]);
    if (dPre === null) return [];
    const group = Math.max(1, rows / biasRows);
    const dBias = yield launch('colSum', SOURCES.colSum, gradBias.size, [dPre, channels, group], group);
    return [
      [gradPre, dPre],
      [gradSlope, dSlope],
      [gradBias, dBias],
    ];
  },
  *softmaxLast(x, mask, rows, cols, out) {
    if (rows === 0 || cols === 0) return [];
    const masked = mask !== null;
    const tag = masked ? 'masked' : 'plain';
    const m: PlanArg[] = mask ? [mask] : [];
    // Row statistics first, so each output cell is one exp and one divide.
    const hi = yield launch(`softmaxMax:${tag}`, SOURCES.softmaxMax(masked), rows, [x, ...m, cols], cols);
    if (hi === null) return [];
    const total = yield launch(`softmaxSum:${tag}`, SOURCES.softmaxSum(masked), rows, [x, ...m, hi, cols], cols);
    if (total === null) return [];
    return yield* run(out, `softmaxNorm:${tag}`, SOURCES.softmaxNormalize(masked), [x, ...m, hi, total, cols]);
  },
  bceWithLogits(logits, labels, out) {
    return run(out, 'bce', SOURCES.bce, [logits, labels]);
  },
  bceWithLogitsBackward(logits, labels, gradOut, out) {
    return run(out, 'bceBackward', SOURCES.bceBackward, [logits, labels, gradOut]);
  },
  productBce(a, b, labels, out) {
    return run(out, 'productBce', SOURCES.productBce, [a, b, labels]);
  },
  *productBceBackward(a, b, labels, gradOut, gradA, gradB) {
    const da = yield launch('productBceGrad', SOURCES.productBceGrad, gradA.size, [a, b, labels, gradOut]);
    const db = yield launch('productBceGrad', SOURCES.productBceGrad, gradB.size, [b, a, labels, gradOut]);
    return [
      [gradA, da],
      [gradB, db],
    ];
  },
} satisfies Partial<Plans>;

/** `plans` with every kernel refusing blocked storages among its arguments. */
function refusingBlocked<T extends Partial<Plans>>(plans: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, plan] of Object.entries(plans) as [KernelMethod, (...args: unknown[]) => Plan][]) {
    out[name] = (...args: unknown[]): Plan => {
      refuseBlocked(name, args);
      return plan(...args);
    };
  }
  return out as T;
}

/**
 * The launches of every kernel, shared by the synchronous and the webgpu backend: the
 * kernel surface both generate their methods from. A kernel missing here fails to compile.
 */
export const PLANS: Plans = { ...BLOCK_AWARE, ...refusingBlocked(SINGLE_BLOCK) };

/** Every kernel method of {@link Backend}, in {@link PLANS} order. */
export const KERNEL_METHODS = Object.keys(PLANS) as readonly KernelMethod[];
