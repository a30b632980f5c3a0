/**
 * Calibration of predicted probabilities: isotonic regression (weighted
 * pool-adjacent-violators), Platt scaling, per-bucket calibration for long-tail
 * items, and the metrics that show whether it worked: expected calibration error,
 * reliability bins and a reliability diagram, and predicted/observed ratios per
 * bucket (e.g. item-popularity deciles).
 */
import type { NumArray } from '../metrics.js';

/** A fitted map from a raw probability to a calibrated one. */
export interface Calibrator {
  /** `isotonic`, `platt`, `bucketed` or `identity`. */
  readonly kind: string;
  /** The calibrated probability of one raw score. */
  predict(p: number): number;
}

/** Apply a calibrator to every score. */
export function applyCalibrator(calibrator: Calibrator, scores: NumArray): Float64Array {
  const out = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) out[i] = calibrator.predict(scores[i]);
  return out;
}

/** The calibrator that changes nothing (a fallback for buckets too small to fit). */
export const IDENTITY_CALIBRATOR: Calibrator = { kind: 'identity', predict: (p) => p };

function checkInputs(name: string, scores: NumArray, labels: NumArray, weights?: NumArray): void {
  if (scores.length !== labels.length) throw new Error(`${name}: ${scores.length} scores but ${labels.length} labels`);
  if (weights && weights.length !== scores.length)
    throw new Error(`${name}: ${weights.length} weights for ${scores.length} scores`);
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) throw new Error(`${name}: score ${i} is not finite (${scores[i]})`);
    if (!Number.isFinite(labels[i])) throw new Error(`${name}: label ${i} is not finite (${labels[i]})`);
    if (weights && !(weights[i] >= 0)) throw new Error(`${name}: weight ${i} must be non-negative, got ${weights[i]}`);
  }
}

// ---------------------------------------------------------------------------
// Isotonic regression

/**
 * Weighted pool-adjacent-violators: the non-decreasing sequence closest to `y` in
 * weighted least squares, for values already in the order of their scores. One pass
 * with a stack of blocks, each merge removing a block, so O(n). Zero-weight values
 * take the value of the block they fall in.
 */
export function pav(y: NumArray, weights?: NumArray): Float64Array {
  const n = y.length;
  const mean = new Float64Array(n);
  const weight = new Float64Array(n);
  const start = new Int32Array(n);
  let top = -1;
  for (let i = 0; i < n; i++) {
    top++;
    mean[top] = y[i];
    weight[top] = weights ? weights[i] : 1;
    start[top] = i;
    // Merge while the new block violates the order of the one below it.
    while (top > 0 && mean[top - 1] >= mean[top]) {
      const w = weight[top - 1] + weight[top];
      mean[top - 1] =
        w > 0 ? (weight[top - 1] * mean[top - 1] + weight[top] * mean[top]) / w : (mean[top - 1] + mean[top]) / 2;
      weight[top - 1] = w;
      top--;
    }
  }
  const out = new Float64Array(n);
  for (let b = 0; b <= top; b++) {
    const end = b < top ? start[b + 1] : n;
    for (let i = start[b]; i < end; i++) out[i] = mean[b];
  }
  return out;
}

/** How an isotonic fit predicts between its knots. */
export type IsotonicInterpolation = 'linear' | 'step';

/** Options of {@link fitIsotonic}. */
export interface IsotonicOptions {
  weights?: NumArray;
  /**
   * `linear` (default): interpolate linearly between the fitted values at the
   * distinct training scores, constant beyond the ends, so nearby scores keep
   * their order instead of collapsing onto one step; `step`: the fitted value of
   * the largest training score at or below the input (the first one below the range).
   */
  interpolation?: IsotonicInterpolation;
}

/** Isotonic regression of labels on scores, with ties in score pooled first (equal scores must get one value). */
export class IsotonicCalibrator implements Calibrator {
  readonly kind = 'isotonic';

  /** Knot scores (ascending) and fitted values; only block ends are kept since values are constant inside a block. */
  constructor(
    readonly knots: Float64Array,
    readonly values: Float64Array,
    readonly interpolation: IsotonicInterpolation,
  ) {}

  /** The calibrated probability of one raw score. */
  predict(p: number): number {
    const x = this.knots;
    const n = x.length;
    if (n === 0) return p;
    if (p <= x[0]) return this.values[0];
    if (p >= x[n - 1]) return this.values[n - 1];
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (x[mid] <= p) lo = mid;
      else hi = mid;
    }
    if (this.interpolation === 'step') return this.values[lo];
    const t = (p - x[lo]) / (x[hi] - x[lo]);
    return this.values[lo] + t * (this.values[hi] - this.values[lo]);
  }
}

