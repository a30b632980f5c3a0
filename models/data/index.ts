/** Data: the funnel simulator, the Ali-CCP reader and writer, and row batching. */
export * from './rows.js';
export * from './simulator.js';
export * from './aliccp-format.js';
export * from './aliccp.js';
export * from './aliccp-writer.js';
export { LineReader, type LineReaderOptions } from './lines.js';
