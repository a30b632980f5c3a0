/**
 * DeepFM (Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
 * Prediction", IJCAI 2017): logit = bias + first-order term + FM second-order term + MLP.
 * The first-order term reads its own 1-wide tables (one per shared table name, as the
 * embeddings do); the FM term 0.5·((Σv)² − Σv²) and the MLP share the field embeddings.
 */
import {
  add,
  affine,
  embeddingBag,
  gatherRows,
  init,
  matmul,
  nn,
  Rng,
  square,
  sub,
  sum,
  Tensor,
} from '../../core/index.js';
import { sparseFields, type TowerInput } from '../embedding.js';
import { tableOf, tableSizes, type Schema } from '../schema.js';
import {
  BaseModel,
  concatFields,
  registerBaseModel,
  totalWidth,
  FieldsMlp,
  type BaseModelOptions,
  type InputDims,
} from './base-model.js';

/** DeepFM tower. */
export class DeepFmTower extends BaseModel {
  /** Table name → first-order weights [rows, 1]. */
  readonly linearTables: Map<string, Tensor>;
  /** Weights of the numeric fields' values in the first-order term, [Σ numeric dims, 1] (absent without numeric fields). */
  readonly numericWeight: Tensor | null;
  readonly bias: Tensor;
  readonly net: FieldsMlp;
  private readonly schema: Schema;
  private readonly fmFields: string[];
  private readonly numericFields: string[];

  constructor(schema: Schema, options: BaseModelOptions, inputDims: InputDims) {
    super(options);
    this.schema = schema;
    const rng = options.rng ?? new Rng(0);
    const dtype = options.dtype;
    this.fmFields = sparseFields(schema).map((f) => f.name);
    const widths = new Set(this.fmFields.map((f) => inputDims.get(f)));
    if (widths.size > 1)
      throw new Error(`DeepFM: the FM term needs one embedding dim across fields, got ${[...widths].join(', ')}`);
    this.linearTables = new Map();
    for (const [table, rows] of tableSizes(schema)) {
      this.linearTables.set(table, nn.parameter(init.normal([rows, 1], 0, 0.01, { rng, dtype })));
    }
    this.numericFields = schema.fields.filter((f) => f.kind === 'numeric').map((f) => f.name);
    const numericWidth = totalWidth(inputDims, this.numericFields);
    this.numericWeight =
      numericWidth > 0 ? nn.parameter(init.normal([numericWidth, 1], 0, 0.01, { rng, dtype })) : null;
    this.bias = nn.parameter(init.full([1], 0, { dtype }));
    this.net = new FieldsMlp(inputDims, { ...options, rng });
  }

  /** Bias plus the first-order term, [batch, 1]. */
  firstOrder(input: TowerInput): Tensor {
    let out: Tensor = this.bias;
    for (const field of sparseFields(this.schema)) {
      const table = this.linearTables.get(tableOf(field))!;
      const data = input.batch.fields[field.name];
      let term: Tensor;
      if (data.kind === 'categorical') term = gatherRows(table, data.ids);
      else if (data.kind === 'bag') {
        const weights = field.kind === 'bag' && field.weighted ? (data.values ?? null) : null;
        term = embeddingBag(table, {
          ids: data.ids,
          offsets: data.offsets,
          weights,
          mode: field.kind === 'bag' ? (field.pooling ?? 'sum') : 'sum',
        });
      } else throw new Error(`DeepFM: field '${field.name}' is numeric in the batch but not in the schema`);
      out = add(out, term);
    }
    if (this.numericWeight) out = add(out, matmul(concatFields(input.pooled, this.numericFields), this.numericWeight));
    return out;
  }

  /** FM second-order term 0.5·Σ_d((Σ_f v_fd)² − Σ_f v_fd²), [batch, 1]. */
  secondOrder(input: TowerInput): Tensor {
    if (this.fmFields.length === 0)
      return Tensor.zeros([input.size, 1], { dtype: input.dtype, backend: input.backend });
    const fields = this.fmFields.map((f) => input.pooled.get(f)!);
    const sumV = fields.reduce((a, b) => add(a, b));
    const sumSq = fields.map((t) => square(t)).reduce((a, b) => add(a, b));
    return affine(sum(sub(square(sumV), sumSq), 1, true), 0.5, 0);
  }

  /** Logits [batch, 1]. */
  forward(input: TowerInput): Tensor {
    return add(add(this.firstOrder(input), this.secondOrder(input)), this.net.forwardFields(input.pooled));
  }
}

declare module './base-model.js' {
  interface BaseModelOptionsByName {
    deepfm: BaseModelOptions;
  }
}

registerBaseModel('deepfm', DeepFmTower, {
  summary: 'first-order term + FM second-order term + MLP over shared embeddings (Guo et al., IJCAI 2017)',
  options: {},
});
