/**
 * The captured step (`compileStep`): replays of a recorded plan give bit-identical losses and
 * parameters to eager steps, a shape change records again, and what cannot be replayed falls
 * back to eager with its reason.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { compileStep, concat, optim, reshape, Rng, slice, Tensor, tidy, sum, mul } from '../core/index.js';
import { getBackend, ReferenceBackend, setBackend, type Backend } from '../kernels/index.js';
import { WasmBackend } from '../kernels/wasm/index.js';
import { createModel, trainStep, type Batch, type CvrMethod } from '../models/index.js';
import { FunnelSimulator } from '../models/data/simulator.js';
import { SMALL_WORLD, simulatorBatches, tinySchema } from './models-fixtures.js';

const before = getBackend();
afterAll(() => setBackend(before));

/** Batches of the tiny schema; `lengths` fixes the bag lengths per row, so batches share shapes. */
function batches(
  count: number,
  seed: number,
  lengths = [2, 0, 3, 1, 2, 2, 1, 3],
  tagLengths = lengths.map((l) => (l + 1) % 3),
): Batch[] {
  const rng = new Rng(seed);
  const n = lengths.length;
  const int = (k: number, m: number): Int32Array => Int32Array.from({ length: k }, () => Math.floor(rng.uniform() * m));
  const offsets = (ls: number[]): Int32Array =>
    Int32Array.from([0, ...ls.map((_, i) => ls.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
  const total = lengths.reduce((a, b) => a + b, 0);
  const tagTotal = tagLengths.reduce((a, b) => a + b, 0);
  return Array.from({ length: count }, () => {
    const click = Float32Array.from({ length: n }, () => (rng.uniform() < 0.5 ? 1 : 0));
    return {
      size: n,
      fields: {
        user: { kind: 'categorical', ids: int(n, 4) },
        item: { kind: 'categorical', ids: int(n, 5) },
        history: { kind: 'bag', ids: int(total, 5), offsets: offsets(lengths) },
        tags: {
          kind: 'bag',
          ids: int(tagTotal, 3),
          offsets: offsets(tagLengths),
          values: Float32Array.from({ length: tagTotal }, () => 0.5 + rng.uniform()),
        },
        price: { kind: 'numeric', values: Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1) },
      },
      click,
      conversion: Float32Array.from(click, (c) => (c && rng.uniform() < 0.5 ? 1 : 0)),
    } satisfies Batch;
  });
}

function setup(base: string): { model: CvrMethod; opt: optim.Adam } {
  const model = createModel({ method: 'esmm', base, schema: tinySchema(4), seed: 7 });
  return { model, opt: new optim.Adam(model.parameters(), { lr: 0.01 }) };
}

const backends: [string, () => Backend][] = [
  ['reference', () => new ReferenceBackend()],
  ['wasm', () => new WasmBackend({ threads: 1 })],
];

/** The simulator's own batches: every bag field has another total number of ids in each batch. */
const sim = new FunnelSimulator(SMALL_WORLD);
const simBatches = simulatorBatches(sim, 24);

describe('compileStep', () => {
  for (const [name, make] of backends) {
    for (const base of ['mlp', 'din', 'deepfm']) {
      it(`ESMM-${base} on ${name}: captured and eager give bit-identical losses and parameters over 24 steps`, () => {
        setBackend(make());
        const data = batches(4, 11);
        const eager = setup(base);
        const captured = setup(base);
        const step = compileStep((b: Batch) => trainStep(captured.model, captured.opt, b));
        for (let i = 0; i < 24; i++) {
          const b = data[i % data.length];
          const want = trainStep(eager.model, eager.opt, b);
          const got = step(b);
          expect(got.item()).toBe(want.item());
          want.dispose();
          got.dispose();
        }
        expect(step.fallbackReason).toBeNull();
        // Step 1 creates Adam's state, steps 2 and 3 are recorded and compared; the rest replay.
        expect(step.stats).toMatchObject({ recordings: 3, replays: 21, eager: 0 });
        const want = eager.model.namedParameters();
        const got = new Map(captured.model.namedParameters());
        for (const [n, p] of want) expect(got.get(n)!.toArray(), n).toEqual(p.toArray());
        step.dispose();
      });
    }
  }

  for (const [name, make] of backends) {
    // DIN on the reference backend is left out for time; on wasm it runs the same code.
    for (const base of name === 'wasm' ? ['mlp', 'deepfm', 'din'] : ['mlp', 'deepfm']) {
      it(`ESMM-${base} on ${name}: on batches whose bags vary in length, replays are bit-identical to eager`, () => {
        setBackend(make());
        const bagLengths = new Set(
          simBatches.map((b) =>
            Object.values(b.fields)
              .map((f) => (f.kind === 'bag' ? f.ids.length : 0))
              .join(','),
          ),
        );
        expect(bagLengths.size).toBe(simBatches.length);
        const build = (): { model: CvrMethod; opt: optim.Adam } => {
          const model = createModel({ method: 'esmm', base, schema: sim.schema, seed: 5, tower: { hidden: [16, 8] } });
          return { model, opt: new optim.Adam(model.parameters(), { lr: 0.01 }) };
        };
        const eager = build();
        const captured = build();
        const step = compileStep((b: Batch) => trainStep(captured.model, captured.opt, b));
        for (const b of simBatches) {
          const want = trainStep(eager.model, eager.opt, b);
          const got = step(b);
          expect(got.item()).toBe(want.item());
          want.dispose();
          got.dispose();
        }
        if (base !== 'din') {
          expect(step.fallbackReason).toBeNull();
          // Step 1 creates Adam's state and steps 2 and 3 are recorded; bags of other lengths replay.
          expect(step.stats).toMatchObject({ recordings: 3, replays: simBatches.length - 3, eager: 0 });
        }
        // DIN pads its sequences to each batch's longest one, so its shapes change with the data:
        // it replays only while that length repeats, and is only checked for agreement here.
        const want = eager.model.namedParameters();
        const got = new Map(captured.model.namedParameters());
        for (const [n, p] of want) expect(got.get(n)!.toArray(), n).toEqual(p.toArray());
        step.dispose();
      });
    }
  }

  it('runs a replay whose offsets do not end at the length of the ids eagerly, so it fails as eager does', () => {
    setBackend(new ReferenceBackend());
    const { model, opt } = setup('mlp');
    const step = compileStep((b: Batch) => trainStep(model, opt, b));
    // Four batches of eight rows whose bags have other total lengths: the fourth replays.
    const data = [1, 2, 3, 4].map((k, i) => batches(1, i, [k, 0, 3, 1, 2, 2, 1, 3])[0]);
    for (const b of data) step(b).dispose();
    expect(step.stats).toMatchObject({ recordings: 3, replays: 1 });
    const bad = batches(1, 5, [1, 2, 3, 1, 2, 2, 1, 4])[0];
    const history = bad.fields.history;
    if (history.kind !== 'bag') throw new Error('history is a bag');
    const short = { ...bad, fields: { ...bad.fields, history: { ...history, ids: history.ids.subarray(1) } } };
    const eagerBefore = step.stats.eager;
    expect(() => step(short)).toThrow(/the last offset is 16 but there are 15 ids/);
    expect(step.stats.eager).toBe(eagerBefore + 1);
  });

  it('does not replay a step whose host values follow the length of an array it reads only through offsets', () => {
    setBackend(new ReferenceBackend());
    const w = Tensor.fromArray([0.5], [1], { requiresGrad: true });
    w.keepAlive = true;
    const opt = new optim.SGD([w], { lr: 0.1 });
    const step = compileStep((x: { ids: Int32Array }) =>
      tidy(() => {
        opt.zeroGrad();
        // The ids' count becomes a constant of the step: two recordings of other counts differ.
        const loss = sum(mul(w, Tensor.fromArray([x.ids.length], [1])));
        loss.backward();
        opt.step();
        return loss;
      }),
    );
    let want = 0.5;
    // Two recordings of 1 id agree (so the count could be frozen): that plan serves only 1 id.
    for (const n of [1, 1, 1, 2, 3, 4]) {
      expect(step({ ids: new Int32Array(n) }).item()).toBeCloseTo(want * n, 5);
      want -= 0.1 * n;
    }
    expect(step.stats).toMatchObject({ replays: 1, recordings: 5 });
    expect(w.toArray()[0]).toBeCloseTo(want, 5);
  });

  it('records again when a shape changes, and keeps a plan per shape', () => {
    setBackend(new WasmBackend({ threads: 1 }));
    const a = batches(3, 1);
    const b = batches(3, 2, [1, 1, 2, 0, 1]);
    const eager = setup('din');
    const captured = setup('din');
    const step = compileStep((x: Batch) => trainStep(captured.model, captured.opt, x));
    const order = [...a, ...a, ...b, ...b, ...a, ...b];
    for (const x of order) expect(step(x).item()).toBe(trainStep(eager.model, eager.opt, x).item());
    // a: 1 (state) + 2 recordings; b: 2 recordings; everything else replays, a's plan included after b.
    expect(step.stats).toMatchObject({ recordings: 5, replays: order.length - 5 });
  });

  it('records again when a derived host array changes shape (same input lengths, longer sequences)', () => {
    setBackend(new ReferenceBackend());
    const a = batches(3, 1, [2, 2, 2, 2], [1, 1, 1, 1]);
    const b = batches(2, 2, [1, 3, 2, 2], [1, 1, 1, 1]); // same input lengths, but DIN pads to 3 instead of 2
    const eager = setup('din');
    const captured = setup('din');
    const step = compileStep((x: Batch) => trainStep(captured.model, captured.opt, x));
    for (const x of [...a, ...a, ...b, ...b, ...b])
      expect(step(x).item()).toBe(trainStep(eager.model, eager.opt, x).item());
    expect(step.stats.rerecords).toBeGreaterThanOrEqual(1);
  });

  it('falls back to eager, with the reason, for a step that reads a value back mid-step', () => {
    setBackend(new ReferenceBackend());
    const w = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
    w.keepAlive = true;
    const opt = new optim.SGD([w], { lr: 0.1 });
    const step = compileStep((x: { v: Float32Array }) =>
      tidy(() => {
        opt.zeroGrad();
        const loss = sum(mul(w, Tensor.fromArray(x.v, [3])));
        // A host decision on a device value, not through guard(): a replay could not redo it.
        if (loss.item() > 1e9) throw new Error('unreachable');
        loss.backward();
        opt.step();
        return loss;
      }),
    );
    const v = Float32Array.from([1, 1, 1]);
    for (let i = 0; i < 4; i++) step({ v });
    expect(step.fallbackReason).toMatch(/reads a value back/);
    expect(step.stats).toMatchObject({ replays: 0, eager: 3 });
    // Every step ran: four SGD steps of gradient v.
    expect(w.toArray()[0]).toBeCloseTo(0.6, 5);
  });

  it('falls back when a host array follows the data without being derived', () => {
    setBackend(new ReferenceBackend());
    const w = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
    w.keepAlive = true;
    const opt = new optim.SGD([w], { lr: 0.1 });
    const step = compileStep((x: { v: Float32Array }) =>
      tidy(() => {
        opt.zeroGrad();
        // Computed from the input on the host, outside derive(): recordings of two batches differ.
        const doubled = x.v.map((y) => 2 * y);
        const loss = sum(mul(w, Tensor.fromArray(doubled, [3])));
        loss.backward();
        opt.step();
        return loss;
      }),
    );
    for (let i = 0; i < 6; i++) step({ v: Float32Array.from([i, 1, 2]) });
    expect(step.fallbackReason).toMatch(/two recordings .* differ/);
    expect(step.stats.replays).toBe(0);
  });

  it('stops recording when input shapes do not repeat, and then runs eagerly', () => {
    setBackend(new ReferenceBackend());
    const w = Tensor.fromArray([0.5], [1], { requiresGrad: true });
    w.keepAlive = true;
    const opt = new optim.SGD([w], { lr: 0.1 });
    const step = compileStep(
      (x: { v: Float32Array }) =>
        tidy(() => {
          opt.zeroGrad();
          const loss = sum(mul(w, Tensor.fromArray(x.v, [x.v.length])));
          loss.backward();
          opt.step();
          return loss;
        }),
      { maxRecordingsWithoutReplay: 4 },
    );
    for (let n = 1; n <= 8; n++) step({ v: new Float32Array(n).fill(1) });
    expect(step.fallbackReason).toMatch(/4 steps were recorded without one replay/);
    expect(step.stats).toMatchObject({ recordings: 4, eager: 4, replays: 0 });
    expect(w.toArray()[0]).toBeCloseTo(0.5 - 0.1 * 36, 4);
  });

  it('zeroes a buffer that copyBlocks write in part, not one that disjoint blocks cover (a concat)', () => {
    const be = new WasmBackend({ threads: 1 });
    setBackend(be);
    const start = [0.5, -1, 2, 1.5, 0.25, 3];
    /** A [2, 9] concat of three blocks, and slices of it whose gradients fill [2, 9] buffers in part. */
    const make = (): { run: (x: { v: Float32Array }) => Tensor; w: Tensor } => {
      const w = Tensor.fromArray(start, [2, 3], { requiresGrad: true });
      w.keepAlive = true;
      const opt = new optim.SGD([w], { lr: 0.1 });
      const run = (x: { v: Float32Array }): Tensor =>
        tidy(() => {
          opt.zeroGrad();
          const v = Tensor.fromArray(x.v, [2, 3]);
          const joined = concat([mul(w, v), v, mul(w, w)], 1);
          const loss = sum(mul(slice(joined, [0, 1], [2, 6]), slice(joined, [0, 0], [2, 6])));
          loss.backward();
          opt.step();
          return loss;
        });
      return { run, w };
    };
    const captured = make();
    const eager = make();
    const step = compileStep(captured.run);
    const eagerStep = (x: { v: Float32Array }): number => eager.run(x).item();
    const w = captured.w;
    const eagerW = eager.w;
    const inputs = Array.from({ length: 5 }, (_, i) => ({
      v: Float32Array.from({ length: 6 }, (_, j) => (i + 1) * 0.1 - j * 0.05),
    }));
    // Count the zero fills of [2, 9] buffers that the last replay makes.
    const fill = be.fill.bind(be);
    let fills = 0;
    for (const [i, x] of inputs.entries()) {
      if (i === inputs.length - 1) be.fill = (s, value) => (s.size === 18 && value === 0 && fills++, fill(s, value));
      expect(step(x).item()).toBe(eagerStep(x));
    }
    be.fill = fill;
    expect(step.stats.replays).toBeGreaterThan(0);
    expect(Array.from(w.toArray())).toEqual(Array.from(eagerW.toArray()));
    // The concat's output and the whole-extent gradients are not zeroed; each slice's gradient (its
    // block [2, 6] of the [2, 9] gradient of `joined`) is, before its partial write.
    expect(fills).toBe(2);
  });

  it('replays a reshape without its copy where the copied buffer is not used again', () => {
    const be = new WasmBackend({ threads: 1 });
    setBackend(be);
    const start = [0.5, -1, 2, 1.5, 0.25, 3];
    /** y = w·v is reshaped once (its copy can go); s = w·w twice (the first copy stays). */
    const make = (): ((x: { v: Float32Array }) => Tensor) => {
      const w = Tensor.fromArray(start, [2, 3], { requiresGrad: true });
      w.keepAlive = true;
      const opt = new optim.SGD([w], { lr: 0.1 });
      return (x) =>
        tidy(() => {
          opt.zeroGrad();
          const y = mul(w, Tensor.fromArray(x.v, [2, 3]));
          const s = mul(w, w);
          const loss = sum(mul(mul(reshape(y, [3, 2]), reshape(s, [3, 2])), reshape(s, [3, 2])));
          loss.backward();
          opt.step();
          return sum(mul(loss, sum(w)));
        });
    };
    const eager = make();
    const step = compileStep(make());
    // Copies of 6-element buffers made by a call (the loss and the returned copy have 1 element).
    const copy = be.copy.bind(be);
    let copies = 0;
    const counted = <T>(run: () => T): [T, number] => {
      copies = 0;
      be.copy = (a, b) => (a.size === 6 && copies++, copy(a, b));
      try {
        return [run(), copies];
      } finally {
        be.copy = copy;
      }
    };
    const counts: [number, number][] = [];
    for (let i = 0; i < 6; i++) {
      const x = { v: Float32Array.from({ length: 6 }, (_, j) => (i + 1) * 0.1 - j * 0.05) };
      const [got, stepCopies] = counted(() => step(x).item());
      const [want, eagerCopies] = counted(() => eager(x).item());
      expect(got).toBe(want);
      counts.push([stepCopies, eagerCopies]);
    }
    expect(step.stats.replays).toBe(4);
    // Eager: three reshapes forward and one per gradient backward. A replay keeps only the copy whose
    // source is read again: the first of s's two reshapes (the second one's copy is its last use).
    expect(counts.slice(2)).toEqual([
      [1, 6],
      [1, 6],
      [1, 6],
      [1, 6],
    ]);
  });

  it('rejects unknown options', () => {
    expect(() => compileStep(() => Tensor.zeros([]), { mod: 'eager' } as never)).toThrow(/unknown option 'mod'/);
  });
});
