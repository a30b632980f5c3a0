/**
 * Finite-difference gradient checking (as `torch.autograd.gradcheck`).
 *
 * For a function f of some float64 tensors, draw a fixed random cotangent v and
 * compare the autodiff vector-Jacobian product vᵀ·J with central differences of
 * x ↦ vᵀ·f(x), element by element. One backward and two forwards per input element.
 */
import { Rng } from './random.js';
import { noGrad, RowSparseGrad, Tensor } from './tensor.js';

/** Tolerances and seed; defaults follow PyTorch (eps 1e-6, atol 1e-5, rtol 1e-3). */
export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
}

/** The worst element found, and whether every element was within tolerance. */
export interface GradcheckResult {
  ok: boolean;
  /** Largest |analytic − numeric| over all checked elements. */
  maxAbsError: number;
  /** Largest |analytic − numeric| / max(|numeric|, atol/rtol) — relative error, guarded near 0. */
  maxRelError: number;
  /** Where the tolerance was exceeded by the most (or the largest error when all pass). */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
  /** Number of elements compared. */
  checked: number;
}

/** Run a gradient check; inputs must be float64 tensors with `requiresGrad`. */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  options: GradcheckOptions = {},
): GradcheckResult {
  const eps = options.eps ?? 1e-6;
  const atol = options.atol ?? 1e-5;
  const rtol = options.rtol ?? 1e-3;
  for (const [i, t] of inputs.entries()) {
    if (t.dtype !== 'float64')
      throw new Error(`gradcheck: input ${i} is ${t.dtype}; use float64 for finite differences`);
  }

  const probe = noGrad(() => fn(...inputs));
  const rng = new Rng(options.seed ?? 1234);
  const cotangent = Float64Array.from({ length: probe.size }, () => rng.uniformIn(-1, 1));
  const seed = Tensor.fromArray(cotangent, probe.shape, { dtype: 'float64', backend: probe.backend });

  for (const t of inputs) t.grad = null;
  const out = fn(...inputs);
  out.backward(seed);
  const analytic = inputs.map((t) => gradientValues(t));

  const projected = (): number => {
    const values = noGrad(() => fn(...inputs)).toArray();
    let s = 0;
    for (let i = 0; i < values.length; i++) s += values[i] * cotangent[i];
    return s;
  };

  const result: GradcheckResult = { ok: true, maxAbsError: 0, maxRelError: 0, worst: null, checked: 0 };
  let worstExcess = -Infinity;
  inputs.forEach((t, inputIndex) => {
    if (!t.requiresGrad) return;
    const values = t.toArray();
    for (let j = 0; j < values.length; j++) {
      const original = values[j];
      values[j] = original + eps;
      t.backend.write(t.storage, values);
      const plus = projected();
      values[j] = original - eps;
      t.backend.write(t.storage, values);
      const minus = projected();
      values[j] = original;
      t.backend.write(t.storage, values);

      const numeric = (plus - minus) / (2 * eps);
      const a = analytic[inputIndex][j];
      const err = Math.abs(a - numeric);
      const excess = err - (atol + rtol * Math.abs(numeric));
      result.checked++;
      result.maxAbsError = Math.max(result.maxAbsError, err);
      result.maxRelError = Math.max(result.maxRelError, err / Math.max(Math.abs(numeric), atol / rtol));
      if (!(excess <= 0)) result.ok = false;
      if (excess > worstExcess || Number.isNaN(excess)) {
        worstExcess = Number.isNaN(excess) ? Infinity : excess;
        result.worst = { input: inputIndex, index: j, analytic: a, numeric };
      }
    }
  });
  return result;
}

/** Dense host copy of a tensor's accumulated gradient (zeros when none flowed). */
function gradientValues(t: Tensor): Float64Array {
  const out = new Float64Array(t.size);
  const g = t.gradient;
  if (g instanceof RowSparseGrad) {
    const dense = g.toDense().toArray();
    out.set(dense);
  } else if (g) {
    out.set(g.toArray());
  }
  return out;
}
