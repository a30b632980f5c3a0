/**
 * 35 kinds of bad batch against every method × base model: each is refused with an error naming
 * what is wrong (or, for huge but finite values, trains finitely or stops at the divergence guard),
 * never a wasm trap, a silently wrong row or a parameter changed by a refused step.
 */
import { describe, expect, it } from 'vitest';
import { optim } from '../../core/index.js';
import { listBaseModels } from '../../models/base/index.js';
import { NonFiniteStepError, trainStep } from '../../models/methods/method.js';
import { createModel } from '../../models/model-factory.js';
import { listMethods } from '../../models/methods/registry.js';
import type { Batch, FieldBatch } from '../../models/schema.js';
import { tinyBatch, tinySchema } from '../models-fixtures.js';

type Mutate = (b: Batch) => void;
const set = <K extends keyof FieldBatch>(b: Batch, field: string, key: string, value: unknown): void => {
  (b.fields[field] as unknown as Record<string, unknown>)[key as K] = value;
};
const cloneBatch = (): Batch => tinyBatch();

/** Kind → mutation, and whether the batch is still well-formed (huge but finite values) so it may train. */
const KINDS: [string, Mutate, 'refused' | 'finite-or-guard'][] = [
  ['negative size', (b) => (b.size = -1), 'refused'],
  ['fractional size', (b) => (b.size = 2.5), 'refused'],
  ['NaN size', (b) => (b.size = NaN), 'refused'],
  ['empty batch', (b) => Object.assign(b, emptied()), 'refused'],
  ['click of wrong length', (b) => (b.click = Float32Array.from([1, 0])), 'refused'],
  ['conversion of wrong length', (b) => (b.conversion = Float32Array.from([1])), 'refused'],
  ['click label 2', (b) => (b.click[1] = 2), 'refused'],
  ['click label NaN', (b) => (b.click[0] = NaN), 'refused'],
  ['conversion without a click', (b) => (b.conversion[1] = 1), 'refused'],
  ['userIds of wrong length', (b) => (b.userIds = Int32Array.from([1])), 'refused'],
  ['missing field', (b) => delete b.fields.user, 'refused'],
  ['field of the wrong kind', (b) => (b.fields.user = { kind: 'numeric', values: new Float32Array(3) }), 'refused'],
  ['categorical ids as an Array', (b) => set(b, 'user', 'ids', [0, 3, 1]), 'refused'],
  ['categorical ids as a Float32Array', (b) => set(b, 'user', 'ids', Float32Array.from([0, 2, 1])), 'refused'],
  ['categorical ids of wrong length', (b) => set(b, 'user', 'ids', Int32Array.from([0, 1])), 'refused'],
  ['categorical id negative', (b) => set(b, 'item', 'ids', Int32Array.from([2, -1, 2])), 'refused'],
  ['categorical id = vocabulary size', (b) => set(b, 'item', 'ids', Int32Array.from([2, 5, 2])), 'refused'],
  ['categorical id 2^31 - 1', (b) => set(b, 'user', 'ids', Int32Array.from([0, 2 ** 31 - 1, 1])), 'refused'],
  ['bag ids as an Array', (b) => set(b, 'history', 'ids', [1, 2, 4, 0, 2]), 'refused'],
  ['bag ids as a Float32Array', (b) => set(b, 'history', 'ids', Float32Array.from([1, 2, 4, 0, 2])), 'refused'],
  ['bag offsets as an Array', (b) => set(b, 'history', 'offsets', [0, 2, 2, 5]), 'refused'],
  ['bag offsets of wrong length', (b) => set(b, 'history', 'offsets', Int32Array.from([0, 2, 5])), 'refused'],
  ['bag offsets not starting at 0', (b) => set(b, 'history', 'offsets', Int32Array.from([1, 2, 2, 5])), 'refused'],
  ['bag offsets decreasing', (b) => set(b, 'history', 'offsets', Int32Array.from([0, 3, 2, 5])), 'refused'],
  ['bag last offset past the ids', (b) => set(b, 'history', 'offsets', Int32Array.from([0, 2, 2, 6])), 'refused'],
  ['bag id out of range', (b) => set(b, 'history', 'ids', Int32Array.from([1, 2, 9, 0, 2])), 'refused'],
  ['bag id negative', (b) => set(b, 'history', 'ids', Int32Array.from([1, -2, 4, 0, 2])), 'refused'],
  ['weighted bag without values', (b) => set(b, 'tags', 'values', undefined), 'refused'],
  ['bag values of wrong length', (b) => set(b, 'tags', 'values', Float32Array.from([1, 2])), 'refused'],
  ['bag value NaN', (b) => set(b, 'tags', 'values', Float32Array.from([1, NaN, 2])), 'refused'],
  ['bag value +Inf', (b) => set(b, 'tags', 'values', Float32Array.from([1, Infinity, 2])), 'refused'],
  ['bag values as an Array with 3.5e38', (b) => set(b, 'tags', 'values', [1, 3.5e38, 2]), 'refused'],
  ['numeric value -Inf', (b) => set(b, 'price', 'values', Float32Array.from([0.3, -Infinity, 0.7])), 'refused'],
  [
    'numeric value 1e39 (finite double, +Inf in float32)',
    (b) => set(b, 'price', 'values', [0.3, 1e39, 0.7]),
    'refused',
  ],
  [
    'bag and numeric values of 1e30',
    (b) => {
      set(b, 'tags', 'values', Float32Array.from([1e30, 1e30, 1e30]));
      set(b, 'price', 'values', Float32Array.from([1e30, -1e30, 1e30]));
    },
    'finite-or-guard',
  ],
];

