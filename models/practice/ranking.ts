/**
 * Serving-time ranking by score = pCTR^a · pCVR^b and its offline evaluation: per
 * user, rank that user's impressions by the score and measure expected conversions
 * in the top k (from the true probabilities a simulator knows) and NDCG@k.
 *
 * Within one user's list only b/a matters for a > 0 (x ↦ x^(1/a) keeps the order), so
 * a grid over (a, b) is a sweep from ranking by clicks (b = 0) through pCTCVR (a = b)
 * to ranking by conversion after the click (a = 0). The absolute exponents matter only
 * when the score is mixed with other terms (a bid, a boost) at serving time.
 */
import type { NumArray } from '../metrics.js';

/** The serving score pCTR^a · pCVR^b. */
export function rankingScore(pctr: number, pcvr: number, a: number, b: number): number {
  return Math.pow(pctr, a) * Math.pow(pcvr, b);
}

/** Rows to rank, grouped by user. */
export interface RankingInput {
  userIds: NumArray;
  /** Value of showing each row, e.g. the true pCTR·pCVR (expected conversions). */
  value: NumArray;
  /** Relevance for NDCG, e.g. the observed click·conversion, or a graded truth. */
  gain: NumArray;
}

/** Ranking quality of one scoring. */
export interface RankingMetrics {
  /** Mean over users of Σ value over the user's top k. */
  valueAtK: number;
  /** The same for the ideal order by value (the ceiling). */
  oracleValueAtK: number;
  /** valueAtK / oracleValueAtK. */
  shareOfOracle: number;
  /** Mean NDCG@k over users with at least one positive gain. */
  ndcgAtK: number;
  users: number;
  /** Users that count towards NDCG. */
  ndcgUsers: number;
}

/** Row indices grouped by user id (users in ascending id order, rows in input order). */
export function groupByUser(userIds: NumArray): Int32Array[] {
  const order = Array.from({ length: userIds.length }, (_, i) => i).sort((a, b) => userIds[a] - userIds[b] || a - b);
  const groups: Int32Array[] = [];
  for (let s = 0; s < order.length;) {
    let e = s;
    while (e < order.length && userIds[order[e]] === userIds[order[s]]) e++;
    groups.push(Int32Array.from(order.slice(s, e)));
    s = e;
  }
  return groups;
}

function dcg(gains: number[], k: number): number {
  let s = 0;
  for (let i = 0; i < Math.min(k, gains.length); i++) s += gains[i] / Math.log2(i + 2);
  return s;
}

/**
 * Per-user top-k metrics of `scores` (higher first; ties keep input order, so a
 * constant score ranks by position). Users with fewer than k rows count all their rows.
 */
export function rankingMetrics(
  input: RankingInput,
  scores: NumArray,
  k: number,
  groups: readonly Int32Array[] = groupByUser(input.userIds),
): RankingMetrics {
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`rankingMetrics: k must be a positive integer, got ${k}`);
  const n = input.userIds.length;
  for (const [name, a] of [
    ['value', input.value],
    ['gain', input.gain],
    ['scores', scores],
  ] as const) {
    if (a.length !== n) throw new Error(`rankingMetrics: ${name} has ${a.length} rows, userIds has ${n}`);
  }
  let value = 0;
  let oracle = 0;
  let ndcg = 0;
  let ndcgUsers = 0;
  for (const g of groups) {
    const rows = Array.from(g);
    const ranked = rows.slice().sort((x, y) => scores[y] - scores[x] || x - y);
    const ideal = rows.slice().sort((x, y) => input.value[y] - input.value[x] || x - y);
    for (let i = 0; i < Math.min(k, rows.length); i++) {
      value += input.value[ranked[i]];
      oracle += input.value[ideal[i]];
    }
    const idealGains = rows.map((r) => input.gain[r]).sort((x, y) => y - x);
    const best = dcg(idealGains, k);
    if (best > 0) {
      ndcg +=
        dcg(
          ranked.map((r) => input.gain[r]),
          k,
        ) / best;
      ndcgUsers++;
    }
  }
  const users = groups.length;
  return {
    valueAtK: users ? value / users : NaN,
    oracleValueAtK: users ? oracle / users : NaN,
    shareOfOracle: oracle > 0 ? value / oracle : NaN,
    ndcgAtK: ndcgUsers ? ndcg / ndcgUsers : NaN,
    users,
    ndcgUsers,
  };
}

/** One (a, b) point of a ranking grid. */
export interface ScoreExponents {
  a: number;
  b: number;
}

/** A grid point and its metrics. */
export interface RankingGridRow extends ScoreExponents {
  metrics: RankingMetrics;
}

/** A default grid from click-only to conversion-only ranking. */
export const DEFAULT_SCORE_GRID: readonly ScoreExponents[] = [
  { a: 1, b: 0 },
  { a: 1, b: 0.5 },
  { a: 1, b: 1 },
  { a: 1, b: 2 },
  { a: 1, b: 4 },
  { a: 0, b: 1 },
];

/** {@link rankingMetrics} for every (a, b) of a grid, scoring with pCTR^a · pCVR^b. */
export function rankingGrid(
  input: RankingInput,
  pctr: NumArray,
  pcvr: NumArray,
  grid: readonly ScoreExponents[],
  k: number,
): RankingGridRow[] {
  const groups = groupByUser(input.userIds);
  return grid.map(({ a, b }) => {
    const scores = Float64Array.from({ length: pctr.length }, (_, i) => rankingScore(pctr[i], pcvr[i], a, b));
    return { a, b, metrics: rankingMetrics(input, scores, k, groups) };
  });
}
