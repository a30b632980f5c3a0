/** The ESMM model zoo: base models, the two-tower frame, baselines, data, metrics and training. */
export {};
