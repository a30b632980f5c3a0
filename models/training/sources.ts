/** Batch sources for the {@link Trainer}: in-memory simulator logs and streamed Ali-CCP files. */
import type { AliCcpReader } from '../data/aliccp.js';
import type { BatchingOptions } from '../data/rows.js';
import type { FunnelSimulator, ImpressionLog } from '../data/simulator.js';
import type { BatchSource } from './trainer.js';

/** Rows per batch of the sources the entry points build: 1024 to train (as the reference code), 4096 to evaluate (no gradient, so larger is only faster). */
export const SOURCE_DEFAULTS = { batchSize: 1024, evalBatchSize: 4096 } as const;

/** Options of {@link simulatorSource}. */
export interface SimulatorSourceOptions {
  batchSize: number;
  /** Shuffle rows each epoch (seeded by `seed` and the epoch, so a resumed run sees the same order). */
  shuffle?: boolean;
  seed?: number;
}

/** Batches over an in-memory simulator log. */
export function simulatorSource(
  sim: FunnelSimulator,
  log: ImpressionLog,
  options: SimulatorSourceOptions,
): BatchSource {
  return {
    rows: log.size,
    batches: (epoch) =>
      sim.batches(log, {
        batchSize: options.batchSize,
        shuffle: options.shuffle ?? false,
        seed: ((options.seed ?? 0) * 7919 + epoch) >>> 0,
      }),
  };
}

/**
 * Batches streamed from Ali-CCP files; `makeReader` gives the reader of each epoch (returning the
 * same reader every time reuses its index of the common file).
 */
export function aliCcpSource(makeReader: () => AliCcpReader, options: BatchingOptions, rows?: number): BatchSource {
  return {
    rows,
    batches: (epoch) => makeReader().batches({ ...options, seed: ((options.seed ?? 0) * 7919 + epoch) >>> 0 }),
  };
}
