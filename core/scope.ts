/**
 * Graph recording and memory: grad mode (`noGrad`), `tidy` scopes that free a step's
 * temporaries, and the finalizer that frees storages of tensors that were garbage collected.
 */
import type { Backend, Storage } from '../kernels/index.js';
import { RowSparseGrad } from './sparse-grad.js';
import { Tensor } from './tensor.js';

let gradEnabled = true;

/** Whether ops currently record the graph. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording the graph (as `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = before;
  }
}

/** Run `fn` with graph recording forced on. */
export function enableGrad<T>(fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = before;
  }
}

const scopes: Tensor[][] = [];

/** Values that {@link tidy} keeps: a tensor, or arrays / plain objects of them. */
export type TidyResult =
  | Tensor
  | RowSparseGrad
  | number
  | string
  | boolean
  | void
  | null
  | undefined
  | TidyResult[]
  | { [key: string]: TidyResult };

/**
 * Run `fn` and free every tensor it created except those it returns (as `tf.tidy`).
 * Device backends use it to keep memory flat across training steps; run a whole
 * step (forward, backward, optimizer) inside one scope so saved tensors outlive the backward.
 */
export function tidy<T extends TidyResult>(fn: () => T): T {
  const created: Tensor[] = [];
  scopes.push(created);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const keep = new Set<Tensor>();
  collectTensors(result, keep);
  const parent = scopes[scopes.length - 1];
  for (const t of created) {
    if (keep.has(t) || t.keepAlive) {
      parent?.push(t);
    } else {
      t.dispose();
    }
  }
  return result;
}

function collectTensors(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (value instanceof RowSparseGrad) for (const t of value.held) into.add(t);
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, into);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) collectTensors(v, into);
}

const finalizer = new FinalizationRegistry<{ backend: Backend; storage: Storage }>(({ backend, storage }) => {
  backend.free(storage);
});

let trackHook: ((t: Tensor) => void) | null = null;

/** Tell `hook` about every tensor created until it is reset to null (the step recorder uses it). */
export function setTrackHook(hook: ((t: Tensor) => void) | null): void {
  trackHook = hook;
}

/**
 * Called by every new tensor: joins the innermost {@link tidy} scope, and its storage is freed
 * once the tensor is garbage collected (if it was not disposed before).
 */
export function trackTensor(t: Tensor): void {
  trackHook?.(t);
  scopes[scopes.length - 1]?.push(t);
  finalizer.register(t, { backend: t.backend, storage: t.storage }, t);
}

/** Called by {@link Tensor.dispose}: the storage is freed now, so the collector must not free it again. */
export function untrackTensor(t: Tensor): void {
  finalizer.unregister(t);
}
