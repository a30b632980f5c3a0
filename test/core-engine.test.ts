/** The autodiff engine, modules, optimizers and the sparse embedding path. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  add,
  apply,
  bceWithLogits,
  embeddingBag,
  FUSION_DEFAULTS,
  fusions,
  gradcheck,
  groupIndices,
  linearPrelu,
  matmul,
  mean,
  mul,
  nn,
  noGrad,
  optim,
  productBce,
  registerOp,
  Rng,
  RowSparseGrad,
  setFusions,
  sigmoid,
  sum,
  tensor,
  Tensor,
  tidy,
  withTracer,
  zeros,
} from '../core/index.js';
import { stableMath } from '../kernels/index.js';
import { xorTask } from '../core/demo.js';

const f64 = { dtype: 'float64' as const };

function dense(g: Tensor['gradient']): number[] {
  if (!g) return [];
  return [...(g instanceof RowSparseGrad ? g.toDense() : g).toArray()];
}

describe('autodiff engine', () => {
  it('records only when an input requires grad, and not under noGrad', () => {
    const a = tensor([1, 2]);
    const b = tensor([3, 4], undefined, { requiresGrad: true });
    expect(add(a, a).requiresGrad).toBe(false);
    expect(add(a, b).requiresGrad).toBe(true);
    expect(noGrad(() => add(a, b)).requiresGrad).toBe(false);
  });

  it('accumulates gradients of a tensor used twice and across backward calls', () => {
    const x = tensor([1, 2, 3], undefined, { requiresGrad: true });
    sum(mul(x, x)).backward();
    expect(dense(x.gradient)).toEqual([2, 4, 6]);
    sum(x).backward();
    expect(dense(x.gradient)).toEqual([3, 5, 7]);
  });

  it('takes an explicit seed for non-scalar outputs and rejects a missing or misshaped one', () => {
    const x = tensor([1, 2], undefined, { requiresGrad: true });
    const y = mul(x, 3);
    expect(() => y.backward()).toThrow(/pass a seed/);
    expect(() => y.backward(tensor([1, 2, 3]))).toThrow(/seed shape/);
    y.backward(tensor([1, 10]));
    expect(dense(x.gradient)).toEqual([3, 30]);
  });

  it('frees the graph after backward', () => {
    const x = tensor([1, 2], undefined, { requiresGrad: true });
    const y = sum(mul(x, x));
    expect(y.node).not.toBeNull();
    y.backward();
    expect(y.node).toBeNull();
  });

  it('handles deep graphs without recursion limits', () => {
    const x = tensor([1], undefined, { requiresGrad: true, dtype: 'float64' });
    let y = x;
    for (let i = 0; i < 20000; i++) y = add(y, 0.5);
    y.backward();
    expect(dense(x.gradient)).toEqual([1]);
    expect(y.item()).toBe(10001);
  });

  it('gradcheck catches a wrong gradient rule', () => {
    const wrong = registerOp<null>({
      name: 'test.wrongSquare',
      arity: 1,
      forward([x]) {
        const out = Tensor.zeros(x.shape, { dtype: x.dtype, backend: x.backend });
        x.backend.unary('square', x.storage, out.storage);
        return { output: out };
      },
      backward: (g, { inputs: [x] }) => [mul(g, x)], // should be 2·x·g
    });
    const x = tensor([0.5, -1.5, 2], undefined, { ...f64, requiresGrad: true });
    const result = gradcheck((t) => apply(wrong, [t], null), [x]);
    expect(result.ok).toBe(false);
    expect(result.maxRelError).toBeGreaterThan(0.3);
  });

  it('tidy frees intermediates but keeps results and parameters', () => {
    const w = nn.parameter(tensor([1, 2]));
    let inner: Tensor | null = null;
    const kept = tidy(() => {
      inner = mul(w, 2);
      return add(inner, 1);
    });
    expect(inner!.isDisposed).toBe(true);
    expect(() => inner!.toArray()).toThrow(/disposed/);
    expect([...kept.toArray()]).toEqual([3, 5]);
    expect(w.isDisposed).toBe(false);
  });

  it('reports shape errors clearly', () => {
    expect(() => add(zeros([2, 3]), zeros([4]))).toThrow(/\[2, 3\] and \[4\] cannot be broadcast/);
    expect(() => matmul(zeros([2, 3]), zeros([4, 2]))).toThrow(/inner dimensions differ/);
    const table = zeros([3, 2]);
    expect(() => embeddingBag(table, { ids: Int32Array.from([0, 3]), offsets: Int32Array.from([0, 2]) })).toThrow(
      /id 3 at position 1 is outside the table's 3 rows/,
    );
    expect(() => embeddingBag(table, { ids: Int32Array.from([0, 1]), offsets: Int32Array.from([0, 2, 1, 2]) })).toThrow(
      /offsets decrease at bag 1/,
    );
  });
});

describe('numerical stability', () => {
  it('productBce stays finite for logits anywhere in ±100 in float32, and matches float64', () => {
    const logits = [-100, -30, -5, 0, 5, 30, 100];
    const a: number[] = [];
    const b: number[] = [];
    const y: number[] = [];
    for (const la of logits)
      for (const lb of logits)
        for (const label of [0, 1]) {
          a.push(la);
          b.push(lb);
          y.push(label);
        }
    const ta = tensor(a, undefined, { requiresGrad: true });
    const tb = tensor(b, undefined, { requiresGrad: true });
    const loss = productBce(ta, tb, tensor(y));
    const values = loss.toArray();
    sum(loss).backward();
    const ga = dense(ta.gradient);
    const gb = dense(tb.gradient);
    for (let i = 0; i < a.length; i++) {
      expect(Number.isFinite(values[i])).toBe(true);
      expect(Number.isFinite(ga[i]) && Number.isFinite(gb[i])).toBe(true);
      const exact = stableMath.productBce(a[i], b[i], y[i]);
      expect(Math.abs(values[i] - exact)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(exact)));
      // Gradients are bounded by 1 in magnitude: |∂L/∂a| ≤ 1.
      expect(Math.abs(ga[i])).toBeLessThanOrEqual(1 + 1e-6);
    }
  });

  it('productBce equals BCE of the product where the naive formula is accurate', () => {
    const a = 0.3;
    const b = -1.2;
    const p = stableMath.sigmoid(a) * stableMath.sigmoid(b);
    expect(stableMath.productBce(a, b, 1)).toBeCloseTo(-Math.log(p), 12);
    expect(stableMath.productBce(a, b, 0)).toBeCloseTo(-Math.log(1 - p), 12);
  });

  it('bceWithLogits is finite at ±100', () => {
    const loss = bceWithLogits(tensor([-100, 100, -100, 100]), tensor([0, 0, 1, 1])).toArray();
    expect([...loss].map((v) => Math.round(v))).toEqual([0, 100, 100, 0]);
  });
});

describe('sparse embedding gradients', () => {
  it('equal the dense gradient restricted to the touched rows', () => {
    const rng = new Rng(7);
    const rows = 10;
    const dim = 3;
    const table = tensor(
      Array.from({ length: rows * dim }, () => rng.normal()),
      [rows, dim],
      { ...f64, requiresGrad: true },
    );
    const ids = Int32Array.from([4, 1, 4, 7, 1, 1, 9]);
    const offsets = Int32Array.from([0, 3, 3, 7]);
    const weights = Float32Array.from([1, 2, 0.5, 1, 3, 1, 2]);
    const seed = tensor(
      Array.from({ length: 3 * dim }, () => rng.normal()),
      [3, dim],
      f64,
    );
    embeddingBag(table, { ids, offsets, weights, mode: 'sqrtn' }).backward(seed);
    const g = table.gradient;
    expect(g).toBeInstanceOf(RowSparseGrad);
    // A table's row-sparse gradient is its sparseGrad; grad (typed Tensor | null) stays null.
    expect(table.sparseGrad).toBe(g);
    expect(table.grad).toBeNull();
    expect([...(g as RowSparseGrad).rows]).toEqual([1, 4, 7, 9]);

    // Dense route: the pooled output is S · table with S the [bags, rows] matrix of pooling weights.
    const s = new Float64Array(3 * rows);
    for (let bag = 0; bag < 3; bag++) {
      let sq = 0;
      for (let j = offsets[bag]; j < offsets[bag + 1]; j++) sq += weights[j] * weights[j];
      for (let j = offsets[bag]; j < offsets[bag + 1]; j++) s[bag * rows + ids[j]] += weights[j] / Math.sqrt(sq);
    }
    const table2 = tensor(table.toArray(), [rows, dim], { ...f64, requiresGrad: true });
    matmul(tensor(s, [3, rows], f64), table2).backward(seed);
    const expected = dense(table2.gradient);
    const actual = dense(g);
    for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i], 6);
  });

  it('sum from two lookups of one table stays sparse and merges duplicate rows', () => {
    const table = tensor(
      Array.from({ length: 8 }, (_, i) => i),
      [4, 2],
      { requiresGrad: true },
    );
    const a = embeddingBag(table, { ids: Int32Array.from([0, 2]), offsets: Int32Array.from([0, 2]) });
    const b = embeddingBag(table, { ids: Int32Array.from([2, 3]), offsets: Int32Array.from([0, 1, 2]) });
    add(sum(a), sum(b)).backward();
    const g = table.gradient as RowSparseGrad;
    expect(g).toBeInstanceOf(RowSparseGrad);
    expect([...g.rows]).toEqual([0, 2, 3]);
    expect([...g.values.toArray()]).toEqual([1, 1, 2, 2, 1, 1]);
  });
});

/** Lazy Adam on the host, one row at a time: the semantics SparseAdam promises. */
function lazyAdamReference(values: number[], dim: number, steps: { rows: number[]; grads: number[][] }[], lr: number) {
  const p = [...values];
  const m = new Array<number>(values.length).fill(0);
  const v = new Array<number>(values.length).fill(0);
  steps.forEach((step, t) => {
    const c1 = 1 - 0.9 ** (t + 1);
    const c2 = 1 - 0.999 ** (t + 1);
    step.rows.forEach((row, i) => {
      for (let d = 0; d < dim; d++) {
        const j = row * dim + d;
        const g = step.grads[i][d];
        m[j] = 0.9 * m[j] + 0.1 * g;
        v[j] = 0.999 * v[j] + 0.001 * g * g;
        // PyTorch SparseAdam: step size lr·√c2/c1, denominator √v + ε.
        p[j] -= ((lr * Math.sqrt(c2)) / c1) * (m[j] / (Math.sqrt(v[j]) + 1e-8));
      }
    });
  });
  return { p, m, v };
}

