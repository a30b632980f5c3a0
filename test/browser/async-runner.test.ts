/**
 * Node-side checks of the asynchronous path that need no browser: the record-and-replay
 * runner passes a faithful async backend and catches a wrong one, the tower forward runs
 * through `asyncOf`, and webgpu refuses to start without an adapter.
 */
import { describe, expect, it } from 'vitest';
import type { Storage, UnaryOp } from '../../kernels/backend.js';
import { AsyncGpuBackend, asyncOf } from '../../kernels/gpu/index.js';
import { MlpTowerSession } from '../../models/tower-session.js';
import { ReferenceBackend } from '../../kernels/reference.js';
import { kernelChecks } from '../gpu/kernel-checks.js';
import { runChecksAsync } from './async-checks.js';

describe('asynchronous kernel path', () => {
  it('replays every kernel check on a faithful async backend', async () => {
    const result = await runChecksAsync(kernelChecks(0.2), asyncOf(new ReferenceBackend()));
    expect(result.failed).toEqual([]);
    expect(result.passed).toBe(kernelChecks(0.2).length);
    expect(result.calls).toBeGreaterThan(100);
  });

  it('fails the checks of a kernel that is wrong on the async backend', async () => {
    const ref = new ReferenceBackend();
    const broken = asyncOf(ref);
    // tanh answered with sigmoid: only the tanh check may fail.
    broken.unary = async (op: UnaryOp, x: Storage, out: Storage) => ref.unary(op === 'tanh' ? 'sigmoid' : op, x, out);
    const result = await runChecksAsync(kernelChecks(0.2), broken);
    expect(result.failed.map((f) => f.name)).toEqual(['unary tanh']);
  });

  it('refuses webgpu without an adapter', async () => {
    await expect(AsyncGpuBackend.create()).rejects.toThrow(/no webgpu adapter/);
  });

  it('rejects a tower whose layers do not chain', async () => {
    const b = asyncOf(new ReferenceBackend());
    const weights = {
      fields: [{ rows: 2, dim: 3, table: new Float32Array(6), mode: 'sum' as const }],
      layers: [{ inFeatures: 4, outFeatures: 1, weight: new Float32Array(4), bias: null, preluSlope: null }],
    };
    await expect(MlpTowerSession.load(b, weights)).rejects.toThrow(/takes 4 features, gets 3/);
  });
});
