/**
 * Reductions, and the broadcast helpers their gradients need.
 */
import { broadcastShapes, sameShape, sizeOf } from '../../kernels/index.js';
import { apply, registerDerivedOp, registerOp, Tensor } from '../tensor.js';
import { affine } from './elementwise.js';
import { reshape } from './shape.js';
import { emptyLike, fmt, normalizeAxis } from './util.js';

interface SumAttrs {
  axes: number[];
  keepDims: boolean;
}

const sumOp = registerOp<SumAttrs>({
  name: 'sum',
  arity: 1,
  forward([x], { axes, keepDims }) {
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const out = emptyLike(x, keepDims ? kept : x.shape.filter((_, i) => !axes.includes(i)));
    x.backend.reduceSum(x.storage, x.shape, axes, out.storage);
    return { output: out };
  },
  backward(g, { inputs: [x], attrs }) {
    const kept = x.shape.map((d, i) => (attrs.axes.includes(i) ? 1 : d));
    return [broadcastTo(reshape(g, kept), x.shape)];
  },
});

function resolveAxes(x: Tensor, axis: number | readonly number[] | undefined, op: string): number[] {
  if (axis === undefined) return x.shape.map((_, i) => i);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  const axes = list.map((a) => normalizeAxis(a, x.rank, op));
  if (new Set(axes).size !== axes.length) throw new Error(`${op}: repeated axis in [${list.join(', ')}]`);
  return axes.sort((a, b) => a - b);
}

/** Sum over `axis` (all axes when omitted). */
export function sum(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  return apply(sumOp, [x], { axes: resolveAxes(x, axis, 'sum'), keepDims });
}

/** Mean over `axis` (all axes when omitted). */
export const mean = registerDerivedOp(
  'mean',
  ['sum', 'affine'],
  function mean(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
    const axes = resolveAxes(x, axis, 'mean');
    const count = axes.reduce((n, a) => n * x.shape[a], 1);
    return affine(sum(x, axes, keepDims), count === 0 ? NaN : 1 / count, 0);
  },
);

const maxLastOp = registerOp<null>({
  name: 'maxLast',
  arity: 1,
  forward([x]) {
    const cols = x.shape[x.rank - 1];
    const out = emptyLike(x, x.shape.slice(0, -1));
    x.backend.reduceMaxLast(x.storage, x.size / cols, cols, out.storage);
    return { output: out };
  },
});

/** Maximum over the last axis (not differentiable: for statistics such as a batch's largest score). */
export function maxLast(x: Tensor): Tensor {
  if (x.rank === 0 || x.shape[x.rank - 1] === 0)
    throw new Error(`maxLast: needs a non-empty last axis, got ${fmt(x.shape)}`);
  return apply(maxLastOp, [x], null);
}

const broadcastToOp = registerOp<{ shape: number[] }>({
  name: 'broadcastTo',
  arity: 1,
  forward([x], { shape }) {
    const out = emptyLike(x, shape);
    // out starts at zero, so adding x into it broadcasts x.
    x.backend.binary('add', x.storage, x.shape, out.storage, shape, out.storage, shape);
    return { output: out };
  },
  backward(g, { inputs: [x] }) {
    return [sumTo(g, x.shape)];
  },
});

/** Repeat x along broadcast dimensions to `shape` (numpy rules). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const target = broadcastShapes(x.shape, shape);
  if (!sameShape(target, shape)) throw new Error(`broadcastTo: cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  return apply(broadcastToOp, [x], { shape: [...shape] });
}

/** Sum a broadcast gradient back down to `shape`: the adjoint of broadcasting. */
export const sumTo = registerDerivedOp(
  'sumTo',
  ['sum', 'reshape'],
  function sumTo(g: Tensor, shape: readonly number[]): Tensor {
    if (sameShape(g.shape, shape)) return g;
    const lead = g.rank - shape.length;
    const axes: number[] = [];
    for (let i = 0; i < g.rank; i++) {
      if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
    }
    const reduced = axes.length > 0 ? sum(g, axes, true) : g;
    if (sizeOf(reduced.shape) !== sizeOf(shape))
      throw new Error(`sumTo: cannot reduce ${fmt(g.shape)} to ${fmt(shape)}`);
    return reshape(reduced, shape);
  },
);
