/**
 * Kernel sources for the gpu.js backend, as strings.
 *
 * The numerically delicate helpers (`HELPERS`: log1p, sigmoid, log-sigmoid, BCE, product
 * BCE) transcribe `kernels/stable-math.ts` into gpu.js's JavaScript subset; change them
 * together. The cross-backend kernel checks compare them with the reference backend.
 *
 * Sources are strings rather than functions because a bundler or test transpiler may
 * rewrite a function's text, and gpu.js parses that text. Every kernel writes a flat,
 * row-major 1-D output; gpu.js itself folds 1-D outputs into 2-D textures, so sizes past
 * one texture row need no tiling here. Index arithmetic runs in floats on GL, hence the
 * `floor((i + 0.5) / n)` division: exact for every integer index below 2^22.
 */
import type { BinaryOp, UnaryOp } from '../backend.js';

/** Largest tensor rank the shape-generic kernels (broadcast, reduce, permute, copyBlock) accept. */
export const MAX_RANK = 8;

/**
 * Helper functions added to every gpu.js instance. They mirror `stable-math.ts`; GLSL has
 * no log1p, and gpu.js's own tanh polyfill overflows for |x| > 44, so both are spelled out.
 */
export const HELPERS: readonly string[] = [
  `function esLog1p(x) { const u = 1.0 + x; const d = u - 1.0; if (d == 0.0) { return x; } return Math.log(u) * x / d; }`,
  `function esSigmoid(x) { if (x >= 0.0) { return 1.0 / (1.0 + Math.exp(-x)); } const e = Math.exp(x); return e / (1.0 + e); }`,
  `function esLogSigmoid(x) { if (x >= 0.0) { return -esLog1p(Math.exp(-x)); } return x - esLog1p(Math.exp(x)); }`,
  `function esLogAddExp(a, b) { const hi = Math.max(a, b); if (a == b) { return hi + 0.6931471805599453; } return hi + esLog1p(Math.exp(-Math.abs(a - b))); }`,
  `function esTanh(x) { const t = Math.exp(-2.0 * Math.abs(x)); const r = (1.0 - t) / (1.0 + t); if (x < 0.0) { return -r; } return r; }`,
  // GLSL pow is undefined for a negative base; integer exponents keep their JS sign.
  `function esPow(a, b) { if (b == 0.0) { return 1.0; } if (a >= 0.0) { return Math.pow(a, b); } const r = Math.pow(-a, b); const half = b * 0.5; if (Math.floor(half) == half) { return r; } return -r; }`,
  `function esWeighted(c, v) { if (c == 0.0) { return 0.0; } return c * v; }`,
  `function esBce(x, y) { let linear = esWeighted(y, -x); if (x >= 0.0) { linear = esWeighted(1.0 - y, x); } return linear + esLog1p(Math.exp(-Math.abs(x))); }`,
  `function esProductBce(a, b, y) { const logP = esLogSigmoid(a) + esLogSigmoid(b); const logQ = esLogAddExp(esLogSigmoid(-a), esLogSigmoid(a) + esLogSigmoid(-b)); return esWeighted(y, -logP) + esWeighted(1.0 - y, -logQ); }`,
  `function esProductBceGradA(a, b, y) { const p = Math.exp(esLogSigmoid(a) + esLogSigmoid(b)); const t = a + esLogSigmoid(-b); return esWeighted(1.0 - y, p * esSigmoid(-t)) - esWeighted(y, esSigmoid(-a)); }`,
];

const unaryBodies: Record<UnaryOp, string> = {
  neg: 'return -v;',
  exp: 'return Math.exp(v);',
  log: 'return Math.log(v);',
  log1p: 'return esLog1p(v);',
  sqrt: 'return Math.sqrt(v);',
  square: 'return v * v;',
  abs: 'return Math.abs(v);',
  sigmoid: 'return esSigmoid(v);',
  logSigmoid: 'return esLogSigmoid(v);',
  tanh: 'return esTanh(v);',
  relu: 'if (v > 0.0) { return v; } return 0.0;',
  step: 'if (v > 0.0) { return 1.0; } return 0.0;',
  sign: 'if (v > 0.0) { return 1.0; } if (v < 0.0) { return -1.0; } return 0.0;',
};

