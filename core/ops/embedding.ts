/**
 * Row lookups whose gradients are sparse: only the rows a batch touched, de-duplicated.
 *
 * The backward groups equal ids on the host (ids are input data, already there) and
 * then runs one gather-style kernel, `segmentSumRows`, that sums each distinct row's
 * contributions. No scatter or atomics are needed, so it maps onto every backend.
 */
import { bagScale, type BagMode } from '../../kernels/index.js';
import { hostRef } from '../capture.js';
import { apply, groupIndices, registerOp, RowSparseGrad, Tensor } from '../tensor.js';
import { emptyLike, fmt } from './util.js';

/** Inputs of a pooled lookup, all host-side data. */
export interface BagInput {
  /** Row ids, concatenated over bags. */
  ids: Int32Array;
  /** batch + 1 monotone offsets into `ids`; bag b is ids[offsets[b] .. offsets[b+1]). */
  offsets: Int32Array;
  /** Optional per-id weights (e.g. behaviour counts), same length as ids. */
  weights?: Float32Array | null;
  /** Pooling; `sum` by default. */
  mode?: BagMode;
}

interface BagAttrs {
  ids: Int32Array;
  offsets: Int32Array;
  weights: Float32Array | null;
  mode: BagMode;
}

const embeddingBagOp = registerOp<BagAttrs>({
  name: 'embeddingBag',
  arity: 1,
  forward([table], { ids, offsets, weights, mode }) {
    const dim = table.shape[1];
    const out = emptyLike(table, [offsets.length - 1, dim]);
    table.backend.embeddingBag(table.storage, dim, ids, offsets, weights, mode, out.storage);
    return { output: out };
  },
  backward(g, { inputs: [table], attrs: { ids, offsets, weights, mode } }) {
    const [idsOf, offsetsOf, weightsOf] = [hostRef(ids), hostRef(offsets), hostRef(weights)];
    return [
      rowGradient(table, g, 'embeddingBag', () => {
        // Contribution j (id ids[j] in bag b) adds scale_j · g[b] to row ids[j].
        const [ids, offsets, weights] = [idsOf(), offsetsOf(), weightsOf()];
        const bagOf = new Int32Array(ids.length);
        const scales = new Float32Array(ids.length);
        for (let b = 0; b + 1 < offsets.length; b++) {
          const s = bagScale(weights, offsets[b], offsets[b + 1], mode);
          for (let j = offsets[b]; j < offsets[b + 1]; j++) {
            bagOf[j] = b;
            scales[j] = (weights ? weights[j] : 1) * s;
          }
        }
        return { ids, srcRow: bagOf, scales };
      }),
    ];
  },
});

/**
 * The shared backward of row lookups: for each distinct id u, sum over the contributions c
 * with ids[c] = u of scales[c] · g[srcRow[c]]. The contributions are read when the work runs
 * (in a captured step, from each replay's batch), so grouping the ids is redone per batch.
 */
function rowGradient(
  table: Tensor,
  g: Tensor,
  label: string,
  contributions: () => { ids: Int32Array; srcRow: Int32Array; scales: Float32Array | null },
): RowSparseGrad {
  // The rows stay a segment sum over g: lazy Adam can sum and update each row in one kernel.
  return RowSparseGrad.segmented(g, table.shape, label, (live) => {
    const { ids, srcRow, scales } = contributions();
    const { unique, segments, order } = groupIndices(ids);
    const srcRows = new Int32Array(order.length);
    const orderedScales = scales ? new Float32Array(order.length) : null;
    for (let i = 0; i < order.length; i++) {
      srcRows[i] = srcRow[order[i]];
      if (orderedScales && scales) orderedScales[i] = scales[order[i]];
    }
    live.rows = unique;
    live.terms = { segments, srcRows, scales: orderedScales };
  });
}

/** A short name for what a caller passed, for errors. */
function kindOf(a: unknown): string {
  if (a === null || a === undefined) return String(a);
  if (Array.isArray(a)) return 'an Array';
  return (a as object).constructor?.name ?? typeof a;
}

/**
 * Ids and offsets must be Int32Array: a kernel reads their raw bits, so a plain Array or a
 * Float32Array would trap on wasm or silently read other rows (float bits as integers).
 */
function checkInt32(op: string, what: string, a: unknown): void {
  if (!(a instanceof Int32Array))
    throw new Error(
      `${op}: ${what} must be an Int32Array, got ${kindOf(a)} (convert integer ids with Int32Array.from)`,
    );
}

function checkIds(op: string, ids: Int32Array, rows: number): void {
  checkInt32(op, 'ids', ids);
  for (let j = 0; j < ids.length; j++) {
    if (!(ids[j] >= 0 && ids[j] < rows)) {
      throw new Error(`${op}: id ${ids[j]} at position ${j} is outside the table's ${rows} rows`);
    }
  }
}

/**
 * Pooled embedding lookup (PyTorch's `F.embedding_bag`): one pooled row per bag,
 * with a sparse gradient for the table.
 */
export function embeddingBag(table: Tensor, input: BagInput): Tensor {
  const { ids, offsets } = input;
  const weights = input.weights ?? null;
  checkInt32('embeddingBag', 'offsets', offsets);
  checkInt32('embeddingBag', 'ids', ids);
  if (weights && !(weights instanceof Float32Array))
    throw new Error(`embeddingBag: weights must be a Float32Array, got ${kindOf(weights)}`);
  if (table.rank !== 2) throw new Error(`embeddingBag: table must be 2-D, got ${fmt(table.shape)}`);
  if (offsets.length < 1 || offsets[0] !== 0 || offsets[offsets.length - 1] !== ids.length) {
    throw new Error(
      `embeddingBag: offsets must start at 0 and end at ids.length (${ids.length}), got ${offsets[0]} .. ${offsets[offsets.length - 1]}`,
    );
  }
  for (let b = 0; b + 1 < offsets.length; b++) {
    if (offsets[b + 1] < offsets[b])
      throw new Error(`embeddingBag: offsets decrease at bag ${b} (${offsets[b]} > ${offsets[b + 1]})`);
  }
  if (weights && weights.length !== ids.length) {
    throw new Error(`embeddingBag: ${weights.length} weights for ${ids.length} ids`);
  }
  checkIds('embeddingBag', ids, table.shape[0]);
  return apply(embeddingBagOp, [table], { ids, offsets, weights, mode: input.mode ?? 'sum' });
}

const gatherRowsOp = registerOp<{ ids: Int32Array }>({
  name: 'gatherRows',
  arity: 1,
  forward([x], { ids }) {
    const dim = x.shape[1];
    const out = emptyLike(x, [ids.length, dim]);
    x.backend.gatherRows(x.storage, dim, ids, out.storage);
    return { output: out };
  },
  backward(g, { inputs: [x], attrs: { ids } }) {
    const position = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) position[i] = i;
    const idsOf = hostRef(ids);
    return [rowGradient(x, g, 'gatherRows', () => ({ ids: idsOf(), srcRow: position, scales: null }))];
  },
});

/** Rows of a 2-D tensor by index (`torch.index_select(x, 0, ids)`), with a sparse gradient. */
export function gatherRows(x: Tensor, ids: Int32Array): Tensor {
  if (x.rank !== 2) throw new Error(`gatherRows: input must be 2-D, got ${fmt(x.shape)}`);
  checkIds('gatherRows', ids, x.shape[0]);
  return apply(gatherRowsOp, [x], { ids });
}
