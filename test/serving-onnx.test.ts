// ONNX export: every method × every registered base model, scored by ONNX Runtime and by esmm-ts.
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, test } from 'vitest';
import { listOps, Rng } from '../core/index.js';
import '../docs/examples/wide-and-deep.js';
import {
  createModel,
  FunnelSimulator,
  listBaseModels,
  listMethods,
  type Batch,
  type CvrMethod,
  type FieldBatch,
  type Schema,
} from '../models/index.js';
import {
  exportOnnx,
  listOnnxEmitters,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  readOnnxMetadata,
  toOnnxFeeds,
} from '../models/serving/index.js';
import { ProtoWriter, readFields } from '../models/serving/protobuf.js';
import { tinySchema } from './models-fixtures.js';

const TOLERANCE = 1e-5;
const BUILT_IN = ['mlp', 'din', 'deepfm'];

function towerOptions(base: string): Record<string, unknown> {
  return base === 'din' ? { hidden: [8, 4], attention: { hidden: [6] } } : { hidden: [8, 4] };
}

function build(method: string, base: string, schema: Schema, seed = 3): CvrMethod {
  return createModel({ method, schema, base, tower: towerOptions(base), seed, embeddingStd: 0.1 } as never);
}

async function runOrt(
  session: ort.InferenceSession,
  schema: Schema,
  batch: Batch,
): Promise<Record<string, Float32Array>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, f] of Object.entries(toOnnxFeeds(schema, batch)))
    feeds[name] = new ort.Tensor(f.type, f.data, f.dims);
  const out = await session.run(feeds);
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** The same rows with every bag emptied. */
function withEmptyBags(batch: Batch): Batch {
  const fields: Record<string, FieldBatch> = {};
  for (const [name, f] of Object.entries(batch.fields)) {
    fields[name] =
      f.kind === 'bag'
        ? {
            kind: 'bag',
            ids: new Int32Array(0),
            offsets: new Int32Array(batch.size + 1),
            ...(f.values ? { values: new Float32Array(0) } : {}),
          }
        : f;
  }
  return { ...batch, fields };
}

function firstRows(batch: Batch, n: number): Batch {
  const fields: Record<string, FieldBatch> = {};
  for (const [name, f] of Object.entries(batch.fields)) {
    if (f.kind === 'categorical') fields[name] = { kind: 'categorical', ids: f.ids.slice(0, n) };
    else if (f.kind === 'numeric')
      fields[name] = { kind: 'numeric', values: f.values.slice(0, (n * f.values.length) / batch.size) };
    else {
      const end = f.offsets[n];
      fields[name] = {
        kind: 'bag',
        ids: f.ids.slice(0, end),
        offsets: f.offsets.slice(0, n + 1),
        ...(f.values ? { values: f.values.slice(0, end) } : {}),
      };
    }
  }
  return { size: n, fields, click: batch.click.slice(0, n), conversion: batch.conversion.slice(0, n) };
}

/** Check ONNX Runtime's outputs against the eager model on one batch: probabilities, and each logit against its probability. */
async function expectParity(
  model: CvrMethod,
  session: ort.InferenceSession,
  batch: Batch,
  label: string,
): Promise<void> {
  const eager = model.predict(batch);
  const out = await runOrt(session, model.schema, batch);
  for (const key of ['pctr', 'pcvr', 'pctcvr'] as const) {
    const d = maxDiff(out[key], eager[key]);
    expect(d, `${label}: ${key} differs by ${d}`).toBeLessThanOrEqual(TOLERANCE);
  }
  for (const [logit, prob] of [
    ['ctr_logit', 'pctr'],
    ['cvr_logit', 'pcvr'],
    ['ctcvr_logit', 'pctcvr'],
  ] as const) {
    if (!out[logit]) continue;
    const sig = Float32Array.from(out[logit], (x) => 1 / (1 + Math.exp(-x)));
    expect(maxDiff(sig, out[prob]), `${label}: sigmoid(${logit}) vs ${prob}`).toBeLessThanOrEqual(1e-6);
  }
}

