// Builds the demo page into static files (dist/demo/): `npm run demo:build`.
//
// The page imports the package only through its public entry points (`esmm-ts`,
// `esmm-ts/core`, `esmm-ts/kernels`, `esmm-ts/models`); esbuild resolves them with the
// `paths` of tsconfig.json, which name the source of each entry of package.json's
// `exports`. The Node built-ins that parts of the package use for files and servers are
// left out through package.json's `browser` field, as any browser bundler does.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** Where the built page goes. */
export const OUT_DIR = join(root, 'dist', 'demo');

/** Bundles the page into `outDir` ({@link OUT_DIR} by default); returns the output directory. */
export async function buildDemo({ minify = true, outDir = OUT_DIR } = {}) {
  await mkdir(outDir, { recursive: true });
  await build({
    entryPoints: { demo: join(here, 'main.ts') },
    bundle: true,
    format: 'esm',
    // gpu.js (the gpu backend's entry) becomes a chunk of its own, loaded when a gpu backend is picked.
    splitting: true,
    platform: 'browser',
    target: 'es2022',
    outdir: outDir,
    minify,
    sourcemap: true,
    tsconfig: join(root, 'tsconfig.json'),
    // The serving entry's ONNX Runtime engine is Node-only (a native addon) and never runs in the page.
    external: ['onnxruntime-node'],
    logLevel: 'warning',
    // Imports from the disabled built-ins are undefined by design; the page never calls them.
    logOverride: { 'import-is-undefined': 'silent' },
  });
  await copyFile(join(here, 'index.html'), join(outDir, 'index.html'));
  return outDir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const out = await buildDemo();
  console.log(`demo built into ${out} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