const binaryBodies: Record<BinaryOp, string> = {
  add: 'return p + q;',
  sub: 'return p - q;',
  mul: 'return p * q;',
  div: 'return p / q;',
  maximum: 'if (p >= q) { return p; } return q;',
  minimum: 'if (p <= q) { return p; } return q;',
  pow: 'return esPow(p, q);',
};

/** Statements splitting `rest` by `dim` into quotient `q` and remainder `i` (floats, exact). */
function divmod(q: string, i: string, rest: string, dim: string): string {
  return `const ${q} = Math.floor((${rest} + 0.5) / ${dim}); const ${i} = ${rest} - ${q} * ${dim};`;
}

/** Row `r` and column `d` of the output cell in a [*, dim] matrix. */
const ROW_COL = `const o = this.thread.x; ${divmod('r', 'd', 'o', 'dim')}`;

/**
 * {@link ROW_COL} in one block of a larger tensor, whose first element sits `phase` cells into
 * its row; with `chunked` false it is {@link ROW_COL} itself.
 */
function rowCol(chunked: boolean): string {
  return chunked ? `const o = this.thread.x; const po = o + phase; ${divmod('r', 'd', 'po', 'dim')}` : ROW_COL;
}

/** `, phase` for the block variant of a row kernel. */
const phaseArg = (chunked: boolean): string => (chunked ? ', phase' : '');

