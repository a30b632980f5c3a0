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

// rowGradient reads a lookup's contributions and keeps only what it derives from them (fresh
// arrays), so the contribution arrays are reused from call to call: fresh ones every training step
// cost page faults, since the allocator hands freed backing stores back and re-faults them.
const contributionI32: Int32Array[] = [new Int32Array(0), new Int32Array(0)];
let contributionF32 = new Float32Array(0);
/** Reused Int32Array number `which` (0 or 1) of n elements, contents undefined. */
function reusedI32(which: 0 | 1, n: number): Int32Array {
  const a = contributionI32[which];
  if (a.length < n) contributionI32[which] = new Int32Array(Math.max(n, 2 * a.length));
  return contributionI32[which].subarray(0, n);
}
/** The reused Float32Array of n elements, contents undefined. */
function reusedF32(n: number): Float32Array {
  if (contributionF32.length < n) contributionF32 = new Float32Array(Math.max(n, 2 * contributionF32.length));
  return contributionF32.subarray(0, n);
}

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
        const bagOf = reusedI32(0, ids.length);
        const scales = reusedF32(ids.length);
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
    // Read here only (the arrays may be reused by the next lookup's contributions).
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
  if (table.rank !== 2) throw new Error(`embeddingBag: table must be 2-D, got ${fmt(table.shape)}`);
  checkBag('embeddingBag', table, input);
  const { ids, offsets } = input;
  return apply(embeddingBagOp, [table], { ids, offsets, weights: input.weights ?? null, mode: input.mode ?? 'sum' });
}

