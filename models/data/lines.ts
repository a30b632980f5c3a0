/**
 * A line reader with bounded memory: reads a file in fixed-size chunks and
 * hands out one line at a time, refusing lines longer than a limit instead of
 * growing without bound on a file that lacks newlines.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { INSTEAD, requireNode } from '../node-only.js';

/** Default chunk size of a read. */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
/** Default longest accepted line (Ali-CCP's longest lines are tens of KiB). */
export const DEFAULT_MAX_LINE_BYTES = 64 << 20;

/** Options of {@link LineReader}. */
export interface LineReaderOptions {
  chunkBytes?: number;
  maxLineBytes?: number;
}

/** A line over the length limit: almost always the wrong file, or one without newlines. */
export class LineTooLongError extends Error {
  constructor(
    readonly file: string,
    /** 1-based number of the line. */
    readonly line: number,
    readonly maxLineBytes: number,
  ) {
    super(`${file}:${line}: ${lineTooLong(maxLineBytes)}`);
    this.name = 'LineTooLongError';
  }

  /** The message without its `file:line:` prefix. */
  get detail(): string {
    return lineTooLong(this.maxLineBytes);
  }
}

function lineTooLong(max: number): string {
  return `line longer than ${max} bytes (no newline found); is this the right file?`;
}

/** Checks a {@link LineReaderOptions}, so a typo'd or nonsensical setting fails at once. */
export function checkLineReaderOptions(options: LineReaderOptions): void {
  for (const key of Object.keys(options)) {
    if (key !== 'chunkBytes' && key !== 'maxLineBytes') throw new Error(`LineReader: unknown option '${key}'`);
  }
  for (const key of ['chunkBytes', 'maxLineBytes'] as const) {
    const v = options[key];
    if (v !== undefined && !(Number.isInteger(v) && v > 0))
      throw new Error(`LineReader: ${key} must be a positive integer, got ${v}`);
  }
}

/**
 * Reads lines of an ASCII/Latin-1 file lazily; `lineNo` is 1-based and counts every line read.
 * A UTF-8 byte-order mark at the start of the file is dropped, and a line's trailing CR too.
 */
export class LineReader {
  private handle: FileHandle | null = null;
  private opening: Promise<FileHandle> | null = null;
  private chunk: Buffer;
  private lines: string[] = [];
  private next = 0;
  /** Pieces of a line that spans chunks; joined once when its newline arrives, so long lines cost linear time. */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  private eof = false;
  private first = true;
  private readonly maxLineBytes: number;
  /** Number of the last line returned by {@link read} (1-based; 0 before the first). */
  lineNo = 0;

  constructor(
    /** Path of the file, used in every error message. */
    readonly path: string,
    options: LineReaderOptions = {},
  ) {
    requireNode('LineReader', [open], INSTEAD.data);
    checkLineReaderOptions(options);
    this.chunk = Buffer.allocUnsafe(options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** The next line without its line terminator, or null at the end of the file. */
  async read(): Promise<string | null> {
    while (this.next >= this.lines.length) {
      if (this.eof) return null;
      await this.fill();
    }
    this.lineNo++;
    return this.lines[this.next++];
  }

  /** Closes the file; safe to call twice. */
  async close(): Promise<void> {
    const h = this.handle ?? (this.opening ? await this.opening.catch(() => null) : null);
    this.handle = null;
    this.opening = null;
    this.eof = true;
    if (h) await h.close();
  }

  private async fill(): Promise<void> {
    if (!this.handle) {
      this.opening ??= open(this.path, 'r');
      try {
        this.handle = await this.opening;
      } catch (e) {
        throw new Error(`${this.path}: cannot open: ${(e as Error).message}`);
      }
    }
    const { bytesRead } = await this.handle.read(this.chunk, 0, this.chunk.length, null);
    this.lines = [];
    this.next = 0;
    if (bytesRead === 0) {
      this.eof = true;
      // A last line without a trailing newline is still a line.
      if (this.carryBytes > 0) this.lines.push(this.takeCarry(Buffer.alloc(0), 0, 0));
      await this.close();
      return;
    }
    const data = this.chunk.subarray(0, bytesRead);
    let start = 0;
    if (this.first) {
      this.first = false;
      if (bytesRead >= 3 && data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) start = 3;
    }
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl < 0) break;
      if (this.carryBytes > 0) {
        this.checkLength(this.carryBytes + nl - start, this.lines.length);
        this.lines.push(this.takeCarry(data, start, nl));
      } else {
        this.checkLength(nl - start, this.lines.length);
        this.lines.push(stripCr(data.toString('latin1', start, nl)));
      }
      start = nl + 1;
    }
    if (start < data.length) {
      this.checkLength(this.carryBytes + data.length - start, this.lines.length);
      // Copy the tail: the chunk buffer is reused by the next read.
      this.carry.push(Buffer.from(data.subarray(start)));
      this.carryBytes += data.length - start;
    }
  }

  private checkLength(bytes: number, pending: number): void {
    if (bytes > this.maxLineBytes) throw new LineTooLongError(this.path, this.lineNo + pending + 1, this.maxLineBytes);
  }

  private takeCarry(data: Buffer, from: number, to: number): string {
    const parts = this.carry;
    if (to > from) parts.push(data.subarray(from, to));
    const line = Buffer.concat(parts).toString('latin1');
    this.carry = [];
    this.carryBytes = 0;
    return stripCr(line);
  }
}

function stripCr(s: string): string {
  return s.length > 0 && s.charCodeAt(s.length - 1) === 13 ? s.slice(0, -1) : s;
}
