/**
 * Shared-bottom multi-task learning (Caruana, "Multitask Learning", Machine Learning 28, 1997),
 * the baseline of MMoE and PLE: one trunk shared by the CTR and CVR tasks, one tower per task.
 * Default sizes: the trunk is ESMM's tower (200-80) and each task tower has one layer of 32,
 * so against ESMM the frame differs only in sharing the trunk.
 */
import type { TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';
import {
  checkSizes,
  DenseTower,
  MultiTaskMethod,
  Trunk,
  type MultiTaskOptions,
  type TaskLogits,
} from './multi-task.js';

/** Defaults of {@link SharedBottomMethod}. */
export const SHARED_BOTTOM_DEFAULTS = {
  bottom: [200, 80] as readonly number[],
  towers: [32] as readonly number[],
};

/** Options of {@link SharedBottomMethod}. */
export interface SharedBottomOptions extends MultiTaskOptions {
  /** Sizes of the shared trunk (a base model's trunk); default [200, 80]. */
  bottom?: readonly number[];
  /** Hidden sizes of each task tower; default [32]. */
  towers?: readonly number[];
}

/** `shared-bottom` (entire space) or `shared-bottom-naive` (click space). */
export class SharedBottomMethod extends MultiTaskMethod {
  readonly method: string;
  readonly bottom: Trunk;
  readonly ctrTower: DenseTower;
  readonly cvrTower: DenseTower;

  constructor(schema: Schema, options: SharedBottomOptions = {}) {
    const space = options.trainingSpace ?? 'entire';
    const name = space === 'entire' ? 'shared-bottom' : 'shared-bottom-naive';
    super(schema, options, name);
    this.method = name;
    const bottom = options.bottom ?? SHARED_BOTTOM_DEFAULTS.bottom;
    const towers = options.towers ?? SHARED_BOTTOM_DEFAULTS.towers;
    checkSizes(name, 'bottom', bottom);
    checkSizes(name, 'towers', towers, true);
    const ctx = this.frameContext;
    this.bottom = new Trunk(ctx, bottom);
    this.ctrTower = new DenseTower(ctx, this.bottom.width, towers);
    this.cvrTower = new DenseTower(ctx, this.bottom.width, towers);
  }

  logits(input: TowerInput): TaskLogits {
    const h = this.bottom.forward(input);
    return { ctrLogit: this.ctrTower.forward(h), cvrLogit: this.cvrTower.forward(h) };
  }
}
