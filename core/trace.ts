/**
 * Tracing hooks: while a tracer is active, every op applied and every tensor made from a host
 * array is reported to it, so that an exporter can turn one eager forward into a static graph
 * (as `torch.jit.trace` does). Inactive, each hook costs one null check.
 */
import type { OpDefinition, Tensor } from './tensor.js';

/** What a tracer is told. */
export interface Tracer {
  /** An op ran: its definition, tensor inputs, attributes and output. */
  onApply(op: OpDefinition<unknown>, inputs: readonly Tensor[], attrs: unknown, output: Tensor): void;
  /** A tensor was made from host values (`Tensor.fromArray`). */
  onFromArray(values: ArrayLike<number>, output: Tensor): void;
  /** A host array was marked by {@link markTraced} as derived from the traced inputs. */
  onMark(array: object, tag: unknown): void;
}

let active: Tracer | null = null;

/** The tracer in effect, if any. */
export function activeTracer(): Tracer | null {
  return active;
}

/** Run `fn` with `tracer` receiving every hook; traces do not nest. */
export function withTracer<T>(tracer: Tracer, fn: () => T): T {
  if (active) throw new Error('withTracer: a trace is already running');
  active = tracer;
  try {
    return fn();
  } finally {
    active = null;
  }
}

/**
 * Tell an active tracer that a host array (ids, a mask) was computed from the traced inputs,
 * with a tag the exporter understands; without a tracer it does nothing. Code that builds index
 * arrays on the host calls it so that the computation can be expressed in the exported graph.
 */
export function markTraced(array: object, tag: unknown): void {
  active?.onMark(array, tag);
}
