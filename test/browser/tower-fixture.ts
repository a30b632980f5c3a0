/**
 * A small ESMM-style tower trained with the core engine on the reference backend, exported
 * as plain arrays for the browser: weights, one scoring batch, and the core's own
 * probabilities on that batch (the forward the webgpu path must reproduce).
 */
import { bceWithLogits, concat, mean, nn, optim, reshape, Rng, sigmoid, Tensor } from '../../core/index.js';
import { ReferenceBackend } from '../../kernels/reference.js';
import { setBackend } from '../../kernels/index.js';

/** JSON-safe tower weights and batch (typed arrays as number[] for page.evaluate). */
export interface TowerFixture {
  fields: { rows: number; dim: number; table: number[]; mode: 'sum' | 'mean' | 'sqrtn' }[];
  layers: {
    inFeatures: number;
    outFeatures: number;
    weight: number[];
    bias: number[] | null;
    preluSlope: number[] | null;
  }[];
  batch: { size: number; fields: { ids: number[]; offsets: number[] }[] };
  /** sigmoid(logit) of the core model on `batch`. */
  expected: number[];
  /** Training loss before and after, to show the weights moved. */
  loss: [number, number];
}

const FIELDS = [
  { rows: 40, dim: 6, mode: 'sum' as const },
  { rows: 25, dim: 4, mode: 'mean' as const },
];

/** Deterministic bags: 0..3 ids per row per field. */
function bags(rng: Rng, size: number, rows: number): { ids: Int32Array; offsets: Int32Array } {
  const offsets = [0];
  const ids: number[] = [];
  for (let r = 0; r < size; r++) {
    const count = Math.floor(rng.uniform() * 4);
    for (let j = 0; j < count; j++) ids.push(Math.floor(rng.uniform() * rows));
    offsets.push(ids.length);
  }
  return { ids: Int32Array.from(ids), offsets: Int32Array.from(offsets) };
}

/** Trains the tower for a few Adam steps and exports it. */
export function trainTowerFixture(steps = 25, batchSize = 64): TowerFixture {
  setBackend(new ReferenceBackend());
  const rng = new Rng(7);
  const tables = FIELDS.map((f) => new nn.EmbeddingBag(f.rows, f.dim, f.mode, { rng: rng.fork(), std: 0.3 }));
  const width = FIELDS.reduce((n, f) => n + f.dim, 0);
  const net = nn.mlp(width, [16, 8], { activation: 'prelu', outFeatures: 1, rng: rng.fork() });
  const params = [...tables.flatMap((t) => t.parameters()), ...net.parameters()];
  const opt = new optim.Adam(params, { lr: 0.02 });
  const forward = (batch: { ids: Int32Array; offsets: Int32Array }[], size: number): Tensor =>
    reshape(
      net.forward(
        concat(
          tables.map((t, i) => t.forward(batch[i])),
          1,
        ),
      ),
      [size],
    );
  // A learnable rule: click when field 0's first id is even.
  const data = (size: number) => {
    const batch = FIELDS.map((f) => bags(rng, size, f.rows));
    const labels = Array.from({ length: size }, (_, r) => {
      const { ids, offsets } = batch[0];
      return offsets[r + 1] > offsets[r] && ids[offsets[r]] % 2 === 0 ? 1 : 0;
    });
    return { batch, labels: Tensor.fromArray(labels, [size]) };
  };
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { batch, labels } = data(batchSize);
    opt.zeroGrad();
    const loss = mean(bceWithLogits(forward(batch, batchSize), labels));
    losses.push(loss.toArray()[0]);
    loss.backward();
    opt.step();
  }
  const scoreSize = 37;
  const score = data(scoreSize).batch;
  const expected = Array.from(sigmoid(forward(score, scoreSize)).toArray());
  const layers: TowerFixture['layers'] = [];
  for (let i = 0; i < net.layers.length; i++) {
    const l = net.layers[i];
    if (!(l instanceof nn.Linear)) continue;
    const next = net.layers[i + 1];
    layers.push({
      inFeatures: l.inFeatures,
      outFeatures: l.outFeatures,
      weight: Array.from(l.weight.toArray()),
      bias: l.bias ? Array.from(l.bias.toArray()) : null,
      preluSlope: next instanceof nn.PReLU ? Array.from(next.weight.toArray()) : null,
    });
  }
  return {
    fields: FIELDS.map((f, i) => ({ ...f, table: Array.from(tables[i].weight.toArray()) })),
    layers,
    batch: { size: scoreSize, fields: score.map((b) => ({ ids: Array.from(b.ids), offsets: Array.from(b.offsets) })) },
    expected,
    loss: [losses[0], losses[losses.length - 1]],
  };
}
