/**
 * A line reader with bounded memory: reads a file in fixed-size chunks and
 * hands out one line at a time, refusing lines longer than a limit instead of
 * growing without bound on a file that lacks newlines.
 */
import { open, type FileHandle } from 'node:fs/promises';

/** Default chunk size of a read. */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
/** Default longest accepted line (Ali-CCP's longest lines are tens of KiB). */
export const DEFAULT_MAX_LINE_BYTES = 64 << 20;

/** Options of {@link LineReader}. */
export interface LineReaderOptions {
  chunkBytes?: number;
  maxLineBytes?: number;
}

/** Reads lines of an ASCII/Latin-1 file lazily; `lineNo` is 1-based and counts every line read. */
export class LineReader {
  private handle: FileHandle | null = null;
  private opening: Promise<FileHandle> | null = null;
  private chunk: Buffer;
  private lines: string[] = [];
  private next = 0;
  private carry: Buffer | null = null;
  private eof = false;
  private readonly maxLineBytes: number;
  /** Number of the last line returned by {@link read} (1-based; 0 before the first). */
  lineNo = 0;

  constructor(
    /** Path of the file, used in every error message. */
    readonly path: string,
    options: LineReaderOptions = {},
  ) {
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
      if (this.carry && this.carry.length > 0) this.lines.push(stripCr(this.carry.toString('latin1')));
      this.carry = null;
      await this.close();
      return;
    }
    let data = this.chunk.subarray(0, bytesRead);
    if (this.carry) data = Buffer.concat([this.carry, data]);
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl < 0) break;
      this.lines.push(stripCr(data.toString('latin1', start, nl)));
      start = nl + 1;
    }
    const rest = data.length - start;
    if (rest > this.maxLineBytes) {
      throw new Error(
        `${this.path}:${this.lineNo + this.lines.length + 1}: line longer than ${this.maxLineBytes} bytes (no newline found); is this the right file?`,
      );
    }
    // Copy the tail: the chunk buffer is reused by the next read.
    this.carry = rest > 0 ? Buffer.from(data.subarray(start)) : null;
  }
}

function stripCr(s: string): string {
  return s.length > 0 && s.charCodeAt(s.length - 1) === 13 ? s.slice(0, -1) : s;
}
