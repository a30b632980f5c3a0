/** Training, evaluation and the paper's Table 2 protocol. */
export * from './trainer.js';
export * from './sources.js';
export * from './sources-parquet.js';
export * from './experiment.js';
