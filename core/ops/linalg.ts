/**
 * Matrix products: 2-D, and batched 3-D (for attention) with one side optionally shared.
 */
import { apply, registerOp, Tensor } from '../tensor.js';
import { sum } from './reduce.js';
import { emptyLike, fmt } from './util.js';

/** Transpose flags of {@link matmul}: use A (or B) transposed without copying it. */
export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

interface MatmulAttrs {
  transA: boolean;
  transB: boolean;
}

/** Rows and columns of op(X) for a 2-D or 3-D operand. */
function opDims(x: Tensor, trans: boolean): [number, number] {
  const r = x.shape[x.rank - 2];
  const c = x.shape[x.rank - 1];
  return trans ? [c, r] : [r, c];
}

const matmulOp = registerOp<MatmulAttrs>({
  name: 'matmul',
  arity: 2,
  forward([a, b], { transA, transB }) {
    const [m, k] = opDims(a, transA);
    const [, n] = opDims(b, transB);
    const batched = a.rank === 3 || b.rank === 3;
    const batch = batched ? (a.rank === 3 ? a.shape[0] : b.shape[0]) : 1;
    const out = emptyLike(a, batched ? [batch, m, n] : [m, n]);
    a.backend.matmul(a.storage, b.storage, out.storage, {
      batch,
      m,
      n,
      k,
      transA,
      transB,
      batchA: a.rank === 3,
      batchB: b.rank === 3,
    });
    return { output: out };
  },
  backward(g, { inputs: [a, b], attrs: { transA, transB }, needsGrad }) {
    // C = op(A)·op(B): d op(A) = G·op(B)ᵀ and d op(B) = op(A)ᵀ·G, re-expressed in each stored layout.
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (needsGrad[0]) {
      da = transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
      if (a.rank === 2 && da.rank === 3) da = sum(da, 0);
    }
    if (needsGrad[1]) {
      db = transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
      if (b.rank === 2 && db.rank === 3) db = sum(db, 0);
    }
    return [da, db];
  },
});

/**
 * Matrix product op(A)·op(B). Operands are 2-D, or 3-D batches of matrices; a 2-D operand
 * beside a 3-D one is shared by every batch entry.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  if (a.rank < 2 || a.rank > 3 || b.rank < 2 || b.rank > 3) {
    throw new Error(`matmul: operands must be 2-D or 3-D, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  }
  if (a.rank === 3 && b.rank === 3 && a.shape[0] !== b.shape[0]) {
    throw new Error(`matmul: batch sizes differ, ${fmt(a.shape)} and ${fmt(b.shape)}`);
  }
  const [, ka] = opDims(a, transA);
  const [kb] = opDims(b, transB);
  if (ka !== kb) {
    throw new Error(
      `matmul: inner dimensions differ: ${fmt(a.shape)}${transA ? 'ᵀ' : ''} · ${fmt(b.shape)}${transB ? 'ᵀ' : ''} (${ka} vs ${kb})`,
    );
  }
  return apply(matmulOp, [a, b], { transA, transB });
}
