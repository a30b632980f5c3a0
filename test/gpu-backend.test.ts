/**
 * The gpu backend against the reference backend, once per gpu.js mode that can start here.
 *
 * A mode that cannot start is skipped with a warning, unless `ESMM_REQUIRE_MODES`
 * (comma-separated) names it: then its availability test fails. headlessgl needs the
 * `gl` package built and a display (run under `xvfb-run -a`).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../kernels/backend.js';
import { GpuBackend, GpuStorage, isModeSupported, type ConcreteGpuMode } from '../kernels/gpu/index.js';
import { createGpu, runsOn } from '../kernels/gpu/gpujs.js';
import { kernelChecks } from './gpu/kernel-checks.js';

const NODE_MODES: ConcreteGpuMode[] = ['cpu', 'webasm', 'headlessgl'];
const required = new Set(
  (process.env.ESMM_REQUIRE_MODES ?? '')
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean),
);

/** Why a mode cannot start, or null when it can. */
function unavailableReason(mode: ConcreteGpuMode): string | null {
  try {
    if (!isModeSupported(mode)) return `gpu.js reports mode '${mode}' unsupported`;
    const b = new GpuBackend({ mode });
    b.dispose();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const summary: string[] = [];

describe('gpu backend, fallback detection', () => {
  it('tells a kernel running on another mode from one on the asked mode', () => {
    const gpu = createGpu('cpu');
    const k = gpu.createKernel('function(a) { return a[this.thread.x]; }', {
      output: [2],
      pipeline: true,
      immutable: true,
      dynamicOutput: true,
      dynamicArguments: true,
      loopMaxIterations: 16,
      precision: 'single',
      tactic: 'precision',
    });
    k(new Float32Array([1, 2]));
    expect(runsOn(k, 'cpu')).toBe(true);
    // A cpu-class kernel is exactly what gpu.js leaves behind after a silent fallback.
    expect(runsOn(k, 'webasm')).toBe(false);
    expect(runsOn(k, 'headlessgl')).toBe(false);
    gpu.destroy();
  });

  it('refuses tensors too large for exact float32 indexing, with the limit in the message', () => {
    const b = new GpuBackend({ mode: 'cpu' });
    expect(() => b.alloc(2 ** 22, 'float32')).toThrow(/4194304 elements is too large .*limit is 4194303/);
    expect(() => b.alloc(8, 'float64')).toThrow(/float32 only/);
    expect(b.alloc(2 ** 22 - 1, 'float32').size).toBe(2 ** 22 - 1);
    b.dispose();
  });

  it('rejects webgpu (asynchronous in gpu.js) and unknown modes with a reason', () => {
    expect(() => new GpuBackend({ mode: 'webgpu' })).toThrow(/Promise|not available/);
    expect(() => new GpuBackend({ mode: 'bogus' })).toThrow(/unknown mode/);
  });
});

afterAll(() => {
  console.log(`gpu backend summary:\n${summary.map((l) => `  ${l}`).join('\n')}`);
});

for (const mode of NODE_MODES) {
  const reason = unavailableReason(mode);

  describe(`gpu backend, mode ${mode}`, () => {
    it('can start (required when listed in ESMM_REQUIRE_MODES)', () => {
      if (reason !== null) {
        if (required.has(mode)) throw new Error(`mode ${mode} is required but cannot start: ${reason}`);
        console.warn(`gpu backend: skipping mode ${mode}: ${reason}`);
        summary.push(`${mode}: SKIPPED (${reason})`);
      }
    });
    if (reason !== null) return;

    let backend: GpuBackend;
    let passed = 0;
    let failed = 0;
    const warnings: string[] = [];
    const warn = vi.spyOn(console, 'warn');

    beforeAll(() => {
      backend = new GpuBackend({ mode });
      warn.mockImplementation((...args: unknown[]) => {
        warnings.push(args.map(String).join(' '));
      });
    });
    afterEach(() => {
      // gpu.js announces a cpu fallback only through console.warn; none may appear.
      expect(warnings.filter((w) => /fall(ing)? ?back/i.test(w))).toEqual([]);
    });
    afterAll(() => {
      warn.mockRestore();
      summary.push(`${mode}: ${passed} checks passed, ${failed} failed, ${backend.launches} kernel launches`);
      backend.dispose();
    });

    it('reports its mode and keeps storage on the device', () => {
      expect(backend.mode).toBe(mode);
      expect(backend.name).toBe(`gpu:${mode}`);
      expect(backend.supportsDtype('float64')).toBe(false);
      const s = backend.fromArray(new Float32Array([1, 2, 3]), 'float32');
      backend.unary('exp', s, s);
      const handle = (s as GpuStorage).handle;
      if (mode === 'headlessgl') expect(handle).not.toBeInstanceOf(Float32Array);
      else expect(handle).toBeInstanceOf(Float32Array);
      backend.free(s);
    });

    for (const check of kernelChecks()) {
      it(check.name, () => {
        try {
          check.run(backend as Backend);
          passed++;
        } catch (e) {
          failed++;
          throw e;
        }
      });
    }
  });
}
