/** BCE and product BCE at logits of ±∞ on the host backends (the gpu modes run the same check in gpu-backend.test.ts). */
import { describe, it } from 'vitest';
import { ReferenceBackend } from '../../kernels/reference.js';
import { WasmBackend } from '../../kernels/wasm/index.js';
import { infiniteLogitChecks } from '../gpu/kernel-checks.js';

describe('bce at ±Inf logits', () => {
  it('is exact on the reference backend', () => infiniteLogitChecks(new ReferenceBackend()));
  it('is exact on the wasm backend (one thread and a pool)', () => {
    infiniteLogitChecks(new WasmBackend({ threads: 1 }));
    const pooled = new WasmBackend({
      threads: 2,
      parallelMin: { gemm: 0, simd: 0, math: 0, rows: 0 },
      adaptive: false,
    });
    try {
      infiniteLogitChecks(pooled);
    } finally {
      pooled.dispose?.();
    }
  });
});
