/**
 * The demo page in headless Chromium, as a person uses it: `npm run demo:build` and the demo
 * server (`docs/demo/serve.mjs`, cross-origin isolated), the settings typed into the form,
 * the Train button clicked; ESMM and BASE train on wasm with two threads, on gpu webgl2 and
 * on gpu webgpu (SwiftShader, so few steps and small batches). Checked: the loss falls, the
 * test AUCs beat chance, no console errors, the wasm pool's workers computed, and webgpu
 * gives the reference backend's losses (1e-3 over 20 steps from the same weights).
 * Screenshots go to test-results/.
 *
 * Needs `chromium` at /usr/bin/chromium (or `ESMM_CHROMIUM`); without it, or without a
 * webgpu adapter, the affected case is skipped with a warning unless `ESMM_REQUIRE_MODES`
 * names it (`webgl2`, `webgpu`; any listed mode also requires the wasm case).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DemoHandle } from '../../docs/demo/main.js';
import type { RunResult } from '../../docs/demo/session.js';
import { decodeSafetensors } from '../../models/checkpoint.js';
import { readOnnxMetadata } from '../../models/serving/index.js';
import { CHROMIUM as chromium, openChromium, type ChromiumSession } from '../helpers/chromium.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const required = new Set((process.env.ESMM_REQUIRE_MODES ?? '').split(',').filter((m) => m.trim() !== ''));

/**
 * A small world where every id recurs often, so a few steps move the CTR and CTCVR AUCs
 * (CVR needs far more conversions than a test can afford; the page's defaults train for that).
 */
const WORLD = { users: 100, items: 100, ctr: 0.1, cvr: 0.3, bias: 3, trainRows: 6000, testRows: 1500, lr: 0.005 };

let server: ChildProcess | null = null;
let url = '';
let session: ChromiumSession | null = null;
let page: Page | null = null;
/** Console errors and uncaught exceptions of the page so far. */
const pageErrors = (): string[] => [...(session?.consoleErrors ?? []), ...(session?.pageErrors ?? [])];

function skip(mode: string, reason: string): void {
  if (required.has(mode) || (mode === 'wasm' && required.size > 0))
    throw new Error(`${mode} is required but cannot run: ${reason}`);
  console.warn(`demo page: skipping ${mode} in Chromium: ${reason}`);
}

beforeAll(async () => {
  if (!existsSync(chromium)) return;
  await promisify(execFile)(process.execPath, [join(root, 'docs/demo/build.mjs')], { cwd: root });
  const child = spawn(process.execPath, [join(root, 'docs/demo/serve.mjs'), '--port', '0'], { cwd: root });
  server = child;
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`demo server exited with ${code}: ${out}`)));
  });
  session = await openChromium(url, { viewport: { width: 1280, height: 1100 } });
  page = session.page;
  await page.waitForFunction(() => (globalThis as unknown as { esmmDemo?: DemoHandle }).esmmDemo?.support != null);
});

afterAll(async () => {
  await session?.close();
  server?.kill();
});

interface PageRun {
  result: RunResult | null;
  error: string | null;
  status: string;
}

/** Types `fields` into the form, picks the backend, clicks Train and waits for the result. */
async function train(p: Page, backend: string, fields: Record<string, number>, methods: string[]): Promise<PageRun> {
  for (const [id, value] of Object.entries(fields)) await p.fill(`#${id}`, String(value));
  for (const box of await p.$$('#methods input')) {
    const value = await box.getAttribute('value');
    await box.setChecked(methods.includes(value ?? ''));
  }
  await p.selectOption('#backend', backend);
  // Not p.click: a step on a software GPU can hold the main thread longer than a click waits.
  await p.$eval('#train', (b) => (b as HTMLButtonElement).click());
  await p.waitForFunction(
    () => {
      const d = (globalThis as unknown as { esmmDemo: DemoHandle }).esmmDemo;
      return !d.running && (d.result !== null || d.error !== null);
    },
    null,
    { timeout: 900_000, polling: 500 },
  );
  const run = await p.evaluate(() => {
    const d = (globalThis as unknown as { esmmDemo: DemoHandle }).esmmDemo;
    return { result: d.result, error: d.error, status: document.getElementById('status')?.textContent ?? '' };
  });
  mkdirSync(join(root, 'test-results'), { recursive: true });
  await p.screenshot({ path: join(root, 'test-results', `demo-${backend}.png`), fullPage: true });
  return run;
}

