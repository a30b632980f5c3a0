/** DIN: shapes and masking with empty and mixed-length sequences; padding never changes an output. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { noGrad, RowSparseGrad, Rng, sum, tensor, type Tensor } from '../core/index.js';
import {
  Dice,
  DinTower,
  selectRows,
  SharedEmbedding,
  validateBatch,
  type Batch,
  type DinNormalization,
} from '../models/index.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';
import { getBackend } from '../kernels/index.js';

/** float64 where the active backend has it (tight comparisons); float32 with float32 tolerances on the gpu backend. */
const DTYPE = getBackend().supportsDtype('float64') ? 'float64' : 'float32';
const DIGITS = DTYPE === 'float64' ? 12 : 5;

function build(normalization: DinNormalization): { embedding: SharedEmbedding; din: DinTower } {
  const schema = tinySchema(3);
  const embedding = new SharedEmbedding(schema, { std: 0.5, rng: new Rng(1), dtype: DTYPE });
  const din = new DinTower(
    schema,
    { hidden: [4], attention: { hidden: [4, 3], normalization }, rng: new Rng(2), dtype: DTYPE },
    embedding.fieldDims(),
  );
  return { embedding, din };
}

function withHistory(batch: Batch, bags: number[][]): Batch {
  const offsets = new Int32Array(bags.length + 1);
  bags.forEach((b, i) => (offsets[i + 1] = offsets[i] + b.length));
  return {
    ...batch,
    fields: { ...batch.fields, history: { kind: 'bag', ids: Int32Array.from(bags.flat()), offsets } },
  };
}

function values(t: Tensor): number[] {
  // -0 and 0 are the same weight here.
  return Array.from(t.toArray(), (v) => v + 0);
}

for (const normalization of ['none', 'softmax'] as const) {
  describe(`DIN (${normalization})`, () => {
    it('handles a batch whose sequences are all empty', () => {
      const { embedding, din } = build(normalization);
      const batch = withHistory(tinyBatch(), [[], [], []]);
      const input = embedding.forward(batch);
      const seq = input.sequence('history');
      expect(seq.values.shape).toEqual([3, 1, 3]);
      expect(values(seq.mask)).toEqual([0, 0, 0]);
      const pair = din.pairs[0];
      expect(values(din.attentionWeights(input, pair))).toEqual([0, 0, 0]);
      expect(values(din.attend(input, pair)).every((v) => v === 0)).toBe(true);
      const out = din.forward(input);
      expect(out.shape).toEqual([3, 1]);
      expect(values(out).every(Number.isFinite)).toBe(true);
    });

    it('masks padding with mixed lengths (0, 1, 4)', () => {
      const { embedding, din } = build(normalization);
      const batch = withHistory(tinyBatch(), [[], [3], [1, 4, 4, 2]]);
      const input = embedding.forward(batch);
      const seq = input.sequence('history');
      expect(seq.values.shape).toEqual([3, 4, 3]);
      expect([...seq.lengths]).toEqual([0, 1, 4]);
      expect(values(seq.mask)).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]);
      const w = values(din.attentionWeights(input, din.pairs[0]));
      // Padded positions weigh exactly zero; softmax rows with behaviours sum to one.
      for (const i of [0, 1, 2, 3, 5, 6, 7]) expect(w[i]).toBe(0);
      if (normalization === 'softmax') {
        expect(w[4]).toBeCloseTo(1, DIGITS);
        expect(w[8] + w[9] + w[10] + w[11]).toBeCloseTo(1, DIGITS);
      }
      expect(din.forward(input).shape).toEqual([3, 1]);
    });

    it('gives each row the same output whatever the padding around it', () => {
      const { embedding, din } = build(normalization);
      const short = withHistory(tinyBatch(), [[1], [], [2, 3]]);
      const out = noGrad(() => values(din.forward(embedding.forward(short))));
      // Add a row with a long history: every other row gets more padding.
      const long = withHistory(selectRows(tinyBatch(), [0, 1, 2, 0]), [[1], [], [2, 3], [4, 4, 3, 2, 1, 0, 1]]);
      const padded = noGrad(() => values(din.forward(embedding.forward(long))));
      for (let r = 0; r < 3; r++) expect(padded[r]).toBeCloseTo(out[r], DIGITS);
      // And each row alone.
      for (let r = 0; r < 3; r++) {
        const alone = noGrad(() => values(din.forward(embedding.forward(selectRows(short, [r])))));
        expect(alone[0]).toBeCloseTo(out[r], DIGITS);
      }
    });

    it('sends no gradient through padded positions', () => {
      const { embedding, din } = build(normalization);
      // Row 0 of the item table is read only by padding here (no item, history or target uses id 0).
      const batch = withHistory(tinyBatch(), [[1], [], [2, 3, 4]]);
      sum(din.forward(embedding.forward(batch))).backward();
      const grad = embedding.tableFor('history').gradient;
      expect(grad).toBeInstanceOf(RowSparseGrad);
      const dense = values((grad as RowSparseGrad).toDense());
      expect(dense.slice(0, 3)).toEqual([0, 0, 0]);
      expect(dense.slice(3).some((v) => v !== 0)).toBe(true);
    });
  });
}

