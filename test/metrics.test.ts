import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { auc, aucWithStd, esmmMetrics, EsmmAccumulator, formatAuc, gauc, logloss } from '../models/metrics.js';

/** AUC by counting every positive/negative pair: the definition the fast version must match. */
function bruteAuc(labels: number[], scores: number[]): number {
  let pairs = 0;
  let wins = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      if (scores[i] > scores[j]) wins += 1;
      else if (scores[i] === scores[j]) wins += 0.5;
    }
  }
  return pairs === 0 ? NaN : wins / pairs;
}

describe('auc', () => {
  it('matches brute-force pair counting, ties included', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(0, 1),
            fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ min: -1, max: 1, noNaN: true })),
          ),
          {
            minLength: 0,
            maxLength: 60,
          },
        ),
        (pairs) => {
          const labels = pairs.map((p) => p[0]);
          const scores = pairs.map((p) => p[1]);
          const expected = bruteAuc(labels, scores);
          const got = auc(labels, scores);
          if (Number.isNaN(expected)) expect(got).toBeNaN();
          else expect(got).toBeCloseTo(expected, 12);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('handles a hand example with ties and refuses NaN scores', () => {
    // Pairs (pos, neg): (0.8,0.3) win, (0.8,0.5) win, (0.5,0.3) win, (0.5,0.5) tie → 3.5 / 4.
    expect(auc([1, 1, 0, 0], [0.8, 0.5, 0.5, 0.3])).toBe(0.875);
    expect(auc([1, 1, 1], [0.1, 0.2, 0.3])).toBeNaN();
    expect(auc(Float32Array.of(0, 1, 0), Float32Array.of(0.5, 0.5, 0.5))).toBe(0.5);
    expect(() => auc([1, 0], [NaN, 0])).toThrow(/NaN/);
    expect(() => auc([1, 0], [0])).toThrow(/2 labels but 1 scores/);
  });
});

/** DeLong's standard error from every pair's kernel ψ(x, y) ∈ {0, ½, 1}: the textbook definition. */
function bruteDelongStd(labels: number[], scores: number[]): number {
  const pos = scores.filter((_, i) => labels[i] === 1);
  const neg = scores.filter((_, i) => labels[i] === 0);
  const psi = (x: number, y: number): number => (x > y ? 1 : x === y ? 0.5 : 0);
  const a = bruteAuc(labels, scores);
  const v10 = pos.map((x) => neg.reduce((s, y) => s + psi(x, y), 0) / neg.length);
  const v01 = neg.map((y) => pos.reduce((s, x) => s + psi(x, y), 0) / pos.length);
  const sampleVar = (v: number[]): number =>
    v.length > 1 ? v.reduce((s, x) => s + (x - a) ** 2, 0) / (v.length - 1) : 0;
  return Math.sqrt(sampleVar(v10) / pos.length + sampleVar(v01) / neg.length);
}

describe('aucWithStd', () => {
  it("matches DeLong's variance from pair counting, ties included", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(0, 1), fc.integer({ min: -4, max: 4 })), { minLength: 2, maxLength: 50 }),
        (pairs) => {
          const labels = pairs.map((p) => p[0]);
          const scores = pairs.map((p) => p[1]);
          const got = aucWithStd(labels, scores);
          const expected = bruteAuc(labels, scores);
          if (Number.isNaN(expected)) {
            expect(got.auc).toBeNaN();
            expect(got.std).toBeNaN();
            return;
          }
          expect(got.auc).toBeCloseTo(expected, 12);
          expect(got.std).toBeCloseTo(bruteDelongStd(labels, scores), 10);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('shrinks as 1/√n: a 4× larger test set halves the error', () => {
    const draw = (n: number): { labels: number[]; scores: number[] } => {
      let state = 7;
      const u = (): number => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
      const labels: number[] = [];
      const scores: number[] = [];
      for (let i = 0; i < n; i++) {
        const y = u() < 0.3 ? 1 : 0;
        labels.push(y);
        scores.push(u() + 0.5 * y);
      }
      return { labels, scores };
    };
    const small = draw(2000);
    const large = draw(8000);
    const ratio = aucWithStd(small.labels, small.scores).std / aucWithStd(large.labels, large.scores).std;
    expect(ratio).toBeGreaterThan(1.7);
    expect(ratio).toBeLessThan(2.3);
  });
});

describe('logloss', () => {
  it('is the mean binary cross-entropy with clipping', () => {
    expect(logloss([1, 0], [0.8, 0.4])).toBeCloseTo(-(Math.log(0.8) + Math.log(0.6)) / 2, 12);
    expect(logloss([1], [0])).toBeCloseTo(-Math.log(1e-7), 9);
    expect(logloss([], [])).toBeNaN();
  });
});

