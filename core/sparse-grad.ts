/**
 * Row-sparse gradients: what an embedding lookup sends back to its table, and their algebra
 * (sum, coalescing duplicate rows). Like PyTorch's sparse gradients, they never materialise
 * the table's untouched rows.
 *
 * Their row count follows the data, so each operation on them is {@link dynamic} work: in a
 * captured step it runs again on every replay, reading and writing the gradient's {@link SparseLive}.
 */
import type { Storage } from '../kernels/index.js';
import { dynamic, dynamicBuffer, type DynamicBuffer } from './capture.js';
import { groupIndices } from './radix-sort.js';
import { Tensor } from './tensor.js';

/**
 * The terms of gradient rows not yet summed: row u is the sum over c in [segments[u], segments[u+1])
 * of scales[c] times row srcRows[c] of a dense source (scales null: all ones), as
 * `Backend.segmentSumRows` takes them.
 */
export interface SegmentTerms {
  segments: Int32Array;
  srcRows: Int32Array;
  scales: Float32Array | null;
}

/** The current rows and values buffer of a sparse gradient; a captured step's replays refresh it. */
export interface SparseLive {
  rows: Int32Array;
  values: Storage;
  /** The terms of the rows' sum, for a gradient made by {@link RowSparseGrad.segmented}. */
  terms?: SegmentTerms;
}

/** A gradient whose rows are still a segment sum over a dense tensor: that tensor and where the sum will go. */
interface PendingSum {
  src: Tensor;
  buffer: DynamicBuffer;
}

/** How many kept gradients share each segment-sum source they keep alive (see {@link RowSparseGrad.keep}). */
const sourceOwners = new WeakMap<Tensor, number>();

/**
 * A gradient that touches only some rows of a 2-D parameter, as produced by
 * embedding lookups. `rows` are distinct and `values[i]` is the gradient of row `rows[i]`.
 * Like PyTorch's sparse gradients, it never materialises the untouched rows.
 *
 * A lookup's gradient may leave its rows as a pending segment sum ({@link RowSparseGrad.segmented}):
 * lazy Adam then sums and updates each row in one kernel, and anything else that reads
 * {@link RowSparseGrad.values} computes them first, so every reader sees the same numbers.
 */
export class RowSparseGrad {
  /** Rows and values as dynamic work sees them (in a replay, the current batch's). */
  readonly live: SparseLive;
  private summed: Tensor | null;
  private pending: PendingSum | null = null;
  /** The dense tensor a segment sum reads (kept after the sum ran) and whether this gradient keeps it alive. */
  private source: Tensor | null = null;
  private ownsSource = false;

  constructor(
    /** Row indices, host-side (they come from input ids); distinct once coalesced. */
    readonly rows: Int32Array,
    /** Gradient rows, shape [rows.length, dim]. */
    values: Tensor,
    /** Shape of the dense parameter, [numRows, dim]. */
    readonly denseShape: readonly number[],
    /** Whether `rows` are known distinct and ascending, so {@link coalesce} has nothing to do. */
    readonly coalesced = false,
    live?: SparseLive,
  ) {
    this.summed = values;
    this.live = live ?? { rows, values: values.storage };
  }

  /**
   * A coalesced gradient whose rows are a segment sum over `src` (a dense [*, dim] tensor):
   * `fill`, dynamic work, sets the live rows and {@link SegmentTerms}; the sum itself runs only
   * when something reads {@link RowSparseGrad.values}, or not at all when lazy Adam fuses it.
   */
  static segmented(
    src: Tensor,
    denseShape: readonly number[],
    label: string,
    fill: (live: SparseLive & { terms: SegmentTerms }) => void,
  ): RowSparseGrad {
    const live = {
      rows: new Int32Array(0),
      values: src.storage,
      terms: { segments: new Int32Array(1), srcRows: new Int32Array(0), scales: null } as SegmentTerms,
    };
    dynamic(label, () => fill(live));
    const g = new RowSparseGrad(live.rows, src, denseShape, true, live);
    g.summed = null;
    g.source = src;
    g.pending = { src, buffer: dynamicBuffer() };
    return g;
  }

  /** Gradient rows, shape [rows.length, dim] (computing a pending segment sum first). */
  get values(): Tensor {
    return this.summed ?? this.sum();
  }

  /** Compute a pending segment sum now (dynamic work), so that `live.values` holds the rows. */
  materialize(): void {
    if (!this.summed) this.sum();
  }

  /** The dense tensor a pending segment sum reads, or null once the rows are values (or never were a sum). */
  get pendingSource(): Tensor | null {
    return this.pending?.src ?? null;
  }

  /** Every tensor this gradient holds: its values once computed, and the source of its segment sum. */
  get held(): Tensor[] {
    return [this.summed, this.source].filter((t): t is Tensor => t !== null);
  }

  /** Keep what this gradient holds alive past the scope that made it (a leaf's accumulated gradient). */
  keep(): void {
    if (this.summed) this.summed.keepAlive = true;
    const src = this.source;
    // Several tables' gradients may sum rows of one source (lookupConcat's): the gradients that kept
    // it share it, and the last of them to be disposed frees it.
    if (src && !this.ownsSource && (!src.keepAlive || sourceOwners.has(src))) {
      src.keepAlive = true;
      this.ownsSource = true;
      sourceOwners.set(src, (sourceOwners.get(src) ?? 0) + 1);
    }
  }

  /** Free what this gradient holds (the source of its sum only where {@link RowSparseGrad.keep} kept it, once no other keeper holds it). */
  dispose(): void {
    this.summed?.dispose();
    const src = this.source;
    if (!this.ownsSource || !src) return;
    this.ownsSource = false;
    const owners = (sourceOwners.get(src) ?? 1) - 1;
    if (owners > 0) sourceOwners.set(src, owners);
    else {
      sourceOwners.delete(src);
      src.dispose();
    }
  }

  private sum(): Tensor {
    const { src, buffer } = this.pending!;
    const live = this.live;
    const be = src.backend;
    const dim = this.denseShape[1];
    dynamic('segmentSumRows', () => {
      const t = live.terms!;
      const values = buffer.ensure(be, live.rows.length * dim, src.dtype);
      be.segmentSumRows(src.storage, dim, t.segments, t.srcRows, t.scales, values);
      live.values = values;
    });
    const values = new Tensor(live.values, [live.rows.length, dim], be);
    values.keepAlive = this.ownsSource;
    this.summed = values;
    this.pending = null;
    return values;
  }

  /** The equivalent dense gradient (allocates the whole parameter's size). */
  toDense(): Tensor {
    const values = this.values;
    const dense = Tensor.zeros(this.denseShape, { dtype: values.dtype, backend: values.backend });
    const { live } = this;
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
  a.materialize();
  b.materialize();
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
