/**
 * Backends imported on first use: `gpu` loads gpu.js (an optional peer) only when asked for,
 * through the async entry points or `ESMM_BACKEND` plus `ready()`; a missing peer says what to install.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  createBackend,
  createBackendAsync,
  getBackend,
  importOptionalPeer,
  listBackends,
  ready,
  setBackend,
  setBackendAsync,
} from '../kernels/index.js';

afterAll(() => vi.unstubAllEnvs());

describe('backends imported on first use', () => {
  it('lists gpu before it is loaded, and the sync entry points say how to load it', () => {
    expect(listBackends()).toEqual(expect.arrayContaining(['reference', 'wasm', 'gpu']));
    expect(() => createBackend('gpu')).toThrow(/not loaded yet: use `await setBackendAsync\('gpu'\)`/);
    expect(() => setBackend('gpu')).toThrow(/esmm-ts\/kernels\/gpu/);
    expect(() => createBackend('tpu')).toThrow(/unknown backend 'tpu'; registered: reference, wasm, gpu/);
  });

  it('ESMM_BACKEND=gpu: getBackend() asks for ready(), which loads gpu.js and keeps the backend', async () => {
    vi.stubEnv('ESMM_BACKEND', 'gpu');
    vi.stubEnv('ESMM_GPU_MODE', 'cpu');
    expect(() => getBackend()).toThrow(/await ready\(\)` when ESMM_BACKEND=gpu/);
    const backend = await ready();
    expect(backend.name).toBe('gpu:cpu');
    expect(getBackend()).toBe(backend);
    expect(await ready()).toBe(backend);
  });

  it('once loaded, gpu is created synchronously too; unknown names still fail in the async path', async () => {
    expect(createBackend('gpu', { mode: 'cpu' }).name).toBe('gpu:cpu');
    expect((await createBackendAsync('reference')).name).toBe('reference');
    const chosen = await setBackendAsync('gpu', { mode: 'webasm' });
    expect(getBackend()).toBe(chosen);
    await expect(setBackendAsync('tpu')).rejects.toThrow(/unknown backend 'tpu'/);
  });

  it('turns a missing optional peer into an install hint, and keeps other load failures apart', async () => {
    const spec = 'esmm-ts-no-such-peer';
    await expect(
      importOptionalPeer(() => import(/* @vite-ignore */ spec), { peer: spec, feature: 'the test feature' }),
    ).rejects.toThrow(
      `the test feature needs ${spec}, an optional peer dependency of esmm-ts that is not installed: npm install ${spec}`,
    );
    const broken = importOptionalPeer(() => Promise.reject(new Error('wasm compile failed')), {
      peer: 'gpu.js',
      feature: 'the gpu backend',
      entry: 'esmm-ts/kernels/gpu',
    });
    await expect(broken).rejects.toThrow(
      /^the gpu backend could not be loaded: wasm compile failed\. In a bundled app, import 'esmm-ts\/kernels\/gpu'/,
    );
  });
});
