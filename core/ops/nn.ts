/**
 * Fused neural-network ops: PReLU, masked softmax, and two log-space cross-entropies,
 * each with its own kernel because composing them from primitives would cost passes
 * or, for the losses, numerical stability.
 */
import { sameShape } from '../../kernels/index.js';
import { apply, registerOp, Tensor } from '../tensor.js';
import { mul, neg, sub } from './elementwise.js';
import { sum } from './reduce.js';
import { emptyLike, fmt } from './util.js';

const preluOp = registerOp<null>({
  name: 'prelu',
  arity: 2,
  forward([x, slope]) {
    const out = emptyLike(x);
    x.backend.prelu(x.storage, slope.storage, slope.size, out.storage);
    return { output: out };
  },
  backward(g, { inputs: [x, slope] }) {
    const dx = emptyLike(x);
    const dslope = emptyLike(slope);
    x.backend.preluBackward(x.storage, slope.storage, g.storage, slope.size, dx.storage, dslope.storage);
    return [dx, dslope];
  },
});

/** PReLU: x where x > 0, else slope·x, with one learnable slope per channel (the last axis). */
export function prelu(x: Tensor, slope: Tensor): Tensor {
  if (slope.rank !== 1 || x.rank === 0 || x.shape[x.rank - 1] !== slope.size) {
    throw new Error(`prelu: slope ${fmt(slope.shape)} must be 1-D with one entry per channel of x ${fmt(x.shape)}`);
  }
  return apply(preluOp, [x, slope], null);
}

interface SoftmaxAttrs {
  mask: Tensor | null;
}

const softmaxOp = registerOp<SoftmaxAttrs>({
  name: 'softmax',
  arity: 1,
  forward([x], { mask }) {
    const cols = x.shape[x.rank - 1];
    const out = emptyLike(x);
    x.backend.softmaxLast(x.storage, mask?.storage ?? null, x.size / cols, cols, out.storage);
    return { output: out };
  },
  backward(g, { output: y }) {
    // dx = y ⊙ (g − Σ g⊙y); masked positions have y = 0 and so get no gradient.
    return [mul(y, sub(g, sum(mul(g, y), -1, true)))];
  },
});

/**
 * Softmax over the last axis. With a mask (same shape, 1 = keep, 0 = padding) masked
 * positions get probability 0 and a row masked entirely is all zeros.
 */
export function softmax(x: Tensor, mask: Tensor | null = null): Tensor {
  if (x.rank === 0) throw new Error('softmax: needs at least one axis');
  if (mask && !sameShape(mask.shape, x.shape))
    throw new Error(`softmax: mask ${fmt(mask.shape)} differs from input ${fmt(x.shape)}`);
  return apply(softmaxOp, [x], { mask });
}

const bceOp = registerOp<null>({
  name: 'bceWithLogits',
  arity: 2,
  forward([logits, labels]) {
    const out = emptyLike(logits);
    logits.backend.bceWithLogits(logits.storage, labels.storage, out.storage);
    return { output: out };
  },
  backward(g, { inputs: [logits, labels], needsGrad }) {
    let dx: Tensor | null = null;
    if (needsGrad[0]) {
      dx = emptyLike(logits);
      logits.backend.bceWithLogitsBackward(logits.storage, labels.storage, g.storage, dx.storage);
    }
    return [dx, needsGrad[1] ? mul(g, neg(logits)) : null];
  },
});

/** Elementwise binary cross-entropy of sigmoid(logits) against labels, stable for any logit. */
export function bceWithLogits(logits: Tensor, labels: Tensor): Tensor {
  if (!sameShape(logits.shape, labels.shape)) {
    throw new Error(`bceWithLogits: logits ${fmt(logits.shape)} and labels ${fmt(labels.shape)} differ`);
  }
  return apply(bceOp, [logits, labels], null);
}

const productBceOp = registerOp<null>({
  name: 'productBce',
  arity: 3,
  forward([a, b, labels]) {
    const out = emptyLike(a);
    a.backend.productBce(a.storage, b.storage, labels.storage, out.storage);
    return { output: out };
  },
  backward(g, { inputs: [a, b, labels] }) {
    const da = emptyLike(a);
    const db = emptyLike(b);
    a.backend.productBceBackward(a.storage, b.storage, labels.storage, g.storage, da.storage, db.storage);
    // Labels are data: no gradient flows to them.
    return [da, db, null];
  },
});

/**
 * Elementwise BCE(sigmoid(a)·sigmoid(b), y): the cross-entropy of a probability that is the
 * product of two sigmoids, from their logits (a chained probability, P(A)·P(B | A)). Computed in log space
 * so no logit (±100 in float32 included) produces NaN or Inf.
 */
export function productBce(a: Tensor, b: Tensor, labels: Tensor): Tensor {
  if (!sameShape(a.shape, b.shape) || !sameShape(a.shape, labels.shape)) {
    throw new Error(`productBce: shapes differ: a ${fmt(a.shape)}, b ${fmt(b.shape)}, labels ${fmt(labels.shape)}`);
  }
  return apply(productBceOp, [a, b, labels], null);
}
