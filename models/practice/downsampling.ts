/**
 * Negative down-sampling for ESMM and the prior correction that undoes it.
 *
 * Rows fall into three classes: unclicked (N), clicked but unconverted (CU) and
 * clicked and converted (CC). Down-sampling keeps N with rate r and CU with rate r2
 * (default 1) and every CC. For one feature vector x with true click probability c
 * and post-click conversion probability v, the true class probabilities are
 *   P(N) = 1 − c,  P(CU) = c(1 − v),  P(CC) = c·v,
 * and after sampling they become, with D = (1 − c)·r + c(1 − v)·r2 + c·v,
 *   q(N) = (1 − c)·r / D,  q(CU) = c(1 − v)·r2 / D,  q(CC) = c·v / D.
 * A well-fitted model on the sampled data therefore learns
 *   q_ctr = (c(1 − v)·r2 + c·v) / D,  q_ctcvr = c·v / D,  q_cvr = q_ctcvr / q_ctr = v / (v + (1 − v)·r2).
 *
 * Inverting: divide each sampled class probability by its keep rate and renormalise,
 *   Z = (1 − q_ctr)/r + (q_ctr − q_ctcvr)/r2 + q_ctcvr,
 *   pCTCVR = q_ctcvr / Z,   pCTR = ((q_ctr − q_ctcvr)/r2 + q_ctcvr) / Z,
 *   pCVR = pCTCVR / pCTR = q_cvr / (q_cvr + (1 − q_cvr)/r2).
 * With r2 = 1 this reduces to the standard pCTR correction p = q / (q + (1 − q)/r)
 * (the click odds were inflated by exactly 1/r), pCVR needs no correction, and
 * pCTCVR = q_ctcvr / ((1 − q_ctr)/r + q_ctr): it depends on the
 * corrected pCTR as well, since only the unclicked share of CTCVR negatives was thinned.
 * When r2 = r every CTCVR negative is thinned alike and pCTCVR = q / (q + (1 − q)/r).
 */
import { Rng } from '../../core/random.js';
import type { HostPredictions } from '../methods/method.js';
import { selectRows, type Batch } from '../schema.js';
import type { BatchSource } from '../training/trainer.js';

/** Keep rates of negative down-sampling. */
export interface DownsamplingRates {
  /** Keep rate r of unclicked impressions, in (0, 1]. */
  unclicked: number;
  /** Keep rate r2 of clicked-but-unconverted impressions, in (0, 1] (default 1: all kept). */
  clickedUnconverted?: number;
}

/** The three probabilities for one row. */
export interface FunnelProbabilities {
  pctr: number;
  pcvr: number;
  pctcvr: number;
}

function rates(r: DownsamplingRates): { r: number; r2: number } {
  const r2 = r.clickedUnconverted ?? 1;
  for (const [name, v] of [
    ['unclicked', r.unclicked],
    ['clickedUnconverted', r2],
  ] as const) {
    if (!(v > 0 && v <= 1)) throw new Error(`down-sampling: keep rate '${name}' must lie in (0, 1], got ${v}`);
  }
  return { r: r.unclicked, r2 };
}

/** The standard prior correction of a probability learnt with negatives kept at rate r: p = q / (q + (1 − q)/r). */
export function correctCtr(q: number, r: number): number {
  return q / (q + (1 - q) / r);
}

/** The probabilities a model trained on down-sampled data converges to, given the true ones (the forward map of the derivation above). */
export function downsampledProbabilities(
  pctr: number,
  pcvr: number,
  downsampling: DownsamplingRates,
): FunnelProbabilities {
  const { r, r2 } = rates(downsampling);
  const n = (1 - pctr) * r;
  const cu = pctr * (1 - pcvr) * r2;
  const cc = pctr * pcvr;
  const d = n + cu + cc;
  const qctr = (cu + cc) / d;
  const qctcvr = cc / d;
  return { pctr: qctr, pcvr: cu + cc > 0 ? cc / (cu + cc) : pcvr, pctcvr: qctcvr };
}

