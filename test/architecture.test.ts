/**
 * The layering of docs/architecture.md against the real import graph: every import of core/,
 * kernels/ and models/ (static, re-export and dynamic) is parsed with the TypeScript compiler,
 * imports between layers must be exactly the ones the guide lists, the modules its drawing names
 * must exist, each drawn backend must implement kernels/backend.ts, and no CTR name may be an
 * identifier or a string below models/.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..');
const LAYERS = ['models', 'core', 'kernels'] as const;
type Layer = (typeof LAYERS)[number];

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every relative import of every source file, resolved to a repository path. */
function importGraph(): { from: string; to: string }[] {
  const edges: { from: string; to: string }[] = [];
  for (const layer of LAYERS)
    for (const file of sources(layer)) {
      const { importedFiles } = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
      for (const { fileName } of importedFiles)
        if (fileName.startsWith('.'))
          edges.push({
            from: file,
            to: relative(root, resolve(root, dirname(file), fileName))
              .split(sep)
              .join('/'),
          });
    }
  return edges;
}

const layerOf = (path: string): string => path.split(/[/\\]/)[0];
const guide = readFileSync(join(root, 'docs/architecture.md'), 'utf8');
const drawing = /^```\n([\s\S]*?)^```/m.exec(guide)?.[1] ?? '';

describe('the architecture guide matches the import graph', () => {
  const graph = importGraph();

  it('parses imports from every layer', () => {
    for (const layer of LAYERS) expect(graph.some((e) => layerOf(e.from) === layer)).toBe(true);
  });

  it('has exactly the imports between layers that the guide lists, all pointing down', () => {
    // The line alone in its paragraph: `Imports: a → b, c → d.`
    const listed = /^Imports: ([^\n]*)\.$/m.exec(guide)?.[1];
    expect(listed, 'docs/architecture.md has no "Imports:" line').toBeDefined();
    const drawn = new Set(listed!.split(',').map((pair) => pair.trim().replace(/\s*→\s*/, ' → ')));
    const real = new Map<string, string>();
    for (const { from, to } of graph) {
      const [a, b] = [layerOf(from), layerOf(to)];
      if (a !== b) real.set(`${a} → ${b}`, `${from} imports ${to}`);
    }
    expect([...real.keys()].sort()).toEqual([...drawn].sort());
    // Down only: models → core → kernels.
    const rank = (l: string): number => LAYERS.indexOf(l as Layer);
    for (const [edge, example] of real) {
      const [a, b] = edge.split(' → ');
      expect(rank(a), example).toBeLessThan(rank(b));
    }
  });

  it('names only modules that exist, under the layer whose row names them', () => {
    let layer: string | null = null;
    const named: string[] = [];
    for (const line of drawing.split('\n')) {
      const head = /^\s*(models|core|kernels)\/\s/.exec(line);
      if (head) layer = head[1];
      if (!layer) continue;
      for (const [token] of line.matchAll(/[\w-]+(\.ts|\/)(?=[\s,)]|$)/g))
        if (token !== `${layer}/`) named.push(`${layer}/${token}`);
    }
    expect(named.length).toBeGreaterThan(15);
    expect(named.filter((path) => !existsSync(join(root, path)))).toEqual([]);
  });

  it('draws each backend implementing kernels/backend.ts', () => {
    const backends = [...drawing.matchAll(/[├└]─ ([\w-]+(?:\.ts|\/))/g)].map((m) => `kernels/${m[1]}`);
    expect(backends).toEqual(['kernels/reference.ts', 'kernels/gpu/', 'kernels/wasm/']);
    for (const backend of backends) {
      const files = statSync(join(root, backend)).isDirectory() ? sources(backend) : [backend];
      const implementsIt = graph.some((e) => files.includes(e.from) && e.to === 'kernels/backend.js');
      expect(implementsIt, `${backend} does not import kernels/backend.ts`).toBe(true);
    }
  });
});

/** Words of an identifier or string: camelCase, snake_case and kebab-case split, lower-cased. */
function words(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

const CTR_WORDS = new Set([
  'ctr',
  'cvr',
  'ctcvr',
  'pctr',
  'pcvr',
  'pctcvr',
  'esmm',
  'click',
  'clicks',
  'clicked',
  'conversion',
  'conversions',
  'impression',
  'impressions',
]);
/** The package's own name and its environment variables are not model names. */
const PROJECT_NAME = /esmm-ts|^ESMM_[A-Z_]+$/;

describe('no CTR names below models/', () => {
  it('finds the words it looks for', () => {
    expect(words('pCtrLogit').filter((w) => CTR_WORDS.has(w))).toEqual(['ctr']);
    expect(words('ctcvr_labels').filter((w) => CTR_WORDS.has(w))).toEqual(['ctcvr']);
    expect(words('spectrum').filter((w) => CTR_WORDS.has(w))).toEqual([]);
  });

  for (const layer of ['core', 'kernels'] as const) {
    it(`has no CTR identifier or string in ${layer}/`, () => {
      const found: string[] = [];
      for (const file of sources(layer)) {
        const source = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
        const visit = (node: ts.Node): void => {
          if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node) || ts.isStringLiteralLike(node)) {
            const text = node.text;
            if (!PROJECT_NAME.test(text) && words(text).some((w) => CTR_WORDS.has(w))) {
              const line = source.getLineAndCharacterOfPosition(node.getStart()).line + 1;
              found.push(`${file}:${line} ${JSON.stringify(text.slice(0, 60))}`);
            }
          }
          ts.forEachChild(node, visit);
        };
        visit(source);
      }
      expect(found).toEqual([]);
    });
  }
});
