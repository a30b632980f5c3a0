/** Negative down-sampling: the correction formulas (exact algebra and on fitted models) and the seeded batch source. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng } from '../core/random.js';
import {
  correctCtr,
  correctPredictions,
  correctProbabilities,
  downsampledProbabilities,
  downsampledSource,
  downsampleIndices,
  fitLogistic,
  rateForRatio,
} from '../models/practice/index.js';
import type { Batch } from '../models/schema.js';
import type { BatchSource } from '../models/training/trainer.js';

const prob = fc.double({ min: 1e-4, max: 1 - 1e-4, noNaN: true });
const rate = fc.double({ min: 0.01, max: 1, noNaN: true });
const close = (a: number, b: number, tol = 1e-9): boolean => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

describe('correction algebra', () => {
  it('correcting the down-sampled true probabilities gives the true probabilities (any r, r2)', () => {
    fc.assert(
      fc.property(prob, prob, rate, rate, (c, v, r, r2) => {
        const q = downsampledProbabilities(c, v, { unclicked: r, clickedUnconverted: r2 });
        expect(close(q.pctcvr, q.pctr * q.pcvr, 1e-12)).toBe(true);
        const p = correctProbabilities(q.pctr, q.pcvr, { unclicked: r, clickedUnconverted: r2 });
        expect(close(p.pctr / c, 1)).toBe(true);
        expect(close(p.pcvr / v, 1)).toBe(true);
        expect(close(p.pctcvr / (c * v), 1)).toBe(true);
      }),
    );
  });

  it('reduces to the standard pCTR correction with r2 = 1, leaves pCVR alone, and to q/(q + (1−q)/r) for pCTCVR when r2 = r', () => {
    fc.assert(
      fc.property(prob, prob, rate, (q, qcvr, r) => {
        const p = correctProbabilities(q, qcvr, { unclicked: r });
        expect(close(p.pctr, correctCtr(q, r))).toBe(true);
        expect(close(p.pcvr, qcvr)).toBe(true);
        expect(close(p.pctcvr, p.pctr * p.pcvr)).toBe(true);
        const same = correctProbabilities(q, qcvr, { unclicked: r, clickedUnconverted: r });
        expect(close(same.pctcvr, correctCtr(q * qcvr, r))).toBe(true);
      }),
    );
  });

  it('the click odds are inflated by exactly 1/r', () => {
    const q = downsampledProbabilities(0.04, 0.1, { unclicked: 0.25 });
    expect(q.pctr / (1 - q.pctr)).toBeCloseTo(0.04 / 0.96 / 0.25, 12);
    expect(correctCtr(q.pctr, 0.25)).toBeCloseTo(0.04, 12);
  });

  it('rejects keep rates outside (0, 1]', () => {
    expect(() => correctProbabilities(0.1, 0.1, { unclicked: 0 })).toThrow(/unclicked/);
    expect(() => correctProbabilities(0.1, 0.1, { unclicked: 0.5, clickedUnconverted: 1.5 })).toThrow(
      /clickedUnconverted/,
    );
  });

  it('chooses r for a target unclicked:clicked ratio', () => {
    expect(rateForRatio(40, 960, 6)).toBeCloseTo(0.25, 12);
    expect(rateForRatio(500, 500, 6)).toBe(1);
  });
});

/** Rows with one feature x and a known funnel: c = σ(1.2x − 3), v = σ(0.8x − 1). */
function funnel(n: number, seed: number) {
  const rng = new Rng(seed);
  const x = new Float64Array(n);
  const c = new Float64Array(n);
  const v = new Float64Array(n);
  const click = new Float32Array(n);
  const conversion = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = rng.normal();
    c[i] = sigmoid(1.2 * x[i] - 3);
    v[i] = sigmoid(0.8 * x[i] - 1);
    click[i] = rng.uniform() < c[i] ? 1 : 0;
    conversion[i] = click[i] === 1 && rng.uniform() < v[i] ? 1 : 0;
  }
  return { x, c, v, click, conversion, size: n };
}

