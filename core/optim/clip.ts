/** Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`), computed on the device. */
import { dynamic, dynamicBuffer } from '../capture.js';
import { add, affine, div, minimum, sqrt, square, sum } from '../ops/index.js';
import { noGrad, RowSparseGrad, Tensor, type Gradient } from '../tensor.js';
import { currentGradient } from './optimizer.js';

/**
 * Σ g² of a gradient as a scalar tensor, with the kernels of `sum(square(g))` (so it is the same
 * number); for a sparse gradient, over its rows, as dynamic work (its row count follows the data).
 */
export function squaredSum(g: Gradient): Tensor {
  if (g instanceof Tensor) return sum(square(g));
  const be = g.values.backend;
  const dim = g.denseShape[1];
  const out = Tensor.zeros([], { dtype: g.values.dtype, backend: be });
  const squares = dynamicBuffer();
  const live = g.live;
  dynamic('squaredSum', () => {
    const rows = live.rows.length;
    const sq = squares.ensure(be, rows * dim, g.values.dtype);
    be.unary('square', live.values, sq);
    be.reduceSum(sq, [rows, dim], [0, 1], out.storage);
  });
  return out;
}

/**
 * Scale all gradients so that their joint L2 norm is at most `maxNorm`. Returns the
 * norm before clipping as a scalar tensor; nothing is read back to the host.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): Tensor | null {
  return noGrad(() => {
    const grads: Gradient[] = [];
    for (const p of params) {
      const g = currentGradient(p);
      if (!g) continue;
      // Coalesced sparse rows have the same norm as their dense form; keep the coalesced one.
      if (g instanceof RowSparseGrad) p.sparseGrad = g;
      grads.push(g);
    }
    if (grads.length === 0) return null;
    const total = sqrt(grads.map((g) => squaredSum(g)).reduce((a, b) => add(a, b)));
    const scale = minimum(div(maxNorm, affine(total, 1, 1e-6)), 1);
    for (const g of grads) {
      if (g instanceof Tensor) {
        g.backend.binary('mul', g.storage, g.shape, scale.storage, [], g.storage, g.shape);
        continue;
      }
      const { live, values } = g;
      const dim = g.denseShape[1];
      dynamic('clipRows', () => {
        const shape = [live.rows.length, dim];
        values.backend.binary('mul', live.values, shape, scale.storage, [], live.values, shape);
      });
    }
    return total;
  });
}
