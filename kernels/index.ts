/**
 * Kernels: the backend interface, its implementations, and the choice of the active one.
 *
 * `setBackend('reference')` selects a backend for tensors created from then on;
 * the environment variable `ESMM_BACKEND` sets the initial choice. The `gpu` backend
 * needs gpu.js, an optional peer dependency, so it is imported on first use:
 * `await setBackendAsync('gpu')` (or `await ready()` when `ESMM_BACKEND=gpu`), or
 * `import 'esmm-ts/kernels/gpu'` first, after which `setBackend('gpu')` works as well.
 */
import type { Backend } from './backend.js';
import { importOptionalPeer } from './optional-peer.js';
import { ReferenceBackend } from './reference.js';
import { WasmBackend, type WasmSimd } from './wasm/index.js';

export { readsAsync } from './backend.js';
export type {
  AdamHyper,
  AsyncReadBackend,
  Backend,
  BackendKernels,
  BackendMethod,
  KernelMethod,
  StorageMethod,
  BagMode,
  BinaryOp,
  DType,
  FloatArray,
  MatmulGeometry,
  RangeAccess,
  Storage,
  TypedArrayFor,
  UnaryOp,
} from './backend.js';
export { hasRangeAccess, STORAGE_METHODS } from './backend.js';
export { defineKernels, kernelBase, type KernelTable, type Kernels } from './kernel-table.js';
export { ReferenceBackend, HostStorage, bagScale } from './reference.js';
// The gpu backend's classes live in `esmm-ts/kernels/gpu` (importing it loads gpu.js);
// only its types are re-exported here, which load nothing.
export type {
  ConcreteGpuMode,
  GpuBackend,
  GpuBackendOptions,
  GpuMode,
  GpuStorage,
  AsyncBackend,
  AsyncGpuBackend,
  AsyncGpuStorage,
  QueuedGpuBackend,
  QueuedGpuStorage,
  AsyncKernels,
  AsyncMethod,
} from './gpu/index.js';
export type { DeviceBuffer, DeviceTexture } from './gpu/gpujs.js';
export { importOptionalPeer, type OptionalPeer } from './optional-peer.js';
export {
  WasmBackend,
  createWasmBackend,
  autoThreads,
  relaxedSimdSupported,
  DEFAULT_WASM_SIMD,
  PARALLEL_MIN,
  Arena,
  WasmStorage,
  type ArenaStats,
  type ParallelThresholds,
  type PoolStats,
  type WasmBackendOptions,
  type WasmSimd,
  type SimdVariant,
} from './wasm/index.js';
export { broadcastShapes, broadcastStrides, sameShape, sizeOf, stridesOf } from './shape-util.js';
export * as stableMath from './stable-math.js';

/** Options a backend factory may read (e.g. the gpu.js mode). */
export interface BackendOptions {
  /** gpu.js mode for the `gpu` backend: `cpu`, `webasm`, `headlessgl`, `webgl2`, `webgpu` or `auto`. */
  mode?: string;
  /** Threads for backends that can use them (the wasm backend); `auto` uses a second core when one is free. */
  threads?: number | 'auto';
  /** SIMD of the wasm backend's kernels: `auto` (relaxed SIMD where the runtime has it), `relaxed` or `plain`. */
  simd?: WasmSimd;
}

/** Makes a backend; registered by name. */
export type BackendFactory = (options: BackendOptions) => Backend;

const factories = new Map<string, BackendFactory>();
factories.set('reference', () => new ReferenceBackend());
factories.set('wasm', ({ threads, simd }) => new WasmBackend({ threads, simd }));

/**
 * Backends whose module is imported on first use; importing it registers the factory.
 * The specifier is a variable so that bundlers leave gpu.js out of bundles that never ask
 * for it (a bundled app that wants it imports `esmm-ts/kernels/gpu` itself).
 */
const GPU_ENTRY = './gpu/index.js';
const loaders = new Map<string, () => Promise<unknown>>([
  [
    'gpu',
    () =>
      importOptionalPeer(() => import(/* @vite-ignore */ GPU_ENTRY), {
        peer: 'gpu.js',
        feature: 'the gpu backend',
        entry: 'esmm-ts/kernels/gpu',
      }),
  ],
]);

let active: Backend | null = null;

/** Make a backend available to {@link setBackend} under `name`. */
export function registerBackend(name: string, factory: BackendFactory): void {
  factories.set(name, factory);
}

/** Names of the registered backends, those imported on first use included. */
export function listBackends(): string[] {
  return [...new Set([...factories.keys(), ...loaders.keys()])];
}

/**
 * Create a backend by name without making it active. A backend imported on first use
 * (`gpu`) must have been loaded by {@link createBackendAsync}, {@link setBackendAsync},
 * {@link ready} or an import of its entry point.
 */
export function createBackend(name: string, options: BackendOptions = {}): Backend {
  const factory = factories.get(name);
  if (factory) return factory(options);
  if (loaders.has(name)) {
    throw new Error(
      `backend '${name}' is imported on first use and is not loaded yet: use \`await setBackendAsync('${name}')\` ` +
        `(or \`await ready()\` when ESMM_BACKEND=${name}), or import 'esmm-ts/kernels/${name}' before this call`,
    );
  }
  throw new Error(`unknown backend '${name}'; registered: ${listBackends().join(', ')}`);
}

/** {@link createBackend}, first importing the backend's module if it is loaded on use (`gpu`: gpu.js). */
export async function createBackendAsync(name: string, options: BackendOptions = {}): Promise<Backend> {
  const load = loaders.get(name);
  if (load && !factories.has(name)) {
    await load();
    if (!factories.has(name)) throw new Error(`backend '${name}': its module loaded but registered no factory`);
  }
  return createBackend(name, options);
}

/** Select the backend that new tensors are created on. Returns it. */
export function setBackend(nameOrBackend: string | Backend, options: BackendOptions = {}): Backend {
  active = typeof nameOrBackend === 'string' ? createBackend(nameOrBackend, options) : nameOrBackend;
  return active;
}

/** {@link setBackend} for any backend, importing it first if it is loaded on use (`gpu`). */
export async function setBackendAsync(nameOrBackend: string | Backend, options: BackendOptions = {}): Promise<Backend> {
  active = typeof nameOrBackend === 'string' ? await createBackendAsync(nameOrBackend, options) : nameOrBackend;
  return active;
}

/**
 * The backend used when none is chosen. `wasm` measured fastest for training on CPUs
 * (about 10× `reference` and 20× gpu.js `webasm`; see docs/backends.md).
 */
export const DEFAULT_BACKEND = 'wasm';

/** The backend named by `ESMM_BACKEND` (and `ESMM_GPU_MODE`), else {@link DEFAULT_BACKEND}. */
function environmentChoice(): { name: string; options: BackendOptions } {
  const env = typeof process !== 'undefined' ? process.env : {};
  return { name: env.ESMM_BACKEND ?? DEFAULT_BACKEND, options: { mode: env.ESMM_GPU_MODE } };
}

/** The active backend: the one set last, else `ESMM_BACKEND`, else {@link DEFAULT_BACKEND}. */
export function getBackend(): Backend {
  if (!active) {
    const { name, options } = environmentChoice();
    active = createBackend(name, options);
  }
  return active;
}

/**
 * The active backend once it can run: like {@link getBackend}, but it first imports a backend
 * that is loaded on use, so `ESMM_BACKEND=gpu` works after `await ready()`.
 */
export async function ready(): Promise<Backend> {
  if (!active) {
    const { name, options } = environmentChoice();
    active = await createBackendAsync(name, options);
  }
  return active;
}
