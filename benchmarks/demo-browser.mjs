#!/usr/bin/env node
/**
 * `node benchmarks/demo-browser.mjs`: samples/s of ESMM training (MLP base, batch 1024) on
 * the demo page's default world, in headless Chromium on every backend the page offers and,
 * running the very same session code (docs/demo/session.ts), in Node.
 *
 * First, in Chromium, the page's own defaults as a person gets them: Train clicked, the time until
 * ESMM's entire-space CVR AUC first exceeds BASE's on the live chart. Then each configuration
 * trains ESMM alone for a fixed number of steps; the rate is measured over the steps after the
 * first two (which compile kernels and fault in memory). A configuration still running after
 * --timeout seconds is stopped and recorded as timed out, so a slow software GPU cannot hang the
 * run. Writes benchmarks/results/demo-browser.{md,json}.
 *
 * Options: --steps N (wasm and reference steps, default 30), --gpu-steps N (webgl2 and
 * webgpu in Chromium, default 4), --timeout S (per configuration in Chromium, default 420: on
 * SwiftShader the gpu configurations compile their kernels and run 4 steps of batch 1024 in about
 * 140 s on an idle 2-core machine),
 * --win-timeout S (the defaults' run, default 180), --chromium PATH.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const OUT = path.join(HERE, 'out');
const RESULTS = path.join(HERE, 'results');
const WARMUP = 2;

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '30' },
    'gpu-steps': { type: 'string', default: '4' },
    timeout: { type: 'string', default: '420' },
    'win-timeout': { type: 'string', default: '180' },
    chromium: { type: 'string', default: process.env.ESMM_CHROMIUM ?? '/usr/bin/chromium' },
  },
});
const steps = Number(args.steps);
const gpuSteps = Number(args['gpu-steps']);
const timeoutMs = 1000 * Number(args.timeout);
const winTimeoutMs = 1000 * Number(args['win-timeout']);
const loadAtStart = os.loadavg();
for (const [k, v] of [
  ['steps', steps],
  ['gpu-steps', gpuSteps],
]) {
  if (!Number.isInteger(v) || v <= WARMUP) throw new Error(`--${k} must be an integer above ${WARMUP}, got ${v}`);
}

/** Steady-state samples/s of a run: steps after the warm-up. */
function rate(stepSeconds, batch) {
  const timed = stepSeconds.slice(WARMUP);
  const seconds = timed.reduce((a, b) => a + b, 0);
  return { samplesPerSecond: (timed.length * batch) / seconds, stepMs: (1000 * seconds) / timed.length };
}

const configs = [
  { name: 'wasm, 1 thread', backend: { kind: 'wasm', threads: 1 }, steps },
  { name: 'wasm, 2 threads', backend: { kind: 'wasm', threads: 2 }, steps },
  { name: 'reference', backend: { kind: 'reference' }, steps: Math.min(steps, 10) },
];
const browserOnly = [
  { name: 'gpu webgl2 (SwiftShader)', backend: { kind: 'webgl2' }, steps: gpuSteps },
  { name: 'gpu webgpu (SwiftShader)', backend: { kind: 'webgpu' }, steps: gpuSteps },
];

// ---- Node: the page's session code, bundled for Node ----
fs.mkdirSync(OUT, { recursive: true });
const nodeEntry = path.join(OUT, 'demo-session-node.mjs');
const { build } = await import('esbuild');
await build({
  entryPoints: [path.join(ROOT, 'docs/demo/session.ts')],
  bundle: true,
  format: 'esm',
  platform: 'node',
  outfile: nodeEntry,
  tsconfig: path.join(ROOT, 'tsconfig.json'),
  external: ['gpu.js', 'gl', 'onnxruntime-node'],
  logLevel: 'warning',
  banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
});
const session = await import(nodeEntry);
const results = [];
for (const c of configs) {
  const settings = { ...session.DEFAULT_SETTINGS, methods: ['esmm'], maxSteps: c.steps, evalEvery: 1_000_000 };
  const backend = await session.createDemoBackend(c.backend);
  const s = new session.DemoSession({ ...settings, backend: c.backend }, backend);
  const r = await s.run();
  await session.releaseBackend(backend);
  const row = { where: `Node ${process.version}`, config: c.name, steps: r.steps, ...rate(r.stepSeconds, 1024) };
  console.log(row);
  results.push(row);
}

