/** validateBatch: every malformed batch fails with an error naming the field (or label) and the row. */
import { describe, expect, it } from 'vitest';
import { createModel, validateBatch, type Batch } from '../models/index.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';

function expectInvalid(mutate: (b: Batch) => void, message: RegExp): void {
  const batch = tinyBatch();
  mutate(batch);
  expect(() => validateBatch(tinySchema(), batch)).toThrow(message);
}

function bag(b: Batch, name: string): Extract<Batch['fields'][string], { kind: 'bag' }> {
  const f = b.fields[name];
  if (f.kind !== 'bag') throw new Error('not a bag');
  return f;
}

describe('validateBatch', () => {
  it('accepts a sound batch', () => {
    expect(() => validateBatch(tinySchema(), tinyBatch())).not.toThrow();
  });

  it('rejects a categorical id outside the vocabulary', () => {
    expectInvalid(
      (b) => (b.fields.user = { kind: 'categorical', ids: Int32Array.from([0, 4, 1]) }),
      /field 'user' row 1: id 4 is outside the vocabulary \[0, 4\)/,
    );
    expectInvalid(
      (b) => (b.fields.item = { kind: 'categorical', ids: Int32Array.from([0, 1, -1]) }),
      /field 'item' row 2: id -1/,
    );
  });

  it('rejects a bag id outside the vocabulary', () => {
    expectInvalid(
      (b) => (bag(b, 'history').ids[3] = 9),
      /field 'history' row 2: id 9 \(position 1 of the bag\) is outside/,
    );
  });

  it('rejects offsets that are not monotone', () => {
    expectInvalid(
      (b) => (bag(b, 'history').offsets[1] = 3),
      /field 'history' row 1: offsets are not monotone \(3 > 2\)/,
    );
  });

  it('rejects offsets of the wrong length or ends', () => {
    expectInvalid(
      (b) => (bag(b, 'history').offsets = Int32Array.from([0, 2, 5])),
      /field 'history': has 3 offsets, expected batch size \+ 1 = 4/,
    );
    expectInvalid(
      (b) => (bag(b, 'history').offsets = Int32Array.from([1, 2, 2, 5])),
      /field 'history' row 0: offsets must start at 0/,
    );
    expectInvalid(
      (b) => (bag(b, 'history').offsets = Int32Array.from([0, 2, 2, 4])),
      /field 'history' row 2: the last offset is 4 but there are 5 ids/,
    );
  });

  it('rejects bag values that do not match the ids, or a weighted bag without values', () => {
    expectInvalid((b) => (bag(b, 'tags').values = Float32Array.from([1, 2])), /field 'tags': has 2 values for 3 ids/);
    expectInvalid((b) => delete bag(b, 'tags').values, /field 'tags': is weighted but the batch carries no values/);
    expectInvalid((b) => (bag(b, 'tags').values![2] = NaN), /field 'tags' row 1: value NaN is not finite/);
  });

  it('rejects NaN and non-binary labels', () => {
    expectInvalid((b) => (b.click[1] = NaN), /label 'click' row 1: must be 0 or 1, got NaN/);
    expectInvalid((b) => (b.conversion[0] = 0.5), /label 'conversion' row 0: must be 0 or 1, got 0.5/);
    expectInvalid((b) => (b.click[2] = 2), /label 'click' row 2: must be 0 or 1, got 2/);
  });

  it('rejects a conversion without a click', () => {
    expectInvalid((b) => (b.conversion[1] = 1), /label 'conversion' row 1: a conversion without a click/);
  });

  it('rejects arrays whose length does not match the batch size', () => {
    expectInvalid(
      (b) => (b.fields.user = { kind: 'categorical', ids: Int32Array.from([0, 1]) }),
      /field 'user': has 2 ids for a batch of 3 rows/,
    );
    expectInvalid(
      (b) => (b.fields.price = { kind: 'numeric', values: Float32Array.from([1, 2, 3, 4]) }),
      /field 'price': has 4 values, expected 3 rows × 1/,
    );
    expectInvalid((b) => (b.click = Float32Array.from([1, 0])), /label 'click': has 2 values for a batch of 3 rows/);
    expectInvalid((b) => (b.userIds = Int32Array.from([1])), /'userIds': has 1 values for a batch of 3 rows/);
  });

  it('rejects missing fields, wrong kinds and non-finite numerics', () => {
    expectInvalid((b) => delete b.fields.tags, /field 'tags': missing from the batch/);
    expectInvalid(
      (b) => (b.fields.user = { kind: 'numeric', values: new Float32Array(3) }),
      /field 'user': is numeric in the batch but categorical in the schema/,
    );
    expectInvalid(
      (b) => ((b.fields.price as { values: Float32Array }).values[2] = Infinity),
      /field 'price' row 2: value Infinity is not finite/,
    );
  });

  it('runs before every method touches a batch (unless disabled)', () => {
    const batch = tinyBatch();
    batch.conversion[1] = 1;
    const m = createModel({ method: 'esmm', schema: tinySchema(), tower: { hidden: [2] } });
    expect(() => m.lossFor(batch)).toThrow(/label 'conversion' row 1: a conversion without a click/);
    expect(() => m.forward(batch)).toThrow(/row 1/);
    const unchecked = createModel({ method: 'esmm', schema: tinySchema(), tower: { hidden: [2] }, validate: false });
    expect(() => unchecked.lossFor(batch)).not.toThrow();
  });
});
