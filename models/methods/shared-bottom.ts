/**
 * Shared-bottom multi-task learning (Caruana, "Multitask Learning", Machine Learning 28, 1997),
 * the baseline of MMoE and PLE: one trunk shared by the CTR and CVR tasks, one tower per task.
 * Default sizes: the trunk is ESMM's tower (200-80) and each task tower has one layer of 32,
 * so against ESMM the frame differs only in sharing the trunk.
 */
import type { TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';
import { checks } from '../options.js';
import type { Tensor } from '../../core/index.js';
import {
  checkSizes,
  registerFrame,
  TASK_WEIGHT_OPTIONS,
  Trunk,
  TwoTowerFrame,
  type MultiTaskOptions,
  type TaskWeightOptions,
} from './multi-task.js';
import type { MethodRegistration } from './registry.js';

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
export class SharedBottomMethod extends TwoTowerFrame {
  readonly bottom: Trunk;

  constructor(schema: Schema, options: SharedBottomOptions = {}) {
    super(schema, options, 'shared-bottom');
    const bottom = options.bottom ?? SHARED_BOTTOM_DEFAULTS.bottom;
    checkSizes(this.method, 'bottom', bottom);
    this.bottom = new Trunk(this.frameContext, bottom);
    this.buildTowers(this.bottom.width, options.towers ?? SHARED_BOTTOM_DEFAULTS.towers);
  }

  protected represent(input: TowerInput): { ctr: Tensor; cvr: Tensor } {
    const h = this.bottom.forward(input);
    return { ctr: h, cvr: h };
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
registerFrame(
  'shared-bottom',
  'shared-bottom',
  (o, trainingSpace) => new SharedBottomMethod(o.schema, { ...o, trainingSpace }),
  registration,
);
