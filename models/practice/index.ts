/** ESMM in practice: negative down-sampling with its correction, calibration, the serving score pCTR^a·pCVR^b, and a report over all three. */
export * from './downsampling.js';
export * from './calibration.js';
export * from './ranking.js';
export * from './report.js';
