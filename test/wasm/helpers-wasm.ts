/** Shared helpers for the wasm backend tests: a seeded RNG and tolerant comparison. */
import type { Backend, DType, FloatArray, Storage } from '../../kernels/index.js';
import { relaxedSimdSupported, type SimdVariant } from '../../kernels/wasm/index.js';

/**
 * The SIMD variants the wasm suites run: those `ESMM_TEST_SIMD` lists (the vitest project
 * that starts Node with `--experimental-wasm-relaxed-simd` sets `relaxed`), else every
 * variant this runtime supports. A listed variant the runtime lacks fails, never skips.
 */
export function simdVariants(): SimdVariant[] {
  const listed = process.env.ESMM_TEST_SIMD;
  if (!listed) return relaxedSimdSupported() ? ['plain', 'relaxed'] : ['plain'];
  const variants = listed.split(',').map((v) => v.trim());
  for (const v of variants) {
    if (v !== 'plain' && v !== 'relaxed') throw new Error(`ESMM_TEST_SIMD: unknown variant '${v}'`);
    if (v === 'relaxed' && !relaxedSimdSupported()) {
      throw new Error(
        'ESMM_TEST_SIMD=relaxed, but this Node lacks relaxed SIMD: run it with --experimental-wasm-relaxed-simd',
      );
    }
  }
  return variants as SimdVariant[];
}

/** Deterministic uniform numbers (mulberry32), so a fast-check seed fixes the data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` values uniform in [lo, hi), rounded to float32. */
export function randomArray(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Tolerance: |a - b| <= abs + rel * |b|; NaNs must match NaNs and infinities must be equal. */
export interface Tol {
  rel: number;
  abs: number;
}

/** float32 default: relative 1e-4, absolute 1e-5. */
export const F32_TOL: Tol = { rel: 1e-4, abs: 1e-5 };

/** Index of the first mismatch, or -1. */
export function firstMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol): number {
  if (actual.length !== expected.length) return 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (!(Number.isNaN(e) && Number.isNaN(a))) return i;
      continue;
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e) return i;
      continue;
    }
    if (Math.abs(a - e) > tol.abs + tol.rel * Math.abs(e)) return i;
  }
  return -1;
}

/** Throws a readable error when the arrays differ beyond `tol`. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, what: string): void {
  const i = firstMismatch(actual, expected, tol);
  if (i >= 0) {
    throw new Error(
      `${what}: mismatch at ${i} of ${expected.length}: got ${actual[i]}, expected ${expected[i]} (lengths ${actual.length}/${expected.length})`,
    );
  }
}

/** The same data uploaded to two backends. */
export function both(x: Backend, y: Backend, data: FloatArray, dtype: DType = 'float32'): [Storage, Storage] {
  return [x.fromArray(data, dtype), y.fromArray(data, dtype)];
}