describe('DIN lookups', () => {
  it('never pools a sequence field by sum (attention replaces it) and keeps the logits of the full lookup', () => {
    const { embedding, din } = build('none');
    const batch = tinyBatch();
    const be = getBackend() as unknown as { embeddingBag: (...args: unknown[]) => void };
    const original = be.embeddingBag;
    let bags = 0;
    be.embeddingBag = function (this: unknown, ...args: unknown[]) {
      bags++;
      return original.apply(this, args);
    };
    let out: Tensor;
    try {
      out = din.forward(embedding.forward(batch));
    } finally {
      be.embeddingBag = original;
    }
    // Only 'tags' is pooled; 'history' is read as a sequence.
    expect(bags).toBe(1);
    const input = embedding.forward(batch);
    const fields = new Map(input.pooled);
    fields.set('history', din.attend(input, din.pairs[0]));
    expect(values(out)).toEqual(values(din.net.forwardFields(fields)));
  });
});

describe('DIN pairing', () => {
  it('rejects a sequence without a target', () => {
    const schema = tinySchema(2);
    schema.fields[1] = {
      kind: 'categorical',
      name: 'item',
      vocabSize: 5,
      embeddingDim: 2,
      group: 'item',
      table: 'item',
    };
    const embedding = new SharedEmbedding(schema);
    expect(() => new DinTower(schema, {}, embedding.fieldDims())).toThrow(/sequence field 'history' needs a target/);
  });
});

describe('Dice', () => {
  it('uses batch statistics in training and running ones in evaluation', () => {
    const dice = new Dice(2, { momentum: 0.5, dtype: DTYPE });
    const x = tensor(
      [
        [1, -2],
        [3, 2],
      ],
      undefined,
      { dtype: DTYPE },
    );
    // α = 0: out = p·x with p = σ((x − mean) / std) per column; here (x − mean)/std = ∓1.
    const s = 1 / (1 + Math.exp(-1));
    values(dice.forward(x)).forEach((v, i) => expect(v).toBeCloseTo([(1 - s) * 1, (1 - s) * -2, s * 3, s * 2][i], 6));
    expect(values(dice.runningMean)).toEqual([1, 0]);
    expect(values(dice.runningVar)).toEqual([1, 2.5]);
    dice.eval();
    const e = values(dice.forward(tensor([[1, 0]], undefined, { dtype: DTYPE })));
    expect(e[0]).toBeCloseTo(0.5, DIGITS);
    expect(e[1]).toBeCloseTo(0, DIGITS);
  });

  it('rejects an unknown activation', () => {
    const schema = tinySchema(2);
    const embedding = new SharedEmbedding(schema);
    expect(() => new DinTower(schema, { attention: { activation: 'gelu' as 'relu' } }, embedding.fieldDims())).toThrow(
      /base model 'din': option 'attention.activation' must be one of prelu, relu, dice, got 'gelu'/,
    );
  });
});

describe('DIN property', () => {
  it('scores each row the same alone as inside any batch, for any sequence lengths', () => {
    const { embedding, din } = build('softmax');
    const schema = tinySchema(3);
    // Up to 40 behaviours: batches pad past the longest one above 16 (see paddedLength).
    const histories = fc.array(fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 40 }), {
      minLength: 1,
      maxLength: 5,
    });
    fc.assert(
      fc.property(histories, (bags) => {
        const base = selectRows(
          tinyBatch(),
          bags.map((_, i) => i % 3),
        );
        const batch = withHistory(base, bags);
        validateBatch(schema, batch);
        const together = noGrad(() => values(din.forward(embedding.forward(batch))));
        bags.forEach((_, r) => {
          const alone = noGrad(() => values(din.forward(embedding.forward(selectRows(batch, [r])))));
          expect(alone[0]).toBeCloseTo(together[r], DIGITS);
        });
      }),
      { numRuns: 30, seed: 42 },
    );
  });
});
