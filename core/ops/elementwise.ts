/**
 * Elementwise ops: broadcasting binary arithmetic, unary math, and the affine map.
 */
import { broadcastShapes, sameShape, type BinaryOp, type UnaryOp } from '../../kernels/index.js';
import { apply, registerDerivedOp, registerOp, Tensor, type OpDefinition } from '../tensor.js';
import { sumTo } from './reduce.js';
import { emptyLike } from './util.js';

/** A tensor or a plain number (turned into a scalar of the other operand's dtype). */
export type TensorLike = Tensor | number;

/**
 * How every op of this file is declared: the kernel that writes the output (shaped like the
 * inputs broadcast together), and the gradient rule for each input before broadcasting; the
 * broadcast reduction (`sumTo`) is done here once, not in each rule.
 */
interface ElementwiseSpec<A> {
  name: string;
  arity: 1 | 2;
  kernel(inputs: readonly Tensor[], out: Tensor, attrs: A): void;
  /** Absent for ops that are not differentiable. */
  gradient?(g: Tensor, inputs: readonly Tensor[], out: Tensor, attrs: A): (Tensor | null)[];
}

function elementwise<A = null>({ name, arity, kernel, gradient }: ElementwiseSpec<A>): OpDefinition<A> {
  return registerOp<A>({
    name,
    arity,
    forward(inputs, attrs) {
      const out = emptyLike(inputs[0], arity === 2 ? broadcastShapes(inputs[0].shape, inputs[1].shape) : undefined);
      kernel(inputs, out, attrs);
      return { output: out };
    },
    backward: gradient
      ? (g, { inputs, output, attrs, needsGrad }) =>
          gradient(g, inputs, output, attrs).map((gi, i) => (needsGrad[i] && gi ? sumTo(gi, inputs[i].shape) : null))
      : undefined,
  });
}

/** The kernel of a binary op: `backend.binary(op, …)` with broadcasting. */
function binaryKernel(op: BinaryOp): ElementwiseSpec<null>['kernel'] {
  return ([a, b], out) => a.backend.binary(op, a.storage, a.shape, b.storage, b.shape, out.storage, out.shape);
}

/** The kernel of a unary op: `backend.unary(op, …)`. */
function unaryKernel(op: UnaryOp): ElementwiseSpec<null>['kernel'] {
  return ([x], out) => x.backend.unary(op, x.storage, out.storage);
}

const addOp = elementwise({ name: 'add', arity: 2, kernel: binaryKernel('add'), gradient: (g) => [g, g] });
const subOp = elementwise({ name: 'sub', arity: 2, kernel: binaryKernel('sub'), gradient: (g) => [g, neg(g)] });
const mulOp = elementwise({
  name: 'mul',
  arity: 2,
  kernel: binaryKernel('mul'),
  gradient: (g, [a, b]) => [mul(g, b), mul(g, a)],
});
const divOp = elementwise({
  name: 'div',
  arity: 2,
  kernel: binaryKernel('div'),
  gradient: (g, [a, b]) => [div(g, b), neg(div(mul(g, a), square(b)))],
});
// Ties send the whole gradient to `a`, matching the kernels, which pick `a` on ties.
const maximumOp = elementwise({
  name: 'maximum',
  arity: 2,
  kernel: binaryKernel('maximum'),
  gradient: (g, [a, b]) => [mul(g, affine(step(sub(b, a)), -1, 1)), mul(g, step(sub(b, a)))],
});
const minimumOp = elementwise({
  name: 'minimum',
  arity: 2,
  kernel: binaryKernel('minimum'),
  gradient: (g, [a, b]) => [mul(g, affine(step(sub(a, b)), -1, 1)), mul(g, step(sub(a, b)))],
});
const powOp = elementwise({
  name: 'pow',
  arity: 2,
  kernel: binaryKernel('pow'),
  gradient: (g, [a, b], out) => [mul(g, mul(b, pow(a, affine(b, 1, -1)))), mul(g, mul(out, log(a)))],
});

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

/** A unary op's function; `gradient` is given the output gradient, the input and the output. */
function unary(op: UnaryOp, gradient?: (g: Tensor, x: Tensor, out: Tensor) => Tensor): (x: Tensor) => Tensor {
  const definition = elementwise({
    name: op,
    arity: 1,
    kernel: unaryKernel(op),
    gradient: gradient && ((g, [x], out) => [gradient(g, x, out)]),
  });
  return (x: Tensor) => apply(definition, [x], null);
}

/** -x. */
export const neg = unary('neg', (g) => neg(g));
/** e^x. */
export const exp = unary('exp', (g, _x, out) => mul(g, out));
/** Natural log. */
export const log = unary('log', (g, x) => div(g, x));
/** log(1 + x), accurate near 0. */
export const log1p = unary('log1p', (g, x) => div(g, affine(x, 1, 1)));
/** Square root. */
export const sqrt = unary('sqrt', (g, _x, out) => div(g, affine(out, 2, 0)));
/** x². */
export const square = unary('square', (g, x) => mul(g, affine(x, 2, 0)));
/** |x| (gradient sign(x), 0 at 0). */
export const abs = unary('abs', (g, x) => mul(g, sign(x)));
/** Logistic sigmoid, stable for large |x|. */
export const sigmoid = unary('sigmoid', (g, _x, out) => mul(g, mul(out, affine(out, -1, 1))));
/** log(sigmoid(x)) without underflow: its gradient is sigmoid(-x). */
export const logSigmoid = unary('logSigmoid', (g, x) => mul(g, sigmoid(neg(x))));
/** Hyperbolic tangent. */
export const tanh = unary('tanh', (g, _x, out) => mul(g, affine(square(out), -1, 1)));
/** max(x, 0). */
export const relu = unary('relu', (g, x) => mul(g, step(x)));
/** 1 where x > 0, else 0. Not differentiable. */
export const step = unary('step');
/** Sign of x (-1, 0, 1). Not differentiable. */
export const sign = unary('sign');

const affineOp = elementwise<{ alpha: number; beta: number }>({
  name: 'affine',
  arity: 1,
  kernel: ([x], out, { alpha, beta }) => x.backend.affine(x.storage, alpha, beta, out.storage),
  gradient: (g, _inputs, _out, { alpha }) => [affine(g, alpha, 0)],
});

/** alpha * x + beta in one pass (scalar scale and shift). */
export function affine(x: Tensor, alpha: number, beta: number): Tensor {
  return apply(affineOp, [x], { alpha, beta });
}

// ---------------------------------------------------------------------------
// Derived: written with the ops above, no gradient rule of their own

/** x * s for a plain number s. */
export const scale = registerDerivedOp('scale', ['affine'], (x: Tensor, s: number): Tensor => affine(x, s, 0));

/** Clamp to [lo, hi] (gradient passes inside the interval). */
export const clamp = registerDerivedOp('clamp', ['maximum', 'minimum'], (x: Tensor, lo: number, hi: number): Tensor =>
  minimum(maximum(x, lo), hi),
);

/** Shape check used by fused ops whose operands must match exactly. */
export function assertSameShape(op: string, a: Tensor, b: Tensor, names: [string, string]): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new Error(
      `${op}: ${names[0]} has shape [${a.shape.join(', ')}] but ${names[1]} has shape [${b.shape.join(', ')}]`,
    );
  }
}
