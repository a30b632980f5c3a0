/** Small helpers shared by op definitions. */
import { Tensor } from '../tensor.js';

/** A zero tensor of `shape` on the same backend and dtype as `like`. */
export function emptyLike(like: Tensor, shape: readonly number[] = like.shape): Tensor {
  return Tensor.zeros(shape, { dtype: like.dtype, backend: like.backend });
}

/** Normalise a possibly negative axis against a rank, with a clear error. */
export function normalizeAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Format a shape for error messages. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
