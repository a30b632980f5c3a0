/**
 * The worker of a Parquet batch source: reads, validates, shuffles and collates the next batches
 * while the training thread runs a step. Messages: `{ type: 'start', id, epoch }` starts an epoch;
 * `{ type: 'next', id }` asks for its next batch; replies carry the request's id and transfer the
 * batch's buffers. The config arrives as `workerData`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ParquetStream, type ParquetStreamConfig } from './parquet-stream.js';
import type { BatchWithExtras } from './rows.js';

/** A request to the worker. */
export type WorkerRequest = { type: 'start'; id: number; epoch: number } | { type: 'next'; id: number };
/** A reply of the worker. */
export type WorkerReply =
  | { type: 'batch'; id: number; batch: BatchWithExtras }
  | { type: 'end'; id: number }
  | { type: 'error'; id: number; name: string; message: string };

/** The buffers of a batch, to transfer rather than copy. */
export function batchBuffers(batch: BatchWithExtras): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (a: ArrayBufferView | undefined): void => {
    if (a && a.buffer instanceof ArrayBuffer) out.add(a.buffer);
  };
  add(batch.click);
  add(batch.conversion);
  add(batch.userIds);
  for (const f of Object.values(batch.fields)) {
    if (f.kind === 'categorical') add(f.ids);
    else if (f.kind === 'bag') {
      add(f.ids);
      add(f.offsets);
      add(f.values);
    } else add(f.values);
  }
  for (const col of Object.values(batch.extras)) add(col);
  return [...out];
}

if (parentPort && (workerData as { kind?: string } | undefined)?.kind === 'esmm-parquet') {
  const port = parentPort;
  const stream = new ParquetStream((workerData as { config: ParquetStreamConfig }).config);
  let gen: AsyncGenerator<BatchWithExtras> | null = null;
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (msg: WorkerRequest) => {
    chain = chain.then(async () => {
      try {
        if (msg.type === 'start') {
          await gen?.return(undefined);
          gen = stream.batches(msg.epoch);
          return;
        }
        const r = gen ? await gen.next() : { done: true as const, value: undefined };
        if (r.done) port.postMessage({ type: 'end', id: msg.id } satisfies WorkerReply);
        else
          port.postMessage({ type: 'batch', id: msg.id, batch: r.value } satisfies WorkerReply, batchBuffers(r.value));
      } catch (e) {
        gen = null;
        const err = e instanceof Error ? e : new Error(String(e));
        port.postMessage({ type: 'error', id: msg.id, name: err.name, message: err.message } satisfies WorkerReply);
      }
    });
  });
}
