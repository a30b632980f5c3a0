/** Calibration: PAV against a brute-force isotonic fit, Platt scaling against known solutions, ECE and buckets by hand. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng } from '../core/random.js';
import {
  applyCalibrator,
  expectedCalibrationError,
  fitBucketed,
  fitIsotonic,
  fitLogistic,
  fitPlatt,
  IDENTITY_CALIBRATOR,
  pav,
  predictedObservedRatio,
  QuantileBuckets,
  ratioByBucket,
  reliabilityBins,
  reliabilitySvg,
} from '../models/practice/index.js';

/**
 * The isotonic fit by its min–max formula, ŷᵢ = max_{j≤i} min_{k≥i} (weighted mean of y_j..y_k):
 * O(n³), independent of any pooling order.
 */
function bruteIsotonic(y: number[], w: number[]): number[] {
  const n = y.length;
  const avg = (j: number, k: number): number => {
    let sw = 0;
    let sy = 0;
    for (let t = j; t <= k; t++) {
      sw += w[t];
      sy += w[t] * y[t];
    }
    return sy / sw;
  };
  return y.map((_, i) => {
    let best = -Infinity;
    for (let j = 0; j <= i; j++) {
      let low = Infinity;
      for (let k = i; k < n; k++) low = Math.min(low, avg(j, k));
      best = Math.max(best, low);
    }
    return best;
  });
}

const values = fc.array(fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ min: -5, max: 5, noNaN: true })), {
  minLength: 1,
  maxLength: 14,
});

