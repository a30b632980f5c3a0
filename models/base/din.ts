/**
 * DIN, the Deep Interest Network (Zhou et al., "Deep Interest Network for Click-Through
 * Rate Prediction", KDD 2018): each behaviour sequence is pooled by attention against the
 * candidate item. An activation unit scores every behaviour e against the target q from
 * [e, q, e − q, e ⊙ q] through a small MLP (80-40, PReLU); padding is masked; the behaviours
 * are summed with those scores, unnormalised as in the paper (`none`) or softmax-normalised as in
 * the authors' code (`softmax`). The result replaces the sequence's sum-pooled vector and all
 * fields go, concatenated, through the tower MLP.
 */
import {
  add,
  affine,
  concat,
  div,
  fusions,
  init,
  isGradEnabled,
  linearPrelu,
  matmul,
  mean,
  mul,
  nn,
  noGrad,
  reshape,
  Rng,
  sigmoid,
  slice,
  softmax,
  sqrt,
  square,
  sub,
  type Tensor,
} from '../../core/index.js';
import type { DType } from '../../kernels/index.js';
import type { TowerInput } from '../embedding.js';
import { tableOf, type Schema } from '../schema.js';
import { BaseModel, registerBaseModel, FieldsMlp, type BaseModelOptions, type InputDims } from './base-model.js';
import { checks } from '../options.js';

/** How attention scores become pooling weights. */
export type DinNormalization = 'none' | 'softmax';

/** DIN's activation-unit settings (under the `attention` key of the tower options). */
export interface DinAttentionOptions {
  /** Hidden sizes of the activation unit. */
  hidden?: readonly number[];
  /** `none` (the paper) or `softmax` (the authors' code). */
  normalization?: DinNormalization;
  /** Activation of the unit's hidden layers (`dice` is the paper's data-adaptive one). */
  activation?: 'prelu' | 'relu' | 'dice';
}

/** Defaults of DIN's activation unit: the paper's 80-40 PReLU unit, unnormalised weights. */
export const DIN_DEFAULTS = {
  attention: {
    hidden: [80, 40] as readonly number[],
    normalization: 'none' as DinNormalization,
    activation: 'prelu' as 'prelu' | 'relu' | 'dice',
  },
} as const;

/** Tower options of DIN. */
export interface DinOptions extends BaseModelOptions {
  attention?: DinAttentionOptions;
}

/**
 * Dice (DIN, section 4.3): p = σ((x − E[x]) / √(Var[x] + ε)), out = p·x + (1 − p)·α·x, with α one
 * learnable value per channel. Training uses the batch's statistics and tracks running ones for
 * evaluation. The running statistics are buffers, not parameters, so they are not in `stateDict()`.
 */
export class Dice extends nn.Layer {
  readonly alpha: Tensor;
  /** Running mean [1, channels] used in evaluation. */
  runningMean: Tensor;
  /** Running variance [1, channels] used in evaluation. */
  runningVar: Tensor;
  private readonly eps: number;
  private readonly momentum: number;

  constructor(
    readonly channels: number,
    options: { eps?: number; momentum?: number; dtype?: DType } = {},
  ) {
    super();
    this.eps = options.eps ?? 1e-8;
    this.momentum = options.momentum ?? 0.01;
    this.alpha = nn.parameter(init.full([channels], 0, { dtype: options.dtype }));
    this.runningMean = init.full([1, channels], 0, { dtype: options.dtype });
    this.runningVar = init.full([1, channels], 1, { dtype: options.dtype });
    this.runningMean.keepAlive = true;
    this.runningVar.keepAlive = true;
  }

  /** Apply Dice to a [rows, channels] input. */
  forward(x: Tensor): Tensor {
    let m = this.runningMean;
    let v = this.runningVar;
    if (this.training) {
      m = mean(x, 0, true);
      v = mean(square(sub(x, m)), 0, true);
      const [bm, bv] = [m, v];
      noGrad(() => {
        const next = (old: Tensor, batch: Tensor): Tensor => {
          const t = add(affine(old, 1 - this.momentum, 0), affine(batch, this.momentum, 0));
          t.keepAlive = true;
          old.dispose();
          return t;
        };
        this.runningMean = next(this.runningMean, bm);
        this.runningVar = next(this.runningVar, bv);
      });
    }
    const p = sigmoid(div(sub(x, m), sqrt(affine(v, 1, this.eps))));
    return add(mul(p, x), mul(mul(affine(p, -1, 1), this.alpha), x));
  }
}

