/**
 * The gpu backend's kernel checks inside headless Chromium: webgl2 on the synchronous
 * backend, webgpu awaited on the asynchronous one (plus a trained tower's forward).
 *
 * The bundle is served from a local HTTP server on 127.0.0.1: a page set with `setContent`
 * is not a secure context, and WebGPU exists only in secure contexts. Without a GPU,
 * `--enable-unsafe-webgpu` lets Chromium offer its SwiftShader (software Vulkan) adapter.
 *
 * Needs `chromium` at /usr/bin/chromium (or `ESMM_CHROMIUM`); without it, or without a
 * webgpu adapter, the affected mode is skipped with a warning, unless `ESMM_REQUIRE_MODES`
 * lists it. No browser is ever downloaded.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertClose } from '../gpu/kernel-checks.js';
import type { BrowserReport, WebGpuReport } from './entry.js';
import { trainTowerFixture } from './tower-fixture.js';

const chromium = process.env.ESMM_CHROMIUM ?? '/usr/bin/chromium';
const required = new Set((process.env.ESMM_REQUIRE_MODES ?? '').split(',').map((m) => m.trim()));
/** Run-count multiplier of the kernel checks on webgl2 (Node runs them at 1). */
const SCALE = 0.5;
/** webgpu runs the full Node-sized checks: record-and-replay on SwiftShader takes seconds. */
const WEBGPU_SCALE = 1;
const FLAGS = [
  '--headless=new',
  // The only flag WebGPU needs here: it exposes the SwiftShader fallback adapter.
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const summary: string[] = [];
let server: Server | null = null;
let context: BrowserContext | null = null;
let page: Page | null = null;
let profile: string | null = null;
/** Console errors of the page; gpu.js reports WebGPU validation errors and device loss there. */
const pageErrors: string[] = [];

/** Skip with a visible notice, or fail when the mode is required. */
function skip(mode: string, reason: string): void {
  summary.push(`  ${mode}: SKIPPED (${reason})`);
  if (required.has(mode)) throw new Error(`${mode} is required but cannot run: ${reason}`);
  console.warn(`gpu backend: skipping ${mode} in Chromium: ${reason}`);
}

beforeAll(async () => {
  if (!existsSync(chromium)) return;
  const { build } = await import('esbuild');
  const { chromium: pw } = await import('playwright-core');
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./entry.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0].text;
  const html = '<!doctype html><html><head><script src="/bundle.js"></script></head><body></body></html>';
  server = createServer((req, res) => {
    const js = req.url === '/bundle.js';
    res.writeHead(js || req.url === '/' ? 200 : 404, { 'content-type': js ? 'text/javascript' : 'text/html' });
    res.end(js ? script : html);
  });
  await new Promise<void>((ready) => server!.listen(0, '127.0.0.1', ready));
  const { port } = server.address() as AddressInfo;
  profile = mkdtempSync(join(tmpdir(), 'esmm-chromium-'));
  context = await pw.launchPersistentContext(profile, { executablePath: chromium, headless: true, args: FLAGS });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  await page.goto(`http://127.0.0.1:${port}/`);
});

afterAll(async () => {
  if (summary.length > 0) console.log(`gpu backend browser summary:\n${summary.join('\n')}`);
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
});

describe('gpu backend in headless Chromium', () => {
  it('passes the kernel checks on webgl2', async () => {
    if (!page) return skip('webgl2', `${chromium} not found`);
    const report = await page.evaluate(
      (scale) =>
        (globalThis as unknown as { esmmGpuChecks(m: string, s: number): BrowserReport }).esmmGpuChecks(
          'webgl2',
          scale,
        ),
      SCALE,
    );
    if (!report.started) return skip('webgl2', report.reason ?? 'unknown reason');
    summary.push(`  webgl2: ${report.passed} checks passed, ${report.failed.length} failed`);
    expect(report.failed).toEqual([]);
  });

  it('passes the kernel checks awaited on webgpu and scores a trained tower like the reference backend', async () => {
    if (!page) return skip('webgpu', `${chromium} not found`);
    const fixture = trainTowerFixture();
    // The weights must have moved, or the comparison would be of an untrained tower.
    expect(fixture.loss[1]).toBeLessThan(fixture.loss[0]);
    const report = await page.evaluate(
      ([scale, tower]) =>
        (globalThis as unknown as { esmmWebGpu(s: number, t: typeof tower): Promise<WebGpuReport> }).esmmWebGpu(
          scale,
          tower,
        ),
      [WEBGPU_SCALE, fixture] as const,
    );
    if (!report.started) return skip('webgpu', report.reason ?? 'unknown reason');
    const tower = report.tower;
    summary.push(
      `  webgpu: ${report.passed} checks passed, ${report.failed.length} failed ` +
        `(${report.calls} calls replayed, ${report.launches} launches, adapter ${report.adapter}, ${report.seconds.toFixed(1)} s); ` +
        `tower forward on ${fixture.batch.size} rows: ${tower ? 'matches reference' : `FAILED (${report.towerError})`}`,
    );
    expect(report.failed).toEqual([]);
    expect(pageErrors.filter((e) => /webgpu/i.test(e))).toEqual([]);
    expect(report.towerError).toBeNull();
    expect(tower).not.toBeNull();
    // Same forward, same weights: webgpu against the reference backend, and that against the core model.
    assertClose(tower!.webgpu, tower!.reference, 'tower webgpu vs reference', { atol: 1e-5, rtol: 1e-4 });
    assertClose(tower!.reference, fixture.expected, 'tower reference vs core model', { atol: 1e-6, rtol: 1e-5 });
  });
});
