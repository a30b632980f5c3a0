/**
 * Forward inference of an ESMM-style MLP tower on any {@link AsyncBackend} (webgpu in the
 * browser, or a synchronous backend through `asyncOf`):
 *
 *   per-field embeddingBag → concat → (matmul + bias → PReLU)* → matmul + bias → sigmoid
 *
 * Weights use the core's layouts (Linear weight [out, in], y = x·Wᵀ + b; tables [rows, dim]),
 * so a trained `nn.EmbeddingBag`/`nn.mlp` exports to {@link MlpTowerWeights} by reading its
 * parameters. Only the forward runs here: the engine's autodiff is synchronous. Every call
 * goes through the backend's kernel methods, the same ones a training step would issue, so
 * an asynchronous engine (or a step recorded once and replayed as a gpu.js pipeline) could
 * extend this to training without new kernels.
 */
import type { AsyncBackend, BagMode, Storage } from '../kernels/index.js';

/** One categorical field: a pooled embedding table. */
export interface BagFieldWeights {
  /** Rows of the table. */
  rows: number;
  /** Width of each row. */
  dim: number;
  /** Row-major [rows, dim] values. */
  table: Float32Array;
  /** Pooling of the bag. */
  mode: BagMode;
}

/** One fully connected layer, optionally followed by PReLU. */
export interface DenseLayerWeights {
  inFeatures: number;
  outFeatures: number;
  /** Row-major [outFeatures, inFeatures], as the core's `Linear`. */
  weight: Float32Array;
  /** [outFeatures], or null for no bias. */
  bias: Float32Array | null;
  /** Per-channel PReLU slopes [outFeatures], or null for no activation (the logit layer). */
  preluSlope: Float32Array | null;
}

/** A tower: fields (concatenated in order) and layers (the last one produces the logit). */
export interface MlpTowerWeights {
  fields: BagFieldWeights[];
  layers: DenseLayerWeights[];
}

/** One batch: per field, the bag ids and batch + 1 offsets (and optional per-id weights). */
export interface TowerBatch {
  /** Rows in the batch. */
  size: number;
  /** Same order as {@link MlpTowerWeights.fields}. */
  fields: { ids: Int32Array; offsets: Int32Array; weights?: Float32Array | null }[];
}

/** A tower whose weights live on a backend; {@link MlpTowerSession.forward} scores batches. */
export class MlpTowerSession {
  private constructor(
    private readonly backend: AsyncBackend,
    private readonly weights: MlpTowerWeights,
    private readonly tables: Storage[],
    private readonly layers: { w: Storage; b: Storage | null; slope: Storage | null }[],
  ) {}

  /** Checks the shapes and uploads the weights once. */
  static async load(backend: AsyncBackend, weights: MlpTowerWeights): Promise<MlpTowerSession> {
    let width = weights.fields.reduce((n, f) => n + f.dim, 0);
    for (const f of weights.fields) {
      if (f.table.length !== f.rows * f.dim)
        throw new Error(`tower: table of ${f.table.length} values is not ${f.rows}×${f.dim}`);
    }
    weights.layers.forEach((l, i) => {
      if (l.inFeatures !== width) throw new Error(`tower: layer ${i} takes ${l.inFeatures} features, gets ${width}`);
      if (l.weight.length !== l.inFeatures * l.outFeatures)
        throw new Error(`tower: layer ${i} weight has ${l.weight.length} values`);
      if (l.bias && l.bias.length !== l.outFeatures)
        throw new Error(`tower: layer ${i} bias has ${l.bias.length} values`);
      if (l.preluSlope && l.preluSlope.length !== l.outFeatures)
        throw new Error(`tower: layer ${i} slope has ${l.preluSlope.length} values`);
      width = l.outFeatures;
    });
    if (width !== 1) throw new Error(`tower: the last layer must produce one logit, produces ${width}`);
    const tables: Storage[] = [];
    for (const f of weights.fields) tables.push(await backend.fromArray(f.table, 'float32'));
    const layers: { w: Storage; b: Storage | null; slope: Storage | null }[] = [];
    for (const l of weights.layers) {
      layers.push({
        w: await backend.fromArray(l.weight, 'float32'),
        b: l.bias ? await backend.fromArray(l.bias, 'float32') : null,
        slope: l.preluSlope ? await backend.fromArray(l.preluSlope, 'float32') : null,
      });
    }
    return new MlpTowerSession(backend, weights, tables, layers);
  }

  /** Probabilities sigmoid(logit), one per row. */
  async forward(batch: TowerBatch): Promise<Float32Array> {
    const b = this.backend;
    const n = batch.size;
    const { fields, layers } = this.weights;
    if (batch.fields.length !== fields.length)
      throw new Error(`tower: batch has ${batch.fields.length} fields, tower ${fields.length}`);
    const width = fields.reduce((s, f) => s + f.dim, 0);
    const temps: Storage[] = [];
    const alloc = async (size: number): Promise<Storage> => {
      const s = await b.alloc(size, 'float32');
      temps.push(s);
      return s;
    };
    try {
      // Pool each field, then place it as a column block of the [n, width] input.
      let h = await alloc(n * width);
      let col = 0;
      for (let f = 0; f < fields.length; f++) {
        const { ids, offsets, weights } = batch.fields[f];
        if (offsets.length !== n + 1) throw new Error(`tower: field ${f} has ${offsets.length - 1} bags for ${n} rows`);
        const dim = fields[f].dim;
        const pooled = await alloc(n * dim);
        await b.embeddingBag(this.tables[f], dim, ids, offsets, weights ?? null, fields[f].mode, pooled);
        await b.copyBlock(pooled, [n, dim], [0, 0], h, [n, width], [0, col], [n, dim]);
        col += dim;
      }
      for (let i = 0; i < layers.length; i++) {
        const l = layers[i];
        const s = this.layers[i];
        const y = await alloc(n * l.outFeatures);
        await b.matmul(h, s.w, y, {
          batch: 1,
          m: n,
          n: l.outFeatures,
          k: l.inFeatures,
          transA: false,
          transB: true,
          batchA: true,
          batchB: true,
        });
        if (s.b) await b.binary('add', y, [n, l.outFeatures], s.b, [l.outFeatures], y, [n, l.outFeatures]);
        if (s.slope) await b.prelu(y, s.slope, l.outFeatures, y);
        h = y;
      }
      await b.unary('sigmoid', h, h);
      return Float32Array.from(await b.read(h));
    } finally {
      for (const s of temps) await b.free(s);
    }
  }

  /** Frees the uploaded weights. */
  async dispose(): Promise<void> {
    for (const s of this.tables) await this.backend.free(s);
    for (const l of this.layers) for (const s of [l.w, l.b, l.slope]) if (s) await this.backend.free(s);
  }
}
