/**
 * The gpu backend against the reference backend, once per gpu.js mode that can start here.
 *
 * A mode that cannot start is skipped with a warning, unless `ESMM_REQUIRE_MODES`
 * (comma-separated) names it: then its availability test fails. headlessgl needs the
 * `gl` package built and a display (run under `xvfb-run -a`).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../kernels/backend.js';
import type { AdamHyper, Storage } from '../kernels/backend.js';
import {
  GpuBackend,
  GpuStorage,
  isModeSupported,
  MAX_GPU_ELEMENTS,
  type ConcreteGpuMode,
} from '../kernels/gpu/index.js';
import { createGpu, runsOn } from '../kernels/gpu/gpujs.js';
import { KERNEL_METHODS } from '../kernels/gpu/plans.js';
import { ReferenceBackend } from '../kernels/reference.js';
import { assertClose, kernelChecks, randomArray } from './gpu/kernel-checks.js';

/** An 18-wide table just past one kernel's 2^22 elements: three blocks, rows straddling both block boundaries. */
const DIM = 18;
const ROWS = Math.floor(2 ** 22 / DIM) + 5;
const SIZE = ROWS * DIM;
/** Rows on both sides of, and across, the block boundaries at 2^21 and 2^22 elements. */
const EDGE_ROWS = [0, 116507, 116508, 116509, 233015, 233016, 233017, ROWS - 1];

/**
 * Storage, elementwise, row and Adam kernels on one large table against the reference
 * backend; a kernel that does not run per block refuses it by name.
 */
