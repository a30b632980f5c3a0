/**
 * Layout ops: reshape, permute, concat and slice. Each copies into fresh storage,
 * so a tensor never shares its buffer and freeing one can never free another.
 */
import { sizeOf } from '../../kernels/index.js';
import { apply, registerDerivedOp, registerOp, Tensor } from '../tensor.js';
import { emptyLike, fmt, normalizeAxis } from './util.js';

const reshapeOp = registerOp<{ shape: number[] }>({
  name: 'reshape',
  arity: 1,
  forward([x], { shape }) {
    const out = emptyLike(x, shape);
    x.backend.copy(x.storage, out.storage);
    return { output: out };
  },
  backward(g, { inputs: [x] }) {
    return [reshape(g, x.shape)];
  },
});

/** Same values in a new shape; one dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const inferred = shape.filter((d) => d === -1).length;
  if (inferred > 1) throw new Error(`reshape: more than one -1 in ${fmt(shape)}`);
  let target = [...shape];
  if (inferred === 1) {
    const known = sizeOf(shape.filter((d) => d !== -1));
    if (known === 0 || x.size % known !== 0)
      throw new Error(`reshape: cannot infer -1 in ${fmt(shape)} for ${x.size} elements`);
    target = shape.map((d) => (d === -1 ? x.size / known : d));
  }
  if (sizeOf(target) !== x.size)
    throw new Error(`reshape: ${fmt(x.shape)} (${x.size} elements) cannot become ${fmt(target)}`);
  return apply(reshapeOp, [x], { shape: target });
}

const permuteOp = registerOp<{ perm: number[] }>({
  name: 'permute',
  arity: 1,
  forward([x], { perm }) {
    const out = emptyLike(
      x,
      perm.map((p) => x.shape[p]),
    );
    x.backend.permute(x.storage, x.shape, perm, out.storage);
    return { output: out };
  },
  backward(g, { attrs: { perm } }) {
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return [permute(g, inverse)];
  },
});

/** Reorder dimensions: out.shape[i] = x.shape[perm[i]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) {
    throw new Error(`permute: [${perm.join(', ')}] is not a permutation of ${x.rank} axes`);
  }
  return apply(permuteOp, [x], { perm: [...perm] });
}

/** Swap two axes (the last two by default). */
export const transpose = registerDerivedOp(
  'transpose',
  ['permute'],
  function transpose(x: Tensor, axisA = -2, axisB = -1): Tensor {
    const a = normalizeAxis(axisA, x.rank, 'transpose');
    const b = normalizeAxis(axisB, x.rank, 'transpose');
    const perm = x.shape.map((_, i) => i);
    perm[a] = b;
    perm[b] = a;
    return permute(x, perm);
  },
);

interface SliceAttrs {
  begin: number[];
  size: number[];
}

const sliceOp = registerOp<SliceAttrs>({
  name: 'slice',
  arity: 1,
  forward([x], { begin, size }) {
    const out = emptyLike(x, size);
    x.backend.copyBlock(
      x.storage,
      x.shape,
      begin,
      out.storage,
      size,
      size.map(() => 0),
      size,
    );
    return { output: out };
  },
  backward(g, { inputs: [x], attrs: { begin, size } }) {
    const dx = emptyLike(g, x.shape);
    g.backend.copyBlock(
      g.storage,
      size,
      size.map(() => 0),
      dx.storage,
      x.shape,
      begin,
      size,
    );
    return [dx];
  },
});

/** The block starting at `begin` with extent `size` (-1 = to the end). */
export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  if (begin.length !== x.rank || size.length !== x.rank) {
    throw new Error(`slice: begin and size need ${x.rank} entries for shape ${fmt(x.shape)}`);
  }
  const extent = size.map((s, d) => (s === -1 ? x.shape[d] - begin[d] : s));
  extent.forEach((s, d) => {
    if (begin[d] < 0 || s < 0 || begin[d] + s > x.shape[d]) {
      throw new Error(`slice: [${begin[d]}, ${begin[d] + s}) is outside axis ${d} of ${fmt(x.shape)}`);
    }
  });
  return apply(sliceOp, [x], { begin: [...begin], size: extent });
}

/** Split along `axis` into pieces of the given sizes. */
export const split = registerDerivedOp(
  'split',
  ['slice'],
  function split(x: Tensor, sizes: readonly number[], axis = -1): Tensor[] {
    const ax = normalizeAxis(axis, x.rank, 'split');
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== x.shape[ax])
      throw new Error(`split: sizes sum to ${total} but axis ${ax} of ${fmt(x.shape)} has ${x.shape[ax]}`);
    let start = 0;
    return sizes.map((s) => {
      const begin = x.shape.map((_, d) => (d === ax ? start : 0));
      const size = x.shape.map((n, d) => (d === ax ? s : n));
      start += s;
      return slice(x, begin, size);
    });
  },
);

interface ConcatAttrs {
  axis: number;
}

const concatOp = registerOp<ConcatAttrs>({
  name: 'concat',
  arity: 'variadic',
  forward(inputs, { axis }) {
    const shape = [...inputs[0].shape];
    shape[axis] = inputs.reduce((n, t) => n + t.shape[axis], 0);
    const out = emptyLike(inputs[0], shape);
    let offset = 0;
    for (const t of inputs) {
      const outBegin = shape.map((_, d) => (d === axis ? offset : 0));
      t.backend.copyBlock(
        t.storage,
        t.shape,
        t.shape.map(() => 0),
        out.storage,
        shape,
        outBegin,
        t.shape,
      );
      offset += t.shape[axis];
    }
    return { output: out };
  },
  backward(g, { inputs, attrs: { axis } }) {
    return split(
      g,
      inputs.map((t) => t.shape[axis]),
      axis,
    );
  },
});

/** Join tensors along `axis`; all other dimensions must match. */
export function concat(tensors: readonly Tensor[], axis = -1): Tensor {
  if (tensors.length === 0) throw new Error('concat: no tensors');
  const ax = normalizeAxis(axis, tensors[0].rank, 'concat');
  for (const t of tensors) {
    if (t.rank !== tensors[0].rank || t.shape.some((d, i) => i !== ax && d !== tensors[0].shape[i])) {
      throw new Error(`concat: shapes ${tensors.map((u) => fmt(u.shape)).join(', ')} differ outside axis ${ax}`);
    }
  }
  return apply(concatOp, tensors, { axis: ax });
}
