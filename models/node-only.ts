/**
 * The guard of the package's file and server functions: in a browser bundle the Node built-ins they
 * use are left out (package.json's `browser` field), and a call would fail deep inside with
 * "x is not a function". The guard fails at the entry instead, naming the function and what to use.
 */

/** A function that needs Node (files, sockets, worker threads) was called where Node's built-ins are absent. */
export class NodeOnlyError extends Error {
  constructor(
    /** The package function that was called, e.g. `saveCheckpoint`. */
    readonly functionName: string,
    message: string,
  ) {
    super(message);
    this.name = 'NodeOnlyError';
  }
}

/** What a browser app uses instead, by family of Node-only functions. */
export const INSTEAD = {
  checkpoint:
    'use encodeSafetensors(tensors, metadata) for the bytes (e.g. a download) and decodeSafetensors(bytes) to read them',
  data: 'train on FunnelSimulator batches, or build batches from rows you fetched with batchRows',
  parquet: 'read Parquet bytes you fetched with hyparquet and build batches with batchRows',
  serving: 'score in the page with predictAsync on the trained model, or export ONNX (exportOnnx) for onnxruntime-web',
  reports: 'leave the output folder out and use the returned result (its markdown, svg and metrics)',
} as const;

/**
 * Throws a {@link NodeOnlyError} unless every built-in in `needs` is present (a bundler that
 * honours the `browser` field turns them into `undefined`). `instead` says what a browser app uses.
 */
export function requireNode(functionName: string, needs: readonly unknown[], instead: string): void {
  if (needs.every((f) => typeof f === 'function')) return;
  throw new NodeOnlyError(
    functionName,
    `${functionName} needs Node.js: it uses the file system or the network, which this build leaves out ` +
      `(a browser bundle); ${instead}`,
  );
}