describe('gauc', () => {
  it('weights per-user AUC by impressions and skips single-class users', () => {
    // User 1: 3 rows, AUC 1 (pos 0.9 over negs 0.2, 0.1). User 2: 2 rows, AUC 0 (pos 0.3 below neg 0.6).
    // User 3: only negatives, skipped. GAUC = (3·1 + 2·0) / 5.
    const labels = [1, 0, 0, 1, 0, 0, 0];
    const scores = [0.9, 0.2, 0.1, 0.3, 0.6, 0.5, 0.4];
    const users = [1, 1, 1, 2, 2, 3, 3];
    const r = gauc(labels, scores, users);
    expect(r.gauc).toBeCloseTo(0.6, 12);
    expect(r.users).toBe(2);
    expect(r.impressions).toBe(5);
    // Interleaved rows group the same way.
    const perm = [6, 0, 4, 1, 5, 2, 3];
    const r2 = gauc(
      perm.map((i) => labels[i]),
      perm.map((i) => scores[i]),
      perm.map((i) => users[i]),
    );
    expect(r2.gauc).toBeCloseTo(0.6, 12);
    expect(gauc([0, 0], [0.1, 0.2], [1, 2]).gauc).toBeNaN();
  });
});

describe('esmmMetrics', () => {
  const click = [1, 1, 1, 0, 0, 0];
  const conversion = [1, 0, 0, 0, 0, 0];
  const pCtr = [0.9, 0.8, 0.2, 0.7, 0.1, 0.3];
  const pCvr = [0.5, 0.1, 0.3, 0.9, 0.2, 0.05];
  const potential = [1, 0, 0, 1, 0, 0];

  it('computes CTR over all rows, CVR over clicked rows, CTCVR over all rows', () => {
    const m = esmmMetrics({
      click,
      conversion,
      pCtr,
      pCvr,
      potentialConversion: potential,
      userIds: [1, 2, 1, 2, 1, 2],
    });
    expect(m.ctrAuc).toBeCloseTo(auc(click, pCtr), 12);
    expect(m.cvrAuc).toBeCloseTo(auc([1, 0, 0], [0.5, 0.1, 0.3]), 12);
    expect(m.ctcvrAuc).toBeCloseTo(
      auc(
        [1, 0, 0, 0, 0, 0],
        pCtr.map((p, i) => p * pCvr[i]),
      ),
      12,
    );
    expect(m.cvrAucEntireSpace).toBeCloseTo(auc(potential, pCvr), 12);
    expect(m.cvrLogloss).toBeCloseTo(logloss([1, 0, 0], [0.5, 0.1, 0.3]), 12);
    expect(m.ctrGauc).toBeCloseTo(1, 12);
    expect([m.rows, m.clicks, m.conversions]).toEqual([6, 3, 1]);
  });

  it('accumulates across batches and equals the one-shot computation (not a mean of batch AUCs)', () => {
    const acc = new EsmmAccumulator();
    acc.add({
      click: click.slice(0, 2),
      conversion: conversion.slice(0, 2),
      pCtr: pCtr.slice(0, 2),
      pCvr: pCvr.slice(0, 2),
    });
    acc.add({ click: click.slice(2), conversion: conversion.slice(2), pCtr: pCtr.slice(2), pCvr: pCvr.slice(2) });
    expect(acc.rows).toBe(6);
    expect(acc.compute()).toEqual(esmmMetrics({ click, conversion, pCtr, pCvr }));
    expect(() => acc.add({ click: [1], conversion: [0], pCtr: [0.5], pCvr: [0.5], userIds: [3] })).toThrow(/columns/);
    acc.reset();
    expect(acc.rows).toBe(0);
  });

  it('names an AUC with no positive or no negative label instead of printing NaN', () => {
    const m = esmmMetrics({
      click: [1, 1, 0, 0],
      conversion: [0, 0, 0, 0],
      pCtr: [0.9, 0.4, 0.3, 0.2],
      pCvr: [0.1, 0.2, 0.3, 0.4],
    });
    expect(m.cvrAuc).toBeNaN();
    expect(m.undefinedAuc.cvrAuc).toBe('no positive conversion among 2 clicked rows');
    expect(m.undefinedAuc.ctcvrAuc).toBe('no positive click·conversion among 4 rows');
    expect(formatAuc(m, 'cvrAuc')).toBe('undefined (no positive conversion among 2 clicked rows)');
    expect(m.undefinedAuc.ctrAuc).toBeUndefined();
    expect(formatAuc(m, 'ctrAuc')).toMatch(/^1\.0000 ± 0\.\d{4}$/);
    expect(m.aucStd.ctrAuc).toBe(0);
  });
});
