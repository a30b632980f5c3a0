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
 */
import type { Backend, Storage } from '../backend.js';
import { bagScale } from '../reference.js';
import { broadcastStrides, stridesOf } from '../shape-util.js';
import { hostArray, inverseMap, padded } from './launch-args.js';
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

/** Names of the {@link Backend} kernels, i.e. its methods other than storage management. */
export type KernelMethod = Exclude<
  { [K in keyof Backend]: Backend[K] extends (...args: never[]) => void ? K : never }[keyof Backend],
  'supportsDtype' | 'alloc' | 'fromArray' | 'read' | 'write' | 'free'
>;

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

/** Replaces the contents of `out` with the host values `data`. */
export function upload(out: Storage, data: Float32Array): Plan {
  return run(out, 'upload', SOURCES.upload, [data]);
}

/** The launches of every kernel, shared by the synchronous and the webgpu backend. */
export const PLANS: Plans = {
  // ---- elementwise ----

  fill(out, value) {
    return run(out, 'fill', SOURCES.fill, [value]);
  },
  copy(src, out) {
    // Not the 'upload' kernel: gpu.js switches kernel instances when an argument's type changes
    // (array vs texture), and the switched instances share one output texture. One type per key.
    return run(out, 'copy', SOURCES.upload, [src]);
  },
  unary(op, x, out) {
    return run(out, `unary:${op}`, SOURCES.unary(op), [x]);
  },
  affine(x, alpha, beta, out) {
    return run(out, 'affine', SOURCES.affine, [x, alpha, beta]);
  },
  axpby(a, x, b, y, out) {
    return run(out, 'axpby', SOURCES.axpby, [a, x, b, y]);
  },
  *binary(op, a, aShape, b, bShape, out, outShape) {
    if (a.size === out.size && b.size === out.size) {
      return yield* run(out, `binary:${op}`, SOURCES.binarySame(op), [a, b]);
    }
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

  // ---- reductions and layout ----

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
    if (cols === 0) return PLANS.fill(out, -Infinity);
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

  // ---- linear algebra ----

  matmul(a, b, out, g) {
    const { m, n, k } = g;
    if (k === 0) return PLANS.fill(out, 0);
    // Transposes and broadcast batches become strides, so one compiled kernel serves all eight layouts.
    const aR = g.transA ? 1 : k;
    const aC = g.transA ? m : 1;
    const bR = g.transB ? 1 : n;
    const bC = g.transB ? k : 1;
    const args = [a, b, m, n, k, g.batchA ? m * k : 0, aR, aC, g.batchB ? k * n : 0, bR, bC];
    return run(out, 'matmul', SOURCES.matmul, args, k);
  },

  // ---- rows and embeddings ----

  gatherRows(x, dim, ids, out) {
    return run(out, 'gatherRows', SOURCES.gatherRows, [x, hostArray(ids), dim]);
  },
  embeddingBag(table, dim, ids, offsets, weights, mode, out) {
    const batch = offsets.length - 1;
    const scales = new Float32Array(Math.max(1, batch));
    let longest = 0;
    for (let b = 0; b < batch; b++) {
      scales[b] = bagScale(weights, offsets[b], offsets[b + 1], mode);
      longest = Math.max(longest, offsets[b + 1] - offsets[b]);
    }
    const w = hostArray(weights ?? new Float32Array(ids.length).fill(1));
    const args = [table, hostArray(ids), hostArray(offsets), w, scales, dim];
    return run(out, 'embeddingBag', SOURCES.embeddingBag, args, longest);
  },
  segmentSumRows(src, dim, segments, srcRows, scales, out) {
    const segCount = Math.max(0, segments.length - 1);
    let longest = 0;
    for (let u = 0; u < segCount; u++) longest = Math.max(longest, segments[u + 1] - segments[u]);
    const s = hostArray(scales ?? new Float32Array(srcRows.length).fill(1));
    const args = [src, hostArray(segments.length > 0 ? segments : [0]), hostArray(srcRows), s, dim, segCount];
    return run(out, 'segmentSumRows', SOURCES.segmentSumRows, args, longest);
  },
  *scatterAddRows(values, dim, rows, out) {
    if (rows.length === 0 || dim === 0) return [];
    const inv = inverseMap(rows, out.size / dim);
    return yield* run(out, 'scatterAddRows', SOURCES.scatterAddRows, [out, values, inv, dim]);
  },

  // ---- fused nn kernels ----

  prelu(x, slope, channels, out) {
    return run(out, 'prelu', SOURCES.prelu, [x, slope, channels]);
  },
  *preluBackward(x, slope, gradOut, channels, gradX, gradSlope) {
    const rows = channels === 0 ? 0 : x.size / channels;
    const dSlope = yield launch('preluGradSlope', SOURCES.preluGradSlope, gradSlope.size, [x, gradOut, channels, rows], rows);
    const dx = yield launch('preluGradX', SOURCES.preluGradX, gradX.size, [x, slope, gradOut, channels]);
    return [
      [gradX, dx],
      [gradSlope, dSlope],
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

  // ---- optimizers ----

  *adam(param, grad, m, v, h) {
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
  },
  *sparseAdam(param, m, v, dim, rows, gradRows, h) {
    if (rows.length === 0 || dim === 0) return [];
    const c1 = 1 - Math.pow(h.beta1, h.step);
    const c2 = 1 - Math.pow(h.beta2, h.step);
    const inv = inverseMap(rows, param.size / dim);
    const mArgs = [m, gradRows, param, inv, dim, h.beta1, h.weightDecay];
    const mNew = yield launch('sparseAdamM', SOURCES.sparseAdamM, m.size, mArgs);
    const vNew = yield launch('sparseAdamV', SOURCES.sparseAdamV, v.size, [v, gradRows, param, inv, dim, h.beta2, h.weightDecay]);
    if (mNew === null || vNew === null) return [];
    const pArgs = [param, mNew, vNew, inv, dim, h.lr / c1, Math.sqrt(c2), h.eps];
    const pNew = yield launch('sparseAdamP', SOURCES.sparseAdamP, param.size, pArgs);
    return [
      [m, mNew],
      [v, vNew],
      [param, pNew],
    ];
  },
};
