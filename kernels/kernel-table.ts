/**
 * A backend's kernels written as one table, typed by {@link BackendKernels}: each entry gets its
 * parameter types from the interface, so no implementation restates a kernel's signature.
 *
 * A backend class extends {@link kernelBase} (which declares every kernel, so the class is a
 * complete {@link BackendKernels} to the rest of the program) and installs its table with
 * {@link defineKernels}. A kernel added to the interface then fails to compile in exactly one
 * place per backend: the table that lacks it.
 */
import type { BackendKernels } from './backend.js';

/** Every kernel of {@link BackendKernels} with its own parameters, returning `R`. Each is documented on {@link BackendKernels}. */
export type Kernels<R = void> = {
  [K in keyof BackendKernels]: (...args: Parameters<BackendKernels[K]>) => R;
};

/** The kernels of a backend `Self` as a table: {@link Kernels} with `this` typed as the backend. */
export type KernelTable<Self, R = void> = {
  /** The kernel of this name on {@link BackendKernels}, where it is documented. */
  [K in keyof BackendKernels]: (this: Self, ...args: Parameters<BackendKernels[K]>) => R;
};

/** A base class declaring every kernel of {@link BackendKernels}; its subclass installs them with {@link defineKernels}. */
export function kernelBase<R = void>(): abstract new () => Kernels<R> {
  return class {} as unknown as abstract new () => Kernels<R>;
}

/** Installs `table` as the kernel methods of `cls`, one prototype method per kernel. */
export function defineKernels<Self, R = void>(cls: { prototype: Self }, table: KernelTable<Self, R>): void {
  for (const [name, fn] of Object.entries(table)) {
    Object.defineProperty(cls.prototype, name, { value: fn, writable: true, configurable: true });
  }
}