/** Distinct scores (ascending) with the weighted mean label and total weight of each. */
export function poolTies(
  scores: NumArray,
  labels: NumArray,
  weights?: NumArray,
): { x: Float64Array; y: Float64Array; w: Float64Array } {
  const n = scores.length;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[a] - scores[b]);
  const x: number[] = [];
  const y: number[] = [];
  const w: number[] = [];
  for (let k = 0; k < n;) {
    const s = scores[order[k]];
    let sw = 0;
    let sy = 0;
    let count = 0;
    let plain = 0;
    for (; k < n && scores[order[k]] === s; k++) {
      const i = order[k];
      const wi = weights ? weights[i] : 1;
      sw += wi;
      sy += wi * labels[i];
      plain += labels[i];
      count++;
    }
    x.push(s);
    y.push(sw > 0 ? sy / sw : plain / count);
    w.push(sw);
  }
  return { x: Float64Array.from(x), y: Float64Array.from(y), w: Float64Array.from(w) };
}

/** Fit isotonic regression by PAV (O(n log n) for the sort, O(n) after). */
export function fitIsotonic(scores: NumArray, labels: NumArray, options: IsotonicOptions = {}): IsotonicCalibrator {
  checkInputs('fitIsotonic', scores, labels, options.weights);
  const { x, y, w } = poolTies(scores, labels, options.weights);
  const fitted = pav(y, w);
  // Keep the first and last knot of every constant block; the rest add nothing to either interpolation.
  const knots: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const first = i === 0 || fitted[i] !== fitted[i - 1];
    const last = i === x.length - 1 || fitted[i] !== fitted[i + 1];
    if (first || last) {
      knots.push(x[i]);
      values.push(fitted[i]);
    }
  }
  return new IsotonicCalibrator(Float64Array.from(knots), Float64Array.from(values), options.interpolation ?? 'linear');
}

// ---------------------------------------------------------------------------
// Platt scaling

/** A fitted one-feature logistic model p = σ(a·x + b). */
export interface LogisticFit {
  a: number;
  b: number;
  iterations: number;
  converged: boolean;
}

/** Options of {@link fitLogistic}. */
export interface LogisticOptions {
  weights?: NumArray;
  /** Newton iterations at most (default 100). */
  maxIterations?: number;
  /** Stop when the Newton step is below this (default 1e-12). */
  tolerance?: number;
}

function log1pexp(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/**
 * Maximum-likelihood p = σ(a·x + b) for targets in [0, 1] (fractional targets allowed),
 * by Newton's method with step halving, so the log-loss never increases.
 */
export function fitLogistic(x: NumArray, targets: NumArray, options: LogisticOptions = {}): LogisticFit {
  checkInputs('fitLogistic', x, targets, options.weights);
  const w = options.weights;
  const n = x.length;
  const maxIterations = options.maxIterations ?? 100;
  const tolerance = options.tolerance ?? 1e-12;
  const loss = (a: number, b: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const z = a * x[i] + b;
      s += (w ? w[i] : 1) * (log1pexp(z) - targets[i] * z);
    }
    return s;
  };
  let a = 0;
  let b = 0;
  // Start at the intercept of the mean target, a good point for rare events.
  let sw = 0;
  let st = 0;
  for (let i = 0; i < n; i++) {
    sw += w ? w[i] : 1;
    st += (w ? w[i] : 1) * targets[i];
  }
  if (sw > 0) {
    const m = Math.min(1 - 1e-12, Math.max(1e-12, st / sw));
    b = Math.log(m / (1 - m));
  }
  let current = loss(a, b);
  for (let it = 1; it <= maxIterations; it++) {
    let ga = 0;
    let gb = 0;
    let haa = 0;
    let hab = 0;
    let hbb = 0;
    for (let i = 0; i < n; i++) {
      const wi = w ? w[i] : 1;
      const p = sigmoid(a * x[i] + b);
      const r = wi * (p - targets[i]);
      const h = wi * p * (1 - p);
      ga += r * x[i];
      gb += r;
      haa += h * x[i] * x[i];
      hab += h * x[i];
      hbb += h;
    }
    // A tiny ridge keeps the 2×2 solve defined when every x is equal or the data separate.
    const ridge = 1e-12 * (haa + hbb + 1);
    haa += ridge;
    hbb += ridge;
    const det = haa * hbb - hab * hab;
    let da = det !== 0 ? (hbb * ga - hab * gb) / det : 0;
    let db = det !== 0 ? (haa * gb - hab * ga) / det : hbb > 0 ? gb / hbb : 0;
    let step = 1;
    let next = loss(a - da, b - db);
    while (next > current && step > 1e-10) {
      step /= 2;
      next = loss(a - step * da, b - step * db);
    }
    da *= step;
    db *= step;
    if (next > current) return { a, b, iterations: it, converged: true };
    a -= da;
    b -= db;
    current = next;
    if (Math.abs(da) + Math.abs(db) < tolerance * (1 + Math.abs(a) + Math.abs(b)))
      return { a, b, iterations: it, converged: true };
  }
  return { a, b, iterations: maxIterations, converged: false };
}

