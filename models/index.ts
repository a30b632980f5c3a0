/** The ESMM model zoo: base models, the two-tower frame, baselines, data, metrics and training. */
export * from './schema.js';
export * from './embedding.js';
export * from './base/index.js';
export * from './esmm.js';
export * from './methods/method.js';
export * from './methods/esmm-method.js';
export * from './methods/click-space.js';
export * from './methods/division.js';
export * from './model-factory.js';
export * from './data/index.js';
export * from './metrics.js';
export * from './checkpoint.js';
export * from './training/index.js';
export * from './practice/index.js';
