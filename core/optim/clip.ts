/** Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`), computed on the device. */
import { add, affine, div, minimum, sqrt, square, sum } from '../ops/index.js';
import { noGrad, RowSparseGrad, Tensor } from '../tensor.js';
import { currentGradient } from './optimizer.js';

/**
 * Scale all gradients so that their joint L2 norm is at most `maxNorm`. Returns the
 * norm before clipping as a scalar tensor; nothing is read back to the host.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): Tensor | null {
  return noGrad(() => {
    const grads: Tensor[] = [];
    for (const p of params) {
      const g = currentGradient(p);
      if (!g) continue;
      // Coalesced sparse rows have the same norm as their dense form; keep the coalesced one.
      if (g instanceof RowSparseGrad) p.sparseGrad = g;
      grads.push(g instanceof RowSparseGrad ? g.values : g);
    }
    if (grads.length === 0) return null;
    const total = sqrt(grads.map((g) => sum(square(g))).reduce((a, b) => add(a, b)));
    const scale = minimum(div(maxNorm, affine(total, 1, 1e-6)), 1);
    for (const g of grads) g.backend.binary('mul', g.storage, g.shape, scale.storage, [], g.storage, g.shape);
    return total;
  });
}
