/**
 * The scoring server: Node's `http`, `POST /score` (JSON rows of raw ids → pCTR, pCVR, pCTCVR and
 * the ranking score pCTR^a · pCVR^b), `GET /healthz`, `GET /metadata`. Rows of concurrent requests
 * are scored as one micro-batch. Bad input is a 400 naming the row and field; nothing a client
 * sends can crash it. `close()` (what SIGTERM calls) stops accepting, finishes what is in flight,
 * then releases the engine.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Batch } from '../schema.js';
import type { HostPredictions } from '../methods/method.js';
import type { ServedModel } from './model-files.js';
import { concatBatches, parseScoreRequest, RequestError } from './request.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** Every default of the server, in one place (the CLI shows these). */
export const SERVER_DEFAULTS = {
  port: 8080,
  host: '127.0.0.1',
  /** Rows one request may carry. */
  maxRows: 4096,
  /** Bytes one request body may have. */
  maxBytes: 4 * 1024 * 1024,
  /** How long the first request of a micro-batch waits for others (ms). */
  batchWindowMs: 1,
  /** Rows of one micro-batch at most (requests are never split). */
  maxBatchRows: 16384,
} as const;

/** Options of {@link startServer}. */
export interface ServerOptions {
  port?: number;
  host?: string;
  maxRows?: number;
  maxBytes?: number;
  batchWindowMs?: number;
  maxBatchRows?: number;
}

/** Counters since start. */
export interface ServerStats {
  requests: number;
  scored: number;
  rejected: number;
  batches: number;
  rows: number;
  inFlight: number;
}

/** A running server. */
export interface ScoringServer {
  readonly url: string;
  readonly port: number;
  stats(): ServerStats;
  /** Stop accepting, answer every request already received, release the engine. */
  close(): Promise<void>;
}

interface Pending {
  batch: Batch;
  resolve(p: HostPredictions): void;
  reject(e: unknown): void;
}