/** The checks of a bag's ids, offsets and weights against its (2-D) table. */
function checkBag(op: string, table: Tensor, input: BagInput): void {
  const { ids, offsets } = input;
  const weights = input.weights ?? null;
  checkInt32(op, 'offsets', offsets);
  checkInt32(op, 'ids', ids);
  if (weights && !(weights instanceof Float32Array))
    throw new Error(`${op}: weights must be a Float32Array, got ${kindOf(weights)}`);
  if (offsets.length < 1 || offsets[0] !== 0 || offsets[offsets.length - 1] !== ids.length) {
    throw new Error(
      `${op}: offsets must start at 0 and end at ids.length (${ids.length}), got ${offsets[0]} .. ${offsets[offsets.length - 1]}`,
    );
  }
  for (let b = 0; b + 1 < offsets.length; b++) {
    if (offsets[b + 1] < offsets[b])
      throw new Error(`${op}: offsets decrease at bag ${b} (${offsets[b]} > ${offsets[b + 1]})`);
  }
  if (weights && weights.length !== ids.length) {
    throw new Error(`${op}: ${weights.length} weights for ${ids.length} ids`);
  }
  checkIds(op, ids, table.shape[0]);
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

/**
 * One lookup of {@link lookupConcat}: a row per id (`offsets` null or absent, as {@link gatherRows}),
 * or one pooled row per bag (as {@link embeddingBag}).
 */
export interface ConcatLookup {
  /** Index of the lookup's table among the tables passed. */
  table: number;
  /** Row ids: one per output row, or concatenated over bags. */
  ids: Int32Array;
  /** batch + 1 offsets into `ids` (see {@link BagInput.offsets}); null for one id per row. */
  offsets?: Int32Array | null;
  /** Per-id weights of a bag (see {@link BagInput.weights}). */
  weights?: Float32Array | null;
  /** Pooling of a bag; `sum` by default. */
  mode?: BagMode;
}

interface LookupConcatAttrs {
  lookups: {
    table: number;
    ids: Int32Array;
    offsets: Int32Array | null;
    weights: Float32Array | null;
    mode: BagMode;
  }[];
  rows: number;
  dim: number;
}

const lookupConcatOp = registerOp<LookupConcatAttrs>({
  name: 'lookupConcat',
  arity: 'variadic',
  forward(tables, { lookups, rows, dim }) {
    const width = lookups.length * dim;
    const out = emptyLike(tables[0], [rows, width]);
    const part = emptyLike(tables[0], [rows, dim]);
    const be = tables[0].backend;
    lookups.forEach((l, j) => {
      const table = tables[l.table].storage;
      if (l.offsets) be.embeddingBag(table, dim, l.ids, l.offsets, l.weights, l.mode, part.storage);
      else be.gatherRows(table, dim, l.ids, part.storage);
      be.copyBlock(part.storage, [rows, dim], [0, 0], out.storage, [rows, width], [0, j * dim], [rows, dim]);
    });
    part.dispose();
    return { output: out };
  },
  backward(g, { inputs: tables, attrs: { lookups } }) {
    // g [rows, k·dim] read as [rows·k, dim]: lookup j's gradient for output row b is row b·k + j,
    // so each table's segment sum reads its columns of g in place (no split, no per-field sum).
    const k = lookups.length;
    const refs = lookups.map((l, j) => ({
      ids: hostRef(l.ids),
      offsets: hostRef(l.offsets),
      weights: hostRef(l.weights),
      mode: l.mode,
      column: j,
    }));
    return tables.map((table, t) => {
      const mine = refs.filter((_, j) => lookups[j].table === t);
      if (mine.length === 0 || !table.requiresGrad) return null;
      return rowGradient(table, g, 'lookupConcat', () => {
        const parts = mine.map((r) => ({ ids: r.ids(), offsets: r.offsets(), weights: r.weights(), r }));
        const total = parts.reduce((n, p) => n + p.ids.length, 0);
        const scaled = parts.some((p) => p.offsets && (p.weights || p.r.mode !== 'sum'));
        const ids = parts.length === 1 ? parts[0].ids : reusedI32(1, total);
        const srcRow = reusedI32(0, total);
        const scales = scaled ? reusedF32(total).fill(1) : null;
        let at = 0;
        for (const { ids: own, offsets, weights, r } of parts) {
          if (ids !== own) ids.set(own, at);
          if (!offsets) for (let b = 0; b < own.length; b++) srcRow[at + b] = b * k + r.column;
          else {
            for (let b = 0; b + 1 < offsets.length; b++) {
              const s = bagScale(weights, offsets[b], offsets[b + 1], r.mode);
              for (let j = offsets[b]; j < offsets[b + 1]; j++) {
                srcRow[at + j] = b * k + r.column;
                if (scales) scales[at + j] = (weights ? weights[j] : 1) * s;
              }
            }
          }
          at += own.length;
        }
        return { ids, srcRow, scales };
      });
    });
  },
});

/**
 * Lookups concatenated along columns: [rows, lookups.length · dim], lookup j's rows in columns
 * [j·dim, (j+1)·dim), the same values as `concat([gatherRows(...) or embeddingBag(...), ...], 1)`.
 * Every table is 2-D with one dim; a table read by several lookups is listed once. The backward
 * sums each table's rows straight from its columns of the output's gradient, one row-sparse
 * gradient per table, where the concat's backward would split the gradient into a block per lookup.
 */
export function lookupConcat(tables: readonly Tensor[], lookups: readonly ConcatLookup[]): Tensor {
  if (tables.length === 0 || lookups.length === 0) throw new Error('lookupConcat: no tables or no lookups');
  for (const t of tables) if (t.rank !== 2) throw new Error(`lookupConcat: tables must be 2-D, got ${fmt(t.shape)}`);
  const dim = tables[0].shape[1];
  if (tables.some((t) => t.shape[1] !== dim || t.dtype !== tables[0].dtype))
    throw new Error(`lookupConcat: tables differ in dim or dtype (${tables.map((t) => fmt(t.shape)).join(', ')})`);
  let rows = -1;
  const normalized = lookups.map((l, j) => {
    const table = tables[l.table];
    if (!Number.isInteger(l.table) || !table)
      throw new Error(`lookupConcat: lookup ${j} names table ${l.table} of ${tables.length}`);
    const offsets = l.offsets ?? null;
    if (offsets) checkBag('lookupConcat', table, { ids: l.ids, offsets, weights: l.weights });
    else checkIds('lookupConcat', l.ids, table.shape[0]);
    const n = offsets ? offsets.length - 1 : l.ids.length;
    if (rows >= 0 && n !== rows) throw new Error(`lookupConcat: lookup ${j} has ${n} rows, lookup 0 has ${rows}`);
    rows = n;
    return {
      table: l.table,
      ids: l.ids,
      offsets,
      weights: offsets ? (l.weights ?? null) : null,
      mode: l.mode ?? 'sum',
    };
  });
  return apply(lookupConcatOp, tables, { lookups: normalized, rows, dim });
}
