/**
 * The heart of the suite: every differentiable op in the registry is gradient-checked
 * in float64 against central differences, on random shapes and values.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { gradcheck, listDerivedOps, listOps, withTracer, type OpDefinition } from '../core/index.js';
import { ReferenceBackend, WasmBackend, type Backend } from '../kernels/index.js';
import { materialize, opCases } from './helpers/op-cases.js';

// float64 is where finite differences are meaningful: the reference backend natively, and the
// wasm backend, whose float64 tensors live in its arena (its float32 kernels are checked
// against these gradients in core-backends-autodiff).
const backends: [string, Backend][] = [
  ['reference', new ReferenceBackend()],
  ['wasm', new WasmBackend({ threads: 1 })],
];
const worst = new Map<string, number>();

for (const [backendName, backend] of backends) {
  describe(`gradient checks of every registered op (${backendName} backend, float64)`, () => {
    it('has a property test for every differentiable op', () => {
      const differentiable = [
        ...listOps()
          .filter((op) => op.backward)
          .map((op) => op.name),
        ...listDerivedOps().map((op) => op.name),
      ];
      const missing = differentiable.filter((name) => !(name in opCases));
      expect(missing).toEqual([]);
      // And no stale cases for ops that no longer exist.
      expect(Object.keys(opCases).filter((name) => !differentiable.includes(name))).toEqual([]);
    });

    for (const [name, arbitrary] of Object.entries(opCases)) {
      it(`${name}: autodiff matches finite differences`, () => {
        fc.assert(
          fc.property(arbitrary, (c) => {
            const { inputs, make } = materialize(c, backend, 'float64');
            const result = gradcheck((...xs) => c.run(xs, make), inputs);
            const key = `${name} (${backendName})`;
            worst.set(key, Math.max(worst.get(key) ?? 0, result.maxRelError));
            if (!result.ok)
              throw new Error(`${c.label}: ${JSON.stringify(result.worst)} (max rel ${result.maxRelError})`);
          }),
          { numRuns: backendName === 'reference' ? 40 : 15, seed: 20260101 },
        );
      });
    }
  });
}

afterAll(() => {
  const rows = [...worst.entries()].map(([op, err]) => `${op.padEnd(28)} ${err.toExponential(2)}`);
  console.log(`worst relative error per op (float64, eps 1e-6):\n${rows.join('\n')}`);
});

describe('derived ops', () => {
  const registered = new Set(listOps().map((op) => op.name));
  for (const derived of listDerivedOps()) {
    it(`${derived.name} is written with ${derived.uses.join(', ')} alone`, () => {
      expect(derived.uses.filter((name) => !registered.has(name))).toEqual([]);
      const arbitrary = opCases[derived.name];
      expect(arbitrary, `no op case for the derived op '${derived.name}'`).toBeDefined();
      fc.assert(
        fc.property(arbitrary, (c) => {
          const { inputs, make } = materialize(c, backends[0][1], 'float64');
          const applied = new Set<string>();
          const record = (op: OpDefinition<unknown>): void => void applied.add(op.name);
          withTracer({ onApply: record, onFromArray: () => {}, onMark: () => {} }, () => c.run(inputs, make));
          expect([...applied].filter((name) => !derived.uses.includes(name))).toEqual([]);
        }),
        { numRuns: 20, seed: 20260102 },
      );
    });
  }
});
