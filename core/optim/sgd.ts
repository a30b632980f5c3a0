/** Stochastic gradient descent with momentum (PyTorch semantics). */
import { RowSparseGrad, Tensor } from '../tensor.js';
import { currentGradient, Optimizer, sameShape, stateLike, type OptimizerState } from './optimizer.js';

/** SGD options. */
export interface SgdOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/**
 * SGD: v ← μ·v + (g + λ·p); p ← p − lr·v (or the Nesterov form).
 * A sparse gradient without momentum or decay updates only its rows; otherwise it is densified.
 */
export class SGD extends Optimizer {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private readonly velocity = new Map<Tensor, Tensor>();

  constructor(params: Iterable<Tensor>, options: SgdOptions) {
    super(params);
    this.lr = options.lr;
    this.momentum = options.momentum ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    this.nesterov = options.nesterov ?? false;
    if (!(this.lr > 0)) throw new Error(`SGD: learning rate must be positive, got ${this.lr}`);
  }

  step(): void {
    for (const p of this.params) {
      const raw = currentGradient(p);
      if (!raw) continue;
      const be = p.backend;
      if (raw instanceof RowSparseGrad && this.momentum === 0 && this.weightDecay === 0) {
        const scaled = Tensor.zeros(raw.values.shape, { dtype: p.dtype, backend: be });
        be.affine(raw.values.storage, -this.lr, 0, scaled.storage);
        be.scatterAddRows(scaled.storage, p.shape[1], raw.rows, p.storage);
        scaled.dispose();
        continue;
      }
      const g = raw instanceof RowSparseGrad ? raw.toDense() : raw;
      const d = Tensor.zeros(p.shape, { dtype: p.dtype, backend: be });
      be.axpby(1, g.storage, this.weightDecay, p.storage, d.storage);
      if (this.momentum !== 0) {
        let v = this.velocity.get(p);
        if (!v) {
          v = stateLike(p);
          be.copy(d.storage, v.storage);
          this.velocity.set(p, v);
        } else {
          be.axpby(this.momentum, v.storage, 1, d.storage, v.storage);
        }
        if (this.nesterov) be.axpby(1, d.storage, this.momentum, v.storage, d.storage);
        else be.copy(v.storage, d.storage);
      }
      be.axpby(1, p.storage, -this.lr, d.storage, p.storage);
      d.dispose();
    }
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    this.params.forEach((p, i) => {
      const v = this.velocity.get(p);
      if (v) tensors[`${i}.velocity`] = v;
    });
    return { tensors, scalars: {} };
  }

  checkState(shapes: Readonly<Record<string, readonly number[]>>, scalars: Readonly<Record<string, number>>): string[] {
    const problems = Object.keys(scalars).map((k) => `unexpected counter '${k}'`);
    for (const [key, shape] of Object.entries(shapes)) {
      const i = this.stateIndex(key, ['velocity']);
      if (typeof i === 'string') problems.push(i);
      else if (!sameShape(shape, this.params[i].shape))
        problems.push(`'${key}' has shape [${shape.join(', ')}], expected [${this.params[i].shape.join(', ')}]`);
    }
    return problems;
  }

  prepareState(names: readonly string[]): Record<string, Tensor> {
    const targets: Record<string, Tensor> = {};
    for (const key of names) {
      const p = this.params[Number(key.slice(0, key.indexOf('.')))];
      const v = this.velocity.get(p) ?? stateLike(p);
      this.velocity.set(p, v);
      targets[key] = v;
    }
    return targets;
  }
}
