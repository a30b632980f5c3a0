/**
 * The demo page: reads the settings form, trains with a {@link DemoSession}, draws the live
 * charts, and offers the download and the scoring box. The last run's result is also kept
 * on `window.esmmDemo` (the browser tests read it there).
 */
import { listBaseModels, TABLE2_METHODS, type MethodName } from 'esmm-ts/models';
import { LiveChart, reliabilityChart } from './charts.js';
import {
  checkSettings,
  createDemoBackend,
  DEFAULT_SETTINGS,
  detectSupport,
  DemoSession,
  releaseBackend,
  topK,
  type BackendChoice,
  type DemoSettings,
  type RunResult,
  type Support,
  type UserScores,
} from './session.js';

/** What the page exposes for scripting and tests. */
export interface DemoHandle {
  support: Support | null;
  running: boolean;
  result: RunResult | null;
  error: string | null;
  /**
   * The current run's test evaluations as they arrive: seconds since Train was clicked, the step,
   * and each method's entire-space CVR AUC (what a person watches on the chart).
   */
  evals: { seconds: number; step: number; cvrAucEntireSpace: Record<string, number> }[];
}

const handle: DemoHandle = { support: null, running: false, result: null, error: null, evals: [] };
(globalThis as unknown as { esmmDemo: DemoHandle }).esmmDemo = handle;

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`demo page: no element #${id}`);
  return e as T;
}

const NUMBER_FIELDS = [
  'users',
  'items',
  'ctr',
  'cvr',
  'bias',
  'trainRows',
  'testRows',
  'batchSize',
  'epochs',
  'maxSteps',
  'lr',
  'evalEvery',
] as const;

function fillForm(s: DemoSettings): void {
  for (const k of NUMBER_FIELDS) el<HTMLInputElement>(k).value = String(s[k]);
  const methods = el('methods');
  methods.replaceChildren(
    ...TABLE2_METHODS.map((m) => {
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = m;
      box.id = `method-${m}`;
      box.checked = s.methods.includes(m);
      label.append(box, m.toUpperCase());
      return label;
    }),
  );
  const base = el<HTMLSelectElement>('base');
  base.replaceChildren(...listBaseModels().map((b) => new Option(b, b, b === s.base, b === s.base)));
  el<HTMLSelectElement>('backend').value = s.backend.kind;
  el<HTMLInputElement>('threads').value = String(s.backend.kind === 'wasm' ? s.backend.threads : 1);
}

function readForm(): DemoSettings {
  const num = (k: string): number => Number(el<HTMLInputElement>(k).value);
  const kind = el<HTMLSelectElement>('backend').value as BackendChoice['kind'];
  const backend: BackendChoice = kind === 'wasm' ? { kind, threads: num('threads') } : { kind };
  const settings: DemoSettings = {
    ...DEFAULT_SETTINGS,
    ...Object.fromEntries(NUMBER_FIELDS.map((k) => [k, num(k)])),
    methods: TABLE2_METHODS.filter((m) => el<HTMLInputElement>(`method-${m}`).checked),
    base: el<HTMLSelectElement>('base').value,
    backend,
  };
  checkSettings(settings);
  return settings;
}

function showSupport(s: Support): void {
  const item = (ok: boolean, text: string): string =>
    `<span class="${ok ? 'ok' : 'no'}">${ok ? '✓' : '✗'} ${text}</span>`;
  el('support').innerHTML = [
    item(
      s.isolated,
      s.isolated ? `wasm threads (up to ${s.maxThreads})` : 'wasm threads (page not cross-origin isolated)',
    ),
    item(s.webgl2, 'WebGL2'),
    item(s.webgpu !== null, s.webgpu ? `WebGPU: ${s.webgpu}` : 'WebGPU (no adapter)'),
  ].join('');
  const backend = el<HTMLSelectElement>('backend');
  for (const o of Array.from(backend.options)) {
    if (o.value === 'webgl2') o.disabled = !s.webgl2;
    if (o.value === 'webgpu') o.disabled = s.webgpu === null;
  }
  const threads = el<HTMLInputElement>('threads');
  threads.max = String(s.maxThreads);
  if (Number(threads.value) > s.maxThreads) threads.value = String(s.maxThreads);
}

let session: DemoSession | null = null;
let scores: UserScores | null = null;

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : '–';
}