/** Queues requests' batches and scores them together, one engine call at a time. */
class MicroBatcher {
  private queue: Pending[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  batches = 0;
  rows = 0;

  constructor(
    private readonly model: ServedModel,
    private readonly windowMs: number,
    private readonly maxRows: number,
  ) {}

  submit(batch: Batch): Promise<HostPredictions> {
    return new Promise((resolve, reject) => {
      this.queue.push({ batch, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.windowMs);
  }

  private async flush(): Promise<void> {
    this.running = true;
    const take: Pending[] = [];
    let rows = 0;
    while (this.queue.length > 0 && (take.length === 0 || rows + this.queue[0].batch.size <= this.maxRows)) {
      const p = this.queue.shift()!;
      take.push(p);
      rows += p.batch.size;
    }
    try {
      const merged = concatBatches(
        this.model.schema,
        take.map((p) => p.batch),
      );
      const out = await this.model.engine.score(merged);
      this.batches++;
      this.rows += rows;
      let at = 0;
      for (const p of take) {
        const n = p.batch.size;
        p.resolve({
          pctr: out.pctr.subarray(at, at + n),
          pcvr: out.pcvr.subarray(at, at + n),
          pctcvr: out.pctcvr.subarray(at, at + n),
        });
        at += n;
      }
    } catch (e) {
      for (const p of take) p.reject(e);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`startServer: ${name} must be a positive integer, got ${v}`);
  return v;
}

const OPTION_KEYS = new Set(Object.keys(SERVER_DEFAULTS));

/** Start serving a model; resolves once listening. */
export async function startServer(model: ServedModel, options: ServerOptions = {}): Promise<ScoringServer> {
  requireNode('startServer', [createServer], INSTEAD.serving);
  for (const k of Object.keys(options))
    if (!OPTION_KEYS.has(k))
      throw new Error(`startServer: unknown option '${k}'; known: ${[...OPTION_KEYS].join(', ')}`);
  const o = { ...SERVER_DEFAULTS, ...options };
  const maxRows = positiveInt('maxRows', o.maxRows);
  const maxBytes = positiveInt('maxBytes', o.maxBytes);
  const maxBatchRows = positiveInt('maxBatchRows', o.maxBatchRows);
  if (!(o.batchWindowMs >= 0)) throw new Error(`startServer: batchWindowMs must be ≥ 0, got ${o.batchWindowMs}`);
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)
    throw new Error(`startServer: port must be an integer in [0, 65535], got ${o.port}`);
  const batcher = new MicroBatcher(model, o.batchWindowMs, maxBatchRows);
  const stats = { requests: 0, scored: 0, rejected: 0, inFlight: 0 };
  let draining = false;
  let drained: (() => void) | null = null;
  const limits = { maxRows, defaultA: model.ranking.a, defaultB: model.ranking.b };
  const metadataBody = JSON.stringify({
    ...model.metadata,
    schema: JSON.parse(model.metadata.schema ?? JSON.stringify(model.schema)),
    unknown_ids: model.ids.unknownIds,
    ranking: model.ranking,
    limits: { maxRows, maxBytes },
  });

  const send = (res: ServerResponse, status: number, body: unknown, close = false): void => {
    if (res.headersSent || res.destroyed) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    };
    if (close || draining) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(text);
  };

  // A body over the limit is read to its end and dropped before the 400, so that the client, still
  // sending, gets the answer rather than a reset; past DRAIN_FACTOR times the limit the connection is cut.
  const DRAIN_FACTOR = 16;
  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length']);
      const tooBig = (n: number): RequestError =>
        new RequestError(`the body of ${n} bytes is over the limit of ${maxBytes} bytes`);
      if (Number.isFinite(declared) && declared > maxBytes * DRAIN_FACTOR) {
        reject(tooBig(declared));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= maxBytes) chunks.push(chunk);
        else if (chunks.length > 0) chunks.length = 0;
        if (size > maxBytes * DRAIN_FACTOR) {
          req.removeAllListeners('data');
          reject(tooBig(size));
        }
      });
      req.on('end', () => {
        if (size > maxBytes) reject(tooBig(size));
        else resolve(Buffer.concat(chunks).toString('utf8'));
      });
      req.on('error', (e) => reject(e));
    });

  const score = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let body: string;
    try {
      body = await readBody(req);
    } catch (e) {
      stats.rejected++;
      if (e instanceof RequestError) send(res, 400, { error: e.message }, true);
      else res.destroy();
      return;
    }
    let parsed;
    try {
      parsed = parseScoreRequest(body, model.schema, model.ids, limits);
    } catch (e) {
      stats.rejected++;
      if (e instanceof RequestError) send(res, 400, { error: e.message });
      else send(res, 500, { error: `internal error while parsing: ${(e as Error).message}` });
      return;
    }
    const p = await batcher.submit(parsed.batch);
    const n = parsed.batch.size;
    const score = new Array<number>(n);
    for (let i = 0; i < n; i++) score[i] = Math.pow(p.pctr[i], parsed.a) * Math.pow(p.pcvr[i], parsed.b);
    stats.scored++;
    send(res, 200, { pctr: Array.from(p.pctr), pcvr: Array.from(p.pcvr), pctcvr: Array.from(p.pctcvr), score });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/score') {
      if (req.method !== 'POST') return send(res, 405, { error: 'POST /score with a JSON body' });
      if (draining) return send(res, 503, { error: 'the server is shutting down' }, true);
      return score(req, res);
    }
    if (path === '/healthz' && req.method === 'GET')
      return send(res, draining ? 503 : 200, { status: draining ? 'draining' : 'ok', engine: model.engine.name });
    if (path === '/metadata' && req.method === 'GET') return send(res, 200, metadataBody);
    send(res, 404, { error: `no route ${req.method} ${path}; routes: POST /score, GET /healthz, GET /metadata` });
  };

  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    stats.requests++;
    stats.inFlight++;
    res.on('close', () => {
      stats.inFlight--;
      if (draining && stats.inFlight === 0) drained?.();
    });
    handle(req, res).catch((e: unknown) => {
      send(res, 500, { error: `internal error: ${(e as Error).message}` });
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // Malformed HTTP (bad request line, oversized headers): answer 400 and drop that connection only.
  server.on('clientError', (_err, socket: Socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${o.host}:${port}`,
    port,
    stats: () => ({ ...stats, batches: batcher.batches, rows: batcher.rows }),
    close(): Promise<void> {
      closing ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (stats.inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
        // Keep-alive connections with nothing in flight are closed now rather than at their timeout.
        for (const s of sockets) s.destroy();
        await closed;
        await model.engine.close();
      })();
      return closing;
    },
  };
}

/** Signals that can ask the server to drain; spelled out so the types hold without @types/node. */
export type ShutdownSignal = 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGQUIT' | 'SIGUSR1' | 'SIGUSR2' | 'SIGBREAK';

/**
 * Drain and exit on SIGTERM or SIGINT: the server stops accepting, answers what is in flight,
 * then `exit(0)` runs (process.exit by default). Returns a function that removes the handlers.
 */
export function closeOnSignals(
  server: ScoringServer,
  options: { signals?: readonly ShutdownSignal[]; exit?: (code: number) => void; log?: (line: string) => void } = {},
): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const handler = (signal: NodeJS.Signals): void => {
    options.log?.(`${signal}: draining in-flight requests`);
    server.close().then(
      () => exit(0),
      (e: unknown) => {
        options.log?.(`error while closing: ${(e as Error).message}`);
        exit(1);
      },
    );
  };
  for (const s of signals) process.once(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
