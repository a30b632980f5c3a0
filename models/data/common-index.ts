/**
 * A compact index of an Ali-CCP common-features file (key → byte offset and line) and
 * positioned reads of its lines, so skeleton rows can be joined with their session by key
 * whatever order either file is in, without holding the common file in memory.
 *
 * The public keys are 16 lowercase hex digits: they are stored as two 32-bit words in typed
 * arrays sorted by key and found by binary search, with each line's entry number and the low word
 * of its offset: 16 bytes a key. Line numbers, offsets' high words and line lengths follow from
 * the file order (runs and the next line's offset), so they cost nothing per key. Keys of any
 * other shape (hand-written files) go to a plain Map beside it, so every key is matched exactly.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { DEFAULT_MAX_LINE_BYTES, LineTooLongError } from './lines.js';
import { INSTEAD, requireNode } from '../node-only.js';

/**
 * State of an indexed common line: `ok`; `malformed` (it has a key but too few columns); or
 * `duplicate` (another line has the same key, recorded under `onMalformed: 'skip'`: rows of the
 * key cannot be joined).
 */
export type EntryState = 'ok' | 'malformed' | 'duplicate';
/** A common line that could not be indexed (no readable key, or a duplicate), under `onMalformed: 'skip'`. */
export interface IndexIssue {
  line: number;
  /** What is wrong, without the `file:line:` prefix. */
  message: string;
}

/** Options of {@link CommonIndex.build}. */
export interface CommonIndexOptions {
  /** Throw on a line without a readable key or on a duplicate key (default), or record it and go on. */
  onMalformed?: 'error' | 'skip';
  /** Longest accepted line (default {@link DEFAULT_MAX_LINE_BYTES}). */
  maxLineBytes?: number;
  /** Bytes per read of the indexing pass (default 4 MiB). */
  chunkBytes?: number;
  /** Called with a malformed line's number and message under `onMalformed: 'skip'`. */
  onIssue?: (issue: IndexIssue) => void;
}

/** Thrown for a duplicate key or a line without a key, naming the common file and line(s). */
export class CommonIndexError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    /** The message without its `file:line:` prefix. */
    readonly detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'CommonIndexError';
  }
}

/** Key → line of a common-features file; build it with {@link CommonIndex.build}. */
export class CommonIndex {
  // Entries are the indexed lines in file order (entry e is the e-th line with a key).
  // While building: each entry's hex key; dropped once the sorted table is made.
  private hi = new Uint32Array(1024);
  private lo = new Uint32Array(1024);
  // Low 32 bits of each entry's byte offset; the high words change rarely (every 4 GiB), so
  // they are kept as runs: from entry highFrom[i] on, the high word is highWord[i].
  private offLow = new Uint32Array(1024);
  private highFrom: number[] = [0];
  private highWord: number[] = [0];
  // Line numbers are entry + 1 plus the lines without a key (blank, malformed) before the
  // entry; from entry gapFrom[i] on, that count is gapCount[i].
  private gapFrom: number[] = [0];
  private gapCount: number[] = [0];
  // Hex keys sorted (hi, lo), with their entries: looked up by binary search.
  private sortedHi = new Uint32Array(0);
  private sortedLo = new Uint32Array(0);
  private sortedEntry = new Uint32Array(0);
  /** Irregular keys (not 16 lowercase hex digits) → entry. */
  private named = new Map<string, number>();
  /** Entries with irregular keys, while building. */
  private irregular = new Set<number>();
  private malformed = new Set<number>();
  private duplicates = new Set<number>();
  private maxLine = DEFAULT_MAX_LINE_BYTES;
  /** Number of indexed lines (keys, duplicates included). */
  size = 0;
  /** Lines of the file, blank ones included. */
  lineCount = 0;
  /** Lines that could not be indexed (no key) under `onMalformed: 'skip'`. */
  readonly issues: IndexIssue[] = [];
  /** Seconds the indexing pass took. */
  seconds = 0;

  private constructor(
    /** Path of the common file. */
    readonly path: string,
    /** Its size in bytes when indexed. */
    readonly fileBytes: number,
  ) {}

