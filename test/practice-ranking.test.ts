/** The serving score pCTR^a·pCVR^b and the per-user ranking metrics, by hand. */
import { describe, expect, it } from 'vitest';
import { groupByUser, rankingGrid, rankingMetrics, rankingScore } from '../models/practice/index.js';

describe('ranking score', () => {
  it('is pCTR^a · pCVR^b', () => {
    expect(rankingScore(0.1, 0.2, 1, 2)).toBeCloseTo(0.004, 15);
    expect(rankingScore(0.1, 0.2, 0, 1)).toBeCloseTo(0.2, 15);
    expect(rankingScore(0.1, 0.2, 1, 0)).toBeCloseTo(0.1, 15);
  });

  it('groups rows by user', () => {
    expect(groupByUser([7, 3, 7, 3, 9]).map((g) => Array.from(g))).toEqual([[1, 3], [0, 2], [4]]);
  });
});

describe('ranking metrics', () => {
  // User 1: rows 0, 1, 2; user 2: rows 3, 4; user 3: rows 5, 6.
  const input = {
    userIds: [1, 1, 1, 2, 2, 3, 3],
    value: [0.1, 0.3, 0.2, 0.05, 0.01, 0.2, 0.1],
    gain: [0, 1, 0, 0, 0, 0, 1],
  };
  const scores = [3, 1, 2, 1, 2, 5, 4];

  it('measures value@k, its ideal and NDCG@k by hand', () => {
    const m = rankingMetrics(input, scores, 2);
    // Top 2 by score: user 1 → rows 0, 2 (0.3; ideal 0.5); user 2 → rows 4, 3 (0.06; ideal 0.06); user 3 → rows 5, 6 (0.3; ideal 0.3).
    expect(m.users).toBe(3);
    expect(m.valueAtK).toBeCloseTo((0.3 + 0.06 + 0.3) / 3, 12);
    expect(m.oracleValueAtK).toBeCloseTo((0.5 + 0.06 + 0.3) / 3, 12);
    expect(m.shareOfOracle).toBeCloseTo(0.66 / 0.86, 12);
    // NDCG: user 1's converting row is third (outside the top 2) → 0; user 3's is second → 1/log2(3); user 2 has none and is skipped.
    expect(m.ndcgUsers).toBe(2);
    expect(m.ndcgAtK).toBeCloseTo((0 + 1 / Math.log2(3)) / 2, 12);
  });

  it('counts all rows of users with fewer than k, and breaks score ties by input order', () => {
    const m = rankingMetrics(input, [0, 0, 0, 0, 0, 0, 0], 1);
    expect(m.valueAtK).toBeCloseTo((0.1 + 0.05 + 0.2) / 3, 12);
    const all = rankingMetrics(input, scores, 10);
    expect(all.shareOfOracle).toBeCloseTo(1, 12);
  });

  it('ranks by the truth perfectly when a = b = 1 and value = pCTR·pCVR', () => {
    const pctr = [0.1, 0.3, 0.05, 0.2, 0.02, 0.5, 0.4];
    const pcvr = [0.5, 0.1, 0.9, 0.1, 0.3, 0.05, 0.2];
    const value = pctr.map((c, i) => c * pcvr[i]);
    const grid = rankingGrid(
      { userIds: input.userIds, value, gain: input.gain },
      pctr,
      pcvr,
      [
        { a: 1, b: 1 },
        { a: 2, b: 2 },
        { a: 1, b: 0 },
      ],
      1,
    );
    expect(grid[0].metrics.shareOfOracle).toBeCloseTo(1, 12);
    expect(grid[1].metrics.shareOfOracle).toBeCloseTo(1, 12);
    expect(grid[2].metrics.shareOfOracle).toBeLessThan(1);
  });

  it('rejects a bad k and mismatched lengths', () => {
    expect(() => rankingMetrics(input, scores, 0)).toThrow(/k must be/);
    expect(() => rankingMetrics(input, [1, 2], 1)).toThrow(/scores has 2 rows/);
  });
});
