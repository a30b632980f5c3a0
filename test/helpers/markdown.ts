/** Fenced code blocks of a Markdown document, for the tests that run the documentation's snippets. */

/** A fenced block: its info string (`ts`, `sh`, `ts fragment`, ...) and its text. */
export interface FencedBlock {
  info: string;
  code: string;
}

/** Every fenced block of `markdown`, in order. */
export function fencedBlocks(markdown: string): FencedBlock[] {
  const found: FencedBlock[] = [];
  const fence = /^```([^\n]*)\n([\s\S]*?)^```/gm;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown)) found.push({ info: m[1].trim(), code: m[2] });
  return found;
}

/** The blocks that run as TypeScript (```ts or ```typescript, not ```ts fragment). */
export function typeScriptBlocks(markdown: string): string[] {
  return fencedBlocks(markdown)
    .filter((b) => /^(ts|typescript)$/.test(b.info))
    .map((b) => b.code);
}