  /** One pass over `path`: records every line's key, byte offset, length and line number. */
  static async build(path: string, options: CommonIndexOptions = {}): Promise<CommonIndex> {
    requireNode('CommonIndex.build', [open], INSTEAD.data);
    for (const key of Object.keys(options)) {
      if (!['onMalformed', 'maxLineBytes', 'chunkBytes', 'onIssue'].includes(key))
        throw new Error(`CommonIndex.build: unknown option '${key}'`);
    }
    const started = performance.now();
    const policy = options.onMalformed ?? 'error';
    const maxLine = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new Error(`${path}: cannot open: ${(e as Error).message}`);
    }
    try {
      const bytes = (await fh.stat()).size;
      const index = new CommonIndex(path, bytes);
      index.maxLine = maxLine;
      const chunk = Buffer.allocUnsafe(Math.max(1024, options.chunkBytes ?? 4 << 20));
      const issue = (line: number, message: string): void => {
        if (policy === 'error') throw new CommonIndexError(path, line, message);
        const found = { line, message };
        index.issues.push(found);
        options.onIssue?.(found);
      };
      let pos = 0;
      let lineNo = 0;
      // A line longer than a chunk: its head was handled, the rest is skipped up to its newline.
      let skipping = false;
      let skippedBytes = 0;
      while (pos < bytes) {
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
        if (bytesRead === 0) break;
        const data = chunk.subarray(0, bytesRead);
        let start = 0;
        if (pos === 0 && bytesRead >= 3 && data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) start = 3;
        if (skipping) {
          const nl = data.indexOf(0x0a);
          if (nl < 0) {
            skippedBytes += bytesRead;
            if (skippedBytes > maxLine) throw new LineTooLongError(path, lineNo, maxLine);
            pos += bytesRead;
            continue;
          }
          skippedBytes += nl;
          if (skippedBytes > maxLine) throw new LineTooLongError(path, lineNo, maxLine);

          skipping = false;
          start = nl + 1;
        }
        const atEof = pos + bytesRead >= bytes;
        for (;;) {
          let nl = data.indexOf(0x0a, start);
          let end: number;
          if (nl < 0) {
            if (!atEof && start > 0) break; // the rest is read again with the next chunk
            if (!atEof) {
              // The line fills the whole chunk: index its head, skip to its end.
              end = data.length;
              nl = -1;
            } else {
              if (start >= data.length) break;
              end = data.length;
            }
          } else {
            end = nl;
          }
          lineNo++;
          const tail = end > start && data[end - 1] === 13 ? end - 1 : end;
          if (tail - start > maxLine) throw new LineTooLongError(path, lineNo, maxLine);
          if (tail > start) index.add(data, start, tail, pos + start, lineNo, issue);
          if (nl < 0 && !atEof) {
            skipping = true;
            skippedBytes = end - start;
            start = data.length;
            break;
          }
          start = end + 1;
          if (start >= data.length) break;
        }
        pos += start;
      }
      index.lineCount = lineNo;
      index.finish(issue);
      index.seconds = (performance.now() - started) / 1000;
      return index;
    } finally {
      await fh.close();
    }
  }

  /** Entry number of `key` (its first line when duplicated), or -1 when the file does not have it. */
  find(key: string): number {
    if (isHexKey(key)) {
      const hi = parseHex(key, 0);
      const lo = parseHex(key, 8);
      const sh = this.sortedHi;
      const sl = this.sortedLo;
      // Lower bound of (hi, lo): duplicates are sorted by entry, so the first line comes first.
      let a = 0;
      let b = sh.length;
      while (a < b) {
        const m = (a + b) >>> 1;
        if (sh[m] < hi || (sh[m] === hi && sl[m] < lo)) a = m + 1;
        else b = m;
      }
      return a < sh.length && sh[a] === hi && sl[a] === lo ? this.sortedEntry[a] : -1;
    }
    return this.named.get(key) ?? -1;
  }

  /** Byte offset of entry `e`'s line. */
  offset(e: number): number {
    return this.highWord[lastAtOrBefore(this.highFrom, e)] * 2 ** 32 + this.offLow[e];
  }
  /**
   * Bytes from entry `e`'s line to the next entry's (or to the end of the file), at most the
   * longest accepted line and its line end: the line is the part before the first LF.
   */
  span(e: number): number {
    const end = e + 1 < this.size ? this.offset(e + 1) : this.fileBytes;
    return Math.min(end - this.offset(e), this.maxLine + 2);
  }
  /** 1-based line number of entry `e`. */
  line(e: number): number {
    return e + 1 + this.gapCount[lastAtOrBefore(this.gapFrom, e)];
  }
  /** {@link EntryState} of entry `e`. */
  state(e: number): EntryState {
    return this.duplicates.has(e) ? 'duplicate' : this.malformed.has(e) ? 'malformed' : 'ok';
  }

  /** Bytes the index holds (typed arrays and runs; the Map and Sets of rare entries estimated). */
  get bytes(): number {
    return (
      this.sortedHi.byteLength +
      this.sortedLo.byteLength +
      this.sortedEntry.byteLength +
      this.offLow.byteLength +
      (this.highFrom.length + this.gapFrom.length) * 16 +
      this.named.size * 64 /* rough Map entry + key */ +
      (this.malformed.size + this.duplicates.size) * 16
    );
  }

  private add(
    data: Buffer,
    start: number,
    end: number,
    offset: number,
    lineNo: number,
    issue: (line: number, message: string) => void,
  ): void {
    const c1 = data.indexOf(0x2c, start);
    if (c1 <= start || c1 >= end) {
      issue(
        lineNo,
        c1 === start
          ? 'empty common_feature_index (expected common_feature_index,feature_num,feature_list)'
          : 'expected 3 comma-separated columns: common_feature_index,feature_num,feature_list',
      );
      return;
    }
    const c2 = data.indexOf(0x2c, c1 + 1);
    const e = this.size;
    if (e === this.hi.length) this.grow();
    const high = Math.floor(offset / 2 ** 32);
    if (high !== this.highWord[this.highWord.length - 1]) {
      this.highFrom.push(e);
      this.highWord.push(high);
    }
    this.offLow[e] = offset >>> 0;
    const gap = lineNo - 1 - e;
    if (gap !== this.gapCount[this.gapCount.length - 1]) {
      this.gapFrom.push(e);
      this.gapCount.push(gap);
    }
    if (c2 < 0 || c2 >= end) this.malformed.add(e);
    if (c1 - start === 16 && isHexBytes(data, start)) {
      this.hi[e] = parseHexBytes(data, start);
      this.lo[e] = parseHexBytes(data, start + 8);
    } else {
      // Irregular keys are matched as strings and stay out of the sorted table.
      this.hi[e] = this.lo[e] = 0;
      this.irregular.add(e);
      const key = data.toString('latin1', start, c1);
      const prior = this.named.get(key);
      if (prior !== undefined) this.duplicate(prior, e, key, issue);
      else this.named.set(key, e);
    }
    this.size++;
  }

  private duplicate(first: number, second: number, key: string, issue: (line: number, message: string) => void): void {
    issue(this.line(second), `duplicate common key ${key}: line ${this.line(first)} has it too`);
    this.duplicates.add(first);
    this.duplicates.add(second);
  }

  private grow(): void {
    const n = this.hi.length * 2;
    const widen = (a: Uint32Array): Uint32Array<ArrayBuffer> => {
      const b = new Uint32Array(n);
      b.set(a);
      return b;
    };
    this.hi = widen(this.hi);
    this.lo = widen(this.lo);
    this.offLow = widen(this.offLow);
  }

  /** Trims to size and sorts the hex keys (a stable radix sort, so equal keys stay in file order). */
  private finish(issue: (line: number, message: string) => void): void {
    const n = this.size;
    this.offLow = this.offLow.slice(0, n);
    let m = 0;
    let order: Uint32Array = new Uint32Array(n - this.irregular.size);
    for (let e = 0; e < n; e++) if (!this.irregular.has(e)) order[m++] = e;
    this.irregular.clear();
    let spare: Uint32Array = new Uint32Array(m);
    const counts = new Uint32Array(65537);
    // Least significant 16-bit digit first: lo low, lo high, hi low, hi high.
    for (const [words, shift] of [
      [this.lo, 0],
      [this.lo, 16],
      [this.hi, 0],
      [this.hi, 16],
    ] as const) {
      counts.fill(0);
      for (let i = 0; i < m; i++) counts[((words[order[i]] >>> shift) & 0xffff) + 1]++;
      for (let d = 1; d <= 65536; d++) counts[d] += counts[d - 1];
      for (let i = 0; i < m; i++) spare[counts[(words[order[i]] >>> shift) & 0xffff]++] = order[i];
      [order, spare] = [spare, order];
    }
    this.sortedHi = new Uint32Array(m);
    this.sortedLo = new Uint32Array(m);
    for (let i = 0; i < m; i++) {
      this.sortedHi[i] = this.hi[order[i]];
      this.sortedLo[i] = this.lo[order[i]];
    }
    this.sortedEntry = order.slice();
    this.hi = this.lo = new Uint32Array(0);
    // Equal neighbours are duplicates; reported in file order of the later line.
    const pairs: [first: number, later: number, key: string][] = [];
    for (let i = 1, first = 0; i < m; i++) {
      if (this.sortedHi[i] === this.sortedHi[i - 1] && this.sortedLo[i] === this.sortedLo[i - 1])
        pairs.push([this.sortedEntry[first], this.sortedEntry[i], hexKey(this.sortedHi[i], this.sortedLo[i])]);
      else first = i;
    }
    pairs.sort((x, y) => x[1] - y[1]);
    for (const [first, later, key] of pairs) this.duplicate(first, later, key, issue);
  }
}

