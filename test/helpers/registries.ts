/**
 * Loads every module that may register a base model or a method (all of models/ but the CLI, and the
 * docs' examples), so the suites that iterate `listBaseModels()` and `listMethods()` test a new model
 * or method file without a line of test code naming it.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((path) => !/(^|\/)cli(\/|\.ts$)/.test(path))
    .sort();
}

/** Import every registering module once; returns the paths loaded. */
export async function loadRegistrations(): Promise<string[]> {
  const paths = [...sources('models'), ...sources('docs/examples')];
  for (const path of paths) await import(pathToFileURL(join(root, path)).href);
  return paths;
}
