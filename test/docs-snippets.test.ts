/**
 * The TypeScript snippets of the README and the guides run as written: each ```ts block
 * is written to a module (package imports pointed at the sources) and imported. Blocks
 * marked ```ts fragment are excerpts of library code and are not run on their own.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..');
const documents = [
  'README.md',
  'docs/architecture.md',
  'docs/adding-an-op.md',
  'docs/backends.md',
  'docs/adding-a-base-model.md',
  'docs/practice.md',
  'docs/wasm.md',
  'docs/serving.md',
];
const outDir = join(root, 'test', '.snippets');
mkdirSync(outDir, { recursive: true });
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const packagePaths: Record<string, string> = {
  'esmm-ts': '../../models/package-entry.js',
  'esmm-ts/core': '../../core/index.js',
  'esmm-ts/kernels': '../../kernels/index.js',
  'esmm-ts/kernels/gpu': '../../kernels/gpu/index.js',
  'esmm-ts/kernels/wasm': '../../kernels/wasm/index.js',
  'esmm-ts/models': '../../models/index.js',
  'esmm-ts/serving': '../../models/serving/index.js',
};

/** Fenced blocks with their info strings. */
function blocks(markdown: string): { info: string; code: string }[] {
  const found: { info: string; code: string }[] = [];
  const fence = /^```([^\n]*)\n([\s\S]*?)^```/gm;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown)) found.push({ info: m[1].trim(), code: m[2] });
  return found;
}

function rewriteImports(code: string, docDir: string): string {
  return code.replace(/(from|import) '([^']+)'/g, (whole, keyword: string, spec: string) => {
    if (spec in packagePaths) return `${keyword} '${packagePaths[spec]}'`;
    // Relative imports in a guide are relative to the guide's folder.
    if (spec.startsWith('.')) return `${keyword} '${join('../..', docDir, spec).replace(/\\/g, '/')}'`;
    return whole;
  });
}

describe('documentation snippets run', () => {
  for (const doc of documents) {
    const markdown = readFileSync(join(root, doc), 'utf8');
    const runnable = blocks(markdown).filter((b) => /^(ts|typescript)$/.test(b.info));
    it(`${doc} has its TypeScript snippets exercised`, async () => {
      for (const [i, b] of runnable.entries()) {
        const file = join(outDir, `${doc.replace(/[/.]/g, '_')}-${i}.ts`);
        writeFileSync(
          file,
          `${rewriteImports(b.code, doc.includes('/') ? doc.slice(0, doc.lastIndexOf('/')) : '.')}\nexport {};\n`,
        );
        await expect(import(/* @vite-ignore */ file), `${doc} snippet ${i + 1}`).resolves.toBeDefined();
      }
    });
  }
});