/** Options of {@link fitPlatt}. */
export interface PlattOptions {
  weights?: NumArray;
  /**
   * Platt's (1999) targets (N₊ + 1)/(N₊ + 2) and 1/(N₋ + 2) instead of 1 and 0 (default
   * false): a prior that keeps the fit finite on separable or tiny data.
   */
  labelSmoothing?: boolean;
  /** Scores are clipped to [eps, 1 − eps] before the logit (default 1e-7). */
  eps?: number;
}

/** Platt scaling on the logit of the score: p = σ(a·logit(s) + b); a = 1, b = 0 is the identity. */
export class PlattCalibrator implements Calibrator {
  readonly kind = 'platt';

  constructor(
    readonly a: number,
    readonly b: number,
    readonly eps = 1e-7,
  ) {}

  /** The calibrated probability of one raw score. */
  predict(p: number): number {
    const s = Math.min(1 - this.eps, Math.max(this.eps, p));
    return sigmoid(this.a * Math.log(s / (1 - s)) + this.b);
  }
}

/** Fit Platt scaling by Newton's method on the (optionally smoothed) log-loss. */
export function fitPlatt(scores: NumArray, labels: NumArray, options: PlattOptions = {}): PlattCalibrator {
  checkInputs('fitPlatt', scores, labels, options.weights);
  const eps = options.eps ?? 1e-7;
  const x = new Float64Array(scores.length);
  for (let i = 0; i < x.length; i++) {
    const s = Math.min(1 - eps, Math.max(eps, scores[i]));
    x[i] = Math.log(s / (1 - s));
  }
  let targets: NumArray = labels;
  if (options.labelSmoothing) {
    let pos = 0;
    let neg = 0;
    for (let i = 0; i < labels.length; i++) {
      const wi = options.weights ? options.weights[i] : 1;
      if (labels[i] > 0.5) pos += wi;
      else neg += wi;
    }
    const hi = (pos + 1) / (pos + 2);
    const lo = 1 / (neg + 2);
    targets = Float64Array.from(labels, (y) => (y > 0.5 ? hi : lo));
  }
  const fit = fitLogistic(x, targets, { weights: options.weights });
  return new PlattCalibrator(fit.a, fit.b, eps);
}

// ---------------------------------------------------------------------------
// Buckets (e.g. item-popularity deciles) and per-bucket calibration

/**
 * Equal-mass buckets of a numeric field (e.g. an item's impression count): thresholds
 * at the k/B quantiles of the values it was fitted on, so bucket 0 is the tail. Equal
 * values always share a bucket, so heavily tied data may leave some buckets empty.
 */
export class QuantileBuckets {
  constructor(readonly thresholds: Float64Array) {}

  /** Buckets at the quantiles of `values`. */
  static fit(values: NumArray, buckets: number): QuantileBuckets {
    if (!(Number.isInteger(buckets) && buckets >= 1))
      throw new Error(`QuantileBuckets.fit: buckets must be a positive integer, got ${buckets}`);
    const sorted = Float64Array.from(values).sort();
    const t = new Float64Array(buckets - 1);
    for (let k = 1; k < buckets; k++)
      t[k - 1] = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((k * sorted.length) / buckets))] : 0;
    return new QuantileBuckets(t);
  }

  /** Number of buckets. */
  get count(): number {
    return this.thresholds.length + 1;
  }

  /** Bucket of one value: the number of thresholds strictly below it. */
  bucket(value: number): number {
    let lo = 0;
    let hi = this.thresholds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.thresholds[mid] < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Buckets of many values. */
  assign(values: NumArray): Int32Array {
    const out = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = this.bucket(values[i]);
    return out;
  }
}

/** A calibrator per bucket, with a global one for buckets too small to fit on their own. */
export class BucketedCalibrator {
  readonly kind = 'bucketed';

  constructor(
    readonly perBucket: readonly Calibrator[],
    readonly fallback: Calibrator,
  ) {}