describe('optimizers', () => {
  it('Adam matches the PyTorch update rule on a dense parameter', () => {
    const p = nn.parameter(tensor([1, -2], undefined, f64));
    const opt = new optim.Adam([p], { lr: 0.1 });
    for (let t = 0; t < 3; t++) {
      opt.zeroGrad();
      sum(mul(p, p)).backward();
      opt.step();
    }
    // Hand-rolled Adam on f(x) = x² (gradient 2x).
    const expected = [1, -2];
    const m = [0, 0];
    const v = [0, 0];
    for (let t = 1; t <= 3; t++) {
      for (let i = 0; i < 2; i++) {
        const g = 2 * expected[i];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        expected[i] -= (0.1 * m[i]) / (1 - 0.9 ** t) / (Math.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8);
      }
    }
    const got = p.toArray();
    expect(got[0]).toBeCloseTo(expected[0], 12);
    expect(got[1]).toBeCloseTo(expected[1], 12);
  });

  it('Adam on an embedding table updates only touched rows, exactly as lazy (Sparse)Adam', () => {
    const rows = 6;
    const dim = 2;
    const init = Array.from({ length: rows * dim }, (_, i) => i / 10);
    const table = nn.parameter(tensor(init, [rows, dim], f64));
    const opt = new optim.Adam([table], { lr: 0.01 });
    const stepsIds = [
      [1, 3, 1],
      [0, 1],
      [5, 5, 5],
    ];
    const history: { rows: number[]; grads: number[][] }[] = [];
    for (const ids of stepsIds) {
      opt.zeroGrad();
      // Loss = sum of pooled rows weighted by position, so duplicate ids must be merged.
      const out = embeddingBag(table, {
        ids: Int32Array.from(ids),
        offsets: Int32Array.from(ids.map((_, i) => i).concat(ids.length)),
      });
      const coef = tensor(
        ids.flatMap((_, i) => [i + 1, -(i + 1)]),
        [ids.length, dim],
        f64,
      );
      sum(mul(out, coef)).backward();
      const merged = new Map<number, number[]>();
      ids.forEach((id, i) => {
        const g = merged.get(id) ?? [0, 0];
        merged.set(id, [g[0] + (i + 1), g[1] - (i + 1)]);
      });
      const sorted = [...merged.keys()].sort((a, b) => a - b);
      history.push({ rows: sorted, grads: sorted.map((r) => merged.get(r)!) });
      opt.step();
    }
    const expected = lazyAdamReference(init, dim, history, 0.01);
    const got = [...table.toArray()];
    for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(expected.p[i], 12);
    // Row 2 and 4 were never touched: value, m and v unchanged.
    const state = opt.stateDict();
    const m = state.tensors['0.m'].toArray();
    const v = state.tensors['0.v'].toArray();
    for (const row of [2, 4]) {
      for (let d = 0; d < dim; d++) {
        expect(got[row * dim + d]).toBe(init[row * dim + d]);
        expect(m[row * dim + d]).toBe(0);
        expect(v[row * dim + d]).toBe(0);
      }
    }
  });

  it('sparse Adam equals dense Adam on the touched rows after one step (ε = 0, where the two forms coincide)', () => {
    const init = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    const sparseTable = nn.parameter(tensor(init, [3, 2], f64));
    const denseTable = nn.parameter(tensor(init, [3, 2], f64));
    const ids = Int32Array.from([2, 0, 2]);
    const offsets = Int32Array.from([0, 1, 3]);
    const seed = tensor([1, 2, 3, 4], [2, 2], f64);
    embeddingBag(sparseTable, { ids, offsets }).backward(seed);
    embeddingBag(denseTable, { ids, offsets }).backward(seed);
    denseTable.grad = (denseTable.sparseGrad as RowSparseGrad).toDense();
    // With ε = 0 the SparseAdam and dense Adam formulas coincide (they differ only in where ε enters).
    new optim.Adam([sparseTable], { lr: 0.05, eps: 0 }).step();
    new optim.Adam([denseTable], { lr: 0.05, eps: 0 }).step();
    const s = sparseTable.toArray();
    const d = denseTable.toArray();
    for (const i of [0, 1, 4, 5]) expect(s[i]).toBeCloseTo(d[i], 14);
    expect([s[2], s[3]]).toEqual([0.3, 0.4]);
  });

  it('SparseAdam refuses dense gradients', () => {
    const p = nn.parameter(tensor([1, 2]));
    sum(p).backward();
    expect(() => new optim.SparseAdam([p]).step()).toThrow(/dense gradient/);
  });

  it('SGD with momentum follows PyTorch', () => {
    const p = nn.parameter(tensor([1], undefined, f64));
    const opt = new optim.SGD([p], { lr: 0.1, momentum: 0.9 });
    let x = 1;
    let buf = 0;
    for (let t = 0; t < 4; t++) {
      opt.zeroGrad();
      sum(mul(p, p)).backward();
      opt.step();
      const g = 2 * x;
      buf = t === 0 ? g : 0.9 * buf + g;
      x -= 0.1 * buf;
    }
    expect(p.item()).toBeCloseTo(x, 12);
  });

  it('clipGradNorm scales gradients to the max norm on the device', () => {
    const a = nn.parameter(tensor([3, 0], undefined, f64));
    const b = nn.parameter(tensor([4], undefined, f64));
    sum(add(mul(a, 0), a)).backward();
    a.grad = tensor([3, 0], undefined, f64);
    b.grad = tensor([4], undefined, f64);
    const norm = optim.clipGradNorm([a, b], 1);
    expect(norm!.item()).toBeCloseTo(5, 12);
    expect(dense(a.gradient)[0]).toBeCloseTo(0.6, 6);
    expect(dense(b.gradient)[0]).toBeCloseTo(0.8, 6);
  });
});

