/** The core's training demo gives the same losses on every backend that can start here. */
import { afterAll, describe, expect, it } from 'vitest';
import { runDemo } from '../core/demo.js';
import { GpuBackend, isModeSupported } from '../kernels/gpu/index.js';
import { getBackend, ReferenceBackend, setBackend, WasmBackend, type Backend } from '../kernels/index.js';

const before = getBackend();
afterAll(() => {
  setBackend(before);
});

function lossesOn(backend: Backend): number[] {
  setBackend(backend);
  return runDemo(40, 3, () => {});
}

describe('training demo across backends', () => {
  const reference = lossesOn(new ReferenceBackend());
  const candidates: [string, () => Backend][] = [
    ['wasm', () => new WasmBackend()],
    ['gpu:cpu', () => new GpuBackend({ mode: 'cpu' })],
    ['gpu:webasm', () => new GpuBackend({ mode: 'webasm' })],
  ];
  if (isModeSupported('headlessgl')) candidates.push(['gpu:headlessgl', () => new GpuBackend({ mode: 'headlessgl' })]);

  it('falls on the reference backend', () => {
    expect(reference[reference.length - 1]).toBeLessThan(0.5 * reference[0]);
  });

  for (const [name, make] of candidates) {
    it(`${name} follows the reference losses step by step`, () => {
      const losses = lossesOn(make());
      expect(losses).toHaveLength(reference.length);
      losses.forEach((l, i) => expect(Math.abs(l - reference[i])).toBeLessThan(1e-3 * Math.max(1, reference[i])));
    });
  }
});
