/**
 * The core's own demo, with no CTR in it: a small MLP learning an XOR-like task. The `esmm demo`
 * command runs it, and the core's end-to-end test trains on the same task.
 */
import { getBackend } from '../kernels/index.js';
import { bceWithLogits, mean, nn, noGrad, optim, Rng, sigmoid, tensor, tidy } from './index.js';

/** `n` points uniform in [-1, 1]², labelled 1 where both coordinates share a sign: not linearly separable. */
export function xorTask(n: number, rng: Rng): { xs: number[]; ys: number[] } {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = rng.uniformIn(-1, 1);
    const b = rng.uniformIn(-1, 1);
    xs.push(a, b);
    ys.push(a * b > 0 ? 1 : 0);
  }
  return { xs, ys };
}

/** Train a small MLP on an XOR-like task; returns the losses (the core's own demo). */
export function runDemo(steps: number, seed: number, log: (line: string) => void = console.log): number[] {
  const rng = new Rng(seed);
  const n = 1024;
  const { xs, ys } = xorTask(n, rng);
  const x = tensor(xs, [n, 2]);
  const y = tensor(ys, [n, 1]);
  const model = nn.mlp(2, [32, 16], { outFeatures: 1, rng: rng.fork() });
  const opt = new optim.Adam(model.parameters(), { lr: 0.03 });
  log(`demo: 2-layer PReLU MLP, XOR-like task, ${n} points, Adam lr 0.03, backend ${getBackend().name}`);
  const losses: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const loss = tidy(() => {
      opt.zeroGrad();
      const l = mean(bceWithLogits(model.forward(x), y));
      l.backward();
      opt.step();
      return l.item();
    });
    losses.push(loss);
    if (step === 1 || step % Math.max(1, Math.floor(steps / 10)) === 0)
      log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}`);
  }
  const predictions = noGrad(() => sigmoid(model.forward(x)).toArray());
  let correct = 0;
  predictions.forEach((p, i) => (correct += (p > 0.5 ? 1 : 0) === ys[i] ? 1 : 0));
  log(`accuracy ${((correct / n) * 100).toFixed(1)}%`);
  return losses;
}
