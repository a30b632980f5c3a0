/**
 * MMoE (Ma, Zhao, Yi, Chen, Hong and Chi, "Modeling Task Relationships in Multi-task Learning
 * with Multi-gate Mixture-of-Experts", KDD 2018): n experts shared by the tasks, and per task a
 * softmax gate over the experts computed from the input, g_k(x) = softmax(W_k x); task k's tower
 * reads Σ_i g_k(x)_i f_i(x). Defaults: 8 single-layer experts (the paper's count) of 16 units
 * and task towers of 8, the widths of PaddleRec's reproduction of the paper's census-income setting.
 */
import { concat, mul, nn, reshape, softmax, sum, type Tensor } from '../../core/index.js';
import { totalWidth } from '../base/base-model.js';
import type { TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';
import { checks } from '../options.js';
import {
  checkCount,
  checkSizes,
  registerFrame,
  TASK_WEIGHT_OPTIONS,
  Trunk,
  TwoTowerFrame,
  type FrameContext,
  type MultiTaskOptions,
  type TaskWeightOptions,
} from './multi-task.js';
import type { MethodRegistration } from './registry.js';

/** Defaults of {@link MmoeMethod}. */
export const MMOE_DEFAULTS = {
  experts: 8,
  expertSizes: [16] as readonly number[],
  towers: [8] as readonly number[],
};

/** Options of {@link MmoeMethod}. */
export interface MmoeOptions extends MultiTaskOptions {
  /** Number of shared experts; default 8. */
  experts?: number;
  /** Sizes of each expert (a base model's trunk); default [16]. */
  expertSizes?: readonly number[];
  /** Hidden sizes of each task tower; default [8]. */
  towers?: readonly number[];
}

/** A softmax gate over `n` experts, g(x) = softmax(W x + b), from `inFeatures` inputs. */
export class Gate extends nn.Module {
  readonly linear: nn.Linear;
  readonly n: number;

  constructor(ctx: FrameContext, inFeatures: number, n: number) {
    super();
    this.n = n;
    this.linear = new nn.Linear(inFeatures, n, { rng: ctx.rng.fork(), dtype: ctx.dtype });
  }

  /** Gate weights [batch, n]. */
  forward(x: Tensor): Tensor {
    return softmax(this.linear.forward(x));
  }
}

/** Σ_i gate_i · expert_i for expert outputs of one width: [batch, width]. */
export function mixExperts(outputs: readonly Tensor[], gate: Tensor): Tensor {
  const [b, w] = outputs[0].shape;
  const stacked = reshape(outputs.length === 1 ? outputs[0] : concat(outputs, 1), [b, outputs.length, w]);
  return sum(mul(stacked, reshape(gate, [b, outputs.length, 1])), 1);
}

/** `mmoe` (entire space) or `mmoe-naive` (click space). */
export class MmoeMethod extends TwoTowerFrame {
  readonly experts: Trunk[];
  readonly ctrGate: Gate;
  readonly cvrGate: Gate;

  constructor(schema: Schema, options: MmoeOptions = {}) {
    super(schema, options, 'mmoe');
    const n = options.experts ?? MMOE_DEFAULTS.experts;
    const sizes = options.expertSizes ?? MMOE_DEFAULTS.expertSizes;
    checkCount(this.method, 'experts', n);
    checkSizes(this.method, 'expertSizes', sizes);
    const ctx = this.frameContext;
    this.experts = Array.from({ length: n }, () => new Trunk(ctx, sizes));
    this.ctrGate = new Gate(ctx, totalWidth(ctx.dims), n);
    this.cvrGate = new Gate(ctx, totalWidth(ctx.dims), n);
    this.buildTowers(sizes[sizes.length - 1], options.towers ?? MMOE_DEFAULTS.towers);
  }

  protected represent(input: TowerInput): { ctr: Tensor; cvr: Tensor } {
    const outputs = this.experts.map((e) => e.forward(input));
    // The gates read the field vectors as the experts' first layer does (before any attention).
    const x = input.concatenated();
    return { ctr: mixExperts(outputs, this.ctrGate.forward(x)), cvr: mixExperts(outputs, this.cvrGate.forward(x)) };
  }
}

/** The own options of `mmoe` and `mmoe-naive`. */
export type MmoeOwnOptions = Pick<MmoeOptions, 'experts' | 'expertSizes' | 'towers'> & TaskWeightOptions;

declare module './registry.js' {
  interface MethodOptionsByName {
    mmoe: MmoeOwnOptions;
    'mmoe-naive': MmoeOwnOptions;
  }
}

const registration: MethodRegistration<MmoeOwnOptions> = {
  summary: 'shared experts mixed by a softmax gate per task (Ma et al., KDD 2018), trained the ESMM way',
  options: {
    experts: { help: 'number of shared experts', default: MMOE_DEFAULTS.experts, check: checks.integer(1) },
    expertSizes: { help: 'sizes of each expert', default: MMOE_DEFAULTS.expertSizes, check: checks.sizes },
    towers: { help: 'hidden sizes of each task tower', default: MMOE_DEFAULTS.towers, check: checks.sizes },
    ...TASK_WEIGHT_OPTIONS,
  },
  variants: [{ experts: 3, expertSizes: [8], towers: [4] }],
};
registerFrame('mmoe', 'MMoE', (o, trainingSpace) => new MmoeMethod(o.schema, { ...o, trainingSpace }), registration);
