/**
 * The stable math, in one readable place: the scalar formulas of the numerically delicate
 * kernels, written so that each neither overflows nor loses all precision for arguments
 * anywhere in ±100 (and well beyond), infinite logits included. The reference backend calls
 * these; the wasm kernels (`wasm/kernels.ts`) and the gpu.js sources (`gpu/sources.ts`) are
 * transcriptions of them, held to them by the cross-backend kernel checks.
 *
 * @module
 */

/** 1 / (1 + e^-x) without overflow for large |x|. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** log(sigmoid(x)) = -softplus(-x). */
export function logSigmoid(x: number): number {
  return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
}

/** log(e^a + e^b). */
export function logAddExp(a: number, b: number): number {
  const hi = Math.max(a, b);
  if (hi === -Infinity) return -Infinity;
  return hi + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/**
 * c · v, except that a zero weight gives 0 even when v is infinite: a loss term whose label
 * weight is zero contributes nothing, so a saturated logit (±∞) with the matching label
 * costs exactly 0 instead of 0 · ∞ = NaN. A NaN input still propagates through the other term.
 */
export function weighted(c: number, v: number): number {
  return c === 0 ? 0 : c * v;
}

/**
 * Binary cross-entropy of sigmoid(x) against label y: max(x, 0) − x·y + log1p(e^−|x|), with the
 * linear part split by sign ((1 − y)·x or y·(−x)) so that x = ±∞ never computes ∞ − ∞.
 */
export function bceWithLogits(x: number, y: number): number {
  const linear = x >= 0 ? weighted(1 - y, x) : weighted(y, -x);
  return linear + Math.log1p(Math.exp(-Math.abs(x)));
}

/**
 * BCE(p, y) for p = sigmoid(a) * sigmoid(b), in log space:
 * log p = logσ(a) + logσ(b) and log(1 - p) = log(σ(-a) + σ(a)·σ(-b)).
 */
export function productBce(a: number, b: number, y: number): number {
  const logP = logSigmoid(a) + logSigmoid(b);
  const logOneMinusP = logAddExp(logSigmoid(-a), logSigmoid(a) + logSigmoid(-b));
  return weighted(y, -logP) + weighted(1 - y, -logOneMinusP);
}

/**
 * d productBce / da. With p = σ(a)σ(b):
 * dL/da = (1 - y) · p · σ(-a) / (1 - p) - y · σ(-a). Since 1 - p = σ(-a) + σ(a)σ(-b) and
 * σ(a)/σ(-a) = e^a, the ratio σ(-a) / (1 - p) equals σ(-t) with t = a + logσ(-b),
 * which stays finite when p → 1.
 * The derivative with respect to b is the same formula with a and b swapped.
 */
export function productBceGradA(a: number, b: number, y: number): number {
  const p = Math.exp(logSigmoid(a) + logSigmoid(b));
  const t = a + logSigmoid(-b);
  return weighted(1 - y, p * sigmoid(-t)) - weighted(y, sigmoid(-a));
}
