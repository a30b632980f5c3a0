/**
 * The reference backend: plain TypeScript loops over host typed arrays.
 *
 * It is the ground truth every other backend is checked against, and the only one
 * that supports float64 (used by gradient checks). Clarity wins over speed here.
 */
import type {
  AdamHyper,
  Backend,
  BagMode,
  BinaryOp,
  DType,
  FloatArray,
  RangeAccess,
  Storage,
  UnaryOp,
} from './backend.js';
import { defineKernels, kernelBase } from './kernel-table.js';
import * as sm from './stable-math.js';
import { broadcastStrides, stridesOf } from './shape-util.js';

/** Host storage: a typed array of the tensor's dtype. */
export class HostStorage implements Storage {
  constructor(
    readonly data: FloatArray,
    readonly dtype: DType,
  ) {}
  get size(): number {
    return this.data.length;
  }
}

function host(s: Storage): FloatArray {
  if (!(s instanceof HostStorage)) throw new Error('reference backend: storage belongs to another backend');
  return s.data;
}

/** Throws unless [start, start + count) lies within a buffer of `size` elements. */
export function checkRange(start: number, count: number, size: number, what: string): void {
  if (!(Number.isSafeInteger(start) && start >= 0 && start + count <= size))
    throw new Error(`${what}: elements [${start}, ${start + count}) outside a buffer of ${size}`);
}

function newArray(size: number, dtype: DType): FloatArray {
  return dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
}

const unaryFns: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  log1p: Math.log1p,
  sqrt: Math.sqrt,
  square: (x) => x * x,
  abs: Math.abs,
  sigmoid: sm.sigmoid,
  logSigmoid: sm.logSigmoid,
  tanh: Math.tanh,
  relu: (x) => (x > 0 ? x : 0),
  step: (x) => (x > 0 ? 1 : 0),
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
};

const binaryFns: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: (a, b) => (a >= b ? a : b),
  minimum: (a, b) => (a <= b ? a : b),
  pow: Math.pow,
};

/** Calls `visit(outIndex, aIndex, bIndex)` for every element of a broadcast. */
function forEachBroadcast(
  aShape: readonly number[],
  bShape: readonly number[],
  outShape: readonly number[],
  visit: (o: number, ia: number, ib: number) => void,
): void {
  const rank = outShape.length;
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const index = new Array<number>(rank).fill(0);
  const total = outShape.reduce((p, d) => p * d, 1);
  let ia = 0;
  let ib = 0;
  for (let o = 0; o < total; o++) {
    visit(o, ia, ib);
    // Odometer increment: carry through trailing dimensions.
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      ia += sa[d];
      ib += sb[d];
      if (index[d] < outShape[d]) break;
      ia -= sa[d] * outShape[d];
      ib -= sb[d] * outShape[d];
      index[d] = 0;
    }
  }
}

function adamUpdate(
  p: FloatArray,
  g: FloatArray,
  m: FloatArray,
  v: FloatArray,
  pOff: number,
  gOff: number,
  n: number,
  h: AdamHyper,
): void {
  const c1 = 1 - Math.pow(h.beta1, h.step);
  const c2 = 1 - Math.pow(h.beta2, h.step);
  const stepSize = h.lr / c1;
  const sqrtC2 = Math.sqrt(c2);
  for (let i = 0; i < n; i++) {
    const j = pOff + i;
    const grad = g[gOff + i] + h.weightDecay * p[j];
    m[j] = h.beta1 * m[j] + (1 - h.beta1) * grad;
    v[j] = h.beta2 * v[j] + (1 - h.beta2) * grad * grad;
    p[j] -= (stepSize * m[j]) / (Math.sqrt(v[j]) / sqrtC2 + h.eps);
  }
}

/** The plain-TypeScript backend. */
export class ReferenceBackend extends kernelBase() implements Backend, RangeAccess {
  readonly name = 'reference';

  supportsDtype(_dtype: DType): boolean {
    return true;
  }