describe('modules', () => {
  it('discovers parameters by path and round-trips a state dict', () => {
    const model = nn.mlp(4, [3], { outFeatures: 1, rng: new Rng(1) });
    const names = model.namedParameters().map(([n]) => n);
    expect(names).toEqual(['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.2.weight', 'layers.2.bias']);
    const copy = nn.mlp(4, [3], { outFeatures: 1, rng: new Rng(2) });
    copy.loadStateDict(model.stateDict());
    const x = tensor(
      Array.from({ length: 8 }, (_, i) => i / 8),
      [2, 4],
    );
    expect([...copy.forward(x).toArray()]).toEqual([...model.forward(x).toArray()]);
  });

  it('loadStateDict rejects shape mismatches and missing keys, writing nothing', () => {
    const model = nn.mlp(4, [3], { outFeatures: 1 });
    const before = model.layers[0] instanceof nn.Linear ? model.layers[0].weight.toArray() : null;
    const state: Record<string, Tensor> = { ...model.stateDict(), 'layers.0.weight': zeros([3, 5]) };
    delete state['layers.2.bias'];
    expect(() => model.loadStateDict(state)).toThrow(/missing key 'layers.2.bias'.*'layers.0.weight': shape \[3, 5\]/);
    expect(model.layers[0] instanceof nn.Linear && [...model.layers[0].weight.toArray()]).toEqual([...before!]);
  });

  it('linearPrelu names the shape that does not fit, per-run biases included', () => {
    const w = zeros([3, 4]);
    const slope = zeros([3]);
    expect(() => linearPrelu(zeros([6, 5]), w, zeros([3]), slope)).toThrow(/input \[6, 5\] must end in the 4 input/);
    expect(() => linearPrelu(zeros([6, 4]), w, zeros([3]), zeros([2]))).toThrow(/slope \[2\] must be 1-D/);
    expect(() => linearPrelu(zeros([6, 4]), w, zeros([4]), slope)).toThrow(/bias \[4\] must be \[3\]/);
    // A bias row per run: the rows must split evenly, the input be 2-D and the bias have 3 channels.
    expect(() => linearPrelu(zeros([6, 4]), w, zeros([4, 3]), slope)).toThrow(/bias \[4, 3\] needs .* 4 equal runs/);
    expect(() => linearPrelu(zeros([2, 3, 4]), w, zeros([2, 3]), slope)).toThrow(/needs a 2-D input/);
    expect(() => linearPrelu(zeros([6, 4]), w, zeros([2, 2]), slope)).toThrow(/and 3 channels/);
    expect(linearPrelu(zeros([6, 4]), w, zeros([3, 3]), slope).shape).toEqual([6, 3]);
  });

  it('Sequential runs Linear → PReLU as linearPrelu unless fusion is off: same outputs and gradients', () => {
    const run = (fuse: boolean): { ops: string[]; out: number[]; grads: number[][] } => {
      const previous = setFusions({ linearPrelu: fuse });
      try {
        const model = nn.mlp(5, [7, 3], { outFeatures: 1, rng: new Rng(4) });
        const x = tensor(
          Array.from({ length: 6 * 5 }, (_, i) => Math.sin(i)),
          [6, 5],
        );
        const ops: string[] = [];
        const y = withTracer({ onApply: (op) => void ops.push(op.name), onFromArray: () => {}, onMark: () => {} }, () =>
          model.forward(x),
        );
        sum(y).backward();
        return { ops, out: [...y.toArray()], grads: model.parameters().map((p) => dense(p.gradient)) };
      } finally {
        setFusions(previous);
      }
    };
    expect(fusions().linearPrelu).toBe(FUSION_DEFAULTS.linearPrelu);
    const fused = run(true);
    const plain = run(false);
    expect(fused.ops).toEqual(['linearPrelu', 'linearPrelu', 'matmul', 'add']);
    expect(plain.ops).toEqual(['matmul', 'add', 'prelu', 'matmul', 'add', 'prelu', 'matmul', 'add']);
    expect(fused.out).toEqual(plain.out);
    fused.grads.forEach((g, i) => g.forEach((v, j) => expect(v).toBeCloseTo(plain.grads[i][j], 6)));
  });

  it('dropout is active in training only', () => {
    const d = new nn.Dropout(0.5, { rng: new Rng(3) });
    const x = tensor(new Array(1000).fill(1));
    const train = d.forward(x).toArray();
    expect(train.some((v) => v === 0) && train.some((v) => v === 2)).toBe(true);
    d.eval();
    expect(d.forward(x)).toBe(x);
  });
});

