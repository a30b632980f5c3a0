/**
 * The kernel methods of both gpu.js backends, generated once from the plan table.
 *
 * Every kernel of the backend interface is a plan in `plans.ts`; a backend only says how it
 * steps one ({@link PlanRunner.runKernel}: at once, or queued and awaited), and this file
 * gives it one method per kernel, named and typed as on the interface, returning `R`
 * (`void` for the synchronous backend, `Promise<void>` for the webgpu one). A kernel added
 * to the interface and to `PLANS` appears on both backends with no further edit.
 */
import type { KernelMethod } from '../backend.js';
import { defineKernels, type KernelTable, type Kernels } from '../kernel-table.js';
import { KERNEL_METHODS } from './plans.js';

/** How a backend steps the plan of one kernel call. */
export interface PlanRunner<R> {
  /**
   * Runs kernel `name`'s plan (`PLANS[name]`) on `args`, the arguments of the call.
   * @internal
   */
  runKernel(name: KernelMethod, args: unknown[]): R;
}

/** A base class with one method per kernel, each handing its call to the subclass's `runKernel`. */
export function plannedKernels<R>(): abstract new () => PlanRunner<R> & Kernels<R> {
  abstract class Planned {
    abstract runKernel(name: KernelMethod, args: unknown[]): R;
  }
  const table: Record<string, (this: Planned, ...args: unknown[]) => R> = {};
  for (const name of KERNEL_METHODS) {
    // A computed method name, so stack traces name the kernel.
    table[name] = {
      [name](this: Planned, ...args: unknown[]): R {
        return this.runKernel(name, args);
      },
    }[name];
  }
  defineKernels(Planned, table as unknown as KernelTable<Planned, R>);
  return Planned as unknown as abstract new () => PlanRunner<R> & Kernels<R>;
}
