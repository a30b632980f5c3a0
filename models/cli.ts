#!/usr/bin/env node
/**
 * The `esmm` command line. Subcommands are added as the model zoo grows; each has `--help`.
 */
import { pathToFileURL } from 'node:url';
import { bceWithLogits, mean, nn, noGrad, optim, Rng, sigmoid, tensor, tidy } from '../core/index.js';
import { getBackend } from '../kernels/index.js';

const USAGE = `esmm: ESMM and friends in TypeScript

usage: esmm <command> [options]

commands:
  demo        train a 2-layer MLP on a seeded synthetic task and print its loss falling
              options: --steps N (default 200), --seed N (default 1)
  help        show this message

Backend: set ESMM_BACKEND (reference by default).`;

/** Parse `--name value` pairs; unknown flags are errors so typos do not pass silently. */
function parseFlags(args: string[], known: Record<string, number>): Record<string, number> {
  const values = { ...known };
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i].replace(/^--/, '');
    if (!args[i].startsWith('--') || !(name in known)) throw new Error(`unknown option '${args[i]}'; known: ${Object.keys(known).map((k) => `--${k}`).join(', ')}`);
    const value = Number(args[i + 1]);
    if (!Number.isFinite(value)) throw new Error(`option --${name} needs a number, got '${args[i + 1] ?? ''}'`);
    values[name] = value;
  }
  return values;
}

/** Train a small MLP on an XOR-like task; returns the losses it printed. */
export function runDemo(steps: number, seed: number, log: (line: string) => void = console.log): number[] {
  const rng = new Rng(seed);
  const n = 1024;
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = rng.uniformIn(-1, 1);
    const b = rng.uniformIn(-1, 1);
    xs.push(a, b);
    ys.push(a * b > 0 ? 1 : 0);
  }
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
    if (step === 1 || step % Math.max(1, Math.floor(steps / 10)) === 0) log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}`);
  }
  const predictions = noGrad(() => sigmoid(model.forward(x)).toArray());
  let correct = 0;
  predictions.forEach((p, i) => (correct += (p > 0.5 ? 1 : 0) === ys[i] ? 1 : 0));
  const accuracy = correct / n;
  log(`accuracy ${(accuracy * 100).toFixed(1)}%`);
  return losses;
}

/** Entry point; returns the process exit code. */
export function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'demo': {
        if (rest.includes('--help')) {
          console.log(USAGE);
          return 0;
        }
        const flags = parseFlags(rest, { steps: 200, seed: 1 });
        runDemo(flags.steps, flags.seed);
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 1 : 0;
      default:
        console.error(`esmm: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    console.error(`esmm ${command}: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