/** An MLP whose hidden activations are Dice, ending in a linear layer of `outFeatures`. */
export function diceMlp(
  inFeatures: number,
  hidden: readonly number[],
  outFeatures: number,
  options: { rng?: Rng; dtype?: DType } = {},
): nn.Sequential {
  const rng = options.rng ?? new Rng(0);
  const layers: nn.Layer[] = [];
  let width = inFeatures;
  for (const size of hidden) {
    layers.push(new nn.Linear(width, size, { rng, dtype: options.dtype }), new Dice(size, { dtype: options.dtype }));
    width = size;
  }
  layers.push(new nn.Linear(width, outFeatures, { rng, dtype: options.dtype }));
  return new nn.Sequential(...layers);
}

/** A sequence field and the target field it is attended against. */
export interface DinPair {
  sequence: string;
  target: string;
}

/**
 * Pair each sequence field (`isSequence`) with the target field (`isTarget`) reading the same
 * table; a single target is used for every sequence when no table matches.
 */
export function dinPairs(schema: Schema): DinPair[] {
  const targets = schema.fields.filter((f) => f.kind === 'categorical' && f.isTarget);
  const pairs: DinPair[] = [];
  for (const field of schema.fields) {
    if (field.kind !== 'bag' || !field.isSequence) continue;
    const sameTable = targets.find((t) => t.kind === 'categorical' && tableOf(t) === tableOf(field));
    const target = sameTable ?? (targets.length === 1 ? targets[0] : undefined);
    if (!target) {
      throw new Error(
        `DIN: sequence field '${field.name}' needs a target field (isTarget) reading table '${tableOf(field)}'`,
      );
    }
    pairs.push({ sequence: field.name, target: target.name });
  }
  return pairs;
}

/**
 * The activation unit's first layer on [e, q, e − q, e ⊙ q] without building that input. With W split
 * by columns into [W_e, W_q, W_d, W_p], W·[e, q, e − q, e ⊙ q] = (W_e + W_d)·e + W_p·(e ⊙ q) + (W_q − W_d)·q:
 * the last term and the bias depend on the row only, so they are computed once per row instead of once
 * per position, and the per-position product reads 2d columns instead of 4d. Same parameters, the same
 * function up to rounding. `e` is [batch, len, d], `q` [batch, d]; returns [batch·len, out].
 *
 * With `prelu` (the unit's activation when it is a PReLU) the activation is applied too, and the whole
 * layer is one `linearPrelu` whose bias has a row per example: the per-row term reaches every position
 * of its row in the GEMM's epilogue, with no [batch, len, out] broadcast, reshape copies or separate PReLU.
 */
export function activationUnitFirstLayer(linear: nn.Linear, e: Tensor, q: Tensor, prelu?: nn.PReLU): Tensor {
  const [b, l, d] = e.shape;
  const w = linear.weight;
  const out = w.shape[0];
  if (w.shape[1] !== 4 * d) throw new Error(`DIN: the activation unit takes ${w.shape[1]} features, not 4·${d}`);
  const cols = (i: number): Tensor => slice(w, [0, i * d], [out, d]);
  const wd = cols(2);
  const perPosition = concat([add(cols(0), wd), cols(3)], 1);
  const perRow = sub(cols(1), wd);
  let r = matmul(q, perRow, { transB: true });
  if (linear.bias) r = add(r, linear.bias);
  if (prelu) return linearPrelu(unitInput(e, q), perPosition, r, prelu.weight);
  const y = matmul(unitInput(e, q), perPosition, { transB: true });
  return reshape(add(reshape(y, [b, l, out]), reshape(r, [b, 1, out])), [b * l, out]);
}

/** The last {@link unitInput} of each sequence tensor: its target, the grad mode it was built in, and the value. */
const unitInputs = new WeakMap<Tensor, { q: Tensor; grad: boolean; x: Tensor }>();

/**
 * The per-position input [e, e ⊙ q] of the activation unit's first layer as [batch·len, 2d]. It depends on
 * the sequence and the target only, so the towers of one model that read the same embedding (ESMM's two,
 * when shared) build it, and back-propagate through its concat and product, once: each gets the same tensor.
 */
function unitInput(e: Tensor, q: Tensor): Tensor {
  const grad = isGradEnabled();
  const hit = unitInputs.get(e);
  if (hit && hit.q === q && hit.grad === grad && !hit.x.isDisposed) return hit.x;
  const [b, l, d] = e.shape;
  const x = reshape(concat([e, mul(e, reshape(q, [b, 1, d]))], 2), [b * l, 2 * d]);
  unitInputs.set(e, { q, grad, x });
  return x;
}

