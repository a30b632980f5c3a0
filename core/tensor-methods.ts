/**
 * Method-style calls on tensors (`x.matmul(w).add(b).sigmoid()`), as PyTorch users write
 * them. Each method forwards to the functional op of the same name; the ops stay the
 * single definition.
 */
import * as ops from './ops/index.js';
import type { MatmulOptions, TensorLike } from './ops/index.js';
import { Tensor } from './tensor.js';

declare module './tensor.js' {
  interface Tensor {
    /** this + other (broadcasting). */
    add(other: TensorLike): Tensor;
    /** this − other (broadcasting). */
    sub(other: TensorLike): Tensor;
    /** this · other elementwise (broadcasting). */
    mul(other: TensorLike): Tensor;
    /** this / other (broadcasting). */
    div(other: TensorLike): Tensor;
    /** −this. */
    neg(): Tensor;
    /** e^this. */
    exp(): Tensor;
    /** Natural log. */
    log(): Tensor;
    /** Logistic sigmoid. */
    sigmoid(): Tensor;
    /** max(this, 0). */
    relu(): Tensor;
    /** Hyperbolic tangent. */
    tanh(): Tensor;
    /** Matrix product with another tensor. */
    matmul(other: Tensor, options?: MatmulOptions): Tensor;
    /** Sum over axes (all when omitted). */
    sum(axis?: number | readonly number[], keepDims?: boolean): Tensor;
    /** Mean over axes (all when omitted). */
    mean(axis?: number | readonly number[], keepDims?: boolean): Tensor;
    /** Same values, new shape (one -1 allowed). */
    reshape(shape: readonly number[]): Tensor;
    /** Swap two axes (the last two by default). */
    transpose(axisA?: number, axisB?: number): Tensor;
    /** Reorder axes. */
    permute(perm: readonly number[]): Tensor;
  }
}

const methods: Partial<Record<keyof Tensor, unknown>> = {
  add(this: Tensor, o: TensorLike) {
    return ops.add(this, o);
  },
  sub(this: Tensor, o: TensorLike) {
    return ops.sub(this, o);
  },
  mul(this: Tensor, o: TensorLike) {
    return ops.mul(this, o);
  },
  div(this: Tensor, o: TensorLike) {
    return ops.div(this, o);
  },
  neg(this: Tensor) {
    return ops.neg(this);
  },
  exp(this: Tensor) {
    return ops.exp(this);
  },
  log(this: Tensor) {
    return ops.log(this);
  },
  sigmoid(this: Tensor) {
    return ops.sigmoid(this);
  },
  relu(this: Tensor) {
    return ops.relu(this);
  },
  tanh(this: Tensor) {
    return ops.tanh(this);
  },
  matmul(this: Tensor, o: Tensor, options?: MatmulOptions) {
    return ops.matmul(this, o, options);
  },
  sum(this: Tensor, axis?: number | readonly number[], keepDims?: boolean) {
    return ops.sum(this, axis, keepDims);
  },
  mean(this: Tensor, axis?: number | readonly number[], keepDims?: boolean) {
    return ops.mean(this, axis, keepDims);
  },
  reshape(this: Tensor, shape: readonly number[]) {
    return ops.reshape(this, shape);
  },
  transpose(this: Tensor, a?: number, b?: number) {
    return ops.transpose(this, a, b);
  },
  permute(this: Tensor, perm: readonly number[]) {
    return ops.permute(this, perm);
  },
};
Object.assign(Tensor.prototype, methods);
