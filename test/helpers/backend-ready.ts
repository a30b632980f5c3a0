/** Vitest setup for suites run under ESMM_BACKEND: loads the chosen backend (gpu imports gpu.js on first use). */
import { ready } from '../../kernels/index.js';

await ready();