describe('end to end', () => {
  it('a 2-layer MLP trained with Adam learns a nonlinear synthetic task', () => {
    const n = 512;
    const { xs, ys } = xorTask(n, new Rng(42));
    const x = tensor(xs, [n, 2]);
    const y = tensor(ys, [n, 1]);
    const model = nn.mlp(2, [16], { outFeatures: 1, activation: 'relu', rng: new Rng(5) });
    const opt = new optim.Adam(model.parameters(), { lr: 0.05 });
    let first = 0;
    let last = 0;
    for (let step = 0; step < 300; step++) {
      last = tidy(() => {
        opt.zeroGrad();
        const loss = mean(bceWithLogits(model.forward(x), y));
        loss.backward();
        opt.step();
        return loss.item();
      });
      if (step === 0) first = last;
    }
    expect(first).toBeGreaterThan(0.6);
    expect(last).toBeLessThan(0.15);
    const predictions = Array.from(noGrad(() => sigmoid(model.forward(x)).toArray()));
    const accuracy = predictions.filter((p, i) => (p > 0.5 ? 1 : 0) === ys[i]).length / n;
    expect(accuracy).toBeGreaterThan(0.95);
  });
});

describe('groupIndices', () => {
  it('groups like a stable sort, for any non-negative ids', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 2 ** 31 - 1 })), { maxLength: 60 }),
        (ids) => {
          const input = Int32Array.from(ids);
          const { unique, segments, order } = groupIndices(input);
          const expectedOrder = ids.map((_, i) => i).sort((a, b) => ids[a] - ids[b] || a - b);
          expect([...order]).toEqual(expectedOrder);
          expect([...unique]).toEqual([...new Set(ids)].sort((a, b) => a - b));
          expect(segments[segments.length - 1]).toBe(ids.length);
          for (let u = 0; u < unique.length; u++) {
            for (let k = segments[u]; k < segments[u + 1]; k++) expect(ids[order[k]]).toBe(unique[u]);
          }
        },
      ),
    );
  });

  it('groups like a stable sort where id and position just fill 32 bits', () => {
    // 1024 positions take 10 bits, so ids below 2^22 take the packed path, its top bit set for the largest.
    const rng = new Rng(5);
    for (const top of [2 ** 22 - 1, 2 ** 22]) {
      const ids = Array.from({ length: 1024 }, (_, i) => (i % 5 === 0 ? top : Math.floor(rng.uniform() * top)));
      const { unique, segments, order } = groupIndices(Int32Array.from(ids));
      expect([...order]).toEqual(ids.map((_, i) => i).sort((a, b) => ids[a] - ids[b] || a - b));
      expect([...unique]).toEqual([...new Set(ids)].sort((a, b) => a - b));
      expect(segments[segments.length - 1]).toBe(ids.length);
    }
  });

  it('groups a batch large enough for 16-bit digits like a stable sort', () => {
    const rng = new Rng(3);
    const ids = Array.from({ length: 20_000 }, (_, i) => (i % 7 === 0 ? 5 : Math.floor(rng.uniform() * 3e6)));
    const { unique, order } = groupIndices(Int32Array.from(ids));
    expect([...order]).toEqual(ids.map((_, i) => i).sort((a, b) => ids[a] - ids[b] || a - b));
    expect([...unique]).toEqual([...new Set(ids)].sort((a, b) => a - b));
  });
});
