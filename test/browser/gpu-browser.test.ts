/**
 * The gpu backend's kernel checks inside headless Chromium (webgl2; webgpu is probed only).
 *
 * Needs `chromium` at /usr/bin/chromium (or `ESMM_CHROMIUM`); without it the test is skipped
 * with a warning, unless `ESMM_REQUIRE_MODES` lists webgl2. No browser is ever downloaded.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BrowserReport } from './entry.js';

const chromium = process.env.ESMM_CHROMIUM ?? '/usr/bin/chromium';
const required = new Set((process.env.ESMM_REQUIRE_MODES ?? '').split(',').map((m) => m.trim()));
const FLAGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('gpu backend in headless Chromium', () => {
  it('passes the kernel checks on webgl2', async () => {
    if (!existsSync(chromium)) {
      if (required.has('webgl2')) throw new Error(`webgl2 is required but ${chromium} does not exist`);
      console.warn(`gpu backend: skipping browser modes: ${chromium} not found`);
      return;
    }
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
    const profile = mkdtempSync(join(tmpdir(), 'esmm-chromium-'));
    const context = await pw.launchPersistentContext(profile, { executablePath: chromium, headless: true, args: FLAGS });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.setContent('<!doctype html><html><body></body></html>');
      await page.addScriptTag({ content: bundle.outputFiles[0].text });
      const webgpu = await page.evaluate(async () => {
        const nav = navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } };
        if (!nav.gpu) return 'navigator.gpu absent';
        return (await nav.gpu.requestAdapter()) ? 'adapter available' : 'no adapter';
      });
      const report = await page.evaluate(
        (scale) => (globalThis as unknown as { esmmGpuChecks(m: string, s: number): BrowserReport }).esmmGpuChecks('webgl2', scale),
        0.5,
      );
      console.log(
        `gpu backend browser summary:\n  webgl2: ${report.started ? `${report.passed} checks passed, ${report.failed.length} failed` : `SKIPPED (${report.reason})`}\n` +
          `  webgpu: ${webgpu}; not run (gpu.js webgpu kernels are asynchronous)`,
      );
      if (!report.started) {
        if (required.has('webgl2')) throw new Error(`webgl2 is required but cannot start: ${report.reason}`);
        console.warn(`gpu backend: skipping webgl2 in Chromium: ${report.reason}`);
        return;
      }
      expect(report.failed).toEqual([]);
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
