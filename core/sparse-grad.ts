/**
 * Row-sparse gradients: what an embedding lookup sends back to its table, and their algebra
 * (sum, coalescing duplicate rows). Like PyTorch's sparse gradients, they never materialise
 * the table's untouched rows.
 *
 * Their row count follows the data, so each operation on them is {@link dynamic} work: in a
 * captured step it runs again on every replay, reading and writing the gradient's {@link SparseLive}.
 */
import type { Storage } from '../kernels/index.js';
import { dynamic, dynamicBuffer } from './capture.js';
import { groupIndices } from './radix-sort.js';
import { Tensor } from './tensor.js';

/** The current rows and values buffer of a sparse gradient; a captured step's replays refresh it. */
export interface SparseLive {
  rows: Int32Array;
  values: Storage;
}

/**
 * A gradient that touches only some rows of a 2-D parameter, as produced by
 * embedding lookups. `rows` are distinct and `values[i]` is the gradient of row `rows[i]`.
 * Like PyTorch's sparse gradients, it never materialises the untouched rows.
 */
export class RowSparseGrad {
  /** Rows and values as dynamic work sees them (in a replay, the current batch's). */
  readonly live: SparseLive;

  constructor(
    /** Row indices, host-side (they come from input ids); distinct once coalesced. */
    readonly rows: Int32Array,
    /** Gradient rows, shape [rows.length, dim]. */
    readonly values: Tensor,
    /** Shape of the dense parameter, [numRows, dim]. */
    readonly denseShape: readonly number[],
    /** Whether `rows` are known distinct and ascending, so {@link coalesce} has nothing to do. */
    readonly coalesced = false,
    live?: SparseLive,
  ) {
    this.live = live ?? { rows, values: values.storage };
  }

  /** The equivalent dense gradient (allocates the whole parameter's size). */
  toDense(): Tensor {
    const dense = Tensor.zeros(this.denseShape, { dtype: this.values.dtype, backend: this.values.backend });
    const { live, values } = this;
    const dim = this.denseShape[1];
    dynamic('scatterAddRows', () => values.backend.scatterAddRows(live.values, dim, live.rows, dense.storage));
    return dense;
  }
}

/**
 * Run `fill` (dynamic work that sets `live`) and wrap its first result as a gradient; `like`
 * gives the backend and dtype, `keep` is reused as the values tensor when `fill` left its buffer as is.
 */
export function sparseFrom(
  like: Tensor,
  denseShape: readonly number[],
  coalesced: boolean,
  label: string,
  fill: (live: SparseLive) => void,
  keep?: RowSparseGrad,
): RowSparseGrad {
  const live: SparseLive = { rows: new Int32Array(0), values: like.storage };
  dynamic(label, () => fill(live));
  const values =
    keep && live.values === keep.live.values
      ? keep.values
      : new Tensor(live.values, [live.rows.length, denseShape[1]], like.backend);
  return new RowSparseGrad(live.rows, values, denseShape, coalesced, live);
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
  const be = a.values.backend;
  const dtype = a.values.dtype;
  const buffer = dynamicBuffer();
  const [la, lb] = [a.live, b.live];
  const joined = sparseFrom(a.values, a.denseShape, false, 'concatSparse', (live) => {
    const na = la.rows.length;
    const nb = lb.rows.length;
    const rows = new Int32Array(na + nb);
    rows.set(la.rows);
    rows.set(lb.rows, na);
    const values = buffer.ensure(be, (na + nb) * dim, dtype);
    be.copyBlock(la.values, [na, dim], [0, 0], values, [na + nb, dim], [0, 0], [na, dim]);
    be.copyBlock(lb.values, [nb, dim], [0, 0], values, [na + nb, dim], [na, 0], [nb, dim]);
    live.rows = rows;
    live.values = values;
  });
  return coalesce(joined);
}

/** Merge duplicate rows of a sparse gradient by summing them (as `torch.Tensor.coalesce`). */
export function coalesce(g: RowSparseGrad): RowSparseGrad {
  if (g.coalesced) return g;
  const dim = g.denseShape[1];
  const be = g.values.backend;
  const dtype = g.values.dtype;
  const buffer = dynamicBuffer();
  const src = g.live;
  return sparseFrom(
    g.values,
    g.denseShape,
    true,
    'coalesce',
    (live) => {
      const { unique, segments, order } = groupIndices(src.rows);
      if (unique.length === src.rows.length && order.every((o, i) => o === i)) {
        live.rows = src.rows;
        live.values = src.values;
        return;
      }
      const values = buffer.ensure(be, unique.length * dim, dtype);
      be.segmentSumRows(src.values, dim, segments, order, null, values);
      live.rows = unique;
      live.values = values;
    },
    g,
  );
}
