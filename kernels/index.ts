/**
 * Kernels: the backend interface, its implementations, and the choice of the active one.
 *
 * `setBackend('reference')` selects a backend for tensors created from then on;
 * the environment variable `ESMM_BACKEND` sets the initial choice.
 */
import type { Backend } from './backend.js';
import { GpuBackend, QueuedGpuBackend } from './gpu/index.js';
import { ReferenceBackend } from './reference.js';
import { WasmBackend } from './wasm/index.js';

export { readsAsync } from './backend.js';
export type {
  AdamHyper,
  AsyncReadBackend,
  Backend,
  BagMode,
  BinaryOp,
  DType,
  FloatArray,
  MatmulGeometry,
  Storage,
  TypedArrayFor,
  UnaryOp,
} from './backend.js';
export { ReferenceBackend, HostStorage, bagScale } from './reference.js';
export {
  GpuBackend,
  GpuStorage,
  GPU_MODES,
  resolveGpuMode,
  MAX_GPU_ELEMENTS,
  type ConcreteGpuMode,
  type GpuBackendOptions,
  type GpuMode,
  AsyncGpuBackend,
  AsyncGpuStorage,
  QueuedGpuBackend,
  QueuedGpuStorage,
  asyncOf,
  MlpTowerSession,
  type AsyncBackend,
  type AsyncKernels,
  type AsyncMethod,
  type BagFieldWeights,
  type DenseLayerWeights,
  type MlpTowerWeights,
  type TowerBatch,
} from './gpu/index.js';
export type { DeviceBuffer, DeviceTexture } from './gpu/gpujs.js';
export {
  WasmBackend,
  createWasmBackend,
  autoThreads,
  PARALLEL_MIN,
  Arena,
  WasmStorage,
  type ArenaStats,
  type ParallelThresholds,
  type PoolStats,
  type WasmBackendOptions,
} from './wasm/index.js';
export { broadcastShapes, broadcastStrides, sameShape, sizeOf, stridesOf } from './shape-util.js';
export * as stableMath from './stable-math.js';

/** Options a backend factory may read (e.g. the gpu.js mode). */
export interface BackendOptions {
  /** gpu.js mode for the `gpu` backend: `cpu`, `webasm`, `headlessgl`, `webgl2`, `webgpu` or `auto`. */
  mode?: string;
  /** Threads for backends that can use them (the wasm backend); `auto` uses a second core when one is free. */
  threads?: number | 'auto';
}

/** Makes a backend; registered by name. */
export type BackendFactory = (options: BackendOptions) => Backend;

const factories = new Map<string, BackendFactory>();
factories.set('reference', () => new ReferenceBackend());
// webgpu kernels finish after their calls return, so that mode is the queued backend (awaited reads only).
factories.set('gpu', (options) => (options.mode === 'webgpu' ? new QueuedGpuBackend() : new GpuBackend(options)));
factories.set('wasm', (options) => new WasmBackend(options));

let active: Backend | null = null;

/** Make a backend available to {@link setBackend} under `name`. */
export function registerBackend(name: string, factory: BackendFactory): void {
  factories.set(name, factory);
}

/** Names of the registered backends. */
export function listBackends(): string[] {
  return [...factories.keys()];
}

/** Create a backend by name without making it active. */
export function createBackend(name: string, options: BackendOptions = {}): Backend {
  const factory = factories.get(name);
  if (!factory) throw new Error(`unknown backend '${name}'; registered: ${listBackends().join(', ')}`);
  return factory(options);
}

/** Select the backend that new tensors are created on. Returns it. */
export function setBackend(nameOrBackend: string | Backend, options: BackendOptions = {}): Backend {
  active = typeof nameOrBackend === 'string' ? createBackend(nameOrBackend, options) : nameOrBackend;
  return active;
}

/**
 * The backend used when none is chosen. `wasm` measured fastest for ESMM training on CPUs
 * (about 10× `reference` and 20× gpu.js `webasm`; see docs/backends.md).
 */
export const DEFAULT_BACKEND = 'wasm';

/** The active backend: the one set last, else `ESMM_BACKEND`, else {@link DEFAULT_BACKEND}. */
export function getBackend(): Backend {
  if (!active) {
    const env = typeof process !== 'undefined' ? process.env : {};
    const name = env.ESMM_BACKEND ?? DEFAULT_BACKEND;
    active = createBackend(name, { mode: env.ESMM_GPU_MODE });
  }
  return active;
}