// ---- Chromium: the built page, driven through its form ----
// Built into benchmarks/out/ so that a test building the page meanwhile cannot race it.
const { buildDemo } = await import('../docs/demo/build.mjs');
const { serveDemo } = await import('../docs/demo/serve.mjs');
const { server, url } = await serveDemo({ port: 0, root: await buildDemo({ outDir: path.join(OUT, 'demo') }) });
const { chromium } = await import('playwright-core');
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'esmm-bench-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: args.chromium,
  headless: true,
  args: ['--headless=new', '--enable-unsafe-webgpu', '--no-sandbox', '--disable-gpu-sandbox', '--no-first-run'],
});
let browserVersion = context.browser()?.version() ?? '';
let page = context.pages()[0] ?? (await context.newPage());
const demo = (fn) => page.evaluate(fn);
async function openPage() {
  const t = performance.now();
  await page.goto(url);
  await page.waitForFunction(() => globalThis.esmmDemo?.support != null);
  return (performance.now() - t) / 1000;
}
/**
 * Clicks Stop and waits for the run to end. A software-GPU step can hold the page's thread for
 * minutes, so when the page does not answer within a minute it is closed and opened afresh.
 */
async function stopRun() {
  const stopped = (async () => {
    await page.$eval('#stop', (b) => b.click());
    await page.waitForFunction(() => !globalThis.esmmDemo.running, null, { timeout: 60_000, polling: 1000 });
    return true;
  })().catch(() => false);
  const answered = await Promise.race([stopped, new Promise((r) => setTimeout(() => r(false), 60_000))]);
  if (answered) return;
  await page.close();
  page = await context.newPage();
  await openPage();
}
const pageLoadSeconds = await openPage();
browserVersion ||= await page.evaluate(() => navigator.userAgent);
const support = await demo(() => globalThis.esmmDemo.support);

// ---- the page's defaults: how long until ESMM beats BASE on the entire-space CVR AUC ----
const defaults = await demo(() => ({
  backend: document.getElementById('backend').value,
  threads: Number(document.getElementById('threads').value),
}));
await page.$eval('#train', (b) => b.click());
let win = null;
try {
  await page.waitForFunction(
    () => globalThis.esmmDemo.evals.some((e) => e.step > 0 && e.cvrAucEntireSpace.esmm > e.cvrAucEntireSpace.base),
    null,
    { timeout: winTimeoutMs, polling: 250 },
  );
  win = await demo(() =>
    globalThis.esmmDemo.evals.find((e) => e.step > 0 && e.cvrAucEntireSpace.esmm > e.cvrAucEntireSpace.base),
  );
} catch {
  win = null;
}
const defaultEvals = await demo(() => globalThis.esmmDemo.evals);
await stopRun();
const firstWin = {
  settings: session.DEFAULT_SETTINGS,
  backend: `${defaults.backend}${defaults.backend === 'wasm' ? `, ${defaults.threads} threads` : ''}`,
  pageLoadSeconds,
  win,
  timedOut: win === null,
  evals: defaultEvals,
};
console.log(firstWin.win ?? `no win within ${winTimeoutMs / 1000} s`);

for (const c of [...configs, ...browserOnly]) {
  await page.fill('#maxSteps', String(c.steps));
  await page.fill('#evalEvery', '1000000');
  await page.fill('#batchSize', '1024');
  for (const box of await page.$$('#methods input')) await box.setChecked((await box.getAttribute('value')) === 'esmm');
  await page.selectOption('#backend', c.backend.kind);
  if (c.backend.kind === 'wasm') await page.fill('#threads', String(c.backend.threads));
  const started = performance.now();
  await page.$eval('#train', (b) => b.click());
  let timedOut = false;
  try {
    await page.waitForFunction(
      () => !globalThis.esmmDemo.running && (globalThis.esmmDemo.result || globalThis.esmmDemo.error),
      null,
      { timeout: timeoutMs, polling: 1000 },
    );
  } catch {
    timedOut = true;
    await stopRun();
  }
  const where = `Chromium ${browserVersion}`;
  if (timedOut) {
    const row = { where, config: c.name, timedOut: true, seconds: (performance.now() - started) / 1000 };
    console.log(row);
    results.push(row);
    continue;
  }
  const { result, error } = await demo(() => ({
    result: globalThis.esmmDemo.result,
    error: globalThis.esmmDemo.error,
  }));
  if (error) throw new Error(`${c.name} in Chromium: ${error}`);
  const row = { where, config: c.name, steps: result.steps, ...rate(result.stepSeconds, 1024) };
  console.log(row);
  results.push(row);
}
await context.close();
fs.rmSync(profile, { recursive: true, force: true });
server.close();

