/**
 * Browser bundle entry: exposes `esmmGpuChecks(mode, scale)` on `globalThis`, which runs the
 * shared kernel checks against the gpu backend in one mode and reports per-check results.
 */
import { GpuBackend, isModeSupported, type ConcreteGpuMode } from '../../kernels/gpu/index.js';
import { kernelChecks } from '../gpu/kernel-checks.js';

/** What one browser run reports back to Node. */
export interface BrowserReport {
  mode: string;
  started: boolean;
  reason: string | null;
  passed: number;
  failed: { name: string; error: string }[];
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
  for (const check of kernelChecks(scale)) {
    try {
      check.run(backend);
      report.passed++;
    } catch (e) {
      report.failed.push({ name: check.name, error: String((e as Error).message).slice(0, 500) });
    }
  }
  backend.dispose();
  return report;
}

(globalThis as unknown as { esmmGpuChecks: typeof run }).esmmGpuChecks = run;
