/**
 * PLE (Tang, Liu, Zhao and Gong, "Progressive Layered Extraction (PLE): A Novel Multi-Task
 * Learning (MTL) Model for Personalized Recommendations", RecSys 2020): stacked Customized Gate
 * Control (CGC) levels, each with experts shared by the tasks and experts of each task. Task k's
 * gate mixes its own and the shared experts; a shared gate mixes all of them for the next level.
 * Level 1 reads the embedded fields (its experts are base-model trunks), later levels read the
 * previous level's mixtures. Defaults: 2 levels, 1 shared and 1 task expert per task per level,
 * experts of 256 and towers of 64 (DeepCTR's defaults for the paper's model).
 */
import { nn, type Tensor } from '../../core/index.js';
import { totalWidth } from '../base/base-model.js';
import type { TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';
import { Gate, mixExperts } from './mmoe.js';
import { checks } from '../options.js';
import {
  checkCount,
  checkSizes,
  frameMlp,
  registerFrame,
  TASK_WEIGHT_OPTIONS,
  Trunk,
  TwoTowerFrame,
  type FrameContext,
  type MultiTaskOptions,
  type TaskWeightOptions,
} from './multi-task.js';
import type { MethodRegistration } from './registry.js';

/** Defaults of {@link PleMethod}. */
export const PLE_DEFAULTS = {
  levels: 2,
  sharedExperts: 1,
  taskExperts: 1,
  expertSizes: [256] as readonly number[],
  towers: [64] as readonly number[],
};

/** Options of {@link PleMethod}. */
export interface PleOptions extends MultiTaskOptions {
  /** Extraction (CGC) levels; default 2. */
  levels?: number;
  /** Shared experts per level; default 1. */
  sharedExperts?: number;
  /** Experts of each task per level; default 1. */
  taskExperts?: number;
  /** Sizes of each expert; default [256]. */
  expertSizes?: readonly number[];
  /** Hidden sizes of each task tower; default [64]. */
  towers?: readonly number[];
}

/** An expert of a later level: a dense MLP over the previous level's mixture, ending in the activation. */
class DenseExpert extends nn.Module {
  readonly net: nn.Sequential;
  constructor(ctx: FrameContext, inFeatures: number, sizes: readonly number[]) {
    super();
    this.net = frameMlp(ctx, inFeatures, sizes);
  }
  /** The expert's output [batch, last size]. */
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
}

/** The three streams of a level: CTR's, CVR's and the shared one ([batch, width] each). */
interface Streams {
  ctr: Tensor;
  cvr: Tensor;
  /** Absent after the last level, which has no shared gate. */
  shared: Tensor | null;
}

/** One CGC level: experts of each task and shared experts, a gate per task and (except last) a shared gate. */
class ExtractionLevel extends nn.Module {
  readonly ctrExperts: (Trunk | DenseExpert)[];
  readonly cvrExperts: (Trunk | DenseExpert)[];
  readonly sharedExperts: (Trunk | DenseExpert)[];
  readonly ctrGate: Gate;
  readonly cvrGate: Gate;
  readonly sharedGate: Gate | null;
  private readonly first: boolean;

  constructor(
    ctx: FrameContext,
    o: Required<Pick<PleOptions, 'sharedExperts' | 'taskExperts' | 'expertSizes'>>,
    first: boolean,
    last: boolean,
  ) {
    super();
    this.first = first;
    const width = o.expertSizes[o.expertSizes.length - 1];
    const inFeatures = first ? totalWidth(ctx.dims) : width;
    const expert = (): Trunk | DenseExpert =>
      first ? new Trunk(ctx, o.expertSizes) : new DenseExpert(ctx, width, o.expertSizes);
    this.ctrExperts = Array.from({ length: o.taskExperts }, expert);
    this.cvrExperts = Array.from({ length: o.taskExperts }, expert);
    this.sharedExperts = Array.from({ length: o.sharedExperts }, expert);
    this.ctrGate = new Gate(ctx, inFeatures, o.taskExperts + o.sharedExperts);
    this.cvrGate = new Gate(ctx, inFeatures, o.taskExperts + o.sharedExperts);
    this.sharedGate = last ? null : new Gate(ctx, inFeatures, 2 * o.taskExperts + o.sharedExperts);
  }

  /** Level 1 takes the embedded batch (each stream is the concatenated fields for its gate); later levels the previous streams. */
  forward(input: TowerInput | Streams): Streams {
    const streamOf = (stream: 'ctr' | 'cvr' | 'shared'): Tensor => {
      const t = (input as Streams)[stream];
      if (!t) throw new Error('ple: a level after the last one has no shared stream to read');
      return t;
    };
    const run = (experts: (Trunk | DenseExpert)[], stream: 'ctr' | 'cvr' | 'shared'): Tensor[] =>
      experts.map((e) => (e instanceof Trunk ? e.forward(input as TowerInput) : e.forward(streamOf(stream))));
    const ctr = run(this.ctrExperts, 'ctr');
    const cvr = run(this.cvrExperts, 'cvr');
    const shared = run(this.sharedExperts, 'shared');
    const x = this.first ? (input as TowerInput).concatenated() : null;
    const gateInput = (stream: 'ctr' | 'cvr' | 'shared'): Tensor => x ?? streamOf(stream);
    return {
      ctr: mixExperts([...ctr, ...shared], this.ctrGate.forward(gateInput('ctr'))),
      cvr: mixExperts([...cvr, ...shared], this.cvrGate.forward(gateInput('cvr'))),
      shared: this.sharedGate
        ? mixExperts([...ctr, ...cvr, ...shared], this.sharedGate.forward(gateInput('shared')))
        : null,
    };
  }
}

/** `ple` (entire space) or `ple-naive` (click space). */
export class PleMethod extends TwoTowerFrame {
  // Private to the API docs only: the levels are parameters like any other field.
  private readonly levels: ExtractionLevel[];

  constructor(schema: Schema, options: PleOptions = {}) {
    super(schema, options, 'ple');
    const levels = options.levels ?? PLE_DEFAULTS.levels;
    const o = {
      sharedExperts: options.sharedExperts ?? PLE_DEFAULTS.sharedExperts,
      taskExperts: options.taskExperts ?? PLE_DEFAULTS.taskExperts,
      expertSizes: options.expertSizes ?? PLE_DEFAULTS.expertSizes,
    };
    checkCount(this.method, 'levels', levels);
    checkCount(this.method, 'sharedExperts', o.sharedExperts);
    checkCount(this.method, 'taskExperts', o.taskExperts);
    checkSizes(this.method, 'expertSizes', o.expertSizes);
    const ctx = this.frameContext;
    this.levels = Array.from({ length: levels }, (_, l) => new ExtractionLevel(ctx, o, l === 0, l === levels - 1));
    this.buildTowers(o.expertSizes[o.expertSizes.length - 1], options.towers ?? PLE_DEFAULTS.towers);
  }

  protected represent(input: TowerInput): { ctr: Tensor; cvr: Tensor } {
    let streams = this.levels[0].forward(input);
    for (let l = 1; l < this.levels.length; l++) streams = this.levels[l].forward(streams);
    return streams;
  }
}

/** The own options of `ple` and `ple-naive`. */
export type PleOwnOptions = Pick<PleOptions, 'levels' | 'sharedExperts' | 'taskExperts' | 'expertSizes' | 'towers'> &
  TaskWeightOptions;

declare module './registry.js' {
  interface MethodOptionsByName {
    ple: PleOwnOptions;
    'ple-naive': PleOwnOptions;
  }
}

const registration: MethodRegistration<PleOwnOptions> = {
  summary: 'stacked gates over shared and task experts (Tang et al., RecSys 2020), trained the ESMM way',
  options: {
    levels: { help: 'extraction (CGC) levels', default: PLE_DEFAULTS.levels, check: checks.integer(1) },
    sharedExperts: { help: 'shared experts per level', default: PLE_DEFAULTS.sharedExperts, check: checks.integer(1) },
    taskExperts: {
      help: 'experts of each task per level',
      default: PLE_DEFAULTS.taskExperts,
      check: checks.integer(1),
    },
    expertSizes: { help: 'sizes of each expert', default: PLE_DEFAULTS.expertSizes, check: checks.sizes },
    towers: { help: 'hidden sizes of each task tower', default: PLE_DEFAULTS.towers, check: checks.sizes },
    ...TASK_WEIGHT_OPTIONS,
  },
  variants: [
    { expertSizes: [8], towers: [4] },
    { levels: 1, sharedExperts: 2, taskExperts: 2, expertSizes: [3], towers: [] },
  ],
};
registerFrame('ple', 'PLE', (o, trainingSpace) => new PleMethod(o.schema, { ...o, trainingSpace }), registration);