/** The checks every backend must pass. */
function expectLearned(run: PageRun, steps: number): RunResult {
  expect(run.error).toBeNull();
  const r = run.result!;
  expect(r.steps).toBe(steps);
  expect(run.status).toContain(`done: ${steps} steps`);
  for (const method of ['esmm', 'base']) {
    const loss = r.losses[method];
    expect(loss).toHaveLength(steps);
    // The mean of the last three steps against the first: the loss falls.
    const tail = loss.slice(-3).reduce((a, b) => a + b, 0) / 3;
    expect(tail).toBeLessThan(0.95 * loss[0]);
    expect(r.final[method].ctrAuc).toBeGreaterThan(0.55);
    expect(r.final[method].ctcvrAuc).toBeGreaterThan(0.55);
  }
  expect(r.oracle.cvrAucEntireSpace).toBeGreaterThan(0.8);
  expect(pageErrors()).toEqual([]);
  return r;
}

describe('demo page in headless Chromium', () => {
  it('trains ESMM and BASE on wasm with two threads', async () => {
    if (!page) return skip('wasm', `${chromium} not found`);
    const support = await page.evaluate(() => (globalThis as unknown as { esmmDemo: DemoHandle }).esmmDemo.support);
    expect(support?.isolated).toBe(true);
    const run = await train(page, 'wasm', { ...WORLD, batchSize: 128, maxSteps: 30, evalEvery: 10, threads: 2 }, [
      'esmm',
      'base',
    ]);
    const r = expectLearned(run, 30);
    expect(r.backend).toBe('wasm');
    expect(r.threads).toBe(2);
    // The worker (not only the page's thread) computed kernel chunks.
    expect(r.pool!.workers).toBe(1);
    expect(r.pool!.ready).toBe(1);
    expect(r.pool!.workerChunks).toBeGreaterThan(0);
    expect(r.evals.esmm.map((e) => e.step)).toEqual([0, 10, 20, 30]);

    // The downloads: safetensors of the trained weights, and the ONNX export.
    await page.selectOption('#download-method', 'esmm');
    const fetched = async (button: string): Promise<Uint8Array> => {
      const [download] = await Promise.all([page!.waitForEvent('download'), page!.click(button)]);
      return new Uint8Array(readFileSync(await download.path()));
    };
    const ckpt = decodeSafetensors(await fetched('#download'), 'esmm-mlp.safetensors');
    expect(ckpt.metadata).toMatchObject({ method: 'esmm', base: 'mlp', backend: 'wasm' });
    expect(Object.keys(ckpt.tensors).length).toBeGreaterThan(10);
    expect(readOnnxMetadata(await fetched('#download-onnx')).trained_on).toBe('wasm');

    // The scoring box: the top k items of a user, ranked by pCTR^a * pCVR^b.
    await page.selectOption('#score-method', 'esmm');
    await page.fill('#score-user', '7');
    await page.fill('#score-k', '5');
    await page.click('#score');
    await page.waitForFunction(() => document.querySelectorAll('#ranking tr').length === 6);
    const scores = await page.$$eval('#ranking tr td:nth-child(5)', (cells) => cells.map((c) => Number(c.textContent)));
    expect(scores).toHaveLength(5);
    for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeLessThanOrEqual(scores[i - 1]);
    expect(pageErrors()).toEqual([]);
  }, 300_000);

  it('trains ESMM and BASE on gpu webgl2', async () => {
    if (!page) return skip('webgl2', `${chromium} not found`);
    const support = await page.evaluate(() => (globalThis as unknown as { esmmDemo: DemoHandle }).esmmDemo.support);
    if (!support?.webgl2) return skip('webgl2', 'no WebGL2 context');
    const run = await train(page, 'webgl2', { ...WORLD, batchSize: 128, maxSteps: 10, evalEvery: 10 }, [
      'esmm',
      'base',
    ]);
    expect(expectLearned(run, 10).backend).toBe('gpu:webgl2');
  }, 900_000);

  it('trains ESMM and BASE on gpu webgpu with the losses of the reference backend', async () => {
    if (!page) return skip('webgpu', `${chromium} not found`);
    const support = await page.evaluate(() => (globalThis as unknown as { esmmDemo: DemoHandle }).esmmDemo.support);
    if (support?.webgpu == null) return skip('webgpu', 'no webgpu adapter');
    const fields = { ...WORLD, batchSize: 128, maxSteps: 20, evalEvery: 20 };
    const gpu = await train(page, 'webgpu', fields, ['esmm', 'base']);
    expect(expectLearned(gpu, 20).backend).toBe('gpu:webgpu');
    const ref = await train(page, 'reference', fields, ['esmm', 'base']);
    expect(expectLearned(ref, 20).backend).toBe('reference');
    // Same seed, so the same initial weights and batches: every step's loss within 1e-3.
    for (const method of ['esmm', 'base']) {
      const a = gpu.result!.losses[method];
      const b = ref.result!.losses[method];
      a.forEach((l, i) => expect(Math.abs(l - b[i]), `${method} step ${i + 1}`).toBeLessThan(1e-3 * Math.max(1, b[i])));
    }
  }, 1_200_000);
});
