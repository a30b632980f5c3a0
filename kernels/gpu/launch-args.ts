/**
 * Host-side argument shaping for the kernel plans (`plans.ts`) and the kernel cache
 * (`launcher.ts`).
 */
import type { DType } from '../backend.js';
import { MAX_RANK } from './sources.js';

/** Smallest power of two ≥ n (at least 16): loop bounds are compiled in, so lengths share classes. */
export function loopClass(n: number): number {
  let c = 16;
  while (c < n) c *= 2;
  return c;
}

/** `values` zero-padded to `length` (MAX_RANK by default), as the shape-generic kernels expect. */
export function padded(values: readonly number[], length = MAX_RANK): Float32Array {
  const out = new Float32Array(length);
  out.set(values);
  return out;
}

/** Host index arrays as kernel arguments; gpu.js rejects empty arrays, so pad to one. */
export function hostArray(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(Math.max(1, values.length));
  out.set(values as ArrayLike<number>);
  return out;
}

/** Row -> position in `rows` (or -1): turns a scatter to distinct rows into a gather. */
export function inverseMap(rows: Int32Array, rowCount: number): Float32Array {
  const inv = new Float32Array(Math.max(1, rowCount)).fill(-1);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (r < 0 || r >= rowCount) throw new Error(`gpu backend: row ${r} outside [0, ${rowCount})`);
    inv[r] = i;
  }
  return inv;
}

/**
 * Largest buffer one gpu kernel addresses exactly: kernels compute element indices in float32
 * (the only number type every gpu.js mode shares), and the index splitting is exact below 2^22.
 */
export const MAX_KERNEL_ELEMENTS = 2 ** 22;

/**
 * Elements of each block of a tensor too large for one kernel. Well below
 * {@link MAX_KERNEL_ELEMENTS}, so a row's offset within its block plus a row width stays exact.
 */
export const CHUNK_ELEMENTS = 2 ** 21;

/**
 * Largest tensor the synchronous gpu backend stores (as blocks of 2^21 elements):
 * 1 GiB of float32, which `read` still returns as one host array.
 */
export const MAX_GPU_ELEMENTS = 2 ** 28;

/** Refuse storage the gpu kernels cannot serve: another dtype, or `limit` elements or more. */
export function checkStorage(size: number, dtype: DType, limit: number = MAX_GPU_ELEMENTS): void {
  if (dtype !== 'float32') throw new Error(`gpu backend: dtype ${dtype} is not supported (float32 only)`);
  if (size >= limit) {
    const why =
      limit === MAX_KERNEL_ELEMENTS
        ? 'set by float32 index arithmetic'
        : 'tensors are stored as blocks of 2^21 elements';
    throw new Error(
      `gpu backend: a tensor of ${size} elements is too large (the limit is ${limit - 1}, ${why}); ` +
        'use the wasm or reference backend for larger embedding tables',
    );
  }
}