describe('correction of models fitted on down-sampled data', () => {
  const data = funnel(200_000, 7);
  let baseRate = 0;
  for (let i = 0; i < data.size; i++) baseRate += data.click[i] / data.size;

  it('recovers the click base rate and the per-row pCTR (r = 0.2, r2 = 1)', () => {
    const rates = { unclicked: 0.2 };
    const kept = downsampleIndices(data, rates, new Rng(1));
    const fit = fitLogistic(
      Float64Array.from(kept, (i) => data.x[i]),
      Float64Array.from(kept, (i) => data.click[i]),
    );
    let raw = 0;
    let corrected = 0;
    let err = 0;
    for (let i = 0; i < data.size; i++) {
      const q = sigmoid(fit.a * data.x[i] + fit.b);
      const p = correctProbabilities(q, 0.5, rates).pctr;
      raw += q / data.size;
      corrected += p / data.size;
      err += Math.abs(p - data.c[i]) / data.size;
    }
    expect(raw / baseRate).toBeGreaterThan(2.5);
    expect(Math.abs(corrected / baseRate - 1)).toBeLessThan(0.05);
    expect(err / baseRate).toBeLessThan(0.06);
  });

  it('recovers pCVR and pCTCVR with clicked-unconverted rows also thinned (r = 0.3, r2 = 0.4)', () => {
    const rates = { unclicked: 0.3, clickedUnconverted: 0.4 };
    const kept = downsampleIndices(data, rates, new Rng(2));
    const clicked = Array.from(kept).filter((i) => data.click[i] === 1);
    const cvr = fitLogistic(
      Float64Array.from(clicked, (i) => data.x[i]),
      Float64Array.from(clicked, (i) => data.conversion[i]),
    );
    // The sampled click odds c(v + (1 − v)r2) / ((1 − c)r) are not exactly logistic in x when r2 < 1, so pCTCVR is checked on the total only.
    const ctrX = Float64Array.from(kept, (i) => data.x[i]);
    const ctr = fitLogistic(
      ctrX,
      Float64Array.from(kept, (i) => data.click[i]),
    );
    let errCvr = 0;
    let meanV = 0;
    let ctcvr = 0;
    let trueCtcvr = 0;
    for (let i = 0; i < data.size; i++) {
      const qcvr = sigmoid(cvr.a * data.x[i] + cvr.b);
      const qctr = sigmoid(ctr.a * data.x[i] + ctr.b);
      const p = correctProbabilities(qctr, qcvr, rates);
      errCvr += Math.abs(p.pcvr - data.v[i]) / data.size;
      meanV += data.v[i] / data.size;
      ctcvr += p.pctcvr;
      trueCtcvr += data.conversion[i];
    }
    expect(errCvr / meanV).toBeLessThan(0.06);
    expect(Math.abs(ctcvr / trueCtcvr - 1)).toBeLessThan(0.12);
  });

  it('corrects whole prediction sets', () => {
    const out = correctPredictions(
      { pctr: Float32Array.of(0.5), pcvr: Float32Array.of(0.2), pctcvr: Float32Array.of(0.1) },
      { unclicked: 0.25 },
    );
    expect(out.pctr[0]).toBeCloseTo(0.2, 6);
    expect(out.pcvr[0]).toBeCloseTo(0.2, 6);
    expect(out.pctcvr[0]).toBeCloseTo(0.04, 6);
  });
});

describe('downsampledSource', () => {
  const labels = (epochBatches: number): BatchSource => ({
    batches: () =>
      Array.from({ length: epochBatches }, (_, b): Batch => {
        const n = 1000;
        const click = new Float32Array(n);
        const conversion = new Float32Array(n);
        const userIds = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          click[i] = i % 10 === 0 ? 1 : 0;
          conversion[i] = i % 50 === 0 ? 1 : 0;
          userIds[i] = b * n + i;
        }
        return { size: n, fields: {}, click, conversion, userIds };
      }),
  });

  async function collect(source: BatchSource, epoch: number): Promise<Batch[]> {
    const out: Batch[] = [];
    for await (const b of source.batches(epoch)) out.push(b);
    return out;
  }

  it('keeps every conversion, thins the rest at their rates, and is reproducible per epoch', async () => {
    const src = downsampledSource(labels(20), { unclicked: 0.2, clickedUnconverted: 0.5 }, { seed: 3 });
    const a = await collect(src, 1);
    const again = await collect(src, 1);
    const other = await collect(src, 2);
    const ids = (bs: Batch[]): number[] => bs.flatMap((b) => Array.from(b.userIds ?? []));
    expect(ids(again)).toEqual(ids(a));
    expect(ids(other)).not.toEqual(ids(a));
    let unclicked = 0;
    let cu = 0;
    let cc = 0;
    for (const b of a) {
      for (let i = 0; i < b.size; i++) {
        if (b.click[i] === 0) unclicked++;
        else if (b.conversion[i] === 0) cu++;
        else cc++;
      }
    }
    expect(cc).toBe(20 * 20);
    expect(unclicked / (20 * 900)).toBeCloseTo(0.2, 1);
    expect(cu / (20 * 80)).toBeCloseTo(0.5, 1);
  });

  it('skips batches that lose every row', async () => {
    const empty: BatchSource = {
      batches: () => [{ size: 3, fields: {}, click: new Float32Array(3), conversion: new Float32Array(3) }],
    };
    expect(await collect(downsampledSource(empty, { unclicked: 1e-9 }, { seed: 1 }), 1)).toHaveLength(0);
  });
});