/** Undo down-sampling for one row: the sampled pCTR and pCVR (pCTCVR = their product, as in ESMM) mapped back to the full data's three probabilities. */
export function correctProbabilities(qctr: number, qcvr: number, downsampling: DownsamplingRates): FunnelProbabilities {
  const { r, r2 } = rates(downsampling);
  const qctcvr = qctr * qcvr;
  // Each sampled class probability divided by its keep rate, then renormalised.
  const n = (1 - qctr) / r;
  const cu = (qctr - qctcvr) / r2;
  const cc = qctcvr;
  const z = n + cu + cc;
  const pcvr = qcvr / (qcvr + (1 - qcvr) / r2);
  return { pctr: (cu + cc) / z, pcvr, pctcvr: cc / z };
}

/** {@link correctProbabilities} over a whole prediction set (host arrays, same shape as `CvrMethod.predict`). */
export function correctPredictions(p: HostPredictions, downsampling: DownsamplingRates): HostPredictions {
  const n = p.pctr.length;
  const out: HostPredictions = { pctr: new Float32Array(n), pcvr: new Float32Array(n), pctcvr: new Float32Array(n) };
  for (let i = 0; i < n; i++) {
    const c = correctProbabilities(p.pctr[i], p.pcvr[i], downsampling);
    out.pctr[i] = c.pctr;
    out.pcvr[i] = c.pcvr;
    out.pctcvr[i] = c.pctcvr;
  }
  return out;
}

/**
 * The keep rate r of unclicked rows that leaves `ratio` unclicked rows per clicked row
 * (e.g. 6 for the 1:6 practice), capped at 1 when the data are already that balanced.
 */
export function rateForRatio(clicked: number, unclicked: number, ratio: number): number {
  if (!(ratio > 0)) throw new Error(`rateForRatio: ratio must be positive, got ${ratio}`);
  if (unclicked <= 0) return 1;
  return Math.min(1, (ratio * clicked) / unclicked);
}

/** Row indices of `batch` kept by down-sampling, in order; the draw uses `rng` once per row that may be dropped. */
export function downsampleIndices(
  batch: Pick<Batch, 'size' | 'click' | 'conversion'>,
  downsampling: DownsamplingRates,
  rng: Rng,
): Int32Array {
  const { r, r2 } = rates(downsampling);
  const kept = new Int32Array(batch.size);
  let m = 0;
  for (let i = 0; i < batch.size; i++) {
    const keep = batch.click[i] !== 1 ? r : batch.conversion[i] !== 1 ? r2 : 1;
    if (keep >= 1 || rng.uniform() < keep) kept[m++] = i;
  }
  return kept.slice(0, m);
}

/** A batch of the rows that survive down-sampling (user ids carried along; simulator truth columns are not, as training does not read them). */
export function downsampleBatch(batch: Batch, downsampling: DownsamplingRates, rng: Rng): Batch {
  return selectRows(batch, downsampleIndices(batch, downsampling, rng));
}

/** Options of {@link downsampledSource}. */
export interface DownsampledSourceOptions {
  /** Seed of the draws; epoch e draws from a stream seeded by (seed, e), so a run is reproducible and epochs see different subsets. */
  seed?: number;
}

/** A {@link BatchSource} that down-samples every batch of `source` afresh each epoch (empty batches are skipped). */
export function downsampledSource(
  source: BatchSource,
  downsampling: DownsamplingRates,
  options: DownsampledSourceOptions = {},
): BatchSource {
  rates(downsampling);
  return {
    batches: (epoch) => {
      const rng = new Rng((((options.seed ?? 0) * 104729) ^ (epoch * 7919 + 0xd5)) >>> 0);
      const inner = source.batches(epoch);
      return (async function* () {
        for await (const batch of inner) {
          const out = downsampleBatch(batch, downsampling, rng);
          if (out.size > 0) yield out;
        }
      })();
    },
  };
}
