/**
 * The worker of a Parquet batch source: reads, validates, shuffles and gathers the next batches
 * while the training thread runs a step. Messages: `{ type: 'start', id, epoch }` starts an epoch;
 * `{ type: 'next', id }` asks for its next batch; `{ type: 'recycle', batch }` hands a batch's
 * buffers back for reuse. Replies carry the request's id and transfer the batch's buffers. Once
 * an epoch ends, the next one's shuffle buffer is filled at once, so the trainer does not wait for
 * it again at the start of every epoch. The config arrives as `workerData`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ParquetStream, batchBuffers, type ParquetStreamConfig } from './parquet-stream.js';
import type { BatchWithExtras } from './rows.js';

/** A request to the worker. */
export type WorkerRequest =
  | { type: 'start'; id: number; epoch: number }
  | { type: 'next'; id: number }
  | { type: 'recycle'; batch: BatchWithExtras };
/** A reply of the worker. */
export type WorkerReply =
  | { type: 'batch'; id: number; batch: BatchWithExtras }
  | { type: 'end'; id: number }
  | { type: 'error'; id: number; name: string; message: string };

/** An epoch's batches, with its first batch asked for ahead of the trainer. */
interface Epoch {
  epoch: number;
  gen: AsyncGenerator<BatchWithExtras>;
  first: Promise<IteratorResult<BatchWithExtras>> | null;
}

if (parentPort && (workerData as { kind?: string } | undefined)?.kind === 'esmm-parquet') {
  const port = parentPort;
  const config = (workerData as { config: ParquetStreamConfig }).config;
  const stream = new ParquetStream(config);
  let current: Epoch | null = null;
  let ahead: Epoch | null = null;
  let chain: Promise<void> = Promise.resolve();
  const begin = (epoch: number, early: boolean): Epoch => {
    const gen = stream.batches(epoch);
    let first: Promise<IteratorResult<BatchWithExtras>> | null = null;
    if (early) {
      first = gen.next();
      first.catch(() => undefined); // thrown when the trainer asks for the batch
    }
    return { epoch, gen, first };
  };
  port.on('message', (msg: WorkerRequest) => {
    if (msg.type === 'recycle') {
      stream.recycle(msg.batch);
      return;
    }
    chain = chain.then(async () => {
      try {
        if (msg.type === 'start') {
          await current?.gen.return(undefined);
          if (ahead && ahead.epoch !== msg.epoch) {
            await ahead.first?.catch(() => undefined);
            await ahead.gen.return(undefined);
            ahead = null;
          }
          current = ahead ?? begin(msg.epoch, false);
          ahead = null;
          return;
        }
        const epoch = current;
        let r: IteratorResult<BatchWithExtras>;
        if (!epoch) r = { done: true, value: undefined };
        else if (epoch.first) {
          r = await epoch.first;
          epoch.first = null;
        } else r = await epoch.gen.next();
        if (!r.done) {
          port.postMessage({ type: 'batch', id: msg.id, batch: r.value } satisfies WorkerReply, batchBuffers(r.value));
          return;
        }
        port.postMessage({ type: 'end', id: msg.id } satisfies WorkerReply);
        // A shuffling stream fills the next epoch's buffer now, while the trainer finishes this one.
        if (epoch && current === epoch && config.shuffleBuffer > 1 && !ahead) {
          current = null;
          ahead = begin(epoch.epoch + 1, true);
        }
      } catch (e) {
        current = null;
        const err = e instanceof Error ? e : new Error(String(e));
        port.postMessage({ type: 'error', id: msg.id, name: err.name, message: err.message } satisfies WorkerReply);
      }
    });
  });
}
