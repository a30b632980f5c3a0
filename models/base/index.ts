/** Base models (towers): the interface, the registry and the built-in towers, which register themselves on import. */
export * from './base-model.js';
export * from './mlp.js';
export * from './din.js';
export * from './deepfm.js';
