/** Tensor constructors in the style of `torch.tensor` / `torch.zeros`. */
import { Tensor, type TensorOptions } from './tensor.js';

/** Nested arrays of numbers, as `torch.tensor` takes them. */
export type Nested = number | Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
  }
  return shape;
}

/** A tensor from nested arrays or a flat typed array with an explicit shape. */
export function tensor(
  data: Nested | ArrayLike<number>,
  shape?: readonly number[],
  options: TensorOptions = {},
): Tensor {
  if (typeof data === 'number') return Tensor.fromArray([data], shape ?? [], options);
  if (Array.isArray(data)) {
    const inferred = inferShape(data);
    const flat = (data as unknown[]).flat(Infinity) as number[];
    return Tensor.fromArray(flat, shape ?? inferred, options);
  }
  const values = data as ArrayLike<number>;
  return Tensor.fromArray(values, shape ?? [values.length], options);
}

/** A scalar tensor. */
export function scalar(value: number, options: TensorOptions = {}): Tensor {
  return Tensor.fromArray([value], [], options);
}

/** Zeros of a shape. */
export function zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return Tensor.zeros(shape, options);
}

/** Ones of a shape. */
export function ones(shape: readonly number[], options: TensorOptions = {}): Tensor {
  const t = Tensor.zeros(shape, options);
  t.backend.fill(t.storage, 1);
  return t;
}
