/**
 * The `wasm` backend: tensors in one WebAssembly memory, float32 kernels as WebAssembly
 * SIMD generated from TypeScript by a small assembler. Everything compiles synchronously.
 */
import { WasmBackend, type WasmBackendOptions } from './backend.js';

export {
  WasmBackend,
  planBroadcast,
  planOuterBroadcast,
  autoThreads,
  resolveSimd,
  DEFAULT_WASM_SIMD,
  PARALLEL_MIN,
  type BroadcastPlan,
  type ParallelThresholds,
  type WasmBackendOptions,
  type WasmSimd,
} from './backend.js';
export { ThreadPool, poolSupported, type PoolStats } from './pool.js';
export { Arena, WasmStorage, sizeClass, type ArenaStats } from './arena.js';
export { ModuleBuilder, FunctionBuilder, type FuncRef, type Local, type ValType } from './builder.js';
export {
  buildKernelModule,
  kernelModule,
  relaxedSimdSupported,
  MATH_IMPORTS,
  MAX_PAGES,
  type SimdVariant,
} from './kernels.js';
export {
  LAYOUTS,
  checkLayouts,
  type ArgSpec,
  type KernelArgs,
  type KernelName,
  type Layout,
  type SplitUnit,
} from './layouts.js';

/** Make a wasm backend (the factory registered under the name `wasm`). */
export function createWasmBackend(options: WasmBackendOptions = {}): WasmBackend {
  return new WasmBackend(options);
}