// ---- report ----
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const machine = `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`;
const json = {
  date: new Date().toISOString(),
  machine,
  browser: browserVersion,
  node: process.version,
  loadAverage: { start: loadAtStart, end: os.loadavg() },
  support,
  firstWin,
  results,
};
fs.writeFileSync(path.join(RESULTS, 'demo-browser.json'), `${JSON.stringify(json, null, 2)}\n`);
const byConfig = new Map();
for (const r of results) {
  if (!byConfig.has(r.config)) byConfig.set(r.config, {});
  byConfig.get(r.config)[r.where.startsWith('Node') ? 'node' : 'browser'] = r;
}
const cell = (r) =>
  !r
    ? '–'
    : r.timedOut
      ? `timed out (stopped after ${r.seconds.toFixed(0)} s)`
      : `${Math.round(r.samplesPerSecond).toLocaleString('en-US')} (${r.stepMs.toFixed(0)} ms/step)`;
const load = (l) => l.map((x) => x.toFixed(2)).join(', ');
const d = session.DEFAULT_SETTINGS;
const w = firstWin.win;
const lines = [
  '# ESMM training in the browser and in Node',
  '',
  `Measured ${json.date.slice(0, 10)} with \`node benchmarks/demo-browser.mjs\` on ${machine}.`,
  // The run itself loads the machine (Chromium, SwiftShader's threads), so only the 1-minute load
  // at the start says whether other jobs were running.
  json.loadAverage.start[0] < 0.5
    ? `The machine was otherwise idle when this started (load average ${load(json.loadAverage.start)}; ${load(json.loadAverage.end)} at the end, from this run).`
    : `**The machine was shared with other jobs while this ran (load average ${load(json.loadAverage.start)} at the start, ${load(json.loadAverage.end)} at the end): compare rows within this table only.**`,
  'No GPU: WebGL2 and WebGPU',
  "run on Chromium's SwiftShader (a software renderer on the CPU), so their figures say what the page costs",
  'without a GPU, not what a GPU does.',
  '',
  `Workload: the demo page's default world (${session.DEFAULT_SETTINGS.users} users, ${session.DEFAULT_SETTINGS.items} items), ESMM with the MLP base`,
  '(towers 200-80-1, PReLU), batch 1024, Adam; the same session code (`docs/demo/session.ts`) in both',
  `columns. Samples/s over the steps after the first ${WARMUP} (warm-up: kernel compilation, first-touch memory).`,
  `Browser: Chromium ${browserVersion} (headless, \`--enable-unsafe-webgpu\`), page cross-origin isolated.`,
  '',
  '## The defaults, as a person sees them',
  '',
  `The page opened (${firstWin.pageLoadSeconds.toFixed(1)} s until ready) and Train clicked with its defaults (${d.users} users, ${d.items} items,`,
  `CTR ${d.ctr}, CVR ${d.cvr}, bias ${d.bias}, ${d.trainRows} train / ${d.testRows} test rows, batch ${d.batchSize}, lr ${d.lr}, ESMM and BASE, ${firstWin.backend}, evaluated every ${d.evalEvery} steps):`,
  w
    ? `ESMM's entire-space CVR AUC first exceeded BASE's **${w.seconds.toFixed(1)} s after the click**, at step ${w.step} (ESMM ${w.cvrAucEntireSpace.esmm.toFixed(3)}, BASE ${w.cvrAucEntireSpace.base.toFixed(3)}).`
    : `ESMM's entire-space CVR AUC did not exceed BASE's within ${winTimeoutMs / 1000} s of the click.`,
  '',
  '| s after click | step | ESMM | BASE |',
  '| --- | --- | --- | --- |',
  ...firstWin.evals.map(
    (e) =>
      `| ${e.seconds.toFixed(1)} | ${e.step} | ${e.cvrAucEntireSpace.esmm.toFixed(3)} | ${e.cvrAucEntireSpace.base.toFixed(3)} |`,
  ),
  '',
  '## Throughput',
  '',
  ...(results.some((r) => r.timedOut)
    ? [`Timed out: still running after ${timeoutMs / 1000} s, then stopped.`, '']
    : []),
  '| backend | Chromium samples/s | Node samples/s |',
  '| --- | --- | --- |',
  ...[...byConfig].map(([name, r]) => `| ${name} | ${cell(r.browser)} | ${cell(r.node)} |`),
  '',
];
fs.writeFileSync(path.join(RESULTS, 'demo-browser.md'), lines.join('\n'));
console.log(lines.join('\n'));
