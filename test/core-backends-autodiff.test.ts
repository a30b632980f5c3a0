/**
 * The gradient rules run on every backend: for each differentiable op, forward values
 * and input gradients computed in float32 on the wasm backend and on each gpu.js mode
 * that can start here must match the reference backend in float64.
 *
 * (Finite differences need float64, which only the reference backend runs natively; this
 * suite checks that the other backends reproduce its autodiff.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { listDerivedOps, listOps, RowSparseGrad, Tensor } from '../core/index.js';
import { GpuBackend, isModeSupported } from '../kernels/gpu/index.js';
import { ReferenceBackend, WasmBackend, type Backend } from '../kernels/index.js';
import { materialize, opCases } from './helpers/op-cases.js';

const reference = new ReferenceBackend();

function candidates(): { name: string; make: () => Backend }[] {
  const list: { name: string; make: () => Backend }[] = [{ name: 'wasm', make: () => new WasmBackend() }];
  for (const mode of ['cpu', 'webasm', 'headlessgl'] as const) {
    list.push({ name: `gpu:${mode}`, make: () => new GpuBackend({ mode }) });
  }
  return list;
}

function startable(make: () => Backend): Backend | string {
  try {
    return make();
  } catch (e) {
    return (e as Error).message;
  }
}

function gradValues(t: Tensor): Float64Array {
  const out = new Float64Array(t.size);
  if (t.gradient instanceof RowSparseGrad) out.set(t.gradient.toDense().toArray());
  else if (t.gradient) out.set(t.gradient.toArray());
  return out;
}

/** Forward output and every input gradient, as host arrays, for a case on one backend. */
function evaluate(
  c: (typeof opCases)[string] extends fc.Arbitrary<infer T> ? T : never,
  backend: Backend,
  dtype: 'float32' | 'float64',
) {
  const { inputs, make } = materialize(c, backend, dtype);
  const out = c.run(inputs, make);
  const seed = Tensor.fromArray(
    Array.from({ length: out.size }, (_, i) => Math.sin(i + 1)),
    out.shape,
    { dtype, backend },
  );
  out.backward(seed);
  return { output: out.toArray(), grads: inputs.map(gradValues) };
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tol = 2e-4 + 2e-4 * Math.abs(want[i]);
    if (!(Math.abs(got[i] - want[i]) <= tol)) throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

const requireModes = new Set((process.env.ESMM_REQUIRE_MODES ?? '').split(',').filter(Boolean));

for (const { name, make } of candidates()) {
  const mode = name.startsWith('gpu:') ? name.slice(4) : name;
  const backend =
    mode === 'wasm' || isModeSupported(mode as 'cpu') ? startable(make) : `gpu.js reports mode '${mode}' unsupported`;
  describe(`autodiff on ${name} matches the reference backend`, () => {
    if (typeof backend === 'string') {
      it(`${name} can start`, () => {
        if (requireModes.has(mode))
          throw new Error(`${name} is required (ESMM_REQUIRE_MODES) but cannot start: ${backend}`);
        console.warn(`skipping ${name}: ${backend}`);
      });
      return;
    }
    it('covers every differentiable op', () => {
      const differentiable = [
        ...listOps()
          .filter((op) => op.backward)
          .map((op) => op.name),
        ...listDerivedOps().map((op) => op.name),
      ];
      expect(differentiable.filter((n) => !(n in opCases))).toEqual([]);
    });
    for (const [opName, arbitrary] of Object.entries(opCases)) {
      it(opName, () => {
        fc.assert(
          fc.property(arbitrary, (c) => {
            const want = evaluate(c, reference, 'float64');
            const got = evaluate(c, backend, 'float32');
            close(got.output, want.output, `${c.label} output`);
            got.grads.forEach((g, i) => close(g, want.grads[i], `${c.label} grad ${i}`));
          }),
          { numRuns: name.startsWith('gpu') ? 8 : 25, seed: 7 },
        );
      });
    }
  });
}
