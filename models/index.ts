/** The ESMM model zoo: base models, the two-tower frame, baselines, data, metrics and training. */
export * from './schema.js';
export * from './options.js';
export * from './embedding.js';
export * from './base/index.js';
export * from './esmm.js';
export * from './methods/index.js';
export * from './model-factory.js';
export * from './data/index.js';
export * from './metrics.js';
export * from './checkpoint.js';
export * from './tower-session.js';
export * from './training/index.js';
export * from './practice/index.js';
export * from './node-only.js';