  alloc(size: number, dtype: DType): Storage {
    return new HostStorage(newArray(size, dtype), dtype);
  }
  fromArray(data: FloatArray, dtype: DType): Storage {
    const copy = newArray(data.length, dtype);
    copy.set(data);
    return new HostStorage(copy, dtype);
  }
  read(storage: Storage): FloatArray {
    return host(storage).slice();
  }
  write(storage: Storage, data: ArrayLike<number>): void {
    const dst = host(storage);
    if (data.length !== dst.length) throw new Error(`write: ${data.length} values into a buffer of ${dst.length}`);
    dst.set(data);
  }
  readRange(storage: Storage, start: number, out: FloatArray): void {
    const src = host(storage);
    checkRange(start, out.length, src.length, 'readRange');
    out.set(src.subarray(start, start + out.length));
  }
  writeRange(storage: Storage, start: number, data: FloatArray): void {
    const dst = host(storage);
    checkRange(start, data.length, dst.length, 'writeRange');
    dst.set(data, start);
  }
  free(_storage: Storage): void {
    // Garbage collection reclaims host arrays.
  }
}

/** The kernels, in plain loops over host arrays. */
defineKernels(ReferenceBackend, {
  fill(out, value) {
    host(out).fill(value);
  },
  copy(src, out) {
    host(out).set(host(src));
  },
  unary(op, x, out) {
    const f = unaryFns[op];
    const xs = host(x);
    const os = host(out);
    for (let i = 0; i < xs.length; i++) os[i] = f(xs[i]);
  },
  affine(x, alpha, beta, out) {
    const xs = host(x);
    const os = host(out);
    for (let i = 0; i < xs.length; i++) os[i] = alpha * xs[i] + beta;
  },
  axpby(a, x, b, y, out) {
    const xs = host(x);
    const ys = host(y);
    const os = host(out);
    for (let i = 0; i < os.length; i++) os[i] = a * xs[i] + b * ys[i];
  },
  binary(op, a, aShape, b, bShape, out, outShape) {
    const f = binaryFns[op];
    const as = host(a);
    const bs = host(b);
    const os = host(out);
    if (as.length === os.length && bs.length === os.length) {
      for (let i = 0; i < os.length; i++) os[i] = f(as[i], bs[i]);
      return;
    }
    forEachBroadcast(aShape, bShape, outShape, (o, ia, ib) => {
      os[o] = f(as[ia], bs[ib]);
    });
  },
  reduceSum(x, shape, axes, out) {
    const xs = host(x);
    const os = host(out);
    os.fill(0);
    const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    // Broadcasting `out` against `x` maps each input element to its output slot.
    forEachBroadcast(outShape, shape, shape, (_o, io, ix) => {
      os[io] += xs[ix];
    });
  },
  reduceMaxLast(x, rows, cols, out) {
    const xs = host(x);
    const os = host(out);
    for (let r = 0; r < rows; r++) {
      let best = -Infinity;
      for (let c = 0; c < cols; c++) best = Math.max(best, xs[r * cols + c]);
      os[r] = best;
    }
  },
  permute(x, shape, perm, out) {
    const xs = host(x);
    const os = host(out);
    const inStrides = stridesOf(shape);
    const outShape = perm.map((p) => shape[p]);
    const permutedStrides = perm.map((p) => inStrides[p]);
    forEachBroadcast(outShape, outShape, outShape, (o) => {
      let rest = o;
      let src = 0;
      for (let d = outShape.length - 1; d >= 0; d--) {
        const i = rest % outShape[d];
        rest = (rest - i) / outShape[d];
        src += i * permutedStrides[d];
      }
      os[o] = xs[src];
    });
  },
  copyBlock(src, srcShape, srcBegin, out, outShape, outBegin, extent) {
    const ss = host(src);
    const os = host(out);
    const sStr = stridesOf(srcShape);
    const oStr = stridesOf(outShape);
    let sBase = 0;
    let oBase = 0;
    for (let d = 0; d < extent.length; d++) {
      sBase += srcBegin[d] * sStr[d];
      oBase += outBegin[d] * oStr[d];
    }
    forEachBroadcast(extent, extent, extent, (o) => {
      let rest = o;
      let si = sBase;
      let oi = oBase;
      for (let d = extent.length - 1; d >= 0; d--) {
        const i = rest % extent[d];
        rest = (rest - i) / extent[d];
        si += i * sStr[d];
        oi += i * oStr[d];
      }
      os[oi] = ss[si];
    });
  },
  matmul(a, b, out, g) {
    const as = host(a);
    const bs = host(b);
    const os = host(out);
    const { m, n, k } = g;
    // Accumulate each output row in float64 (the ground truth should not round per term),
    // walking B row by row when it is not transposed so the inner loop is contiguous.
    const row = new Float64Array(n);
    for (let bi = 0; bi < g.batch; bi++) {
      const aOff = g.batchA ? bi * m * k : 0;
      const bOff = g.batchB ? bi * k * n : 0;
      const oOff = bi * m * n;
      for (let i = 0; i < m; i++) {
        row.fill(0);
        for (let p = 0; p < k; p++) {
          const av = g.transA ? as[aOff + p * m + i] : as[aOff + i * k + p];
          if (g.transB) {
            for (let j = 0; j < n; j++) row[j] += av * bs[bOff + j * k + p];
          } else {
            const bRow = bOff + p * n;
            for (let j = 0; j < n; j++) row[j] += av * bs[bRow + j];
          }
        }
        for (let j = 0; j < n; j++) os[oOff + i * n + j] = row[j];
      }
    }
  },
  gatherRows(x, dim, ids, out) {
    const xs = host(x);
    const os = host(out);
    for (let i = 0; i < ids.length; i++) {
      os.set(xs.subarray(ids[i] * dim, ids[i] * dim + dim), i * dim);
    }
  },
  embeddingBag(table, dim, ids, offsets, weights, mode, out) {
    const ts = host(table);
    const os = host(out);
    const batch = offsets.length - 1;
    os.fill(0);
    for (let b = 0; b < batch; b++) {
      const start = offsets[b];
      const end = offsets[b + 1];
      const scale = bagScale(weights, start, end, mode);
      for (let j = start; j < end; j++) {
        const w = (weights ? weights[j] : 1) * scale;
        const row = ids[j] * dim;
        for (let d = 0; d < dim; d++) os[b * dim + d] += w * ts[row + d];
      }
    }
  },
  segmentSumRows(src, dim, segments, srcRows, scales, out) {
    const ss = host(src);
    const os = host(out);
    os.fill(0);
    for (let u = 0; u + 1 < segments.length; u++) {
      for (let c = segments[u]; c < segments[u + 1]; c++) {
        const w = scales ? scales[c] : 1;
        const row = srcRows[c] * dim;
        for (let d = 0; d < dim; d++) os[u * dim + d] += w * ss[row + d];
      }
    }
  },
  scatterAddRows(values, dim, rows, out) {
    const vs = host(values);
    const os = host(out);
    for (let i = 0; i < rows.length; i++) {
      for (let d = 0; d < dim; d++) os[rows[i] * dim + d] += vs[i * dim + d];
    }
  },
  prelu(x, slope, channels, out) {
    const xs = host(x);
    const ss = host(slope);
    const os = host(out);
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i];
      os[i] = v > 0 ? v : ss[i % channels] * v;
    }
  },
  preluBackward(x, slope, gradOut, channels, gradX, gradSlope) {
    const xs = host(x);
    const ss = host(slope);
    const gs = host(gradOut);
    const gx = host(gradX);
    const gsl = host(gradSlope);
    gsl.fill(0);
    for (let i = 0; i < xs.length; i++) {
      const c = i % channels;
      if (xs[i] > 0) {
        gx[i] = gs[i];
      } else {
        gx[i] = ss[c] * gs[i];
        gsl[c] += xs[i] * gs[i];
      }
    }
  },
  linearPrelu(x, weight, bias, slope, rows, channels, k, pre, out, biasRows) {
    const geometry = { batch: 1, m: rows, n: channels, k, transA: false, transB: true, batchA: false, batchB: false };
    this.matmul(x, weight, pre, geometry);
    const ps = host(pre);
    const bs = host(bias);
    const ss = host(slope);
    const os = host(out);
    const group = (rows / biasRows) * channels;
    // The sum is stored (rounded to the dtype) before the bias is added, as matmul then add would.
    for (let i = 0; i < ps.length; i++) {
      const c = i % channels;
      ps[i] = ps[i] + bs[Math.floor(i / group) * channels + c];
      const v = ps[i];
      os[i] = v > 0 ? v : ss[c] * v;
    }
  },
  linearPreluBackward(pre, slope, gradOut, channels, gradPre, gradSlope, gradBias, biasRows) {
    const ps = host(pre);
    const ss = host(slope);
    const gs = host(gradOut);
    const gp = host(gradPre);
    const gsl = host(gradSlope);
    const gb = host(gradBias);
    const group = ps.length / biasRows;
    gsl.fill(0);
    gb.fill(0);
    for (let i = 0; i < ps.length; i++) {
      const c = i % channels;
      const b = Math.floor(i / group) * channels + c;
      if (ps[i] > 0) {
        gp[i] = gs[i];
      } else {
        gp[i] = ss[c] * gs[i];
        gsl[c] += ps[i] * gs[i];
      }
      gb[b] += gp[i];
    }
  },
  softmaxLast(x, mask, rows, cols, out) {
    const xs = host(x);
    const ms = mask ? host(mask) : null;
    const os = host(out);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let hi = -Infinity;
      for (let c = 0; c < cols; c++) if (!ms || ms[base + c] !== 0) hi = Math.max(hi, xs[base + c]);
      let total = 0;
      for (let c = 0; c < cols; c++) {
        const e = !ms || ms[base + c] !== 0 ? Math.exp(xs[base + c] - hi) : 0;
        os[base + c] = e;
        total += e;
      }
      for (let c = 0; c < cols; c++) os[base + c] = total > 0 ? os[base + c] / total : 0;
    }
  },
  bceWithLogits(logits, labels, out) {
    const xs = host(logits);
    const ys = host(labels);
    const os = host(out);
    for (let i = 0; i < xs.length; i++) os[i] = sm.bceWithLogits(xs[i], ys[i]);
  },
  bceWithLogitsBackward(logits, labels, gradOut, out) {
    const xs = host(logits);
    const ys = host(labels);
    const gs = host(gradOut);
    const os = host(out);
    for (let i = 0; i < xs.length; i++) os[i] = (sm.sigmoid(xs[i]) - ys[i]) * gs[i];
  },
  productBce(a, b, labels, out) {
    const as = host(a);
    const bs = host(b);
    const ys = host(labels);
    const os = host(out);
    for (let i = 0; i < as.length; i++) os[i] = sm.productBce(as[i], bs[i], ys[i]);
  },
  productBceBackward(a, b, labels, gradOut, gradA, gradB) {
    const as = host(a);
    const bs = host(b);
    const ys = host(labels);
    const gs = host(gradOut);
    const ga = host(gradA);
    const gb = host(gradB);
    for (let i = 0; i < as.length; i++) {
      ga[i] = sm.productBceGradA(as[i], bs[i], ys[i]) * gs[i];
      gb[i] = sm.productBceGradA(bs[i], as[i], ys[i]) * gs[i];
    }
  },
  adam(param, grad, m, v, hyper) {
    const p = host(param);
    adamUpdate(p, host(grad), host(m), host(v), 0, 0, p.length, hyper);
  },
  sparseAdam(param, m, v, dim, rows, gradRows, hyper) {
    const p = host(param);
    const g = host(gradRows);
    const ms = host(m);
    const vs = host(v);
    for (let i = 0; i < rows.length; i++) adamUpdate(p, g, ms, vs, rows[i] * dim, i * dim, dim, hyper);
  },
  sparseAdamSegments(param, m, v, dim, rows, src, segments, srcRows, scales, hyper) {
    const p = host(param);
    const ss = host(src);
    const ms = host(m);
    const vs = host(v);
    // One row of gradient at a time, summed in segmentSumRows' order and precision.
    const g = newArray(dim, param.dtype);
    for (let u = 0; u < rows.length; u++) {
      g.fill(0);
      for (let c = segments[u]; c < segments[u + 1]; c++) {
        const w = scales ? scales[c] : 1;
        const row = srcRows[c] * dim;
        for (let d = 0; d < dim; d++) g[d] += w * ss[row + d];
      }
      adamUpdate(p, g, ms, vs, rows[u] * dim, 0, dim, hyper);
    }
  },
});

/** The factor a bag's weighted sum is multiplied by for a pooling mode. */
export function bagScale(weights: Float32Array | null, start: number, end: number, mode: BagMode): number {
  if (mode === 'sum' || end === start) return 1;
  // As TensorFlow's combiners: mean divides by the sum of weights, sqrtn by the root of their squares.
  let total = 0;
  for (let j = start; j < end; j++) {
    const w = weights ? weights[j] : 1;
    total += mode === 'mean' ? w : w * w;
  }
  if (total === 0) return 0;
  return mode === 'mean' ? 1 / total : 1 / Math.sqrt(total);
}
