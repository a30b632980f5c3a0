import { describe, expect, it } from 'vitest';
import { add, matmul, sum, tensor, sigmoid, embeddingBag, Tensor, RowSparseGrad } from '../core/index.js';

describe('smoke', () => {
  it('adds with broadcasting and backprops', () => {
    const a = tensor(
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      undefined,
      { requiresGrad: true },
    );
    const b = tensor([10, 20, 30], undefined, { requiresGrad: true });
    const y = sum(add(a, b));
    expect(y.item()).toBe(21 + 120);
    y.backward();
    expect([...(b.grad as Tensor).toArray()]).toEqual([2, 2, 2]);
    const m = matmul(a, tensor([[1], [1], [1]]));
    expect([...m.toArray()]).toEqual([6, 15]);
    expect(sigmoid(tensor([0])).item()).toBe(0.5);
    const t = tensor(
      [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
      undefined,
      { requiresGrad: true },
    );
    const e = embeddingBag(t, { ids: Int32Array.from([0, 2, 2]), offsets: Int32Array.from([0, 2, 3]) });
    expect([...e.toArray()]).toEqual([6, 8, 5, 6]);
    sum(e).backward();
    expect(t.gradient).toBeInstanceOf(RowSparseGrad);
  });
});

describe('tensor methods', () => {
  it('chain like PyTorch and record gradients', () => {
    const x = tensor(
      [
        [1, 2],
        [3, 4],
      ],
      undefined,
      { requiresGrad: true },
    );
    const w = tensor([[1], [-1]]);
    const y = x.matmul(w).add(1).mul(2).sum();
    expect(y.item()).toBe(2 * (-1 + 1) + 2 * (-1 + 1));
    y.backward();
    expect([...(x.grad as Tensor).toArray()]).toEqual([2, -2, 2, -2]);
    expect(x.reshape([4]).shape).toEqual([4]);
    expect(x.transpose().toArray()).toEqual(Float32Array.from([1, 3, 2, 4]));
  });
});
