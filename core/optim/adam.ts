/**
 * Adam (Kingma & Ba, 2015) with PyTorch's semantics and defaults, and its lazy
 * sparse variant for embedding tables (PyTorch's `SparseAdam`).
 *
 * `Adam` routes each parameter by its gradient: a dense gradient takes the dense
 * kernel; a row-sparse gradient (from an embedding lookup) takes the lazy path,
 * which updates only the touched rows' values, m and v. Cost then grows with the
 * batch, not with the vocabulary.
 */
import type { AdamHyper } from '../../kernels/index.js';
import { dynamic } from '../capture.js';
import { fusions } from '../fusion.js';
import { RowSparseGrad, Tensor } from '../tensor.js';
import { currentGradient, Optimizer, sameShape, stateLike, type OptimizerState } from './optimizer.js';

/** Adam options (PyTorch defaults). */
export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** L2 penalty added to the gradient (PyTorch `Adam`'s weight_decay); on sparse rows, applied to touched rows only. */
  weightDecay?: number;
}

/** Adam's per-parameter state. */
export interface AdamSlot {
  m: Tensor;
  v: Tensor;
  /** Updates this parameter has received; bias correction uses it, as PyTorch's state['step']. */
  step: number;
}

/** Adam; sparse gradients automatically take the lazy (SparseAdam) update. */
export class Adam extends Optimizer {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly slots = new Map<Tensor, AdamSlot>();

  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    super(params);
    this.lr = options.lr ?? 1e-3;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    if (!(this.lr > 0)) throw new Error(`Adam: learning rate must be positive, got ${this.lr}`);
    for (const b of [this.beta1, this.beta2])
      if (!(b >= 0 && b < 1)) throw new Error(`Adam: betas must be in [0, 1), got ${b}`);
  }

  /** The state of `p`, created on first use. */
  protected slot(p: Tensor): AdamSlot {
    let s = this.slots.get(p);
    if (!s) {
      s = { m: stateLike(p), v: stateLike(p), step: 0 };
      this.slots.set(p, s);
    }
    return s;
  }

  step(): void {
    for (const p of this.params) {
      const g = currentGradient(p);
      if (!g) continue;
      this.update(p, g);
    }
  }

  /** Apply one update to `p`: lazy rows for a sparse gradient, every element for a dense one. */
  protected update(p: Tensor, g: Tensor | RowSparseGrad): void {
    const s = this.slot(p);
    const be = p.backend;
    // Dynamic work: the step counter (and the rows of a sparse gradient) change every step.
    const hyper = (): AdamHyper => {
      s.step += 1;
      return {
        lr: this.lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.weightDecay,
        step: s.step,
      };
    };
    if (g instanceof RowSparseGrad) {
      const live = g.live;
      const dim = p.shape[1];
      // PyTorch's SparseAdam divides by √v + ε, not by √v̂ + ε = √v/√(1−β₂ᵗ) + ε as dense Adam does;
      // the kernels use the dense form, which equals SparseAdam's with ε scaled by 1/√(1−β₂ᵗ).
      const sparseHyper = (): AdamHyper => {
        const h = hyper();
        return { ...h, eps: this.eps / Math.sqrt(1 - Math.pow(this.beta2, h.step)) };
      };
      const src = fusions().segmentSumAdam ? g.pendingSource : null;
      if (src) {
        // The rows are still a segment sum over src: sum and update each row in one kernel.
        dynamic('sparseAdamSegments', () => {
          const t = live.terms!;
          be.sparseAdamSegments(
            p.storage,
            s.m.storage,
            s.v.storage,
            dim,
            live.rows,
            src.storage,
            t.segments,
            t.srcRows,
            t.scales,
            sparseHyper(),
          );
        });
        return;
      }
      g.materialize();
      dynamic('sparseAdam', () =>
        be.sparseAdam(p.storage, s.m.storage, s.v.storage, dim, live.rows, live.values, sparseHyper()),
      );
    } else {
      dynamic('adam', () => be.adam(p.storage, g.storage, s.m.storage, s.v.storage, hyper()));
    }
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    const scalars: Record<string, number> = {};
    this.params.forEach((p, i) => {
      const s = this.slots.get(p);
      if (!s) return;
      tensors[`${i}.m`] = s.m;
      tensors[`${i}.v`] = s.v;
      scalars[`${i}.step`] = s.step;
    });
    return { tensors, scalars };
  }

  checkState(shapes: Readonly<Record<string, readonly number[]>>, scalars: Readonly<Record<string, number>>): string[] {
    const problems: string[] = [];
    const stepped = new Set<number>();
    for (const [key, value] of Object.entries(scalars)) {
      const i = this.stateIndex(key, ['step']);
      if (typeof i === 'string') problems.push(i);
      else if (!(Number.isSafeInteger(value) && value >= 1))
        problems.push(`'${key}' must be a positive integer, got ${value}`);
      else stepped.add(i);
    }
    for (const [key, shape] of Object.entries(shapes)) {
      const i = this.stateIndex(key, ['m', 'v']);
      if (typeof i === 'string') problems.push(i);
      else if (!stepped.has(i)) problems.push(`'${key}' has no step counter '${i}.step'`);
      else if (!sameShape(shape, this.params[i].shape))
        problems.push(`'${key}' has shape [${shape.join(', ')}], expected [${this.params[i].shape.join(', ')}]`);
    }
    for (const i of stepped)
      for (const k of ['m', 'v']) if (!(`${i}.${k}` in shapes)) problems.push(`missing '${i}.${k}'`);
    return problems;
  }

  prepareState(_names: readonly string[], scalars: Readonly<Record<string, number>>): Record<string, Tensor> {
    const targets: Record<string, Tensor> = {};
    for (const [key, step] of Object.entries(scalars)) {
      const i = Number(key.slice(0, key.indexOf('.')));
      const s = this.slot(this.params[i]);
      s.step = step;
      targets[`${i}.m`] = s.m;
      targets[`${i}.v`] = s.v;
    }
    return targets;
  }
}

/** PyTorch's `SparseAdam`: lazy Adam that accepts only sparse (embedding) gradients. */
export class SparseAdam extends Adam {
  /** As Adam's update, but only for sparse gradients. */
  protected override update(p: Tensor, g: Tensor | RowSparseGrad): void {
    if (!(g instanceof RowSparseGrad)) {
      throw new Error(
        `SparseAdam: parameter [${p.shape.join(', ')}] has a dense gradient; use Adam for dense parameters`,
      );
    }
    super.update(p, g);
  }
}
