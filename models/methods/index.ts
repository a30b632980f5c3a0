/** Methods: the interface, the registry and the built-in ones, which register themselves on import (Table 2's order). */
export * from './method.js';
export * from './registry.js';
export * from './click-space.js';
export * from './division.js';
export * from './esmm-method.js';
export * from './multi-task.js';
export * from './shared-bottom.js';
export * from './mmoe.js';
export * from './ple.js';
export * from './aitm.js';
export * from './escm2.js';
