/**
 * The `wasm` backend: tensors in one WebAssembly memory, float32 kernels as WebAssembly
 * SIMD generated from TypeScript by a small assembler. Everything compiles synchronously.
 */
import { WasmBackend, type WasmBackendOptions } from './backend.js';

export { WasmBackend, planBroadcast, type BroadcastPlan, type WasmBackendOptions } from './backend.js';
export { Arena, WasmStorage, sizeClass, type ArenaStats } from './arena.js';
export { ModuleBuilder, FunctionBuilder, type FuncRef, type Local, type ValType } from './builder.js';
export { buildKernelModule, kernelModule, type KernelExports } from './kernels.js';

/** Make a wasm backend (the factory registered under the name `wasm`). */
export function createWasmBackend(options: WasmBackendOptions = {}): WasmBackend {
  return new WasmBackend(options);
}