  /** The calibrated probability of one raw score in a bucket. */
  predict(p: number, bucket: number): number {
    return (this.perBucket[bucket] ?? this.fallback).predict(p);
  }

  /** Calibrate every score with its bucket's calibrator. */
  apply(scores: NumArray, buckets: NumArray): Float64Array {
    const out = new Float64Array(scores.length);
    for (let i = 0; i < scores.length; i++) out[i] = this.predict(scores[i], buckets[i]);
    return out;
  }
}

/** Options of {@link fitBucketed}. */
export interface BucketedOptions {
  /** Buckets with fewer positive (or negative) labels than this use the global calibrator (default 20). */
  minPerClass?: number;
}

/** Fit `fit` separately in each bucket (labels thresholded at 0.5 for the class counts), falling back to a global fit. */
export function fitBucketed(
  scores: NumArray,
  labels: NumArray,
  buckets: NumArray,
  count: number,
  fit: (scores: Float64Array, labels: Float64Array) => Calibrator,
  options: BucketedOptions = {},
): BucketedCalibrator {
  if (scores.length !== buckets.length)
    throw new Error(`fitBucketed: ${scores.length} scores but ${buckets.length} bucket ids`);
  const minPerClass = options.minPerClass ?? 20;
  const fallback = fit(Float64Array.from(scores), Float64Array.from(labels));
  const perBucket: Calibrator[] = [];
  for (let b = 0; b < count; b++) {
    const s: number[] = [];
    const y: number[] = [];
    let pos = 0;
    for (let i = 0; i < scores.length; i++) {
      if (buckets[i] !== b) continue;
      s.push(scores[i]);
      y.push(labels[i]);
      if (labels[i] > 0.5) pos++;
    }
    perBucket.push(
      pos >= minPerClass && s.length - pos >= minPerClass ? fit(Float64Array.from(s), Float64Array.from(y)) : fallback,
    );
  }
  return new BucketedCalibrator(perBucket, fallback);
}

// ---------------------------------------------------------------------------
// Calibration metrics

/** How reliability bins are cut. */
export type Binning = 'equal-mass' | 'equal-width';

/** Options of {@link reliabilityBins} and {@link expectedCalibrationError}. */
export interface BinningOptions {
  /** Number of bins (default 10). */
  bins?: number;
  /**
   * `equal-mass` (default): rows sorted by prediction and cut into bins of ⌊n/B⌋ or ⌈n/B⌉
   * rows (tied predictions may straddle a cut), since click and conversion
   * probabilities crowd near 0 and equal-width bins would put nearly every row in
   * the first bin; `equal-width`: [k/B, (k+1)/B) on [0, 1], empty bins dropped.
   */
  binning?: Binning;
}

/** One bin of a reliability diagram. */
export interface ReliabilityBin {
  /** Smallest and largest prediction in the bin. */
  lo: number;
  hi: number;
  count: number;
  meanPredicted: number;
  /** Mean label (observed rate) in the bin. */
  meanObserved: number;
}

/** Reliability bins of predictions against labels (labels may be probabilities, e.g. a simulator's truth). */
export function reliabilityBins(
  predictions: NumArray,
  labels: NumArray,
  options: BinningOptions = {},
): ReliabilityBin[] {
  if (predictions.length !== labels.length)
    throw new Error(`reliabilityBins: ${predictions.length} predictions but ${labels.length} labels`);
  const bins = options.bins ?? 10;
  if (!(Number.isInteger(bins) && bins >= 1))
    throw new Error(`reliabilityBins: bins must be a positive integer, got ${bins}`);
  const n = predictions.length;
  const groups: number[][] = Array.from({ length: bins }, () => []);
  if ((options.binning ?? 'equal-mass') === 'equal-mass') {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => predictions[a] - predictions[b] || a - b);
    for (let k = 0; k < n; k++) groups[Math.floor((k * bins) / n)].push(order[k]);
  } else {
    for (let i = 0; i < n; i++) groups[Math.min(bins - 1, Math.max(0, Math.floor(predictions[i] * bins)))].push(i);
  }
  const out: ReliabilityBin[] = [];
  for (const g of groups) {
    if (g.length === 0) continue;
    let sp = 0;
    let sy = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (const i of g) {
      sp += predictions[i];
      sy += labels[i];
      lo = Math.min(lo, predictions[i]);
      hi = Math.max(hi, predictions[i]);
    }
    out.push({ lo, hi, count: g.length, meanPredicted: sp / g.length, meanObserved: sy / g.length });
  }
  return out;
}