describe('ONNX export, checked by ONNX Runtime', () => {
  const sim = new FunnelSimulator({
    seed: 7,
    numUsers: 300,
    numItems: 600,
    numCategories: 40,
    numShops: 80,
    numBrands: 60,
    meanHistory: 6,
  });
  let rows2000: Batch;
  let rows4096: Batch;
  beforeAll(() => {
    rows2000 = sim.batch(sim.generate(2000));
    rows4096 = sim.batch(sim.generate(4096));
  });

  test('the base models under test include the built-in ones and the docs example', () => {
    for (const b of [...BUILT_IN, 'wide-and-deep']) expect(listBaseModels()).toContain(b);
  });

  for (const base of listBaseModels()) {
    for (const method of listMethods()) {
      test(`${method} × ${base}: 2,000 rows, a batch of 1, 4,096 rows and empty bags agree to 1e-5`, async () => {
        const model = build(method, base, sim.schema);
        const bytes = exportOnnx(model);
        const session = await ort.InferenceSession.create(bytes);
        try {
          await expectParity(model, session, rows2000, '2,000 rows');
          await expectParity(model, session, firstRows(rows2000, 1), 'batch of 1');
          await expectParity(model, session, rows4096, '4,096 rows');
          await expectParity(model, session, withEmptyBags(firstRows(rows2000, 300)), 'empty bags');
        } finally {
          await session.release();
        }
      });
    }
  }

  test('numeric fields, mean-pooled weighted bags and a sequence (the tiny schema) export for every method and base', async () => {
    const schema = tinySchema(3);
    const rng = new Rng(11);
    const n = 65;
    const offsets = (maxLen: number): Int32Array => {
      const o = new Int32Array(n + 1);
      for (let r = 0; r < n; r++) o[r + 1] = o[r] + (r % 5 === 1 ? 0 : rng.int(maxLen + 1));
      return o;
    };
    const history = offsets(6);
    const tags = offsets(4);
    const batch: Batch = {
      size: n,
      fields: {
        user: { kind: 'categorical', ids: Int32Array.from({ length: n }, () => rng.int(4)) },
        item: { kind: 'categorical', ids: Int32Array.from({ length: n }, () => rng.int(5)) },
        history: { kind: 'bag', ids: Int32Array.from({ length: history[n] }, () => rng.int(5)), offsets: history },
        tags: {
          kind: 'bag',
          ids: Int32Array.from({ length: tags[n] }, () => rng.int(3)),
          offsets: tags,
          values: Float32Array.from({ length: tags[n] }, () => rng.uniformIn(-1, 2)),
        },
        price: { kind: 'numeric', values: Float32Array.from({ length: n }, () => rng.normal()) },
      },
      click: new Float32Array(n),
      conversion: new Float32Array(n),
    };
    for (const base of listBaseModels()) {
      for (const method of listMethods()) {
        const model = build(method, base, schema, 5);
        const session = await ort.InferenceSession.create(exportOnnx(model));
        await expectParity(model, session, batch, `${method} × ${base} on the tiny schema`);
        await session.release();
      }
    }
  });

  test('every registered op has an ONNX emitter', () => {
    const missing = listOps()
      .map((op) => op.name)
      .filter((name) => !listOnnxEmitters().includes(name));
    expect(missing, 'ops without an emitter in models/serving/onnx-emit.ts').toEqual([]);
  });

  test('metadata_props carry the schema, method, base model, vocabulary hash and training commit', () => {
    const model = build('esmm', 'din', sim.schema);
    const vocabulary = { version: 1, tables: { '101': [5, 9] } };
    const bytes = exportOnnx(model, { vocabulary, trainingCommit: 'abc123' });
    const meta = readOnnxMetadata(bytes);
    expect(JSON.parse(meta.schema)).toEqual(sim.schema);
    expect(meta.method).toBe('esmm');
    expect(meta.base_model).toBe('din');
    expect(meta.training_commit).toBe('abc123');
    expect(meta.vocabulary_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(meta.vocabulary)).toEqual(vocabulary);
    expect(readOnnxMetadata(exportOnnx(model)).vocabulary_sha256).toBe('none');
  });

  test('the graph declares the documented inputs, a dynamic batch, and a current opset', async () => {
    const model = build('esmm', 'mlp', sim.schema);
    const bytes = exportOnnx(model);
    const session = await ort.InferenceSession.create(bytes);
    const expected: string[] = [];
    for (const f of sim.schema.fields) {
      expected.push(f.name);
      if (f.kind === 'bag') expected.push(`${f.name}_lengths`, ...(f.weighted ? [`${f.name}_values`] : []));
    }
    expect([...session.inputNames].sort()).toEqual(expected.sort());
    expect([...session.outputNames].sort()).toEqual(['ctr_logit', 'cvr_logit', 'pctcvr', 'pctr', 'pcvr']);
    await session.release();
    // ModelProto field 1 is the IR version, field 8 the opset import.
    const fields = [...readFields(bytes)];
    expect(Number(fields.find((f) => f.field === 1)?.int)).toBe(ONNX_IR_VERSION);
    const opset = [...readFields(fields.find((f) => f.field === 8)!.bytes!)].find((f) => f.field === 2);
    expect(Number(opset?.int)).toBe(ONNX_OPSET);
  });

  test('a host array computed outside the traced inputs is refused by name', () => {
    const schema: Schema = {
      fields: [
        { kind: 'categorical', name: 'user', vocabSize: 9, group: 'user', embeddingDim: 4 },
        { kind: 'categorical', name: 'item', vocabSize: 9, group: 'item', embeddingDim: 4 },
      ],
    };
    const model = createModel({
      method: 'esmm',
      schema,
      base: 'wide-and-deep',
      tower: { hidden: [4], crosses: [['user', 'item']], crossBuckets: 5 },
    });
    expect(() => exportOnnx(model)).toThrow(/gatherRows.*host array computed from the batch outside the traced inputs/);
    expect(() => exportOnnx(model, { nope: 1 } as never)).toThrow(/unknown option 'nope'/);
  });
});

describe('protobuf writer', () => {
  test('varints, negative int64s, strings and nested messages read back', () => {
    const w = new ProtoWriter()
      .int(1, 300)
      .int(2, -1)
      .string(3, 'héllo')
      .message(4, (m) => m.int(1, 2 ** 40).packedInts(2, [1, 128, -2]));
    const fields = [...readFields(w.finish())];
    expect(fields.map((f) => f.field)).toEqual([1, 2, 3, 4]);
    expect(fields[0].int).toBe(300n);
    expect(BigInt.asIntN(64, fields[1].int!)).toBe(-1n);
    expect(new TextDecoder().decode(fields[2].bytes)).toBe('héllo');
    const inner = [...readFields(fields[3].bytes!)];
    expect(inner[0].int).toBe(2n ** 40n);
    expect(() => [...readFields(Uint8Array.of(0x0a, 0x05, 1))]).toThrow(/runs past the end/);
    expect(() => [...readFields(Uint8Array.of(0x08, 0x80))]).toThrow(/truncated varint/);
  });
});
