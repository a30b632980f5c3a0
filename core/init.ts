/**
 * Weight initialisers (as `torch.nn.init`), all drawing from a seeded {@link Rng}.
 *
 * @module
 */
import type { DType } from '../kernels/index.js';
import { Rng } from './random.js';
import { Tensor } from './tensor.js';

/** Options shared by the initialisers. */
export interface InitOptions {
  rng?: Rng;
  dtype?: DType;
  requiresGrad?: boolean;
}

function fanIn(shape: readonly number[]): number {
  return shape.length >= 2 ? shape[shape.length - 1] : (shape[0] ?? 1);
}
function fanOut(shape: readonly number[]): number {
  return shape.length >= 2 ? shape[shape.length - 2] : (shape[0] ?? 1);
}

function build(shape: readonly number[], options: InitOptions, draw: (rng: Rng) => number): Tensor {
  const rng = options.rng ?? new Rng(0);
  const n = shape.reduce((a, b) => a * b, 1);
  // Drawn straight into an array of the target dtype: large tables should be copied once (to the backend), not twice.
  const values = (options.dtype ?? 'float32') === 'float64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = draw(rng);
  return Tensor.fromArray(values, shape, { dtype: options.dtype, requiresGrad: options.requiresGrad });
}

/** Uniform in [lo, hi). */
export function uniform(shape: readonly number[], lo: number, hi: number, options: InitOptions = {}): Tensor {
  return build(shape, options, (r) => r.uniformIn(lo, hi));
}

/** Normal with mean and standard deviation. */
export function normal(shape: readonly number[], mean = 0, std = 1, options: InitOptions = {}): Tensor {
  return build(shape, options, (r) => mean + std * r.normal());
}

/** Glorot/Xavier uniform for a [out, in] weight: U(±sqrt(6 / (in + out))). */
export function xavierUniform(shape: readonly number[], options: InitOptions = {}): Tensor {
  const bound = Math.sqrt(6 / (fanIn(shape) + fanOut(shape)));
  return uniform(shape, -bound, bound, options);
}

/** He/Kaiming normal for a [out, in] weight: N(0, 2 / in), for ReLU-family activations. */
export function heNormal(shape: readonly number[], options: InitOptions = {}): Tensor {
  return normal(shape, 0, Math.sqrt(2 / fanIn(shape)), options);
}

/** A tensor filled with one value. */
export function full(shape: readonly number[], value: number, options: InitOptions = {}): Tensor {
  return build(shape, options, () => value);
}
