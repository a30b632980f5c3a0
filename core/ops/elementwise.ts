/**
 * Elementwise ops: broadcasting binary arithmetic, unary math, and the affine map.
 */
import { broadcastShapes, sameShape, type BinaryOp, type UnaryOp } from '../../kernels/index.js';
import { apply, registerOp, Tensor, type OpDefinition } from '../tensor.js';
import { sumTo } from './reduce.js';
import { emptyLike } from './util.js';

/** A tensor or a plain number (turned into a scalar of the other operand's dtype). */
export type TensorLike = Tensor | number;

function defineBinary(
  name: BinaryOp,
  gradient: (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor | null, Tensor | null],
): OpDefinition<null> {
  return registerOp<null>({
    name,
    arity: 2,
    forward([a, b]) {
      const shape = broadcastShapes(a.shape, b.shape);
      const out = emptyLike(a, shape);
      a.backend.binary(name, a.storage, a.shape, b.storage, b.shape, out.storage, shape);
      return { output: out };
    },
    backward(g, { inputs: [a, b], output, needsGrad }) {
      const [ga, gb] = gradient(g, a, b, output);
      // Broadcasting in the forward means summing in the backward.
      return [needsGrad[0] && ga ? sumTo(ga, a.shape) : null, needsGrad[1] && gb ? sumTo(gb, b.shape) : null];
    },
  });
}

const addOp = defineBinary('add', (g) => [g, g]);
const subOp = defineBinary('sub', (g) => [g, neg(g)]);
const mulOp = defineBinary('mul', (g, a, b) => [mul(g, b), mul(g, a)]);
const divOp = defineBinary('div', (g, a, b) => [div(g, b), neg(div(mul(g, a), square(b)))]);
// Ties send the whole gradient to `a`, matching the kernels, which pick `a` on ties.
const maximumOp = defineBinary('maximum', (g, a, b) => {
  const aWins = affine(step(sub(b, a)), -1, 1);
  return [mul(g, aWins), mul(g, step(sub(b, a)))];
});
const minimumOp = defineBinary('minimum', (g, a, b) => {
  const aWins = affine(step(sub(a, b)), -1, 1);
  return [mul(g, aWins), mul(g, step(sub(a, b)))];
});
const powOp = defineBinary('pow', (g, a, b, out) => [
  mul(g, mul(b, pow(a, affine(b, 1, -1)))),
  mul(g, mul(out, log(a))),
]);

function lift(x: TensorLike, like: Tensor): Tensor {
  return typeof x === 'number' ? like.scalarLike(x) : x;
}

function binary(op: OpDefinition<null>, a: TensorLike, b: TensorLike): Tensor {
  if (typeof a === 'number' && typeof b === 'number')
    throw new Error(`${op.name}: at least one operand must be a tensor`);
  const ta = lift(a, b as Tensor);
  const tb = lift(b, ta);
  return apply(op, [ta, tb], null);
}

/** a + b with broadcasting. */
export const add = (a: TensorLike, b: TensorLike): Tensor => binary(addOp, a, b);
/** a - b with broadcasting. */
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary(subOp, a, b);
/** a * b with broadcasting. */
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary(mulOp, a, b);
/** a / b with broadcasting. */
export const div = (a: TensorLike, b: TensorLike): Tensor => binary(divOp, a, b);
/** Elementwise max; ties pass the gradient to `a`. */
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary(maximumOp, a, b);
/** Elementwise min; ties pass the gradient to `a`. */
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary(minimumOp, a, b);
/** a ** b with broadcasting (a > 0 where b is not an integer). */
export const pow = (a: TensorLike, b: TensorLike): Tensor => binary(powOp, a, b);

// ---------------------------------------------------------------------------
// Unary

function defineUnary(name: UnaryOp, gradient?: (g: Tensor, x: Tensor, out: Tensor) => Tensor): (x: Tensor) => Tensor {
  const op = registerOp<null>({
    name,
    arity: 1,
    forward([x]) {
      const out = emptyLike(x);
      x.backend.unary(name, x.storage, out.storage);
      return { output: out };
    },
    backward: gradient ? (g, { inputs: [x], output }) => [gradient(g, x, output)] : undefined,
  });
  return (x: Tensor) => apply(op, [x], null);
}

/** -x. */
export const neg = defineUnary('neg', (g) => neg(g));
/** e^x. */
export const exp = defineUnary('exp', (g, _x, out) => mul(g, out));
/** Natural log. */
export const log = defineUnary('log', (g, x) => div(g, x));
/** log(1 + x), accurate near 0. */
export const log1p = defineUnary('log1p', (g, x) => div(g, affine(x, 1, 1)));
/** Square root. */
export const sqrt = defineUnary('sqrt', (g, _x, out) => div(g, affine(out, 2, 0)));
/** x². */
export const square = defineUnary('square', (g, x) => mul(g, affine(x, 2, 0)));
/** |x| (gradient sign(x), 0 at 0). */
export const abs = defineUnary('abs', (g, x) => mul(g, sign(x)));
/** Logistic sigmoid, stable for large |x|. */
export const sigmoid = defineUnary('sigmoid', (g, _x, out) => mul(g, mul(out, affine(out, -1, 1))));
/** log(sigmoid(x)) without underflow: its gradient is sigmoid(-x). */
export const logSigmoid = defineUnary('logSigmoid', (g, x) => mul(g, sigmoid(neg(x))));
/** Hyperbolic tangent. */
export const tanh = defineUnary('tanh', (g, _x, out) => mul(g, affine(square(out), -1, 1)));
/** max(x, 0). */
export const relu = defineUnary('relu', (g, x) => mul(g, step(x)));
/** 1 where x > 0, else 0. Not differentiable. */
export const step = defineUnary('step');
/** Sign of x (-1, 0, 1). Not differentiable. */
export const sign = defineUnary('sign');

interface AffineAttrs {
  alpha: number;
  beta: number;
}

const affineOp = registerOp<AffineAttrs>({
  name: 'affine',
  arity: 1,
  forward([x], { alpha, beta }) {
    const out = emptyLike(x);
    x.backend.affine(x.storage, alpha, beta, out.storage);
    return { output: out };
  },
  backward(g, { attrs }) {
    return [affine(g, attrs.alpha, 0)];
  },
});

/** alpha * x + beta in one pass (scalar scale and shift). */
export function affine(x: Tensor, alpha: number, beta: number): Tensor {
  return apply(affineOp, [x], { alpha, beta });
}

/** x * s for a plain number s. */
export function scale(x: Tensor, s: number): Tensor {
  return affine(x, s, 0);
}

/** Clamp to [lo, hi] (gradient passes inside the interval). */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  return minimum(maximum(x, lo), hi);
}

/** Shape check used by fused ops whose operands must match exactly. */
export function assertSameShape(op: string, a: Tensor, b: Tensor, names: [string, string]): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new Error(
      `${op}: ${names[0]} has shape [${a.shape.join(', ')}] but ${names[1]} has shape [${b.shape.join(', ')}]`,
    );
  }
}