/** Expected calibration error: Σ_b (n_b / n)·|mean prediction_b − mean label_b| over {@link reliabilityBins}. */
export function expectedCalibrationError(
  predictions: NumArray,
  labels: NumArray,
  options: BinningOptions = {},
): number {
  const bins = reliabilityBins(predictions, labels, options);
  let n = 0;
  let s = 0;
  for (const b of bins) {
    n += b.count;
    s += b.count * Math.abs(b.meanPredicted - b.meanObserved);
  }
  return n > 0 ? s / n : NaN;
}

/** Calibration in the large: Σ predictions / Σ labels (1 is calibrated on average; NaN without positives). */
export function predictedObservedRatio(predictions: NumArray, labels: NumArray): number {
  let sp = 0;
  let sy = 0;
  for (let i = 0; i < predictions.length; i++) {
    sp += predictions[i];
    sy += labels[i];
  }
  return sy > 0 ? sp / sy : NaN;
}

/** Predicted and observed totals of one bucket. */
export interface BucketRatio {
  bucket: number;
  rows: number;
  predicted: number;
  observed: number;
  /** predicted / observed (NaN when nothing was observed). */
  ratio: number;
}

/** Σ prediction / Σ label per bucket (e.g. per item-popularity decile); empty buckets are left out. */
export function ratioByBucket(
  predictions: NumArray,
  labels: NumArray,
  buckets: NumArray,
  count: number,
): BucketRatio[] {
  const rows = new Float64Array(count);
  const pred = new Float64Array(count);
  const obs = new Float64Array(count);
  for (let i = 0; i < predictions.length; i++) {
    const b = buckets[i];
    rows[b]++;
    pred[b] += predictions[i];
    obs[b] += labels[i];
  }
  const out: BucketRatio[] = [];
  for (let b = 0; b < count; b++) {
    if (rows[b] === 0) continue;
    out.push({
      bucket: b,
      rows: rows[b],
      predicted: pred[b],
      observed: obs[b],
      ratio: obs[b] > 0 ? pred[b] / obs[b] : NaN,
    });
  }
  return out;
}

/** One curve of a reliability diagram. */
export interface ReliabilitySeries {
  name: string;
  bins: readonly ReliabilityBin[];
}

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#76b7b2'];

/** A reliability diagram (mean prediction vs observed rate per bin, with the diagonal) as a standalone SVG. */
export function reliabilitySvg(series: readonly ReliabilitySeries[], title: string): string {
  const size = 420;
  const left = 60;
  const top = 40;
  const plot = size - left - 20;
  const all = series.flatMap((s) => s.bins.flatMap((b) => [b.meanPredicted, b.meanObserved]));
  // Both axes share one scale, zoomed to the data, since these probabilities sit far below 1.
  const max = Math.max(1e-6, ...all.filter(Number.isFinite)) * 1.05;
  const sx = (v: number): number => left + (v / max) * plot;
  const sy = (v: number): number => top + plot - (v / max) * plot;
  const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size + 240}" height="${size + 40}" viewBox="0 0 ${size + 240} ${size + 40}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${(size + 240) / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    parts.push(`<line x1="${sx(0)}" x2="${sx(max)}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<line y1="${sy(0)}" y2="${sy(max)}" x1="${sx(v).toFixed(1)}" x2="${sx(v).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end">${v.toPrecision(2)}</text>`);
    parts.push(`<text x="${sx(v).toFixed(1)}" y="${top + plot + 16}" text-anchor="middle">${v.toPrecision(2)}</text>`);
  }
  parts.push(
    `<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(max)}" y2="${sy(max)}" stroke="#999" stroke-dasharray="4 3"/>`,
  );
  parts.push(
    `<text x="${left + plot / 2}" y="${top + plot + 34}" text-anchor="middle">mean predicted probability</text>`,
  );
  parts.push(
    `<text x="14" y="${top + plot / 2}" text-anchor="middle" transform="rotate(-90 14 ${top + plot / 2})">observed rate</text>`,
  );
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const pts = s.bins.map((b) => `${sx(b.meanPredicted).toFixed(1)},${sy(b.meanObserved).toFixed(1)}`);
    if (pts.length > 1)
      parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    for (const p of pts) {
      const [x, y] = p.split(',');
      parts.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
    }
    parts.push(`<rect x="${size}" y="${top + 10 + k * 20}" width="12" height="12" fill="${color}"/>`);
    parts.push(`<text x="${size + 18}" y="${top + 21 + k * 20}">${esc(s.name)}</text>`);
  });
  parts.push(`</svg>`);
  return parts.join('\n');
}
