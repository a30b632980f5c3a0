import { defineConfig } from 'vitest/config';

const shared = { testTimeout: 120_000, hookTimeout: 600_000 };
// The model zoo and trainer suites run again on the reference backend and on the
// gpu backend (gpu.js cpu mode), so every backend runs the models, not just the kernels.
const modelSuites = ['test/models-*.test.ts', 'test/training.test.ts'];
// Node 20 validates relaxed SIMD only behind a V8 flag, so the wasm kernel checks, the
// thread-identity checks and the captured-step equality run again in processes started with
// it, on the relaxed kernels ('auto' picks them there; the wasm helpers fail if it cannot).
const relaxedSuites = [
  'test/wasm-backend.test.ts',
  'test/wasm/*.test.ts',
  'test/core-capture.test.ts',
  'test/models-capture.test.ts',
];

export default defineConfig({
  test: {
    projects: [
      { test: { ...shared, name: 'default', include: ['test/**/*.test.ts'] } },
      { test: { ...shared, name: 'models@reference', include: modelSuites, env: { ESMM_BACKEND: 'reference' } } },
      {
        test: {
          ...shared,
          name: 'wasm@relaxed-simd',
          include: relaxedSuites,
          execArgv: ['--experimental-wasm-relaxed-simd'],
          env: { ESMM_TEST_SIMD: 'relaxed' },
        },
      },
      {
        test: {
          ...shared,
          name: 'models@gpu-cpu',
          include: modelSuites,
          env: { ESMM_BACKEND: 'gpu', ESMM_GPU_MODE: 'cpu' },
          setupFiles: ['test/helpers/backend-ready.ts'],
        },
      },
    ],
  },
});
