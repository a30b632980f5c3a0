/**
 * Wide & Deep (Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016) as a
 * fourth base model, in one file: importing it registers `wide-and-deep`, after which every
 * method can use it, e.g. `createModel({ method: 'esmm', base: 'wide-and-deep', schema })`.
 *
 * logit = wide + deep, where
 *   wide = bias + Σ_fields w[id] (1-wide tables of its own) + Σ_crosses w[hash(a, b)]
 *   deep = the tower MLP over the shared field embeddings.
 */
import { add, gatherRows, init, nn, Rng, type Tensor } from '../../core/index.js';
import {
  BaseModel,
  checks,
  FieldsMlp,
  registerBaseModel,
  type BaseModelOptions,
  type InputDims,
  type Schema,
  type TowerInput,
} from '../../models/index.js';

/** Options of the Wide & Deep tower. */
export interface WideAndDeepOptions extends BaseModelOptions {
  /** Pairs of categorical fields whose crossed ids feed the wide part (e.g. [['user', 'item']]). */
  crosses?: [string, string][];
  /** Hash buckets of each cross. */
  crossBuckets?: number;
}

/** Defaults of the Wide & Deep tower: no crosses, 1000 buckets per cross. */
export const WIDE_AND_DEEP_DEFAULTS = { crosses: [] as [string, string][], crossBuckets: 1000 };

/** Wide (memorisation) plus deep (generalisation) tower. */
export class WideAndDeepTower extends BaseModel {
  /** Field name → wide weights [vocab, 1]. */
  readonly wide: Map<string, Tensor>;
  /** One wide table [buckets, 1] per cross. */
  readonly crossTables: Tensor[];
  readonly bias: Tensor;
  readonly deep: FieldsMlp;
  private readonly crosses: [string, string][];
  private readonly buckets: number;

  constructor(schema: Schema, options: WideAndDeepOptions, inputDims: InputDims) {
    super(options);
    const rng = options.rng ?? new Rng(0);
    const dtype = options.dtype;
    this.wide = new Map();
    // The wide part sees the categorical fields only; bags and numerics reach it through the deep part.
    for (const f of schema.fields) {
      if (f.kind === 'categorical')
        this.wide.set(f.name, nn.parameter(init.normal([f.vocabSize, 1], 0, 0.01, { rng, dtype })));
    }
    this.crosses = options.crosses ?? WIDE_AND_DEEP_DEFAULTS.crosses;
    for (const [a, b] of this.crosses) {
      if (!this.wide.has(a) || !this.wide.has(b))
        throw new Error(`wide-and-deep: cross [${a}, ${b}] needs two categorical fields`);
    }
    this.buckets = options.crossBuckets ?? WIDE_AND_DEEP_DEFAULTS.crossBuckets;
    this.crossTables = this.crosses.map(() => nn.parameter(init.normal([this.buckets, 1], 0, 0.01, { rng, dtype })));
    this.bias = nn.parameter(init.full([1], 0, { dtype }));
    this.deep = new FieldsMlp(inputDims, { ...options, rng });
  }

  forward(input: TowerInput): Tensor {
    let logit = add(this.deep.forwardFields(input.pooled), this.bias);
    for (const [name, table] of this.wide) logit = add(logit, gatherRows(table, this.ids(input, name)));
    this.crosses.forEach(([a, b], k) => {
      const ia = this.ids(input, a);
      const ib = this.ids(input, b);
      // A multiplicative hash keeps crossed ids spread over the buckets without a vocabulary of pairs.
      const crossed = Int32Array.from(
        ia,
        (x, r) => ((Math.imul(x, 0x9e3779b1) ^ Math.imul(ib[r] + 1, 0x85ebca6b)) >>> 0) % this.buckets,
      );
      logit = add(logit, gatherRows(this.crossTables[k], crossed));
    });
    return logit;
  }

  private ids(input: TowerInput, field: string): Int32Array {
    const data = input.batch.fields[field];
    if (data?.kind !== 'categorical')
      throw new Error(`wide-and-deep: field '${field}' is not categorical in the batch`);
    return data.ids;
  }
}

// The options type joins the others, so `createModel({ base: 'wide-and-deep', tower: { crosses } })` type-checks.
declare module '../../models/base/base-model.js' {
  interface BaseModelOptionsByName {
    'wide-and-deep': WideAndDeepOptions;
  }
}

registerBaseModel('wide-and-deep', WideAndDeepTower, {
  summary: 'a wide linear part over ids and hashed crosses plus the deep MLP (Cheng et al., DLRS 2016)',
  options: {
    crosses: { help: 'pairs of categorical fields crossed in the wide part', check: checks.stringPairs },
    crossBuckets: {
      help: 'hash buckets of each cross',
      default: WIDE_AND_DEEP_DEFAULTS.crossBuckets,
      check: checks.integer(1),
    },
  },
  variants: [{ crosses: [['user', 'item']], crossBuckets: 7 }],
  replace: true,
});
