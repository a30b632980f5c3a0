/**
 * The TypeScript snippets of docs/aliccp.md and docs/reproducing-table2.md run as written:
 * each ```ts block is written to a module (package imports pointed at the sources) and
 * imported, so a snippet that throws, or whose assertions fail, fails this test. Blocks
 * marked ```ts fragment are not run.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const root = resolve(__dirname, '..');
const outDir = join(root, 'test', '.snippets-guides');
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

/** The guides and how many runnable snippets each has (so a dropped fence is noticed). */
const guides: Record<string, number> = {
  'docs/aliccp.md': 3,
  'docs/reproducing-table2.md': 2,
  'docs/parquet.md': 2,
};

const packagePaths: Record<string, string> = {
  'esmm-ts': '../../models/package-entry.js',
  'esmm-ts/core': '../../core/index.js',
  'esmm-ts/kernels': '../../kernels/index.js',
  'esmm-ts/models': '../../models/index.js',
};

/** The ```ts / ```typescript blocks of a markdown file, in order. */
function runnableSnippets(markdown: string): string[] {
  const fence = /^```([^\n]*)\n([\s\S]*?)^```/gm;
  const found: string[] = [];
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown))
    if (/^(ts|typescript)$/.test(m[1].trim())) found.push(m[2]);
  return found;
}

function rewriteImports(code: string): string {
  return code.replace(/(from|import) '([^']+)'/g, (whole, keyword: string, spec: string) =>
    spec in packagePaths ? `${keyword} '${packagePaths[spec]}'` : whole,
  );
}

describe('guide snippets run', () => {
  for (const [doc, count] of Object.entries(guides)) {
    const snippets = runnableSnippets(readFileSync(join(root, doc), 'utf8'));
    it(`${doc} has ${count} runnable snippets`, () => {
      expect(snippets).toHaveLength(count);
    });
    snippets.forEach((code, i) => {
      it(`${doc} snippet ${i + 1} runs`, async () => {
        mkdirSync(outDir, { recursive: true });
        const file = join(outDir, `${doc.replace(/[/.]/g, '_')}-${i}.ts`);
        writeFileSync(file, `${rewriteImports(code)}\nexport {};\n`);
        const log = vi.spyOn(console, 'log').mockImplementation(() => {});
        try {
          await expect(import(/* @vite-ignore */ file)).resolves.toBeDefined();
        } finally {
          log.mockRestore();
        }
      });
    });
  }
});
