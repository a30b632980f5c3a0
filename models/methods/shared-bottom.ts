/**
 * Shared-bottom multi-task learning (Caruana, "Multitask Learning", Machine Learning 28, 1997),
 * the baseline of MMoE and PLE: one trunk shared by the CTR and CVR tasks, one tower per task.
 * Default sizes: the trunk is ESMM's tower (200-80) and each task tower has one layer of 32,
 * so against ESMM the frame differs only in sharing the trunk.
 */
import type { TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';
import { checks } from '../options.js';
import {
  checkSizes,
  DenseTower,
  ENTIRE_SPACE_LEARNING,
  frameName,
  MultiTaskMethod,
  TASK_WEIGHT_OPTIONS,
  Trunk,
  type MultiTaskOptions,
  type TaskLogits,
  type TaskWeightOptions,
} from './multi-task.js';
import { registerMethod, type MethodRegistration } from './registry.js';

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
    const name = frameName('shared-bottom', options.trainingSpace ?? 'entire');
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

/** The own options of `shared-bottom` and `shared-bottom-naive`. */
export type SharedBottomOwnOptions = Pick<SharedBottomOptions, 'bottom' | 'towers'> & TaskWeightOptions;

declare module './registry.js' {
  interface MethodOptionsByName {
    'shared-bottom': SharedBottomOwnOptions;
    'shared-bottom-naive': SharedBottomOwnOptions;
  }
}

const registration: MethodRegistration<SharedBottomOwnOptions> = {
  summary: 'one trunk shared by the CTR and CVR towers (Caruana, 1997), trained the ESMM way (CTCVR supervision)',
  options: {
    bottom: { help: 'sizes of the shared trunk', default: SHARED_BOTTOM_DEFAULTS.bottom, check: checks.sizes },
    towers: { help: 'hidden sizes of each task tower', default: SHARED_BOTTOM_DEFAULTS.towers, check: checks.sizes },
    ...TASK_WEIGHT_OPTIONS,
  },
  variants: [{ bottom: [16, 8], towers: [8] }],
};
registerMethod('shared-bottom', (o) => new SharedBottomMethod(o.schema, { ...o, trainingSpace: 'entire' }), {
  ...registration,
  learning: ENTIRE_SPACE_LEARNING,
});
registerMethod('shared-bottom-naive', (o) => new SharedBottomMethod(o.schema, { ...o, trainingSpace: 'click' }), {
  ...registration,
  summary: 'shared-bottom with the CVR loss on clicked rows only (the naive training space)',
});
