/**
 * package.json as bundlers read it: every Node built-in the package imports is mapped away in
 * the `browser` field, or a browser bundle of the main entry fails to resolve it (the consumer
 * test bundles one; this check names the missing entry in a second).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/package-tarball.js';

/** The TypeScript sources under `dir`, recursively. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('package.json', () => {
  it("maps every Node built-in imported by the package's sources in its browser field", () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      browser?: Record<string, string | false>;
    };
    const imported = new Set<string>();
    for (const file of ['core', 'kernels', 'models'].flatMap((d) => sources(join(ROOT, d)))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bfrom '(node:[\w/]+)'/g)) imported.add(m[1]);
    }
    expect(imported.size).toBeGreaterThan(0);
    const unmapped = [...imported].filter((m) => manifest.browser?.[m] !== false).sort();
    expect(unmapped, 'add these to the browser field of package.json (as false)').toEqual([]);
  });
});
