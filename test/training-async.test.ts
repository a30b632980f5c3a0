/**
 * The asynchronous training path: `trainStepAsync`, `predictAsync` and `Tensor.data()`
 * follow their synchronous twins, and on a backend whose reads are asynchronous only (as
 * webgpu's) a whole step reads back exactly once, before its update, which a non-finite step never reaches.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { optim, Tensor } from '../core/index.js';
import {
  getBackend,
  readsAsync,
  ReferenceBackend,
  setBackend,
  type AsyncReadBackend,
  type Backend,
  type Storage,
} from '../kernels/index.js';
import { createModel, FunnelSimulator, NonFiniteStepError, trainStep, trainStepAsync } from '../models/index.js';

const before = getBackend();
afterAll(() => {
  setBackend(before);
});

/** The reference backend with `read` refused and `readAsync` counted, like the queued webgpu backend. */
function asyncOnly(): { backend: AsyncReadBackend; reads: () => number } {
  const ref = new ReferenceBackend();
  let reads = 0;
  const backend = new Proxy(ref, {
    get(target, prop, receiver) {
      if (prop === 'read')
        return () => {
          throw new Error('synchronous read on an async-only backend');
        };
      if (prop === 'readAsync')
        return async (s: Storage) => {
          reads++;
          return target.read(s);
        };
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as unknown as AsyncReadBackend;
  return { backend, reads: () => reads };
}

function setup(backend: Backend): { sim: FunnelSimulator; batches: ReturnType<FunnelSimulator['batch']>[] } {
  setBackend(backend);
  const sim = new FunnelSimulator({ seed: 5, numUsers: 80, numItems: 150, ctr: 0.1, cvr: 0.3 });
  const log = sim.generate(1200);
  return { sim, batches: [...sim.batches(log, { batchSize: 200 })] };
}

describe('asynchronous training step', () => {
  it('gives the losses and predictions of the synchronous step', async () => {
    const { sim, batches } = setup(new ReferenceBackend());
    const a = createModel({ method: 'esmm', schema: sim.schema, seed: 2, tower: { hidden: [16, 8] } });
    const b = createModel({ method: 'esmm', schema: sim.schema, seed: 2, tower: { hidden: [16, 8] } });
    const optA = new optim.Adam(a.parameters(), { lr: 0.01 });
    const optB = new optim.Adam(b.parameters(), { lr: 0.01 });
    for (const batch of batches) {
      const sync = trainStep(a, optA, batch).item();
      expect(await trainStepAsync(b, optB, batch)).toBe(sync);
    }
    const p = a.predict(batches[0]);
    const q = await b.predictAsync(batches[0]);
    expect(q.pctr).toEqual(p.pctr);
    expect(q.pcvr).toEqual(p.pcvr);
    expect(q.pctcvr).toEqual(p.pctcvr);
  });

  it('reads back once per step on a backend that only reads asynchronously', async () => {
    const { backend, reads } = asyncOnly();
    expect(readsAsync(backend)).toBe(true);
    expect(readsAsync(new ReferenceBackend())).toBe(false);
    const { sim, batches } = setup(backend);
    const m = createModel({ method: 'esmm', schema: sim.schema, seed: 2, tower: { hidden: [16, 8] } });
    const opt = new optim.Adam(m.parameters(), { lr: 0.01 });
    const losses: number[] = [];
    for (const batch of batches) losses.push(await trainStepAsync(m, opt, batch));
    expect(reads()).toBe(batches.length);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
    // The synchronous paths say what to use instead.
    expect(() => trainStep(m, opt, batches[0]).item()).toThrow(/synchronous read/);
    const p = await m.predictAsync(batches[0]);
    expect(reads()).toBe(batches.length + 3);
    expect(p.pctr.every((x) => x > 0 && x < 1)).toBe(true);
    const t = Tensor.fromArray([1, 2, 3], [3], { backend });
    expect(Array.from(await t.data())).toEqual([1, 2, 3]);
    t.dispose();
    await expect(t.data()).rejects.toThrow(/disposed/);
  });

  it('refuses a non-finite step before the update, naming the parameter, with weights and Adam state unchanged', async () => {
    const { backend, reads } = asyncOnly();
    const { sim, batches } = setup(backend);
    const m = createModel({ method: 'esmm', schema: sim.schema, seed: 2, tower: { hidden: [16, 8] } });
    const opt = new optim.Adam(m.parameters(), { lr: 0.01 });
    await trainStepAsync(m, opt, batches[0]);
    // Poison one dense weight, as an overflow in an earlier unguarded step would.
    const [name, victim] = m.namedParameters().find(([n]) => n.endsWith('weight') && !n.includes('embedding'))!;
    const poisoned = Float32Array.from(await victim.data());
    poisoned[0] = NaN;
    victim.backend.write(victim.storage, poisoned);
    const read = async (ts: readonly Tensor[]) => Promise.all(ts.map(async (t) => Float32Array.from(await t.data())));
    const weights = await read(m.parameters());
    const state = await read(Object.values(opt.stateDict().tensors));
    const readsBefore = reads();
    const err: unknown = await trainStepAsync(m, opt, batches[1]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteStepError);
    expect((err as Error).message).toMatch(
      /^non-finite step: (loss|gradient norm) is NaN; first non-finite value: parameter '/,
    );
    expect((err as NonFiniteStepError).parameter).toBe(name);
    expect(reads()).toBeGreaterThan(readsBefore); // the failure path read the parameters, asynchronously
    expect(await read(m.parameters())).toEqual(weights);
    expect(await read(Object.values(opt.stateDict().tensors))).toEqual(state);
    for (const p of m.parameters()) expect(p.gradient).toBeNull();
    // Without the check the same step goes through and spreads the NaN: the check is what refused it.
    await trainStepAsync(m, opt, batches[1], { checkFinite: false });
    const after = await read(m.parameters());
    expect(after.some((w, i) => !w.every((x, j) => Object.is(x, weights[i][j])))).toBe(true);
  });
});