/** Deep Interest Network tower. */
export class DinTower extends BaseModel {
  readonly pairs: DinPair[];
  readonly normalization: DinNormalization;
  /** One activation unit per sequence field. */
  readonly units: Map<string, nn.Sequential>;
  readonly net: FieldsMlp;
  /** The input's fields in order, as the tower MLP reads them. */
  private readonly fieldNames: readonly string[];

  constructor(schema: Schema, options: DinOptions, inputDims: InputDims) {
    super(options);
    const attention = { ...DIN_DEFAULTS.attention, ...options.attention };
    this.normalization = attention.normalization;
    this.pairs = dinPairs(schema);
    const rng = options.rng ?? new Rng(0);
    this.units = new Map();
    for (const { sequence, target } of this.pairs) {
      const d = inputDims.get(sequence)!;
      if (inputDims.get(target) !== d)
        throw new Error(
          `DIN: '${sequence}' (dim ${d}) and its target '${target}' (dim ${inputDims.get(target)}) differ in width`,
        );
      const { hidden, activation } = attention;
      this.units.set(
        sequence,
        activation === 'dice'
          ? diceMlp(4 * d, hidden, 1, { rng, dtype: options.dtype })
          : nn.mlp(4 * d, hidden, { activation, outFeatures: 1, rng, dtype: options.dtype }),
      );
    }
    this.net = new FieldsMlp(inputDims, { ...options, rng });
    this.fieldNames = [...inputDims.keys()];
  }

  /** Pooling weights [batch, maxLen] of one sequence field against its target; padding gets 0. */
  attentionWeights(input: TowerInput, pair: DinPair): Tensor {
    const seq = input.sequence(pair.sequence);
    const [b, l] = seq.values.shape;
    const e = seq.values;
    const q = input.field(pair.target);
    const unit = this.units.get(pair.sequence)!;
    const [first, second] = unit.layers;
    // A PReLU after the first layer joins it in one fused op (as nn.Sequential fuses Linear → PReLU).
    const fuse = fusions().linearPrelu && second?.constructor === nn.PReLU;
    const hidden = activationUnitFirstLayer(first as nn.Linear, e, q, fuse ? (second as nn.PReLU) : undefined);
    // The rest of the unit as a Sequential of its own, so that its Linear → PReLU pairs run fused.
    const tail = new nn.Sequential(...unit.layers.slice(fuse ? 2 : 1));
    const scores = reshape(tail.forward(hidden), [b, l]);
    return this.normalization === 'softmax' ? softmax(scores, seq.mask) : mul(scores, seq.mask);
  }

  /** Attention-pooled vector [batch, dim] of one sequence field against its target. */
  attend(input: TowerInput, pair: DinPair): Tensor {
    const e = input.sequence(pair.sequence).values;
    const [b, l, d] = e.shape;
    const weights = this.attentionWeights(input, pair);
    return reshape(matmul(reshape(weights, [b, 1, l]), e), [b, d]);
  }

  /**
   * Logits [batch, 1]: every field, with sequences attention-pooled, through the MLP. Fields are
   * looked up one by one, so that a sequence's sum-pooled vector, which attention replaces, is never made.
   */
  forward(input: TowerInput): Tensor {
    const pooled = new Map<string, Tensor>();
    for (const name of this.fieldNames) {
      const pair = this.pairs.find((p) => p.sequence === name);
      pooled.set(name, pair ? this.attend(input, pair) : input.field(name));
    }
    return this.net.forwardFields(pooled);
  }
}

declare module './base-model.js' {
  interface BaseModelOptionsByName {
    din: DinOptions;
  }
}

registerBaseModel('din', DinTower, {
  summary: 'Deep Interest Network: behaviour sequences pooled by attention to the candidate (Zhou et al., KDD 2018)',
  options: {
    attention: {
      help: 'the activation unit scoring each behaviour against the target',
      fields: {
        hidden: { help: 'hidden sizes of the unit', default: DIN_DEFAULTS.attention.hidden, check: checks.sizes },
        normalization: {
          help: "'none' (the paper) or 'softmax' (the authors' code)",
          default: DIN_DEFAULTS.attention.normalization,
          check: checks.oneOf(['none', 'softmax']),
        },
        activation: {
          help: "activation of the unit's hidden layers ('dice' is the paper's)",
          default: DIN_DEFAULTS.attention.activation,
          check: checks.oneOf(['prelu', 'relu', 'dice']),
        },
      },
    },
  },
  // Small units keep the suites fast; each variant takes a different path through the unit.
  variants: [
    { attention: { hidden: [3, 2] } },
    { attention: { hidden: [3, 2], normalization: 'softmax' } },
    { attention: { hidden: [3, 2], activation: 'dice' } },
  ],
});