/**
 * Positioned reads of common lines with a read-ahead window: when the lines asked for follow each
 * other in the file (the common file in skeleton order) one read serves many of them; a random
 * access reads just its line.
 */
export class CommonLineReader {
  private fh: FileHandle | null = null;
  private window = Buffer.alloc(0);
  private windowStart = 0;
  private windowEnd = 0;
  private lastEnd = -1;
  /** Positioned reads issued. */
  reads = 0;

  constructor(
    readonly index: CommonIndex,
    /** Bytes read ahead on a sequential access (default 1 MiB). */
    private readonly readAhead = 1 << 20,
  ) {}

  /** The text of entry `e`'s line (Latin-1, without its line end). */
  async line(e: number): Promise<string> {
    const offset = this.index.offset(e);
    const span = this.index.span(e);
    const end = offset + span;
    if (offset < this.windowStart || end > this.windowEnd) {
      this.fh ??= await open(this.index.path, 'r');
      const want = offset === this.lastEnd ? Math.max(span, this.readAhead) : span;
      if (this.window.length < want) this.window = Buffer.allocUnsafe(Math.max(want, this.readAhead));
      const { bytesRead } = await this.fh.read(this.window, 0, want, offset);
      this.reads++;
      if (bytesRead < span) throw this.changed(e);
      this.windowStart = offset;
      this.windowEnd = offset + bytesRead;
    }
    this.lastEnd = end;
    const from = offset - this.windowStart;
    let to = this.window.indexOf(0x0a, from);
    if (to < 0 || to > end - this.windowStart) {
      // Only the file's last line may end without a line end.
      if (end !== this.index.fileBytes) throw this.changed(e);
      to = end - this.windowStart;
    }
    if (to > from && this.window[to - 1] === 13) to--;
    return this.window.toString('latin1', from, to);
  }