function emptied(): Partial<Batch> {
  const b = tinyBatch();
  const fields: Record<string, FieldBatch> = {};
  for (const [name, f] of Object.entries(b.fields)) {
    if (f.kind === 'categorical') fields[name] = { kind: 'categorical', ids: new Int32Array(0) };
    else if (f.kind === 'numeric') fields[name] = { kind: 'numeric', values: new Float32Array(0) };
    else
      fields[name] = {
        kind: 'bag',
        ids: new Int32Array(0),
        offsets: new Int32Array(1),
        ...(f.values ? { values: new Float32Array(0) } : {}),
      };
  }
  return { size: 0, fields, click: new Float32Array(0), conversion: new Float32Array(0) };
}

const CLEAR = /^(validateBatch: |\w[\w-]*: cannot compute a loss on an empty batch|non-finite step: )/;

describe('bad batches on every method × base', () => {
  it('has 35 kinds', () => expect(KINDS).toHaveLength(35));
  const bases = listBaseModels();
  for (const method of listMethods()) {
    for (const base of bases) {
      it(`${method} × ${base}: every kind is refused by name, changing nothing`, () => {
        const schema = tinySchema();
        const model = createModel({ method, schema, base, seed: 1, tower: { hidden: [4] } } as Parameters<
          typeof createModel
        >[0]);
        const opt = new optim.Adam(model.parameters(), { lr: 0.01 });
        trainStep(model, opt, tinyBatch());
        const failures: string[] = [];
        for (const [kind, mutate, expectation] of KINDS) {
          const before = model.parameters().map((p) => Float32Array.from(p.toArray()));
          const batch = cloneBatch();
          mutate(batch);
          let error: unknown;
          try {
            trainStep(model, opt, batch);
          } catch (e) {
            error = e;
          }
          const after = model.parameters().map((p) => Float32Array.from(p.toArray()));
          const changed = after.some((w, i) => w.some((v, j) => !Object.is(v, before[i][j])));
          const finite = after.every((w) => w.every(Number.isFinite));
          if (expectation === 'refused') {
            if (!(error instanceof Error) || !CLEAR.test(error.message))
              failures.push(`${kind}: ${error instanceof Error ? `${error.name}: ${error.message}` : 'accepted'}`);
            else if (changed) failures.push(`${kind}: refused but parameters changed`);
            let predictError: unknown;
            try {
              model.predict(batch);
            } catch (e) {
              predictError = e;
            }
            if (
              kind !== 'empty batch' &&
              !(predictError instanceof Error && /^validateBatch: /.test(predictError.message))
            )
              failures.push(`${kind}: predict ${predictError instanceof Error ? predictError.message : 'accepted it'}`);
          } else if (error !== undefined) {
            if (!(error instanceof NonFiniteStepError)) failures.push(`${kind}: ${String(error)}`);
            else if (changed) failures.push(`${kind}: guard fired but parameters changed`);
          } else if (!finite) failures.push(`${kind}: accepted and parameters became non-finite`);
        }
        expect(failures).toEqual([]);
      });
    }
  }
});