describe('isotonic regression', () => {
  it('PAV equals the brute-force fit within 1e-9 and is monotone (weighted)', () => {
    fc.assert(
      fc.property(
        values.chain((y) =>
          fc.tuple(
            fc.constant(y),
            fc.array(fc.double({ min: 0.05, max: 5, noNaN: true }), { minLength: y.length, maxLength: y.length }),
          ),
        ),
        ([y, w]) => {
          const fitted = pav(y, w);
          const brute = bruteIsotonic(y, w);
          for (let i = 0; i < y.length; i++) expect(Math.abs(fitted[i] - brute[i])).toBeLessThanOrEqual(1e-9);
          for (let i = 1; i < y.length; i++) expect(fitted[i]).toBeGreaterThanOrEqual(fitted[i - 1]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fitIsotonic pools tied scores and matches the brute force on the pooled data', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 1 })), {
          minLength: 1,
          maxLength: 30,
        }),
        (pairs) => {
          const scores = pairs.map(([s]) => s / 10);
          const labels = pairs.map(([, y]) => y);
          const groups = new Map<number, number[]>();
          for (const [s, y] of pairs) groups.set(s / 10, [...(groups.get(s / 10) ?? []), y]);
          const xs = [...groups.keys()].sort((a, b) => a - b);
          const brute = bruteIsotonic(
            xs.map((x) => (groups.get(x) as number[]).reduce((a, b) => a + b, 0) / (groups.get(x) as number[]).length),
            xs.map((x) => (groups.get(x) as number[]).length),
          );
          for (const mode of ['linear', 'step'] as const) {
            const iso = fitIsotonic(scores, labels, { interpolation: mode });
            xs.forEach((x, i) => expect(Math.abs(iso.predict(x) - brute[i])).toBeLessThanOrEqual(1e-9));
            const out = applyCalibrator(
              iso,
              Float64Array.from({ length: 50 }, (_, i) => i / 70),
            );
            for (let i = 1; i < out.length; i++) expect(out[i]).toBeGreaterThanOrEqual(out[i - 1] - 1e-15);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('interpolates linearly or by steps between knots and is constant beyond them', () => {
    const lin = fitIsotonic([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1]);
    // Fitted: 0, 0.5, 0.5, 1 → knots 0.1, 0.2, 0.3, 0.4.
    expect(lin.predict(0.05)).toBe(0);
    expect(lin.predict(0.15)).toBeCloseTo(0.25, 12);
    expect(lin.predict(0.25)).toBeCloseTo(0.5, 12);
    expect(lin.predict(0.35)).toBeCloseTo(0.75, 12);
    expect(lin.predict(0.9)).toBe(1);
    const step = fitIsotonic([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1], { interpolation: 'step' });
    expect(step.predict(0.15)).toBe(0);
    expect(step.predict(0.35)).toBe(0.5);
    expect(step.predict(0.4)).toBe(1);
  });
});

describe('Platt scaling', () => {
  const logit = (p: number): number => Math.log(p / (1 - p));
  const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

  it('solves the two-point case in closed form', () => {
    // Scores σ(−1) and σ(1) with observed rates 0.2 and 0.7 (as weights on both labels): the fit passes through both rates.
    const s = [sigmoid(-1), sigmoid(-1), sigmoid(1), sigmoid(1)];
    const y = [1, 0, 1, 0];
    const w = [0.2, 0.8, 0.7, 0.3];
    const p = fitPlatt(s, y, { weights: w });
    expect(p.a).toBeCloseTo((logit(0.7) - logit(0.2)) / 2, 8);
    expect(p.b).toBeCloseTo((logit(0.7) + logit(0.2)) / 2, 8);
    expect(p.predict(sigmoid(-1))).toBeCloseTo(0.2, 8);
    expect(p.predict(sigmoid(1))).toBeCloseTo(0.7, 8);
  });

  it('recovers the parameters of data drawn from a known logistic model', () => {
    const rng = new Rng(5);
    const n = 40_000;
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const z = rng.normal() * 1.5 - 2;
      s[i] = sigmoid(z);
      y[i] = rng.uniform() < sigmoid(1.7 * z - 0.4) ? 1 : 0;
    }
    const p = fitPlatt(s, y);
    expect(p.a).toBeCloseTo(1.7, 1);
    expect(p.b).toBeCloseTo(-0.4, 1);
    const smoothed = fitPlatt(s, y, { labelSmoothing: true });
    expect(Math.abs(smoothed.a - p.a)).toBeLessThan(0.01);
  });

  it('stays finite on separable data with label smoothing and is the identity on calibrated scores', () => {
    const sep = fitPlatt([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], { labelSmoothing: true });
    expect(Number.isFinite(sep.a) && Number.isFinite(sep.b)).toBe(true);
    expect(sep.predict(0.9)).toBeLessThan(1);
    const fit = fitLogistic([-1, -1, 1, 1], [0.25, 0.25, 0.75, 0.75]);
    expect(fit.converged).toBe(true);
    expect(fit.a).toBeCloseTo(logit(0.75), 8);
    expect(fit.b).toBeCloseTo(0, 8);
  });
});

describe('calibration metrics', () => {
  it('computes ECE by hand with equal-mass and equal-width bins', () => {
    const p = [0.1, 0.2, 0.3, 0.4];
    const y = [0, 0, 1, 1];
    // Equal mass, 2 bins: {0.1, 0.2} → |0.15 − 0| and {0.3, 0.4} → |0.35 − 1|.
    expect(expectedCalibrationError(p, y, { bins: 2 })).toBeCloseTo((0.15 + 0.65) / 2, 12);
    // Equal width, 2 bins: everything falls in [0, 0.5) → |0.25 − 0.5|.
    expect(expectedCalibrationError(p, y, { bins: 2, binning: 'equal-width' })).toBeCloseTo(0.25, 12);
    const bins = reliabilityBins(p, y, { bins: 2 });
    expect(bins.map((b) => [b.lo, b.hi, b.count])).toEqual([
      [0.1, 0.2, 2],
      [0.3, 0.4, 2],
    ]);
    expect(expectedCalibrationError([0.5, 0.5], [0, 1], { bins: 1 })).toBe(0);
    expect(predictedObservedRatio(p, y)).toBeCloseTo(0.5, 12);
  });

  it('cuts quantile buckets with ties kept together and reports ratios per bucket', () => {
    const pop = [0, 0, 0, 1, 2, 3, 5, 8, 13, 21];
    const b = QuantileBuckets.fit(pop, 5);
    expect(b.count).toBe(5);
    const ids = b.assign(pop);
    expect(Array.from(ids)).toEqual([0, 0, 0, 1, 1, 2, 2, 3, 3, 4]);
    expect(b.bucket(100)).toBe(4);
    const r = ratioByBucket([0.1, 0.1, 0.3], [0, 1, 0], [0, 0, 2], 3);
    expect(r.map((x) => [x.bucket, x.rows, x.ratio])).toEqual([
      [0, 2, 0.2],
      [2, 1, NaN],
    ]);
  });

  it('fits per bucket and falls back to the global calibrator for small buckets', () => {
    const scores = Array.from({ length: 200 }, (_, i) => (i % 100) / 100);
    const labels = scores.map((s, i) => (i < 100 ? (s > 0.5 ? 1 : 0) : s > 0.2 ? 1 : 0));
    const buckets = scores.map((_, i) => (i < 100 ? 0 : 1));
    const cal = fitBucketed(scores, labels, buckets, 3, (s, y) => fitIsotonic(s, y), { minPerClass: 10 });
    expect(cal.predict(0.3, 0)).toBe(0);
    expect(cal.predict(0.3, 1)).toBe(1);
    expect(cal.perBucket[2]).toBe(cal.fallback);
    expect(fitBucketed([0.1], [1], [0], 1, () => IDENTITY_CALIBRATOR).predict(0.3, 0)).toBe(0.3);
  });

  it('draws a standalone reliability SVG', () => {
    const svg = reliabilitySvg(
      [{ name: 'a < b', bins: reliabilityBins([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], { bins: 2 }) }],
      'title',
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('a &lt; b');
    expect(svg.match(/<circle/g)).toHaveLength(2);
  });
});
