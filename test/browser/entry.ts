/**
 * Browser bundle entry: exposes `esmmGpuChecks(mode, scale)` (the shared kernel checks on
 * the synchronous gpu backend), `esmmWebGpu(scale, tower)` (the same checks awaited on
 * webgpu, plus a tower forward compared with the reference backend) and
 * `esmmWasmChecks(simd, scale)` (the checks on the wasm backend's plain or relaxed SIMD
 * kernels) on `globalThis`.
 */
import type { Backend } from '../../kernels/backend.js';
import { ReferenceBackend } from '../../kernels/reference.js';
import {
  AsyncGpuBackend,
  asyncOf,
  GpuBackend,
  isModeSupported,
  isWebGpuAvailable,
  type ConcreteGpuMode,
} from '../../kernels/gpu/index.js';
import { relaxedSimdSupported, WasmBackend, type SimdVariant } from '../../kernels/wasm/index.js';
import { MlpTowerSession, type MlpTowerWeights, type TowerBatch } from '../../models/tower-session.js';
import { kernelChecks } from '../gpu/kernel-checks.js';
import { runChecksAsync } from './async-checks.js';
import type { TowerFixture } from './tower-fixture.js';

/** What one browser run reports back to Node. */
export interface BrowserReport {
  mode: string;
  started: boolean;
  reason: string | null;
  passed: number;
  failed: { name: string; error: string }[];
}

/** The webgpu run: checks, adapter, and the tower forward on both backends. */
export interface WebGpuReport extends BrowserReport {
  /** Adapter description (architecture, fallback or not). */
  adapter: string | null;
  /** Backend calls replayed by the checks, and kernel launches on webgpu. */
  calls: number;
  launches: number;
  /** Tower probabilities on webgpu and on the reference backend (null when the tower failed). */
  tower: { webgpu: number[]; reference: number[] } | null;
  towerError: string | null;
  seconds: number;
}

/** The wasm run: which variant the backend built, and whether the browser validates relaxed SIMD. */
export interface WasmReport extends BrowserReport {
  simd: SimdVariant | null;
  relaxedSupported: boolean;
}

/** Runs the shared kernel checks on `backend`, counting passes and keeping each failure's message. */
function runChecks(backend: Backend, scale: number, report: BrowserReport): void {
  for (const check of kernelChecks(scale)) {
    try {
      check.run(backend);
      report.passed++;
    } catch (e) {
      report.failed.push({ name: check.name, error: String((e as Error).message).slice(0, 500) });
    }
  }
}

function runWasm(simd: SimdVariant, scale: number): WasmReport {
  const report: WasmReport = {
    mode: `wasm ${simd}`,
    started: false,
    reason: null,
    passed: 0,
    failed: [],
    simd: null,
    relaxedSupported: relaxedSimdSupported(),
  };
  let backend: WasmBackend;
  try {
    backend = new WasmBackend({ threads: 1, simd });
  } catch (e) {
    report.reason = (e as Error).message;
    return report;
  }
  report.started = true;
  report.simd = backend.simd;
  runChecks(backend, scale, report);
  return report;
}

function run(mode: ConcreteGpuMode, scale: number): BrowserReport {
  const report: BrowserReport = { mode, started: false, reason: null, passed: 0, failed: [] };
  let backend: GpuBackend;
  try {
    if (!isModeSupported(mode)) throw new Error(`gpu.js reports mode '${mode}' unsupported`);
    backend = new GpuBackend({ mode });
  } catch (e) {
    report.reason = (e as Error).message;
    return report;
  }
  report.started = true;
  runChecks(backend, scale, report);
  backend.dispose();
  return report;
}

function towerOf(t: TowerFixture): { weights: MlpTowerWeights; batch: TowerBatch } {
  return {
    weights: {
      fields: t.fields.map((f) => ({ ...f, table: Float32Array.from(f.table) })),
      layers: t.layers.map((l) => ({
        ...l,
        weight: Float32Array.from(l.weight),
        bias: l.bias ? Float32Array.from(l.bias) : null,
        preluSlope: l.preluSlope ? Float32Array.from(l.preluSlope) : null,
      })),
    },
    batch: {
      size: t.batch.size,
      fields: t.batch.fields.map((f) => ({ ids: Int32Array.from(f.ids), offsets: Int32Array.from(f.offsets) })),
    },
  };
}

async function runWebGpu(scale: number, fixture: TowerFixture): Promise<WebGpuReport> {
  const t0 = performance.now();
  const report: WebGpuReport = {
    mode: 'webgpu',
    started: false,
    reason: null,
    passed: 0,
    failed: [],
    adapter: null,
    calls: 0,
    launches: 0,
    tower: null,
    towerError: null,
    seconds: 0,
  };
  const nav = navigator as Navigator & {
    gpu?: {
      requestAdapter(): Promise<{
        info?: { architecture?: string; vendor?: string };
        isFallbackAdapter?: boolean;
      } | null>;
    };
  };
  if (!nav.gpu) {
    report.reason = isSecureContext ? 'navigator.gpu absent' : 'navigator.gpu absent (not a secure context)';
    return report;
  }
  const adapter = await nav.gpu.requestAdapter();
  if (!adapter || !(await isWebGpuAvailable())) {
    report.reason = 'navigator.gpu present but no adapter';
    return report;
  }
  report.adapter = `${adapter.info?.vendor ?? '?'}/${adapter.info?.architecture ?? '?'}${adapter.isFallbackAdapter ? ' (fallback adapter)' : ''}`;
  let backend: AsyncGpuBackend;
  try {
    backend = await AsyncGpuBackend.create();
  } catch (e) {
    report.reason = (e as Error).message;
    return report;
  }
  report.started = true;
  const result = await runChecksAsync(kernelChecks(scale), backend);
  report.passed = result.passed;
  report.failed = result.failed;
  report.calls = result.calls;
  try {
    const { weights, batch } = towerOf(fixture);
    const score = async (b: AsyncGpuBackend | ReturnType<typeof asyncOf>): Promise<number[]> => {
      const session = await MlpTowerSession.load(b, weights);
      try {
        return Array.from(await session.forward(batch));
      } finally {
        await session.dispose();
      }
    };
    report.tower = { webgpu: await score(backend), reference: await score(asyncOf(new ReferenceBackend())) };
  } catch (e) {
    report.towerError = String((e as Error).message).slice(0, 500);
  }
  report.launches = backend.launches;
  await backend.dispose();
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

Object.assign(globalThis, { esmmGpuChecks: run, esmmWebGpu: runWebGpu, esmmWasmChecks: runWasm });
