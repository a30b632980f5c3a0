/** Methods: the interface, the registry and the built-in ones, which register themselves on import (Table 2's order). */
export * from './method.js';
export * from './registry.js';
export * from './click-space.js';
export * from './division.js';
export * from './esmm-method.js';
