/**
 * Random cases for every differentiable op, registered and derived: fast-check arbitraries that draw shapes
 * (broadcasting and size-1 dimensions included) and values kept away from kinks
 * and saturation, and the function to differentiate. Shared by the gradient-check
 * suite of each backend.
 */
import fc from 'fast-check';
import * as ops from '../../core/ops/index.js';
import { Tensor } from '../../core/tensor.js';
import type { Backend, DType } from '../../kernels/index.js';

/** A drawn case: host values per input and a function of tensors built from them. */
export interface OpCase {
  /** Values and shapes of the differentiable inputs. */
  inputs: { values: number[]; shape: number[] }[];
  /** The op applied to tensors made from `inputs` (plus any constant data it closes over). */
  run: (backendInputs: Tensor[], make: Maker) => Tensor;
  /** Human-readable description for failure messages. */
  label: string;
}

/** Creates constant (non-differentiable) tensors on the case's backend and dtype. */
export type Maker = (values: ArrayLike<number>, shape: readonly number[]) => Tensor;

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const dimArb = fc.integer({ min: 1, max: 4 });
const shapeArb = (minRank = 0, maxRank = 3): fc.Arbitrary<number[]> =>
  fc.array(dimArb, { minLength: minRank, maxLength: maxRank });

/** Values in [lo, hi]; with `gap`, |x| >= gap so kinks at 0 are avoided. */
function valuesArb(n: number, lo = -2, hi = 2, gap = 0): fc.Arbitrary<number[]> {
  return fc
    .array(fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n })
    .map((xs) => xs.map((x) => (gap > 0 ? Math.sign(x || 1) * (gap + Math.abs(x)) : x)));
}

/** Two shapes that broadcast together: each is the output shape with leading dims dropped and some dims set to 1. */
const broadcastPairArb: fc.Arbitrary<[number[], number[]]> = shapeArb(0, 3).chain((out) =>
  fc
    .tuple(
      fc.integer({ min: 0, max: out.length }),
      fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }),
      fc.integer({ min: 0, max: out.length }),
      fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }),
    )
    .map(([dropA, onesA, dropB, onesB]) => {
      const a = out.slice(dropA).map((d, i) => (onesA[i + dropA] ? 1 : d));
      const b = out.slice(dropB).map((d, i) => (onesB[i + dropB] ? 1 : d));
      return [a, b] as [number[], number[]];
    }),
);

function unaryCase(name: string, f: (x: Tensor) => Tensor, lo = -2, hi = 2, gap = 0): fc.Arbitrary<OpCase> {
  return shapeArb().chain((shape) =>
    valuesArb(size(shape), lo, hi, gap).map((values) => ({
      inputs: [{ values, shape }],
      run: ([x]) => f(x),
      label: `${name} ${JSON.stringify(shape)}`,
    })),
  );
}