async function train(): Promise<void> {
  if (handle.running) return;
  el('error').textContent = '';
  handle.error = null;
  let settings: DemoSettings;
  try {
    settings = readForm();
  } catch (e) {
    el('error').textContent = (e as Error).message;
    return;
  }
  const clicked = performance.now();
  handle.running = true;
  handle.result = null;
  handle.evals = [];
  el<HTMLButtonElement>('train').disabled = true;
  el<HTMLButtonElement>('stop').disabled = false;
  el<HTMLButtonElement>('download').disabled = true;
  el<HTMLButtonElement>('download-onnx').disabled = true;
  el<HTMLButtonElement>('score').disabled = true;
  el('status').textContent = 'preparing…';
  el('rate').textContent = '';
  el<HTMLElement>('bar').style.width = '0';
  const previous = session;
  session = null;
  scores = null;
  try {
    if (previous) await releaseBackend(previous.backend);
    // Let the status repaint before the simulator builds its world.
    await new Promise((r) => setTimeout(r, 0));
    const backend = await createDemoBackend(settings.backend);
    const s = new DemoSession(settings, backend);
    session = s;
    const names = settings.methods;
    const oracle = s.oracle();
    const charts = {
      loss: new LiveChart(el('chart-loss'), 'Training loss (mean of the last 5 steps)', names, [], 'loss'),
      es: new LiveChart(el('chart-es'), 'Entire-space CVR AUC (test, all impressions)', names, [
        { label: 'oracle', value: oracle.cvrAucEntireSpace },
      ]),
      cvr: new LiveChart(el('chart-cvr'), 'CVR AUC (test, clicked impressions)', names, [
        { label: 'oracle', value: oracle.cvrAuc },
      ]),
      ctcvr: new LiveChart(el('chart-ctcvr'), 'CTCVR AUC (test, all impressions)', names, [
        { label: 'oracle', value: oracle.ctcvrAuc },
      ]),
    };
    const recent = new Map<MethodName, number[]>(names.map((n) => [n, []]));
    let dirty = false;
    const draw = (): void => {
      if (dirty) for (const c of Object.values(charts)) c.redraw();
      dirty = false;
      if (handle.running) requestAnimationFrame(draw);
    };
    requestAnimationFrame(draw);
    el('status').textContent = `training on ${backend.name}…`;
    const result = await s.run({
      loss(method, step, loss) {
        const r = recent.get(method)!;
        r.push(loss);
        if (r.length > 5) r.shift();
        if (method === names[names.length - 1]) {
          const point = new Map(names.map((n) => [n, mean(recent.get(n)!)]));
          charts.loss.push(step, point);
          dirty = true;
        }
      },
      evaluated(step, points) {
        const pick = (k: 'cvrAuc' | 'ctcvrAuc' | 'cvrAucEntireSpace'): Map<string, number> =>
          new Map([...points].map(([n, p]) => [n, p[k]]));
        handle.evals.push({
          seconds: (performance.now() - clicked) / 1000,
          step,
          cvrAucEntireSpace: Object.fromEntries([...points].map(([n, p]) => [n, p.cvrAucEntireSpace])),
        });
        charts.es.push(step, pick('cvrAucEntireSpace'));
        charts.cvr.push(step, pick('cvrAuc'));
        charts.ctcvr.push(step, pick('ctcvrAuc'));
        dirty = true;
      },
      progress(p) {
        el<HTMLElement>('bar').style.width = `${((100 * p.step) / p.totalSteps).toFixed(1)}%`;
        el('rate').textContent =
          `step ${p.step}/${p.totalSteps} · ${p.stepsPerSecond.toFixed(1)} steps/s · ` +
          `${Math.round(p.samplesPerSecond).toLocaleString('en-US')} samples/s`;
      },
    });
    handle.result = result;
    for (const c of Object.values(charts)) c.redraw();
    reliabilityChart(el('chart-reliability'), result.reliability);
    showFinal(result);
    const threads = result.pool ? `, ${result.threads} threads (${result.pool.workerChunks} chunks by workers)` : '';
    el('status').textContent =
      `${result.stopped ? 'stopped' : 'done'}: ${result.steps} steps on ${result.backend}${threads}`;
    for (const id of ['download-method', 'score-method']) {
      el<HTMLSelectElement>(id).replaceChildren(...names.map((n) => new Option(n.toUpperCase(), n)));
    }
    el<HTMLInputElement>('score-user').max = String(settings.users - 1);
    el<HTMLButtonElement>('download').disabled = false;
    el<HTMLButtonElement>('download-onnx').disabled = false;
    el<HTMLButtonElement>('score').disabled = false;
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    console.error(e);
    handle.error = message;
    el('status').textContent = 'failed';
    el('error').textContent = message;
  } finally {
    handle.running = false;
    el<HTMLButtonElement>('train').disabled = false;
    el<HTMLButtonElement>('stop').disabled = true;
  }
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

function showFinal(r: RunResult): void {
  const rows = Object.entries(r.final).map(
    ([n, m]) =>
      `<tr><td>${n.toUpperCase()}</td><td>${fmt(m.cvrAuc)}</td><td>${fmt(m.ctcvrAuc)}</td>` +
      `<td>${fmt(m.cvrAucEntireSpace ?? NaN)}</td><td>${fmt(m.ctrAuc)}</td></tr>`,
  );
  const o = r.oracle;
  rows.push(
    `<tr><td><i>oracle</i></td><td>${fmt(o.cvrAuc)}</td><td>${fmt(o.ctcvrAuc)}</td><td>${fmt(o.cvrAucEntireSpace)}</td><td></td></tr>`,
  );
  el('final').innerHTML =
    '<table><tr><th>method</th><th>CVR AUC</th><th>CTCVR AUC</th><th>entire-space CVR AUC</th><th>CTR AUC</th></tr>' +
    `${rows.join('')}</table><p>${Math.round(r.samplesPerSecond).toLocaleString('en-US')} samples/s over ` +
    `${r.trainSeconds.toFixed(1)} s of training on ${r.backend}</p>`;
}

async function download(format: 'safetensors' | 'onnx'): Promise<void> {
  if (!session) return;
  const method = el<HTMLSelectElement>('download-method').value as MethodName;
  try {
    const blob = format === 'onnx' ? await session.onnx(method) : await session.safetensors(method);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${method}-${session.settings.base}.${format}`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  } catch (e) {
    el('error').textContent = (e as Error).message;
  }
}

async function score(): Promise<void> {
  if (!session) return;
  const method = el<HTMLSelectElement>('score-method').value as MethodName;
  const user = Number(el<HTMLInputElement>('score-user').value);
  try {
    if (!scores || scores.user !== user || scores.method !== method) scores = await session.scoreUser(method, user);
    rank();
  } catch (e) {
    el('error').textContent = (e as Error).message;
  }
}

function rank(): void {
  const a = Number(el<HTMLInputElement>('score-a').value);
  const b = Number(el<HTMLInputElement>('score-b').value);
  el('score-a-v').textContent = a.toFixed(1);
  el('score-b-v').textContent = b.toFixed(1);
  if (!scores) return;
  const k = Math.max(1, Math.min(100, Math.floor(Number(el<HTMLInputElement>('score-k').value)) || 10));
  const rows = topK(scores, a, b, k).map(
    (r, i) =>
      `<tr><td>${i + 1}</td><td>item ${r.item}</td><td>${r.pctr.toFixed(4)}</td><td>${r.pcvr.toFixed(4)}</td>` +
      `<td>${r.score.toExponential(3)}</td><td>${r.trueCtcvr.toFixed(4)}</td></tr>`,
  );
  el('ranking').innerHTML =
    `<table><tr><th>#</th><th>item</th><th>pCTR</th><th>pCVR</th><th>pCTR^a·pCVR^b</th><th>true pCTCVR</th></tr>` +
    `${rows.join('')}</table>`;
}

async function start(): Promise<void> {
  fillForm(DEFAULT_SETTINGS);
  el('train').addEventListener('click', () => void train());
  el('stop').addEventListener('click', () => session?.stop());
  el('download').addEventListener('click', () => void download('safetensors'));
  el('download-onnx').addEventListener('click', () => void download('onnx'));
  el('score').addEventListener('click', () => void score());
  for (const id of ['score-a', 'score-b', 'score-k']) el(id).addEventListener('input', rank);
  handle.support = await detectSupport();
  showSupport(handle.support);
}

void start();
