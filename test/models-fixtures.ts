/**
 * Shared fixtures of the model-zoo tests: a small synthetic click/conversion task with a
 * hidden logistic rule, a rank-based AUC, and tiny schemas for gradient checks.
 */
import { Rng } from '../core/index.js';
import type { Batch, FieldBatch, Schema } from '../models/index.js';
import type { FunnelSimulator } from '../models/data/simulator.js';

/** A schema with every field kind: two categoricals, a target, a sequence sharing its table, a weighted bag and a numeric. */
export function tinySchema(dim = 2): Schema {
  return {
    fields: [
      { kind: 'categorical', name: 'user', vocabSize: 4, embeddingDim: dim, group: 'user' },
      {
        kind: 'categorical',
        name: 'item',
        vocabSize: 5,
        embeddingDim: dim,
        group: 'item',
        table: 'item',
        isTarget: true,
      },
      { kind: 'bag', name: 'history', vocabSize: 5, embeddingDim: dim, group: 'user', table: 'item', isSequence: true },
      { kind: 'bag', name: 'tags', vocabSize: 3, embeddingDim: dim, group: 'item', weighted: true, pooling: 'mean' },
      { kind: 'numeric', name: 'price', group: 'item' },
    ],
  };
}

/** A 3-row batch of {@link tinySchema}: bags of lengths 2, 0 and 3, one click converting. */
export function tinyBatch(): Batch {
  return {
    size: 3,
    fields: {
      user: { kind: 'categorical', ids: Int32Array.from([0, 3, 1]) },
      item: { kind: 'categorical', ids: Int32Array.from([2, 4, 2]) },
      history: { kind: 'bag', ids: Int32Array.from([1, 2, 4, 0, 2]), offsets: Int32Array.from([0, 2, 2, 5]) },
      tags: {
        kind: 'bag',
        ids: Int32Array.from([0, 2, 1]),
        offsets: Int32Array.from([0, 1, 3, 3]),
        values: Float32Array.from([1, 0.5, 2]),
      },
      price: { kind: 'numeric', values: Float32Array.from([0.3, -1.2, 0.7]) },
    },
    click: Float32Array.from([1, 0, 1]),
    conversion: Float32Array.from([1, 0, 0]),
  };
}

/** Area under the ROC curve by ranks (ties get their average rank). */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    for (let k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i] === 1) {
      pos++;
      rankSum += ranks[i];
    }
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** The synthetic task: a schema, train and test batches, and the hidden rule's own AUCs (the ceiling). */
export interface SyntheticTask {
  schema: Schema;
  train: Batch;
  test: Batch;
  /** AUCs of the true probabilities on the test rows: CVR over clicked rows, CTCVR over all. */
  oracle: { ctr: number; cvr: number; ctcvr: number };
}

