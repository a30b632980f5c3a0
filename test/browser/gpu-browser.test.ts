/**
 * The gpu backend's kernel checks inside headless Chromium: webgl2 on the synchronous
 * backend, webgpu awaited on the asynchronous one (plus a trained tower's forward); and the
 * wasm backend's, on its relaxed SIMD kernels (Chromium validates relaxed SIMD without a
 * flag, unlike Node 20) and on its plain ones.
 *
 * The bundle is served from a local HTTP server on 127.0.0.1: a page set with `setContent`
 * is not a secure context, and WebGPU exists only in secure contexts. Without a GPU,
 * `--enable-unsafe-webgpu` lets Chromium offer its SwiftShader (software Vulkan) adapter.
 *
 * Needs `chromium` at /usr/bin/chromium (or `ESMM_CHROMIUM`); without it, or without a
 * webgpu adapter, the affected mode is skipped with a warning, unless `ESMM_REQUIRE_MODES`
 * lists it. No browser is ever downloaded.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertClose } from '../gpu/kernel-checks.js';
import {
  CHROMIUM as chromium,
  openChromium,
  serveScripts,
  type ChromiumSession,
  type LocalServer,
} from '../helpers/chromium.js';
import type { BrowserReport, WasmReport, WebGpuReport } from './entry.js';
import { trainTowerFixture } from './tower-fixture.js';

const required = new Set((process.env.ESMM_REQUIRE_MODES ?? '').split(',').map((m) => m.trim()));
/** Run-count multiplier of the kernel checks on webgl2 (Node runs them at 1). */
const SCALE = 0.5;
/** webgpu runs the full Node-sized checks: record-and-replay on SwiftShader takes seconds. */
const WEBGPU_SCALE = 1;

const summary: string[] = [];
let server: LocalServer | null = null;
let session: ChromiumSession | null = null;
let page: Page | null = null;

/** Skip with a visible notice, or fail when the mode is required. */
function skip(mode: string, reason: string): void {
  summary.push(`  ${mode}: SKIPPED (${reason})`);
  if (required.has(mode)) throw new Error(`${mode} is required but cannot run: ${reason}`);
  console.warn(`gpu backend: skipping ${mode} in Chromium: ${reason}`);
}

beforeAll(async () => {
  if (!existsSync(chromium)) return;
  const { build } = await import('esbuild');
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./entry.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    logLevel: 'silent',
  });
  const html = '<!doctype html><html><head><script src="/bundle.js"></script></head><body></body></html>';
  server = await serveScripts(html, new Map([['/bundle.js', bundle.outputFiles[0].text]]));
  session = await openChromium(server.url);
  page = session.page;
});

afterAll(async () => {
  if (summary.length > 0) console.log(`browser kernel checks summary:\n${summary.join('\n')}`);
  await session?.close();
  await server?.close();
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
    expect(session!.consoleErrors.filter((e) => /webgpu/i.test(e))).toEqual([]);
    expect(report.towerError).toBeNull();
    expect(tower).not.toBeNull();
    // Same forward, same weights: webgpu against the reference backend, and that against the core model.
    assertClose(tower!.webgpu, tower!.reference, 'tower webgpu vs reference', { atol: 1e-5, rtol: 1e-4 });
    assertClose(tower!.reference, fixture.expected, 'tower reference vs core model', { atol: 1e-6, rtol: 1e-5 });
  });
});

describe('wasm backend in headless Chromium', () => {
  it('has relaxed SIMD, and both SIMD variants pass the kernel checks', async () => {
    if (!page) return skip('wasm', `${chromium} not found`);
    for (const simd of ['relaxed', 'plain'] as const) {
      const report = await page.evaluate(
        ([variant, scale]) =>
          (globalThis as unknown as { esmmWasmChecks(v: string, s: number): WasmReport }).esmmWasmChecks(
            variant,
            scale,
          ),
        [simd, SCALE] as const,
      );
      summary.push(`  wasm ${simd}: ${report.passed} checks passed, ${report.failed.length} failed`);
      expect(report.relaxedSupported).toBe(true);
      expect(report.reason).toBeNull();
      expect(report.simd).toBe(simd);
      expect(report.passed).toBeGreaterThan(0);
      expect(report.failed).toEqual([]);
    }
  });
});