/** Sources by kernel kind. */
export const SOURCES = {
  upload: `function(a) { return a[this.thread.x]; }`,
  fill: `function(value) { return value; }`,
  unary: (op: UnaryOp): string => `function(x) { const v = x[this.thread.x]; ${unaryBodies[op]} }`,
  affine: `function(x, alpha, beta) { return alpha * x[this.thread.x] + beta; }`,
  axpby: `function(a, x, b, y) { return a * x[this.thread.x] + b * y[this.thread.x]; }`,
  binarySame: (op: BinaryOp): string =>
    `function(a, b) { const p = a[this.thread.x]; const q = b[this.thread.x]; ${binaryBodies[op]} }`,
  /** Broadcast: dims/strides are padded to MAX_RANK and walked innermost first. */
  binaryBroadcast: (op: BinaryOp): string => `function(a, b, dims, aStr, bStr, rank) {
    let rest = this.thread.x; let ia = 0.0; let ib = 0.0;
    for (let t = 0; t < ${MAX_RANK}; t++) {
      if (t < rank) {
        const k = rank - 1 - t; const dim = dims[k];
        ${divmod('qq', 'ii', 'rest', 'dim')}
        ia += ii * aStr[k]; ib += ii * bStr[k]; rest = qq;
      }
    }
    const p = a[ia]; const q = b[ib]; ${binaryBodies[op]}
  }`,
  /** Output cell -> input base over kept dims, then a loop over the reduced block. */
  reduceSum: `function(x, keptDims, keptStr, keptRank, redDims, redStr, redRank, redCount) {
    let rest = this.thread.x; let base = 0.0;
    for (let t = 0; t < ${MAX_RANK}; t++) {
      if (t < keptRank) {
        const k = keptRank - 1 - t; const dim = keptDims[k];
        ${divmod('qq', 'ii', 'rest', 'dim')}
        base += ii * keptStr[k]; rest = qq;
      }
    }
    let s = 0.0;
    for (let r = 0; r < redCount; r++) {
      let rr = r; let off = 0.0;
      for (let t = 0; t < ${MAX_RANK}; t++) {
        if (t < redRank) {
          const k = redRank - 1 - t; const dim = redDims[k];
          ${divmod('qq', 'ii', 'rr', 'dim')}
          off += ii * redStr[k]; rr = qq;
        }
      }
      s += x[base + off];
    }
    return s;
  }`,
  reduceMaxLast: `function(x, cols) {
    const base = this.thread.x * cols; let best = x[base];
    for (let c = 1; c < cols; c++) { best = Math.max(best, x[base + c]); }
    return best;
  }`,
  permute: `function(x, dims, srcStr, rank) {
    let rest = this.thread.x; let src = 0.0;
    for (let t = 0; t < ${MAX_RANK}; t++) {
      if (t < rank) {
        const k = rank - 1 - t; const dim = dims[k];
        ${divmod('qq', 'ii', 'rest', 'dim')}
        src += ii * srcStr[k]; rest = qq;
      }
    }
    return x[src];
  }`,
  /** Every output cell either copies its block source or keeps its old value. */
  copyBlock: `function(src, old, dims, begin, extent, srcStr, rank, srcBase) {
    let rest = this.thread.x; let si = srcBase; let inside = 1.0;
    for (let t = 0; t < ${MAX_RANK}; t++) {
      if (t < rank) {
        const k = rank - 1 - t; const dim = dims[k];
        ${divmod('qq', 'ii', 'rest', 'dim')}
        const rel = ii - begin[k];
        if (rel < 0.0 || rel >= extent[k]) { inside = 0.0; }
        si += rel * srcStr[k]; rest = qq;
      }
    }
    if (inside > 0.5) { return src[si]; }
    return old[this.thread.x];
  }`,
  /** A(i,p) = a[bi*aB + i*aR + p*aC], B(p,j) = b[bi*bB + p*bR + j*bC]: transposes are strides. */
  matmul: `function(a, b, m, n, k, aB, aR, aC, bB, bR, bC) {
    const o = this.thread.x; const mn = m * n;
    ${divmod('bi', 'cell', 'o', 'mn')}
    ${divmod('i', 'j', 'cell', 'n')}
    const aBase = bi * aB + i * aR; const bBase = bi * bB + j * bC;
    let s = 0.0;
    for (let p = 0; p < k; p++) { s += a[aBase + p * aC] * b[bBase + p * bR]; }
    return s;
  }`,
  /**
   * x·Wᵀ + bias for x [rows, k] and W [n, k]: linearPrelu's pre-activation, the bias added to the
   * finished sum; each `group` consecutive rows share a bias row.
   */
  linearBias: `function(x, w, bias, n, k, group) {
    const o = this.thread.x; ${divmod('i', 'j', 'o', 'n')}
    let s = 0.0;
    for (let p = 0; p < k; p++) { s += x[i * k + p] * w[j * k + p]; }
    const g = Math.floor((i + 0.5) / group);
    return s + bias[g * n + j];
  }`,
  /** Column sums of each run of `group` rows of a [rows, channels] matrix: one thread per (run, channel). */
  colSum: `function(x, channels, group) {
    const o = this.thread.x; ${divmod('g', 'c', 'o', 'channels')}
    const base = g * group; let s = 0.0;
    for (let r = 0; r < group; r++) { s += x[(base + r) * channels + c]; }
    return s;
  }`,
  gatherRows: `function(x, ids, dim) { ${ROW_COL} return x[ids[r] * dim + d]; }`,
  /** One block of a blocked table: rows (or parts of rows) inside it replace `prev`; starts are block-local. */
  gatherChunk: `function(prev, x, starts, dim, len) {
    ${ROW_COL} const e = starts[r] + d;
    if (e >= 0.0) { if (e < len) { return x[e]; } }
    return prev[o];
  }`,
  /** Pooling scales come from the host (they depend on weights only). */
  embeddingBag: `function(table, ids, offsets, weights, scales, dim) {
    ${ROW_COL}
    const start = offsets[r]; const len = offsets[r + 1] - start; let s = 0.0;
    for (let t = 0; t < len; t++) { const j = start + t; s += weights[j] * table[ids[j] * dim + d]; }
    return s * scales[r];
  }`,
  segmentSumRows: `function(src, segments, srcRows, scales, dim, segCount) {
    ${ROW_COL}
    if (r >= segCount) { return 0.0; }
    const start = segments[r]; const len = segments[r + 1] - start; let s = 0.0;
    for (let t = 0; t < len; t++) { const c = start + t; s += scales[c] * src[srcRows[c] * dim + d]; }
    return s;
  }`,
  /** gpu.js cannot scatter: each output row looks up which value row (if any) lands on it. */
  scatterAddRows: (chunked: boolean): string => `function(old, values, inverse, dim${phaseArg(chunked)}) {
    ${rowCol(chunked)}
    const i = inverse[r]; const prev = old[o];
    if (i < 0.0) { return prev; }
    return prev + values[i * dim + d];
  }`,
  prelu: `function(x, slope, dim) { ${ROW_COL} const v = x[o]; if (v > 0.0) { return v; } return slope[d] * v; }`,
  preluGradX: `function(x, slope, g, dim) { ${ROW_COL} if (x[o] > 0.0) { return g[o]; } return slope[d] * g[o]; }`,
  /** Column sum over rows: one thread per channel. */
  preluGradSlope: `function(x, g, channels, rows) {
    const c = this.thread.x; let s = 0.0;
    for (let r = 0; r < rows; r++) { const i = r * channels + c; const v = x[i]; if (v <= 0.0) { s += v * g[i]; } }
    return s;
  }`,
  softmaxMax: (masked: boolean): string => `function(x, ${masked ? 'mask, ' : ''}cols) {
    const base = this.thread.x * cols; let best = -3.0e38;
    for (let c = 0; c < cols; c++) { ${masked ? 'if (mask[base + c] != 0.0) { best = Math.max(best, x[base + c]); }' : 'best = Math.max(best, x[base + c]);'} }
    return best;
  }`,
  softmaxSum: (masked: boolean): string => `function(x, ${masked ? 'mask, ' : ''}hi, cols) {
    const r = this.thread.x; const base = r * cols; const h = hi[r]; let s = 0.0;
    for (let c = 0; c < cols; c++) { ${masked ? 'if (mask[base + c] != 0.0) { s += Math.exp(x[base + c] - h); }' : 's += Math.exp(x[base + c] - h);'} }
    return s;
  }`,
  softmaxNormalize: (masked: boolean): string => `function(x, ${masked ? 'mask, ' : ''}hi, total, cols) {
    const o = this.thread.x; ${divmod('r', 'c', 'o', 'cols')}
    ${masked ? 'if (mask[o] == 0.0) { return 0.0; }' : ''}
    const z = total[r]; if (z <= 0.0) { return 0.0; }
    return Math.exp(x[o] - hi[r]) / z;
  }`,
  bce: `function(x, y) { return esBce(x[this.thread.x], y[this.thread.x]); }`,
  bceBackward: `function(x, y, g) { const o = this.thread.x; return (esSigmoid(x[o]) - y[o]) * g[o]; }`,
  productBce: `function(a, b, y) { const o = this.thread.x; return esProductBce(a[o], b[o], y[o]); }`,
  /** Serves both gradients: d/db is d/da with the operands swapped. */
  productBceGrad: `function(a, b, y, g) { const o = this.thread.x; return esProductBceGradA(a[o], b[o], y[o]) * g[o]; }`,
  adamM: `function(m, g, p, beta1, wd) { const o = this.thread.x; const grad = g[o] + wd * p[o]; return beta1 * m[o] + (1.0 - beta1) * grad; }`,
  adamV: `function(v, g, p, beta2, wd) { const o = this.thread.x; const grad = g[o] + wd * p[o]; return beta2 * v[o] + (1.0 - beta2) * grad * grad; }`,
  adamP: `function(p, m, v, stepSize, sqrtC2, eps) { const o = this.thread.x; return p[o] - (stepSize * m[o]) / (Math.sqrt(v[o]) / sqrtC2 + eps); }`,
  /** Sparse variants (per block of a blocked table when `chunked`): rows absent from the host-built inverse map keep their state. */
  sparseAdamM: (chunked: boolean): string => `function(m, g, p, inverse, dim, beta1, wd${phaseArg(chunked)}) {
    ${rowCol(chunked)} const i = inverse[r]; if (i < 0.0) { return m[o]; }
    const grad = g[i * dim + d] + wd * p[o]; return beta1 * m[o] + (1.0 - beta1) * grad;
  }`,
  sparseAdamV: (chunked: boolean): string => `function(v, g, p, inverse, dim, beta2, wd${phaseArg(chunked)}) {
    ${rowCol(chunked)} const i = inverse[r]; if (i < 0.0) { return v[o]; }
    const grad = g[i * dim + d] + wd * p[o]; return beta2 * v[o] + (1.0 - beta2) * grad * grad;
  }`,
  sparseAdamP: (
    chunked: boolean,
  ): string => `function(p, m, v, inverse, dim, stepSize, sqrtC2, eps${phaseArg(chunked)}) {
    ${rowCol(chunked)} if (inverse[r] < 0.0) { return p[o]; }
    return p[o] - (stepSize * m[o]) / (Math.sqrt(v[o]) / sqrtC2 + eps);
  }`,
} as const;