const USERS = 40;
const ITEMS = 60;
const CATEGORIES = 6;

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Solve for the bias that makes the mean of sigmoid(bias + x) equal `rate`. */
function calibrate(logits: Float64Array, rate: number): number {
  let lo = -20;
  let hi = 20;
  for (let it = 0; it < 60; it++) {
    const mid = (lo + hi) / 2;
    let m = 0;
    for (const x of logits) m += sigmoid(mid + x);
    if (m / logits.length < rate) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Impressions with users, items, the item's category, a behaviour history of 0-5 items and a
 * price. Clicks follow a logistic rule in user and item effects plus an interest bonus when the
 * history holds an item of the candidate's category (~20% clicked); conversions among clicks
 * follow a different rule (~30%).
 */
export function syntheticTask(seed = 7, trainRows = 6000, testRows = 3000, dim = 8): SyntheticTask {
  const rng = new Rng(seed);
  const normals = (n: number, s: number): Float64Array => Float64Array.from({ length: n }, () => s * rng.normal());
  const uClick = normals(USERS, 1);
  const iClick = normals(ITEMS, 1);
  const uConv = normals(USERS, 1);
  const iConv = normals(ITEMS, 1.2);
  const categoryOf = Int32Array.from({ length: ITEMS }, () => rng.int(CATEGORIES));
  const schema: Schema = {
    fields: [
      { kind: 'categorical', name: 'user', vocabSize: USERS, embeddingDim: dim, group: 'user' },
      {
        kind: 'categorical',
        name: 'item',
        vocabSize: ITEMS,
        embeddingDim: dim,
        group: 'item',
        table: 'item',
        isTarget: true,
      },
      { kind: 'categorical', name: 'category', vocabSize: CATEGORIES, embeddingDim: dim, group: 'item' },
      {
        kind: 'bag',
        name: 'history',
        vocabSize: ITEMS,
        embeddingDim: dim,
        group: 'user',
        table: 'item',
        isSequence: true,
      },
      { kind: 'numeric', name: 'price', group: 'item' },
    ],
  };
  const n = trainRows + testRows;
  const user = new Int32Array(n);
  const item = new Int32Array(n);
  const category = new Int32Array(n);
  const price = new Float32Array(n);
  const offsets = new Int32Array(n + 1);
  const history: number[] = [];
  const clickLogit = new Float64Array(n);
  const convLogit = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    user[r] = rng.int(USERS);
    item[r] = rng.int(ITEMS);
    category[r] = categoryOf[item[r]];
    price[r] = rng.normal();
    const len = rng.int(6);
    let interest = 0;
    for (let j = 0; j < len; j++) {
      const h = rng.int(ITEMS);
      history.push(h);
      if (categoryOf[h] === category[r]) interest = 1;
    }
    offsets[r + 1] = history.length;
    clickLogit[r] = 1.2 * (uClick[user[r]] + iClick[item[r]]) + 1.0 * interest - 0.3 * price[r];
    convLogit[r] = 1.5 * (uConv[user[r]] + iConv[item[r]]) - 0.5 * price[r];
  }
  const bc = calibrate(clickLogit, 0.2);
  const bv = calibrate(convLogit, 0.3);
  const click = new Float32Array(n);
  const conversion = new Float32Array(n);
  const pClick = new Float64Array(n);
  const pConv = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    pClick[r] = sigmoid(bc + clickLogit[r]);
    pConv[r] = sigmoid(bv + convLogit[r]);
    click[r] = rng.bernoulli(pClick[r]) ? 1 : 0;
    conversion[r] = click[r] === 1 && rng.bernoulli(pConv[r]) ? 1 : 0;
  }
  const all: Batch = {
    size: n,
    fields: {
      user: { kind: 'categorical', ids: user },
      item: { kind: 'categorical', ids: item },
      category: { kind: 'categorical', ids: category },
      history: { kind: 'bag', ids: Int32Array.from(history), offsets },
      price: { kind: 'numeric', values: price },
    },
    click,
    conversion,
  };
  const train = sliceBatch(all, 0, trainRows);
  const test = sliceBatch(all, trainRows, n);
  const clicked = range(trainRows, n).filter((r) => click[r] === 1);
  const oracle = {
    ctr: auc(
      range(trainRows, n).map((r) => pClick[r]),
      range(trainRows, n).map((r) => click[r]),
    ),
    cvr: auc(
      clicked.map((r) => pConv[r]),
      clicked.map((r) => conversion[r]),
    ),
    ctcvr: auc(
      range(trainRows, n).map((r) => pClick[r] * pConv[r]),
      range(trainRows, n).map((r) => conversion[r]),
    ),
  };
  return { schema, train, test, oracle };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Rows [from, to) of a batch. */
export function sliceBatch(batch: Batch, from: number, to: number): Batch {
  const fields: Record<string, FieldBatch> = {};
  for (const [name, f] of Object.entries(batch.fields)) {
    if (f.kind === 'categorical') fields[name] = { kind: 'categorical', ids: f.ids.slice(from, to) };
    else if (f.kind === 'numeric') {
      const dim = f.values.length / batch.size;
      fields[name] = { kind: 'numeric', values: f.values.slice(from * dim, to * dim) };
    } else {
      const start = f.offsets[from];
      const offsets = Int32Array.from(f.offsets.subarray(from, to + 1), (o) => o - start);
      const ids = f.ids.slice(start, f.offsets[to]);
      fields[name] = f.values
        ? { kind: 'bag', ids, offsets, values: f.values.slice(start, f.offsets[to]) }
        : { kind: 'bag', ids, offsets };
    }
  }
  return { size: to - from, fields, click: batch.click.slice(from, to), conversion: batch.conversion.slice(from, to) };
}

/** Consecutive mini-batches of a batch (the last one may be shorter). */
export function miniBatches(batch: Batch, size: number): Batch[] {
  const out: Batch[] = [];
  for (let from = 0; from < batch.size; from += size)
    out.push(sliceBatch(batch, from, Math.min(batch.size, from + size)));
  return out;
}

/** A small simulated world (100 users, 150 items) for tests that train on the simulator's own batches. */
export const SMALL_WORLD = {
  seed: 3,
  numUsers: 100,
  numItems: 150,
  numCategories: 20,
  numShops: 40,
  numBrands: 30,
} as const;

/** `count` shuffled batches of `size` rows from `sim`: every bag field has another total number of ids in each. */
export function simulatorBatches(sim: FunnelSimulator, count: number, size = 64): Batch[] {
  return [...sim.batches(sim.generate(count * size), { batchSize: size, shuffle: true, seed: 2 })];
}
