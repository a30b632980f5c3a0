/**
 * What the tests that drive headless Chromium share: where the binary is, its flags, a static
 * server on 127.0.0.1 and a browser session in a throwaway profile. No browser is ever downloaded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';

/** The Chromium binary: `ESMM_CHROMIUM`, else the Debian package's. */
export const CHROMIUM = process.env.ESMM_CHROMIUM ?? '/usr/bin/chromium';

const FLAGS = [
  '--headless=new',
  // The only flag WebGPU needs here: without a GPU it exposes the SwiftShader fallback adapter.
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A running local server. */
export interface LocalServer {
  /** Its root, `http://127.0.0.1:PORT/`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `html` at / and each of `scripts` (path → JavaScript source) on 127.0.0.1, any other path 404.
 * A page served from 127.0.0.1 is a secure context, which WebGPU needs (one set with `setContent` is not).
 */
export async function serveScripts(html: string, scripts: ReadonlyMap<string, string>): Promise<LocalServer> {
  const server = createServer((req, res) => {
    const js = scripts.get(req.url ?? '');
    const found = js !== undefined || req.url === '/';
    res.writeHead(found ? 200 : 404, { 'content-type': js !== undefined ? 'text/javascript' : 'text/html' });
    res.end(js ?? (found ? html : ''));
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

/** A Chromium page and what it reported. */
export interface ChromiumSession {
  readonly page: Page;
  /** Console messages of type `error` (gpu.js reports WebGPU validation errors and device loss there). */
  readonly consoleErrors: string[];
  /** Uncaught exceptions of the page. */
  readonly pageErrors: string[];
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** Opens `url` in headless Chromium with a fresh profile (the binary must exist: check {@link CHROMIUM} first). */
export async function openChromium(
  url: string,
  options: { viewport?: { width: number; height: number } } = {},
): Promise<ChromiumSession> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'esmm-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    ...(options.viewport ? { viewport: options.viewport } : {}),
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const close = async (): Promise<void> => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  await page.goto(url).catch(async (error: unknown) => {
    await close();
    throw error;
  });
  return { page, consoleErrors, pageErrors, close };
}