function binaryCase(
  name: string,
  f: (a: Tensor, b: Tensor) => Tensor,
  draw: (n: number, which: 0 | 1) => fc.Arbitrary<number[]>,
): fc.Arbitrary<OpCase> {
  return broadcastPairArb.chain(([sa, sb]) =>
    fc.tuple(draw(size(sa), 0), draw(size(sb), 1)).map(([va, vb]) => ({
      inputs: [
        { values: va, shape: sa },
        { values: vb, shape: sb },
      ],
      run: ([a, b]) => f(a, b),
      label: `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
    })),
  );
}

/** Rows of ids and bag offsets for a table of `rows` rows: empty bags and repeated ids included. */
const bagsArb = (rows: number): fc.Arbitrary<{ ids: number[]; offsets: number[]; weights: number[] }> =>
  fc
    .array(fc.array(fc.integer({ min: 0, max: rows - 1 }), { minLength: 0, maxLength: 4 }), {
      minLength: 1,
      maxLength: 4,
    })
    .chain((bags) => {
      const ids = bags.flat();
      const offsets = [0];
      for (const b of bags) offsets.push(offsets[offsets.length - 1] + b.length);
      return valuesArb(ids.length, 0.5, 3).map((weights) => ({ ids, offsets, weights }));
    });

/** Arbitraries for every differentiable op, keyed by registry name. */
export const opCases: Record<string, fc.Arbitrary<OpCase>> = {
  add: binaryCase('add', ops.add, (n) => valuesArb(n)),
  sub: binaryCase('sub', ops.sub, (n) => valuesArb(n)),
  mul: binaryCase('mul', ops.mul, (n) => valuesArb(n)),
  div: binaryCase('div', ops.div, (n, which) => (which === 0 ? valuesArb(n) : valuesArb(n, -1.5, 1.5, 0.5))),
  // Operands drawn from disjoint ranges keep them away from the tie where max/min has a kink.
  maximum: binaryCase('maximum', ops.maximum, (n, which) =>
    which === 0 ? valuesArb(n, -2, 2, 0.3) : valuesArb(n, -0.2, 0.2),
  ),
  minimum: binaryCase('minimum', ops.minimum, (n, which) =>
    which === 0 ? valuesArb(n, -2, 2, 0.3) : valuesArb(n, -0.2, 0.2),
  ),
  pow: binaryCase('pow', ops.pow, (n, which) => (which === 0 ? valuesArb(n, 0.5, 2) : valuesArb(n, -2, 2))),
  neg: unaryCase('neg', ops.neg),
  exp: unaryCase('exp', ops.exp),
  log: unaryCase('log', ops.log, 0.2, 3),
  log1p: unaryCase('log1p', ops.log1p, -0.7, 3),
  sqrt: unaryCase('sqrt', ops.sqrt, 0.2, 3),
  square: unaryCase('square', ops.square),
  abs: unaryCase('abs', ops.abs, -2, 2, 0.05),
  sigmoid: unaryCase('sigmoid', ops.sigmoid, -6, 6),
  logSigmoid: unaryCase('logSigmoid', ops.logSigmoid, -8, 8),
  tanh: unaryCase('tanh', ops.tanh, -3, 3),
  relu: unaryCase('relu', ops.relu, -2, 2, 0.05),
  affine: fc
    .tuple(fc.double({ min: -3, max: 3, noNaN: true }), fc.double({ min: -3, max: 3, noNaN: true }))
    .chain(([alpha, beta]) => unaryCase(`affine(${alpha}, ${beta})`, (x) => ops.affine(x, alpha, beta))),
  sum: shapeArb(1, 3).chain((shape) =>
    fc.tuple(valuesArb(size(shape)), fc.subarray(shape.map((_, i) => i)), fc.boolean()).map(([values, axes, keep]) => ({
      inputs: [{ values, shape }],
      run: ([x]: Tensor[]) => ops.sum(x, axes.length > 0 ? axes : undefined, keep),
      label: `sum ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keep ${keep}`,
    })),
  ),
  broadcastTo: broadcastPairArb.chain(([small, other]) => {
    const target = small.map((d, i) => (d === 1 ? Math.max(1, other[other.length - small.length + i] ?? 2) : d));
    const full = [2, ...target];
    return valuesArb(size(small)).map((values) => ({
      inputs: [{ values, shape: small }],
      run: ([x]: Tensor[]) => ops.broadcastTo(x, full),
      label: `broadcastTo ${JSON.stringify(small)} → ${JSON.stringify(full)}`,
    }));
  }),
  reshape: shapeArb(1, 3).chain((shape) =>
    valuesArb(size(shape)).map((values) => ({
      inputs: [{ values, shape }],
      run: ([x]: Tensor[]) => ops.reshape(x, [-1]),
      label: `reshape ${JSON.stringify(shape)} → [-1]`,
    })),
  ),
  permute: shapeArb(1, 4).chain((shape) =>
    fc
      .tuple(
        valuesArb(size(shape)),
        fc.shuffledSubarray(
          shape.map((_, i) => i),
          { minLength: shape.length, maxLength: shape.length },
        ),
      )
      .map(([values, perm]) => ({
        inputs: [{ values, shape }],
        run: ([x]: Tensor[]) => ops.permute(x, perm),
        label: `permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)}`,
      })),
  ),
  slice: shapeArb(1, 3).chain((shape) =>
    fc
      .tuple(
        valuesArb(size(shape)),
        fc.tuple(
          ...shape.map((d) =>
            fc
              .integer({ min: 0, max: d - 1 })
              .chain((b) => fc.tuple(fc.constant(b), fc.integer({ min: 1, max: d - b }))),
          ),
        ),
      )
      .map(([values, ranges]) => ({
        inputs: [{ values, shape }],
        run: ([x]: Tensor[]) =>
          ops.slice(
            x,
            ranges.map((r) => r[0]),
            ranges.map((r) => r[1]),
          ),
        label: `slice ${JSON.stringify(shape)} ${JSON.stringify(ranges)}`,
      })),
  ),
  // Derived ops (listDerivedOps): checked like the registered ops they are written with.
  scale: fc.double({ min: -3, max: 3, noNaN: true }).chain((s) => unaryCase(`scale(${s})`, (x) => ops.scale(x, s))),
  // Values kept 0.1 away from the bounds ±0.5, where clamp has its kinks.
  clamp: shapeArb().chain((shape) =>
    valuesArb(size(shape), -1.5, 1.5).map((raw) => {
      const values = raw.map((x) => (Math.abs(Math.abs(x) - 0.5) < 0.1 ? x + Math.sign(x || 1) * 0.2 : x));
      return {
        inputs: [{ values, shape }],
        run: ([x]: Tensor[]) => ops.clamp(x, -0.5, 0.5),
        label: `clamp ${JSON.stringify(shape)} to [-0.5, 0.5]`,
      };
    }),
  ),
  mean: shapeArb(1, 3).chain((shape) =>
    fc.tuple(valuesArb(size(shape)), fc.subarray(shape.map((_, i) => i)), fc.boolean()).map(([values, axes, keep]) => ({
      inputs: [{ values, shape }],
      run: ([x]: Tensor[]) => ops.mean(x, axes.length > 0 ? axes : undefined, keep),
      label: `mean ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keep ${keep}`,
    })),
  ),
  transpose: shapeArb(2, 4).chain((shape) =>
    fc
      .tuple(
        valuesArb(size(shape)),
        fc.integer({ min: -shape.length, max: shape.length - 1 }),
        fc.integer({ min: -shape.length, max: shape.length - 1 }),
      )
      .map(([values, a, b]) => ({
        inputs: [{ values, shape }],
        run: ([x]: Tensor[]) => ops.transpose(x, a, b),
        label: `transpose ${JSON.stringify(shape)} axes ${a}, ${b}`,
      })),
  ),
  // One piece of the split is checked (the others then get a zero gradient).
  split: fc.tuple(shapeArb(0, 2), fc.array(dimArb, { minLength: 1, maxLength: 3 })).chain(([lead, sizes]) => {
    const shape = [...lead, sizes.reduce((a, b) => a + b, 0)];
    return fc.tuple(valuesArb(size(shape)), fc.integer({ min: 0, max: sizes.length - 1 })).map(([values, piece]) => ({
      inputs: [{ values, shape }],
      run: ([x]: Tensor[]) => ops.split(x, sizes, -1)[piece],
      label: `split ${JSON.stringify(shape)} into ${JSON.stringify(sizes)}, piece ${piece}`,
    }));
  }),
  sumTo: broadcastPairArb.chain(([small, other]) => {
    const target = small.map((d, i) => (d === 1 ? Math.max(1, other[other.length - small.length + i] ?? 2) : d));
    const full = [2, ...target];
    return valuesArb(size(full)).map((values) => ({
      inputs: [{ values, shape: full }],
      run: ([x]: Tensor[]) => ops.sumTo(x, small),
      label: `sumTo ${JSON.stringify(full)} → ${JSON.stringify(small)}`,
    }));
  }),
  concat: fc.tuple(shapeArb(1, 3), fc.array(dimArb, { minLength: 1, maxLength: 3 })).chain(([shape, widths]) => {
    const axis = shape.length - 1;
    const shapes = widths.map((w) => shape.map((d, i) => (i === axis ? w : d)));
    return fc.tuple(...shapes.map((s) => valuesArb(size(s)))).map((vals) => ({
      inputs: vals.map((values, i) => ({ values, shape: shapes[i] })),
      run: (xs: Tensor[]) => ops.concat(xs, axis),
      label: `concat ${JSON.stringify(shapes)}`,
    }));
  }),
  matmul: fc
    .tuple(
      dimArb,
      dimArb,
      dimArb,
      fc.integer({ min: 0, max: 3 }),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 1, max: 3 }),
    )
    .chain(([m, n, k, batchMode, transA, transB, batch]) => {
      // batchMode: 0 plain 2-D, 1 both batched, 2 only A batched, 3 only B batched.
      const aBatched = batchMode === 1 || batchMode === 2;
      const bBatched = batchMode === 1 || batchMode === 3;
      const sa = [...(aBatched ? [batch] : []), ...(transA ? [k, m] : [m, k])];
      const sb = [...(bBatched ? [batch] : []), ...(transB ? [n, k] : [k, n])];
      return fc.tuple(valuesArb(size(sa)), valuesArb(size(sb))).map(([va, vb]) => ({
        inputs: [
          { values: va, shape: sa },
          { values: vb, shape: sb },
        ],
        run: ([a, b]: Tensor[]) => ops.matmul(a, b, { transA, transB }),
        label: `matmul ${JSON.stringify(sa)}${transA ? 'ᵀ' : ''} · ${JSON.stringify(sb)}${transB ? 'ᵀ' : ''}`,
      }));
    }),
  prelu: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })).chain(([rows, channels]) =>
    fc.tuple(valuesArb(rows * channels, -2, 2, 0.05), valuesArb(channels, -0.5, 0.5)).map(([vx, vs]) => ({
      inputs: [
        { values: vx, shape: [rows, channels] },
        { values: vs, shape: [channels] },
      ],
      run: ([x, s]: Tensor[]) => ops.prelu(x, s),
      label: `prelu [${rows}, ${channels}]`,
    })),
  ),
  // Drawn cases whose pre-activation comes within 0.02 of PReLU's kink are dropped. `grouped` gives
  // each half of the rows its own bias row ([2, channels]); `batched` a 3-D input.
  linearPrelu: fc
    .tuple(dimArb, dimArb, dimArb, fc.constantFrom('flat', 'batched', 'grouped'))
    .chain(([rows, channels, k, layout]) =>
      fc
        .tuple(
          valuesArb(rows * k * (layout === 'flat' ? 1 : 2)),
          valuesArb(channels * k),
          valuesArb(channels * (layout === 'grouped' ? 2 : 1), -1, 1, 0.05),
          valuesArb(channels, -0.5, 0.5),
        )
        .filter(([vx, vw, vb]) =>
          Array.from({ length: vx.length / k }, (_, r) => r).every((r) =>
            Array.from({ length: channels }, (_, c) => c).every((c) => {
              const b = vb[layout === 'grouped' ? Math.floor(r / rows) * channels + c : c];
              return Math.abs(b + vw.slice(c * k, c * k + k).reduce((s, w, p) => s + w * vx[r * k + p], 0)) > 0.02;
            }),
          ),
        )
        .map(([vx, vw, vb, vs]) => {
          const xShape = layout === 'flat' ? [rows, k] : layout === 'batched' ? [2, rows, k] : [2 * rows, k];
          const bShape = layout === 'grouped' ? [2, channels] : [channels];
          return {
            inputs: [
              { values: vx, shape: xShape },
              { values: vw, shape: [channels, k] },
              { values: vb, shape: bShape },
              { values: vs, shape: [channels] },
            ],
            run: ([x, w, b, s]: Tensor[]) => ops.linearPrelu(x, w, b, s),
            label: `linearPrelu x [${xShape.join(', ')}] weight [${channels}, ${k}] bias [${bShape.join(', ')}]`,
          };
        }),
    ),
  softmax: fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 5 }), fc.boolean())
    .chain(([rows, cols, masked]) =>
      fc
        .tuple(
          valuesArb(rows * cols, -3, 3),
          fc.array(fc.boolean(), { minLength: rows * cols, maxLength: rows * cols }),
        )
        .map(([values, keep]) => ({
          inputs: [{ values, shape: [rows, cols] }],
          run: ([x]: Tensor[], make: Maker) =>
            ops.softmax(
              x,
              masked
                ? make(
                    keep.map((k) => (k ? 1 : 0)),
                    [rows, cols],
                  )
                : null,
            ),
          label: `softmax [${rows}, ${cols}] masked ${masked}`,
        })),
    ),
  bceWithLogits: shapeArb(1, 2).chain((shape) =>
    fc.tuple(valuesArb(size(shape), -6, 6), valuesArb(size(shape), 0, 1)).map(([logits, labels]) => ({
      inputs: [
        { values: logits, shape },
        { values: labels, shape },
      ],
      run: ([x, y]: Tensor[]) => ops.bceWithLogits(x, y),
      label: `bceWithLogits ${JSON.stringify(shape)}`,
    })),
  ),
  productBce: shapeArb(1, 2).chain((shape) =>
    fc
      .tuple(
        valuesArb(size(shape), -6, 6),
        valuesArb(size(shape), -6, 6),
        fc.array(fc.constantFrom(0, 1), { minLength: size(shape), maxLength: size(shape) }),
      )
      .map(([a, b, labels]) => ({
        inputs: [
          { values: a, shape },
          { values: b, shape },
        ],
        run: ([x, y]: Tensor[], make: Maker) => ops.productBce(x, y, make(labels, shape)),
        label: `productBce ${JSON.stringify(shape)} labels ${JSON.stringify(labels)}`,
      })),
  ),
  embeddingBag: fc
    .tuple(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 3 }),
      fc.constantFrom('sum', 'mean', 'sqrtn' as const),
      fc.boolean(),
    )
    .chain(([rows, dim, mode, weighted]) =>
      fc.tuple(valuesArb(rows * dim), bagsArb(rows)).map(([table, bags]) => ({
        inputs: [{ values: table, shape: [rows, dim] }],
        run: ([t]: Tensor[]) =>
          ops.embeddingBag(t, {
            ids: Int32Array.from(bags.ids),
            offsets: Int32Array.from(bags.offsets),
            weights: weighted ? Float32Array.from(bags.weights) : null,
            mode,
          }),
        label: `embeddingBag ${mode}${weighted ? ' weighted' : ''} rows ${rows} dim ${dim} ids ${JSON.stringify(bags.ids)} offsets ${JSON.stringify(bags.offsets)}`,
      })),
    ),
  gatherRows: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 })).chain(([rows, dim]) =>
    fc
      .tuple(valuesArb(rows * dim), fc.array(fc.integer({ min: 0, max: rows - 1 }), { minLength: 0, maxLength: 6 }))
      .map(([table, ids]) => ({
        inputs: [{ values: table, shape: [rows, dim] }],
        run: ([t]: Tensor[]) => ops.gatherRows(t, Int32Array.from(ids)),
        label: `gatherRows rows ${rows} dim ${dim} ids ${JSON.stringify(ids)}`,
      })),
  ),
  // 1 or 2 tables of one dim, read by 1 to 3 lookups (plain or bags, a table read by several), n rows each.
  lookupConcat: fc
    .tuple(
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 3 }),
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 2 }),
    )
    .chain(([n, dim, tableRows]) => {
      const lookupArb = fc.integer({ min: 0, max: tableRows.length - 1 }).chain((table) => {
        const id = fc.integer({ min: 0, max: tableRows[table] - 1 });
        const plain = fc.array(id, { minLength: n, maxLength: n }).map((ids) => ({ table, ids, bag: null }));
        const bag = fc
          .tuple(
            fc.array(fc.array(id, { maxLength: 3 }), { minLength: n, maxLength: n }),
            fc.constantFrom('sum', 'mean', 'sqrtn' as const),
            fc.boolean(),
          )
          .chain(([bags, mode, weighted]) =>
            valuesArb(bags.flat().length, 0.5, 3).map((weights) => ({
              table,
              ids: bags.flat(),
              bag: { sizes: bags.map((b) => b.length), mode, weights: weighted ? weights : null },
            })),
          );
        return fc.oneof(plain, bag);
      });
      return fc
        .tuple(
          fc.tuple(...tableRows.map((rows) => valuesArb(rows * dim))),
          fc.array(lookupArb, { minLength: 1, maxLength: 3 }),
        )
        .map(([tables, lookups]) => ({
          inputs: tables.map((values, t) => ({ values, shape: [tableRows[t], dim] })),
          run: (ts: Tensor[]) =>
            ops.lookupConcat(
              ts,
              lookups.map(({ table, ids, bag }) => {
                if (!bag) return { table, ids: Int32Array.from(ids) };
                const offsets = [0];
                for (const k of bag.sizes) offsets.push(offsets[offsets.length - 1] + k);
                return {
                  table,
                  ids: Int32Array.from(ids),
                  offsets: Int32Array.from(offsets),
                  weights: bag.weights ? Float32Array.from(bag.weights) : null,
                  mode: bag.mode,
                };
              }),
            ),
          label: `lookupConcat n ${n} dim ${dim} tables ${JSON.stringify(tableRows)} lookups ${JSON.stringify(lookups)}`,
        }));
    }),
};

/** Build the tensors of a case on a backend. */
export function materialize(c: OpCase, backend: Backend, dtype: DType): { inputs: Tensor[]; make: Maker } {
  const inputs = c.inputs.map((i) => Tensor.fromArray(i.values, i.shape, { dtype, backend, requiresGrad: true }));
  const make: Maker = (values, shape) => Tensor.fromArray(values, shape, { dtype, backend });
  return { inputs, make };
}