function blockedTableChecks(backendOf: () => GpuBackend, mode: ConcreteGpuMode): void {
  const ref = new ReferenceBackend();
  const h: AdamHyper = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };
  const both = (data: Float32Array): [Storage, Storage] => [
    backendOf().fromArray(data, 'float32'),
    ref.fromArray(data, 'float32'),
  ];
  const same = (pairs: [Storage, Storage][], what: string): void => {
    pairs.forEach(([g, r], i) => assertClose(backendOf().read(g), ref.read(r), `${what} #${i}`));
  };

  it('stores a table past 2^22 elements in blocks on the device: fill, write, read, copy', () => {
    const backend = backendOf();
    const s = backend.alloc(SIZE, 'float32') as GpuStorage;
    expect(s.chunks?.length).toBe(3);
    for (const c of s.chunks ?? []) {
      if (mode === 'headlessgl') expect(c.handle).not.toBeInstanceOf(Float32Array);
      else expect(c.handle).toBeInstanceOf(Float32Array);
    }
    expect(backend.read(s).every((x) => x === 0)).toBe(true);
    backend.fill(s, 1.5);
    expect(backend.read(s).every((x) => x === 1.5)).toBe(true);
    const data = randomArray(SIZE, 11);
    backend.write(s, data);
    assertClose(backend.read(s), data, 'write/read', { atol: 0, rtol: 0 });
    const t = backend.alloc(SIZE, 'float32');
    backend.copy(s, t);
    assertClose(backend.read(t), data, 'copy', { atol: 0, rtol: 0 });
    backend.free(s);
    backend.free(t);
  });

  it('gathers and pools rows on both sides of block boundaries', () => {
    const backend = backendOf();
    const [tg, tr] = both(randomArray(SIZE, 12));
    const ids = Int32Array.from([...EDGE_ROWS, 116508, 5]);
    const [og, or] = both(new Float32Array(ids.length * DIM));
    backend.gatherRows(tg, DIM, ids, og);
    ref.gatherRows(tr, DIM, ids, or);
    same([[og, or]], 'gatherRows');
    const offsets = Int32Array.from([0, 3, 3, 7, ids.length]);
    const weights = randomArray(ids.length, 13, 0.5, 1.5);
    for (const mode of ['sum', 'mean', 'sqrtn'] as const) {
      for (const w of [null, weights]) {
        const [bg, br] = both(new Float32Array(4 * DIM));
        backend.embeddingBag(tg, DIM, ids, offsets, w, mode, bg);
        ref.embeddingBag(tr, DIM, ids, offsets, w, mode, br);
        same([[bg, br]], `embeddingBag ${mode}${w ? ' weighted' : ''}`);
      }
    }
    for (const s of [tg, og]) backend.free(s);
  });

  it('scatters rows and runs sparse and dense Adam across block boundaries', () => {
    const backend = backendOf();
    const rows = Int32Array.from(EDGE_ROWS);
    const [vg, vr] = both(randomArray(rows.length * DIM, 14));
    const [og, or] = both(randomArray(SIZE, 15));
    backend.scatterAddRows(vg, DIM, rows, og);
    ref.scatterAddRows(vr, DIM, rows, or);
    same([[og, or]], 'scatterAddRows');
    const p: [Storage, Storage] = [og, or];
    const m = both(randomArray(SIZE, 16, -0.1, 0.1));
    const v = both(randomArray(SIZE, 17, 0, 0.1));
    for (const step of [1, 2]) {
      backend.sparseAdam(p[0], m[0], v[0], DIM, rows, vg, { ...h, step });
      ref.sparseAdam(p[1], m[1], v[1], DIM, rows, vr, { ...h, step });
    }
    same([p, m, v], 'sparseAdam');
    const g = both(randomArray(SIZE, 18));
    backend.adam(p[0], g[0], m[0], v[0], { ...h, step: 3 });
    ref.adam(p[1], g[1], m[1], v[1], { ...h, step: 3 });
    same([p, m, v], 'adam');
    backend.unary('tanh', g[0], g[0]);
    ref.unary('tanh', g[1], g[1]);
    backend.affine(g[0], 0.5, 0.25, m[0]);
    ref.affine(g[1], 0.5, 0.25, m[1]);
    backend.axpby(2, m[0], -1, p[0], v[0]);
    ref.axpby(2, m[1], -1, p[1], v[1]);
    backend.binary('mul', v[0], [ROWS, DIM], g[0], [ROWS, DIM], p[0], [ROWS, DIM]);
    ref.binary('mul', v[1], [ROWS, DIM], g[1], [ROWS, DIM], p[1], [ROWS, DIM]);
    same([g, m, v, p], 'elementwise');
    const small = backend.alloc(DIM, 'float32');
    expect(() => backend.reduceSum(p[0], [ROWS, DIM], [0], small)).toThrow(/kernel 'reduceSum' does not support/);
    expect(() => backend.binary('add', p[0], [ROWS, DIM], small, [DIM], p[0], [ROWS, DIM])).toThrow(/kernel 'binary'/);
    for (const s of [vg, og, m[0], v[0], g[0], small]) backend.free(s);
  });
}

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

  it('refuses tensors past its block limit, with the limit in the message', () => {
    const b = new GpuBackend({ mode: 'cpu' });
    expect(MAX_GPU_ELEMENTS).toBe(2 ** 28);
    expect(() => b.alloc(2 ** 28, 'float32')).toThrow(/268435456 elements is too large .*limit is 268435455/);
    expect(() => b.fromArray(new Float32Array(8), 'float64')).toThrow(/float32 only/);
    expect(() => b.alloc(8, 'float64')).toThrow(/float32 only/);
    const plain = b.alloc(2 ** 22 - 1, 'float32') as GpuStorage;
    expect(plain.chunks).toBeNull();
    const blocked = b.alloc(2 ** 22, 'float32') as GpuStorage;
    expect(blocked.chunks?.map((c) => c.size)).toEqual([2 ** 21, 2 ** 21]);
    b.dispose();
  });

  it('rejects webgpu (asynchronous in gpu.js) and unknown modes with a reason', () => {
    expect(() => new GpuBackend({ mode: 'webgpu' })).toThrow(/Promise|not available/);
    expect(() => new GpuBackend({ mode: 'bogus' })).toThrow(/unknown mode/);
  });
});

describe('kernel checks', () => {
  it('exercise every kernel of the interface (a new kernel needs a check case)', () => {
    const called = new Set<string>();
    const ref = new ReferenceBackend();
    const recording = new Proxy(ref, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof key !== 'string' || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          called.add(key);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    for (const check of kernelChecks(0.01)) check.run(recording);
    expect(KERNEL_METHODS.filter((k) => !called.has(k))).toEqual([]);
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

    blockedTableChecks(() => backend, mode);

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
