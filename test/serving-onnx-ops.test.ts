// Every ONNX emitter against its eager op: each op runs on traced inputs inside a one-op model,
// exported and scored by ONNX Runtime, so that an emitter no method happens to use is checked too.
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import * as core from '../core/index.js';
import { listOps, nn, Rng, Tensor } from '../core/index.js';
import type { Batch, Schema } from '../models/index.js';
import { exportOnnx, listOnnxEmitters, toOnnxFeeds, type ExportableModel } from '../models/serving/index.js';

const D = 6;
const schema: Schema = {
  fields: [
    { kind: 'numeric', name: 'x', group: 'item', dim: D },
    { kind: 'numeric', name: 'y', group: 'item', dim: D },
  ],
};

/** One op over inputs x, y ∈ [batch, 6] (y in (0, 1)), reduced to [batch] so it can be an output. */
type OpCase = (x: Tensor, y: Tensor, n: number) => Tensor;

const positive = (t: Tensor): Tensor => core.affine(core.abs(t), 1, 0.1);
const rows = (t: Tensor): Tensor =>
  core.sum(
    t,
    t.shape.slice(1).map((_, i) => i + 1),
  );

const CASES: Record<string, OpCase> = {
  add: (x, y) => rows(core.add(x, y)),
  sub: (x, y) => rows(core.sub(x, y)),
  mul: (x, y) => rows(core.mul(x, y)),
  div: (x, y) => rows(core.div(x, positive(y))),
  maximum: (x, y) => rows(core.maximum(x, y)),
  minimum: (x, y) => rows(core.minimum(x, y)),
  pow: (x, y) => rows(core.pow(positive(x), y)),
  neg: (x) => rows(core.neg(x)),
  exp: (x) => rows(core.exp(x)),
  log: (x) => rows(core.log(positive(x))),
  log1p: (_x, y) => rows(core.log1p(y)),
  sqrt: (x) => rows(core.sqrt(positive(x))),
  square: (x) => rows(core.square(x)),
  abs: (x) => rows(core.abs(x)),
  sigmoid: (x) => rows(core.sigmoid(core.affine(x, 8, 0))),
  logSigmoid: (x) => rows(core.logSigmoid(core.affine(x, 8, 0))),
  tanh: (x) => rows(core.tanh(x)),
  relu: (x) => rows(core.relu(x)),
  step: (x) => rows(core.step(x)),
  sign: (x) => rows(core.sign(x)),
  affine: (x) => rows(core.affine(x, -1.5, 0.25)),
  sum: (x) => core.sum(x, 1),
  maxLast: (x) => core.maxLast(x),
  broadcastTo: (x, _y, n) => rows(core.broadcastTo(core.reshape(x, [n, 1, D]), [n, 3, D])),
  reshape: (x, _y, n) => rows(core.reshape(x, [n, 2, 3])),
  permute: (x, _y, n) =>
    core.sum(core.mul(core.permute(core.reshape(x, [n, 2, 3]), [0, 2, 1]), core.reshape(x, [n, 3, 2])), [1, 2]),
  slice: (x, _y, n) => rows(core.slice(x, [0, 1], [n, 3])),
  concat: (x, y) => rows(core.mul(core.concat([x, y], 1), core.concat([y, x], 1))),
  matmul: (x, y, n) => rows(core.matmul(core.reshape(x, [n, 2, 3]), core.reshape(y, [n, 2, 3]), { transA: true })),
  prelu: (x) => rows(core.prelu(x, Tensor.fromArray([0.1, 0.2, 0.3, -0.5, 2, 0], [D]))),
  linearPrelu: (x) =>
    rows(
      core.linearPrelu(
        x,
        Tensor.fromArray(
          Array.from({ length: 4 * D }, (_, i) => Math.sin(i) / 2),
          [4, D],
        ),
        Tensor.fromArray([0.1, -0.2, 0.3, 0], [4]),
        Tensor.fromArray([0.25, -0.5, 2, 0], [4]),
      ),
    ),
  softmax: (x, y) => rows(core.mul(core.softmax(x, core.step(core.affine(y, 1, -0.4))), y)),
  bceWithLogits: (x, y) => rows(core.bceWithLogits(core.affine(x, 5, 0), core.step(core.affine(y, 1, -0.5)))),
  productBce: (x, y) =>
    rows(core.productBce(core.affine(x, 5, 0), core.affine(y, -6, 1), core.step(core.affine(y, 1, -0.5)))),
  gatherRows: (x) =>
    rows(
      core.mul(
        x,
        core.gatherRows(
          Tensor.fromArray(
            Array.from({ length: 4 * D }, (_, i) => i / 10),
            [4, D],
          ),
          Int32Array.of(2),
        ),
      ),
    ),
};

class OneOp extends nn.Module implements ExportableModel {
  readonly schema = schema;
  readonly method = 'one-op';
  constructor(private readonly fn: OpCase) {
    super();
  }
  forward(batch: Batch) {
    const get = (f: string): Tensor => {
      const d = batch.fields[f];
      if (d.kind !== 'numeric') throw new Error('numeric only');
      return Tensor.fromArray(d.values, [batch.size, D]);
    };
    const out = this.fn(get('x'), get('y'), batch.size);
    return { pctr: out, pcvr: out, pctcvr: out };
  }
}

function batchOf(n: number, rng: Rng): Batch {
  return {
    size: n,
    fields: {
      x: { kind: 'numeric', values: Float32Array.from({ length: n * D }, () => rng.normal()) },
      y: { kind: 'numeric', values: Float32Array.from({ length: n * D }, () => rng.uniform()) },
    },
    click: new Float32Array(n),
    conversion: new Float32Array(n),
  };
}

/**
 * Pooled lookups read a bag field's ids, which these numeric-only models lack: serving-onnx.test.ts checks
 * them (every MLP tower's input is a lookupConcat of the schema's fields).
 */
const COVERED_BY_MODEL_SUITES = ['embeddingBag', 'lookupConcat'];

describe('each ONNX emitter agrees with its op', () => {
  test('every op with an emitter has a case here', () => {
    const covered = (n: string): boolean => n in CASES || COVERED_BY_MODEL_SUITES.includes(n);
    expect(
      listOps()
        .map((op) => op.name)
        .filter((n) => !covered(n)),
    ).toEqual([]);
    expect(listOnnxEmitters().filter((n) => !covered(n))).toEqual([]);
  });

  for (const [name, fn] of Object.entries(CASES)) {
    // gatherRows runs on fixed ids here (a graph constant); over batch ids it is checked by the model suites.
    test(`${name}`, async () => {
      const model = new OneOp(fn);
      const session = await ort.InferenceSession.create(exportOnnx(model));
      const batch = batchOf(33, new Rng(name.length));
      const feeds: Record<string, ort.Tensor> = {};
      for (const [k, f] of Object.entries(toOnnxFeeds(schema, batch)))
        feeds[k] = new ort.Tensor(f.type, f.data, f.dims);
      const got = (await session.run(feeds)).pctr.data as Float32Array;
      const want = core.noGrad(() => model.forward(batch).pctr.toArray());
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++)
        expect(Math.abs(got[i] - want[i]), `${name} row ${i}`).toBeLessThanOrEqual(
          1e-4 * Math.max(1, Math.abs(want[i])),
        );
      await session.release();
    });
  }
});
