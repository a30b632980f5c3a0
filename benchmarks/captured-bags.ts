/**
 * Captured vs eager step on the simulator's own batches, whose bag fields have a different total
 * number of ids in every batch: one epoch of ESMM per base model and step mode, interleaved, with
 * the captured step's replay counts. Run: `npx esbuild benchmarks/captured-bags.ts --bundle
 * --platform=node --format=esm --outfile=benchmarks/out/captured-bags.mjs && node benchmarks/out/captured-bags.mjs`.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { FunnelSimulator } from '../models/data/simulator.js';
import { createModel } from '../models/model-factory.js';
import { simulatorSource } from '../models/training/sources.js';
import { Trainer } from '../models/training/trainer.js';
import type { StepMode } from '../core/index.js';

const sim = new FunnelSimulator({ seed: 1 });
const train = sim.generate(60_000);
const bases = (process.argv[2] ?? 'mlp').split(',');
const rounds = 2;

async function run(base: string, stepMode: StepMode): Promise<string> {
  const model = createModel({ method: 'esmm', base, schema: sim.schema });
  const trainer = new Trainer(model, { epochs: 1, progress: 'none', stepMode });
  const t0 = performance.now();
  const result = await trainer.fit(simulatorSource(sim, train, { batchSize: 1024, shuffle: true }));
  const s = (performance.now() - t0) / 1000;
  const loss = result.history.at(-1)?.trainLoss;
  return `| ${base} | ${stepMode} | ${s.toFixed(2)} | ${JSON.stringify(trainer.trainStep.stats)} | ${trainer.trainStep.fallbackReason ?? ''} | ${loss} |`;
}

console.log(
  `load average before: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(', ')}`,
);
console.log('| base | step | wall s | stats | fallback | train loss |');
for (let r = 0; r < rounds; r++)
  for (const base of bases) for (const mode of ['captured', 'eager'] as const) console.log(await run(base, mode));
console.log(
  `load average after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(', ')}`,
);
