/**
 * End to end on the wasm backend: a small ESMM-shaped model built from core ops
 * (embedding bags, concat, matmul + bias, PReLU, BCE and product-BCE), trained a few Adam
 * steps, must track the reference backend, and the arena must stop growing once warm.
 */
import { describe, expect, it } from 'vitest';
import {
  Tensor,
  add,
  bceWithLogits,
  concat,
  embeddingBag,
  matmul,
  mean,
  optim,
  prelu,
  productBce,
  slice,
  sum,
  tidy,
} from '../../core/index.js';
import { getBackend, ReferenceBackend, setBackend, type Backend } from '../../kernels/index.js';
import { WasmBackend } from '../../kernels/wasm/index.js';
import { assertClose, randomArray } from './helpers-wasm.js';

const BATCH = 37;
const VOCAB = 50;
const DIM = 8;
const HIDDEN = 13;

interface Run {
  losses: number[];
  params: Float32Array[];
  reserved: number[];
}

function train(backend: Backend, steps: number): Run {
  const previous = getBackend();
  setBackend(backend);
  try {
    const param = (seed: number, shape: number[], scale: number): Tensor => {
      const t = Tensor.fromArray(
        randomArray(
          seed,
          shape.reduce((p, d) => p * d, 1),
          -scale,
          scale,
        ),
        shape,
        { requiresGrad: true },
      );
      t.keepAlive = true;
      return t;
    };
    const table = param(1, [VOCAB, DIM], 0.5);
    const w1 = param(2, [2 * DIM + 3, HIDDEN], 0.4);
    const b1 = param(3, [HIDDEN], 0.1);
    const slope = param(4, [HIDDEN], 0.25);
    const w2 = param(5, [HIDDEN, 2], 0.4);
    const opt = new optim.Adam([table, w1, b1, slope, w2], { lr: 0.01 });
    const losses: number[] = [];
    const reserved: number[] = [];
    for (let step = 0; step < steps; step++) {
      // Same inputs every step so the steady state allocates the same blocks.
      const offsets = Int32Array.from({ length: BATCH + 1 }, (_, i) => 2 * i);
      const ids = Int32Array.from({ length: 2 * BATCH }, (_, i) => (i * 7 + (i % 3)) % VOCAB);
      const ids2 = Int32Array.from({ length: 2 * BATCH }, (_, i) => (i * 11) % 17);
      const dense = Tensor.fromArray(randomArray(11, BATCH * 3), [BATCH, 3]);
      const click = Tensor.fromArray(
        Float32Array.from({ length: BATCH }, (_, i) => (i % 3 === 0 ? 1 : 0)),
        [BATCH],
      );
      const conv = Tensor.fromArray(
        Float32Array.from({ length: BATCH }, (_, i) => (i % 6 === 0 ? 1 : 0)),
        [BATCH],
      );
      const loss = tidy(() => {
        const e1 = embeddingBag(table, { ids, offsets, mode: 'mean' });
        const e2 = embeddingBag(table, {
          ids: ids2,
          offsets,
          weights: randomArray(12, 2 * BATCH, 0.5, 1.5),
          mode: 'sum',
        });
        const x = concat([e1, e2, dense], 1);
        const h = prelu(add(matmul(x, w1), b1), slope);
        const logits = matmul(h, w2);
        const ctr = slice(logits, [0, 0], [BATCH, 1]);
        const cvr = slice(logits, [0, 1], [BATCH, 1]);
        const l = add(mean(bceWithLogits(sum(ctr, 1), click)), mean(productBce(sum(ctr, 1), sum(cvr, 1), conv)));
        l.backward();
        opt.step();
        opt.zeroGrad();
        return l.item();
      });
      dense.dispose();
      click.dispose();
      conv.dispose();
      losses.push(loss);
      if (backend instanceof WasmBackend) reserved.push(backend.stats().reserved);
    }
    return { losses, params: [table, w1, b1, slope, w2].map((p) => p.toArray() as Float32Array), reserved };
  } finally {
    setBackend(previous);
  }
}

describe('wasm backend end to end', () => {
  it('trains like the reference backend and reaches a steady-state arena', () => {
    const steps = 6;
    const expected = train(new ReferenceBackend(), steps);
    const actual = train(new WasmBackend(), steps);
    assertClose(actual.losses, expected.losses, { rel: 1e-4, abs: 1e-5 }, 'losses');
    actual.params.forEach((p, i) => assertClose(p, expected.params[i], { rel: 1e-3, abs: 1e-4 }, `param ${i}`));
    // After warm-up, a step allocates nothing new.
    expect(actual.reserved[steps - 1]).toBe(actual.reserved[2]);
  });
});
