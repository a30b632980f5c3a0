/**
 * The optimizer base: parameter groups of one, zeroGrad, and the state it keeps
 * on the parameters' backend so that a step never reads values back.
 */
import { coalesce, RowSparseGrad, Tensor } from '../tensor.js';

/** Base class of optimizers. */
export abstract class Optimizer {
  readonly params: Tensor[];

  constructor(params: Iterable<Tensor>) {
    this.params = [...new Set(params)];
    if (this.params.length === 0) throw new Error(`${new.target.name}: no parameters to optimise`);
  }

  /** Clear (and free) every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) {
      const g = p.gradient;
      if (g instanceof Tensor) g.dispose();
      else if (g) g.dispose();
      p.grad = null;
    }
  }

  /** Apply one update from the current gradients. */
  abstract step(): void;

  /** Optimizer state for checkpoints: name → tensor, and scalar counters. */
  abstract stateDict(): OptimizerState;

  /** Restore from {@link Optimizer.stateDict}; names, shapes and counters are checked first, and nothing changes on a mismatch. */
  loadStateDict(state: OptimizerState): void {
    const shapes: Record<string, readonly number[]> = {};
    for (const [name, t] of Object.entries(state.tensors)) shapes[name] = t.shape;
    const problems = this.checkState(shapes, state.scalars);
    if (problems.length > 0) throw new Error(`optimizer state: ${problems.join('; ')}`);
    const targets = this.prepareState(Object.keys(state.tensors), state.scalars);
    for (const [name, target] of Object.entries(targets)) restoreInto(target, state.tensors[name], name);
  }

  /**
   * What would make a saved state with these tensor shapes and scalar counters fail to load
   * into this optimizer (unknown, missing or misshapen entries, bad counters); empty when it fits.
   * Changes nothing, so a loader can check every part of a checkpoint before writing any.
   */
  abstract checkState(
    shapes: Readonly<Record<string, readonly number[]>>,
    scalars: Readonly<Record<string, number>>,
  ): string[];

  /**
   * The live state tensors that a saved state with these names and counters restores into,
   * created where missing, with the counters set; the caller then fills the tensors in place
   * (e.g. streamed from a checkpoint). Call only once {@link Optimizer.checkState} found nothing.
   */
  abstract prepareState(names: readonly string[], scalars: Readonly<Record<string, number>>): Record<string, Tensor>;

  /** Index of the parameter a state entry `I.suffix` belongs to, or a problem. */
  protected stateIndex(key: string, suffixes: readonly string[]): number | string {
    const m = /^(\d+)\.([a-z]+)$/.exec(key);
    if (!m || !suffixes.includes(m[2])) return `unexpected entry '${key}'`;
    const i = Number(m[1]);
    if (i >= this.params.length) return `entry '${key}' for parameter ${i}, but there are ${this.params.length}`;
    return i;
  }
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Serialisable optimizer state: per-parameter tensors by index, and counters. */
export interface OptimizerState {
  tensors: Record<string, Tensor>;
  scalars: Record<string, number>;
}

/** A parameter's gradient with duplicate rows merged, or the dense one. */
export function currentGradient(p: Tensor): Tensor | RowSparseGrad | null {
  const g = p.gradient;
  if (!g) return null;
  return g instanceof RowSparseGrad ? coalesce(g) : g;
}

/** Zero tensor shaped like `p`, kept across tidy scopes (optimizer state). */
export function stateLike(p: Tensor): Tensor {
  const t = Tensor.zeros(p.shape, { dtype: p.dtype, backend: p.backend });
  // Fresh memory is mapped lazily and costs a page fault on first touch; a lazy (sparse)
  // update would otherwise pay those faults row by row for many steps. Writing the zeros
  // once here moves that cost to the first step.
  t.backend.fill(t.storage, 0);
  t.keepAlive = true;
  return t;
}

/** Copy saved state into live state tensors after checking shapes. */
export function restoreInto(target: Tensor, source: Tensor | undefined, name: string): void {
  if (!source) throw new Error(`optimizer state: missing '${name}'`);
  if (source.size !== target.size || source.shape.some((d, i) => d !== target.shape[i])) {
    throw new Error(
      `optimizer state: '${name}' has shape [${source.shape.join(', ')}], expected [${target.shape.join(', ')}]`,
    );
  }
  target.backend.write(target.storage, source.toArray());
}
