/**
 * Row-sparse gradients: what an embedding lookup sends back to its table, and their algebra
 * (sum, coalescing duplicate rows). Like PyTorch's sparse gradients, they never materialise
 * the table's untouched rows.
 */
import { groupIndices } from './radix-sort.js';
import { Tensor } from './tensor.js';

/**
 * A gradient that touches only some rows of a 2-D parameter, as produced by
 * embedding lookups. `rows` are distinct and `values[i]` is the gradient of row `rows[i]`.
 * Like PyTorch's sparse gradients, it never materialises the untouched rows.
 */
export class RowSparseGrad {
  constructor(
    /** Row indices, host-side (they come from input ids); distinct once coalesced. */
    readonly rows: Int32Array,
    /** Gradient rows, shape [rows.length, dim]. */
    readonly values: Tensor,
    /** Shape of the dense parameter, [numRows, dim]. */
    readonly denseShape: readonly number[],
    /** Whether `rows` are known distinct and ascending, so {@link coalesce} has nothing to do. */
    readonly coalesced = false,
  ) {}

  /** The equivalent dense gradient (allocates the whole parameter's size). */
  toDense(): Tensor {
    const dense = Tensor.zeros(this.denseShape, { dtype: this.values.dtype, backend: this.values.backend });
    this.values.backend.scatterAddRows(this.values.storage, this.denseShape[1], this.rows, dense.storage);
    return dense;
  }
}

/** A gradient flowing through the graph: dense, or row-sparse for embedding tables. */
export type Gradient = Tensor | RowSparseGrad;

/** Sum of two gradients of one tensor. Sparse + sparse stays sparse (rows coalesced later). */
export function addGradients(a: Gradient, b: Gradient): Gradient {
  if (a instanceof RowSparseGrad && b instanceof RowSparseGrad) return concatSparse(a, b);
  const dense = a instanceof Tensor ? a : a.toDense();
  const other = b instanceof Tensor ? b : b.toDense();
  const out = Tensor.zeros(dense.shape, { dtype: dense.dtype, backend: dense.backend });
  dense.backend.axpby(1, dense.storage, 1, other.storage, out.storage);
  return out;
}

function concatSparse(a: RowSparseGrad, b: RowSparseGrad): RowSparseGrad {
  const dim = a.denseShape[1];
  const rows = new Int32Array(a.rows.length + b.rows.length);
  rows.set(a.rows);
  rows.set(b.rows, a.rows.length);
  const values = Tensor.zeros([rows.length, dim], { dtype: a.values.dtype, backend: a.values.backend });
  const be = values.backend;
  be.copyBlock(a.values.storage, a.values.shape, [0, 0], values.storage, values.shape, [0, 0], a.values.shape);
  be.copyBlock(
    b.values.storage,
    b.values.shape,
    [0, 0],
    values.storage,
    values.shape,
    [a.rows.length, 0],
    b.values.shape,
  );
  return coalesce(new RowSparseGrad(rows, values, a.denseShape));
}

/** Merge duplicate rows of a sparse gradient by summing them (as `torch.Tensor.coalesce`). */
export function coalesce(g: RowSparseGrad): RowSparseGrad {
  if (g.coalesced) return g;
  const { unique, segments, order } = groupIndices(g.rows);
  if (unique.length === g.rows.length && order.every((o, i) => o === i))
    return new RowSparseGrad(g.rows, g.values, g.denseShape, true);
  const dim = g.denseShape[1];
  const values = Tensor.zeros([unique.length, dim], { dtype: g.values.dtype, backend: g.values.backend });
  values.backend.segmentSumRows(g.values.storage, dim, segments, order, null, values.storage);
  return new RowSparseGrad(unique, values, g.denseShape, true);
}
