/**
 * Importing an optional peer dependency on first use, with an error that says what to install.
 *
 * Heavy runtimes that only some users need (gpu.js for the gpu backend, ONNX Runtime for
 * serving, ...) are optional peers of the package: a default install does not fetch them, and
 * the code that needs one imports it the first time it runs.
 */

/** What a missing peer is needed for, for the error message. */
export interface OptionalPeer {
  /** The npm package to install, e.g. `gpu.js`. */
  peer: string;
  /** What needs it, e.g. `the gpu backend`. */
  feature: string;
  /** The package entry point that loads it directly, if there is one (for bundled apps). */
  entry?: string;
}

/** Whether `error` says that the module `peer` (not some other module) could not be found. */
function isMissing(error: unknown, peer: string): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  const quoted = [`'${peer}'`, `"${peer}"`, ` ${peer} `].some((q) => error.message.includes(q));
  const notFound =
    code === 'ERR_MODULE_NOT_FOUND' ||
    code === 'MODULE_NOT_FOUND' ||
    /cannot find|failed to (load|resolve)/i.test(error.message);
  return quoted && notFound;
}

/**
 * Runs `load` (a dynamic `import()`), turning "module not found" for the peer into an error
 * that says `npm install <peer>`; other failures are reported with what was being loaded.
 */
export async function importOptionalPeer<T>(load: () => Promise<T>, what: OptionalPeer): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (isMissing(error, what.peer)) {
      throw new Error(
        `${what.feature} needs ${what.peer}, an optional peer dependency of esmm-ts that is not installed: ` +
          `npm install ${what.peer}`,
        { cause: error },
      );
    }
    const bundled = what.entry
      ? ` In a bundled app, import '${what.entry}' so that the bundler includes it (it needs ${what.peer}).`
      : '';
    throw new Error(`${what.feature} could not be loaded: ${reason}.${bundled}`, { cause: error });
  }
}
