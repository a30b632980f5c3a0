/**
 * Fused neural-network ops: PReLU, Linear + PReLU, masked softmax, and two log-space cross-entropies,
 * each with its own kernel because composing them from primitives would cost passes
 * or, for the losses, numerical stability.
 */
import { sameShape } from '../../kernels/index.js';
import { apply, registerOp, Tensor } from '../tensor.js';
import { mul, neg, sub } from './elementwise.js';
import { matmul } from './linalg.js';
import { sum } from './reduce.js';
import { reshape } from './shape.js';
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

const linearPreluOp = registerOp<null>({
  name: 'linearPrelu',
  arity: 4,
  forward([x, weight, bias, slope]) {
    const [channels, k] = weight.shape;
    const shape = [...x.shape.slice(0, -1), channels];
    const pre = emptyLike(x, shape);
    const out = emptyLike(x, shape);
    const rows = x.size / k;
    x.backend.linearPrelu(
      x.storage,
      weight.storage,
      bias.storage,
      slope.storage,
      rows,
      channels,
      k,
      pre.storage,
      out.storage,
      bias.size / channels,
    );
    return { output: out, saved: [pre] };
  },
  backward(g, { inputs: [x, weight, bias, slope], saved: [pre], needsGrad }) {
    // One pass forms the pre-activation gradient with the bias and slope gradients; the
    // input and weight gradients are Linear's two GEMMs over it.
    const [channels, k] = weight.shape;
    const gradPre = emptyLike(pre);
    const dbias = emptyLike(bias);
    const dslope = emptyLike(slope);
    x.backend.linearPreluBackward(
      pre.storage,
      slope.storage,
      g.storage,
      channels,
      gradPre.storage,
      dslope.storage,
      dbias.storage,
      bias.size / channels,
    );
    const flat = x.rank === 2;
    const g2 = flat ? gradPre : reshape(gradPre, [-1, channels]);
    const x2 = flat ? x : reshape(x, [-1, k]);
    const dx = needsGrad[0] ? matmul(g2, weight) : null;
    return [
      dx && !flat ? reshape(dx, x.shape) : dx,
      needsGrad[1] ? matmul(g2, x2, { transA: true }) : null,
      dbias,
      dslope,
    ];
  },
});

/**
 * prelu(x·Wᵀ + bias, slope): a Linear layer (weight [out, in], as `nn.Linear` holds it) and a
 * PReLU (one slope per output channel) in one op, whose kernel adds the bias and applies
 * PReLU to each GEMM tile as it is finished instead of in two more passes over the output.
 * Its values equal `prelu(add(matmul(x, weight, { transB: true }), bias), slope)`.
 *
 * `bias` is [out], or [groups, out] for an x of [groups·n, in]: row g of the bias is added to the
 * g-th run of n rows, the values of `prelu(reshape(add(reshape(matmul(x, weight, { transB: true }),
 * [groups, n, out]), reshape(bias, [groups, 1, out])), [groups·n, out]), slope)` without the copies
 * (DIN's activation unit adds a per-example term to every sequence position this way).
 */
export function linearPrelu(x: Tensor, weight: Tensor, bias: Tensor, slope: Tensor): Tensor {
  if (weight.rank !== 2 || x.rank === 0 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new Error(
      `linearPrelu: input ${fmt(x.shape)} must end in the ${weight.shape[1] ?? '?'} input features of weight ${fmt(weight.shape)} [out, in]`,
    );
  }
  const channels = weight.shape[0];
  if (slope.rank !== 1 || slope.size !== channels) {
    throw new Error(
      `linearPrelu: slope ${fmt(slope.shape)} must be 1-D with one entry per output channel (${channels})`,
    );
  }
  if (bias.rank === 2) {
    const rows = x.size / weight.shape[1];
    const groups = bias.shape[0];
    if (x.rank !== 2 || bias.shape[1] !== channels || groups === 0 || rows % groups !== 0) {
      throw new Error(
        `linearPrelu: a per-group bias ${fmt(bias.shape)} needs a 2-D input whose rows (${fmt(x.shape)}) split into ${groups} equal runs, and ${channels} channels`,
      );
    }
  } else if (bias.rank !== 1 || bias.size !== channels) {
    throw new Error(
      `linearPrelu: bias ${fmt(bias.shape)} must be [${channels}] (one entry per output channel) or [groups, ${channels}]`,
    );
  }
  return apply(linearPreluOp, [x, weight, bias, slope], null);
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
