/**
 * A compact index of an Ali-CCP common-features file (key → byte offset, length and line) and
 * positioned reads of its lines, so skeleton rows can be joined with their session by key
 * whatever order either file is in, without holding the common file in memory.
 *
 * The public keys are 16 lowercase hex digits: they are stored as two 32-bit words in typed
 * arrays, found through an open-addressing hash table of entry numbers. Keys of any other shape
 * (hand-written files) go to a plain Map beside it, so every key is matched exactly.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { DEFAULT_MAX_LINE_BYTES, LineTooLongError } from './lines.js';

/**
 * State of an indexed common line: `ok`; `malformed` (it has a key but too few columns); or
 * `duplicate` (another line has the same key, recorded under `onMalformed: 'skip'`: rows of the
 * key cannot be joined).
 */
export type EntryState = 'ok' | 'malformed' | 'duplicate';
const OK = 0;
const MALFORMED = 1;
const DUPLICATE = 2;
/** Marks an entry whose key is irregular (matched through the Map, not the hex table). */
const NAMED = 0x80;
const STATES: readonly EntryState[] = ['ok', 'malformed', 'duplicate'];

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

const EMPTY = -1;

/** Key → line of a common-features file; build it with {@link CommonIndex.build}. */
export class CommonIndex {
  private hi = new Uint32Array(1024);
  private lo = new Uint32Array(1024);
  private offsets = new Float64Array(1024);
  private lengths = new Uint32Array(1024);
  private lines = new Uint32Array(1024);
  private states = new Uint8Array(1024);
  private slots = new Int32Array(0);
  private mask = 0;
  private named = new Map<string, number>();
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
      let headAdded = false;
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
          if (headAdded) index.lengths[index.size - 1] = skippedBytes - (nl > 0 && data[nl - 1] === 13 ? 1 : 0);
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
          const before = index.size;
          if (tail > start) index.add(data, start, tail, pos + start, lineNo, issue);
          headAdded = index.size > before;
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
      // The last line was longer than a chunk and had no newline.
      if (skipping && headAdded) index.lengths[index.size - 1] = skippedBytes;
      index.lineCount = lineNo;
      index.finish(issue);
      index.seconds = (performance.now() - started) / 1000;
      return index;
    } finally {
      await fh.close();
    }
  }

  /** Entry number of `key`, or -1 when the file does not have it. */
  find(key: string): number {
    if (isHexKey(key)) {
      const hi = parseHex(key, 0);
      const lo = parseHex(key, 8);
      for (let s = mix(hi, lo) & this.mask; ; s = (s + 1) & this.mask) {
        const e = this.slots[s];
        if (e === EMPTY) return -1;
        if (this.hi[e] === hi && this.lo[e] === lo) return e;
      }
    }
    return this.named.get(key) ?? -1;
  }

  /** Byte offset of entry `e`'s line. */
  offset(e: number): number {
    return this.offsets[e];
  }
  /** Length in bytes of entry `e`'s line (without its line end). */
  length(e: number): number {
    return this.lengths[e];
  }
  /** 1-based line number of entry `e`. */
  line(e: number): number {
    return this.lines[e];
  }
  /** {@link EntryState} of entry `e`. */
  state(e: number): EntryState {
    return STATES[this.states[e] & 0x7f];
  }

  /** Bytes the index holds (typed arrays and table; the Map of irregular keys estimated). */
  get bytes(): number {
    return (
      this.size * (4 + 4 + 8 + 4 + 4 + 1) + this.slots.byteLength + this.named.size * 64 /* rough Map entry + key */
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
    const state = c2 < 0 || c2 >= end ? MALFORMED : OK;
    const e = this.size;
    if (e === this.hi.length) this.grow();
    this.offsets[e] = offset;
    this.lengths[e] = end - start;
    this.lines[e] = lineNo;
    this.states[e] = state;
    if (c1 - start === 16 && isHexBytes(data, start)) {
      this.hi[e] = parseHexBytes(data, start);
      this.lo[e] = parseHexBytes(data, start + 8);
    } else {
      // Irregular keys are matched as strings; the marker keeps them out of the hex table.
      this.hi[e] = 0;
      this.lo[e] = 0;
      this.states[e] |= NAMED;
      const key = data.toString('latin1', start, c1);
      const prior = this.named.get(key);
      if (prior !== undefined) this.duplicate(prior, e, key, issue);
      else this.named.set(key, e);
    }
    this.size++;
  }

  private duplicate(first: number, second: number, key: string, issue: (line: number, message: string) => void): void {
    issue(this.lines[second], `duplicate common key ${key}: line ${this.lines[first]} has it too`);
    this.states[first] = (this.states[first] & NAMED) | DUPLICATE;
    this.states[second] = (this.states[second] & NAMED) | DUPLICATE;
  }

  private grow(): void {
    const n = this.hi.length * 2;
    const widen = <T extends Uint32Array | Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.hi = widen(this.hi, (k) => new Uint32Array(k));
    this.lo = widen(this.lo, (k) => new Uint32Array(k));
    this.offsets = widen(this.offsets, (k) => new Float64Array(k));
    this.lengths = widen(this.lengths, (k) => new Uint32Array(k));
    this.lines = widen(this.lines, (k) => new Uint32Array(k));
    this.states = widen(this.states, (k) => new Uint8Array(k));
  }

  /** Trims the arrays to size and builds the hash table of hex keys (load factor at most 3/4). */
  private finish(issue: (line: number, message: string) => void): void {
    const n = this.size;
    this.hi = this.hi.slice(0, n);
    this.lo = this.lo.slice(0, n);
    this.offsets = this.offsets.slice(0, n);
    this.lengths = this.lengths.slice(0, n);
    this.lines = this.lines.slice(0, n);
    this.states = this.states.slice(0, n);
    let capacity = 16;
    while (capacity * 3 < n * 4) capacity *= 2;
    this.slots = new Int32Array(capacity).fill(EMPTY);
    this.mask = capacity - 1;
    for (let e = 0; e < n; e++) {
      if (this.states[e] & NAMED) continue;
      const hi = this.hi[e];
      const lo = this.lo[e];
      let s = mix(hi, lo) & this.mask;
      for (; this.slots[s] !== EMPTY; s = (s + 1) & this.mask) {
        const o = this.slots[s];
        if (this.hi[o] === hi && this.lo[o] === lo) {
          this.duplicate(o, e, hexKey(hi, lo), issue);
          break;
        }
      }
      if (this.slots[s] === EMPTY) this.slots[s] = e;
    }
    for (let e = 0; e < n; e++) this.states[e] &= 0x7f;
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
    const length = this.index.length(e);
    const end = offset + length;
    if (offset < this.windowStart || end > this.windowEnd) {
      this.fh ??= await open(this.index.path, 'r');
      const want = offset === this.lastEnd || offset === this.lastEnd + 1 ? Math.max(length, this.readAhead) : length;
      if (this.window.length < want) this.window = Buffer.allocUnsafe(Math.max(want, this.readAhead));
      const { bytesRead } = await this.fh.read(this.window, 0, want, offset);
      this.reads++;
      if (bytesRead < length)
        throw new Error(
          `${this.index.path}:${this.index.line(e)}: the file changed since it was indexed (a line ends early)`,
        );
      this.windowStart = offset;
      this.windowEnd = offset + bytesRead;
    }
    // Skip past the line end (LF or CRLF) so the next line counts as sequential.
    this.lastEnd = end + 1;
    return this.window.toString('latin1', offset - this.windowStart, end - this.windowStart);
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

function mix(hi: number, lo: number): number {
  let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