  private changed(e: number): Error {
    return new Error(
      `${this.index.path}:${this.index.line(e)}: the file changed since it was indexed (a line ends early)`,
    );
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    this.windowStart = this.windowEnd = 0;
    if (fh) await fh.close();
  }
}

function isHexKey(key: string): boolean {
  if (key.length !== 16) return false;
  for (let i = 0; i < 16; i++) {
    const c = key.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function isHexBytes(data: Buffer, at: number): boolean {
  for (let i = at; i < at + 16; i++) {
    const c = data[i];
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function hexValue(c: number): number {
  return c <= 57 ? c - 48 : c - 87;
}

function parseHex(key: string, at: number): number {
  let x = 0;
  for (let i = at; i < at + 8; i++) x = (x << 4) | hexValue(key.charCodeAt(i));
  return x >>> 0;
}

function parseHexBytes(data: Buffer, at: number): number {
  let x = 0;
  for (let i = at; i < at + 8; i++) x = (x << 4) | hexValue(data[i]);
  return x >>> 0;
}

function hexKey(hi: number, lo: number): string {
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** Index of the last element of the ascending `starts` that is <= `e` (starts[0] is 0). */
function lastAtOrBefore(starts: readonly number[], e: number): number {
  let a = 0;
  let b = starts.length - 1;
  while (a < b) {
    const m = (a + b + 1) >>> 1;
    if (starts[m] <= e) a = m;
    else b = m - 1;
  }
  return a;
}
