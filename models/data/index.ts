/** Data: the funnel simulator, the Ali-CCP reader, writer and Parquet preparation, Parquet input, and row batching. */
export * from './rows.js';
export * from './simulator.js';
export * from './aliccp-format.js';
export * from './aliccp.js';
export * from './aliccp-writer.js';
export {
  CommonIndex,
  CommonIndexError,
  type CommonIndexOptions,
  type EntryState,
  type IndexIssue,
} from './common-index.js';
export * from './parquet.js';
export * from './prepare.js';
export { DEFAULT_MAX_LINE_BYTES, LineReader, LineTooLongError, type LineReaderOptions } from './lines.js';
