/**
 * Runs the shared (synchronous) kernel checks against an asynchronous backend.
 *
 * Each check first runs against a recording backend that computes with the reference
 * backend and logs every call and every read (with the comparison and tolerance the check
 * applied to it). The log is then replayed, awaited, on the asynchronous backend and each
 * read is compared with the reference's values under those tolerances: the same cases
 * (fast-check seeds included), the same tolerances, without a second copy of the checks.
 * fast-check cannot shrink a failure found this way; the first mismatch is reported as is.
 */
import type { Backend, Storage } from '../../kernels/backend.js';
import type { AsyncBackend, AsyncMethod } from '../../kernels/gpu/index.js';
import { ReferenceBackend } from '../../kernels/reference.js';
import { assertClose, type ComparisonSink, type KernelCheck, type Tol } from '../gpu/kernel-checks.js';

/** A storage argument in the log, by creation order. */
interface StorageRef {
  storageId: number;
}

/** One logged call. */
type Entry =
  | { kind: 'create'; method: 'alloc' | 'fromArray'; args: unknown[]; id: number }
  | { kind: 'read'; id: number; want: Float32Array; what: string; tol: Tol }
  | { kind: 'call'; method: AsyncMethod; args: unknown[] };

/** Deep-enough copy of an argument; storages become references into the log. */
function capture(value: unknown, ids: Map<Storage, number>): unknown {
  if (typeof value === 'object' && value !== null) {
    const id = ids.get(value as Storage);
    if (id !== undefined) return { storageId: id } satisfies StorageRef;
    if (ArrayBuffer.isView(value)) return (value as Float32Array).slice();
    if (Array.isArray(value)) return value.slice();
    return { ...value };
  }
  return value;
}

/** A backend that computes on the reference backend and logs what the check asked of it. */
function recorder(check: string): { backend: Backend; log: Entry[] } {
  const ref = new ReferenceBackend();
  const ids = new Map<Storage, number>();
  const log: Entry[] = [];
  let pendingReads: Extract<Entry, { kind: 'read' }>[] = [];
  const sink: ComparisonSink = {
    noteComparison(what, tol) {
      for (const r of pendingReads) Object.assign(r, { what, tol });
      pendingReads = [];
    },
  };
  const backend = new Proxy(ref, {
    get(target, prop, receiver) {
      if (prop === 'noteComparison') return sink.noteComparison;
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'supportsDtype' || typeof prop !== 'string') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        const captured = args.map((a) => capture(a, ids));
        const result = fn.apply(target, args);
        if (prop === 'alloc' || prop === 'fromArray') {
          const id = ids.size;
          ids.set(result as Storage, id);
          log.push({ kind: 'create', method: prop, args: captured, id });
        } else if (prop === 'read') {
          // Reads outside compare() are checked by the caller with default tolerances.
          const entry = {
            kind: 'read' as const,
            id: (captured[0] as StorageRef).storageId,
            want: Float32Array.from(result as ArrayLike<number>),
            what: check,
            tol: {},
          };
          log.push(entry);
          pendingReads.push(entry);
        } else {
          log.push({ kind: 'call', method: prop as AsyncMethod, args: captured });
        }
        return result;
      };
    },
  });
  return { backend, log };
}

/** Replays a log on `target`, comparing every read with the reference's. */
async function replay(log: Entry[], target: AsyncBackend): Promise<void> {
  const storages = new Map<number, Storage>();
  const resolve = (a: unknown): unknown => {
    if (typeof a === 'object' && a !== null && 'storageId' in a) {
      const s = storages.get((a as StorageRef).storageId);
      if (!s) throw new Error('replay: storage used before it was created');
      return s;
    }
    return a;
  };
  const call = (method: AsyncMethod, args: unknown[]): Promise<unknown> =>
    (target[method] as (...x: unknown[]) => Promise<unknown>).apply(target, args.map(resolve));
  for (const e of log) {
    if (e.kind === 'create') storages.set(e.id, (await call(e.method, e.args)) as Storage);
    else if (e.kind === 'read') {
      const got = (await call('read', [{ storageId: e.id }])) as ArrayLike<number>;
      assertClose(got, e.want, e.what, e.tol);
    } else await call(e.method, e.args);
  }
}

/** Outcome of the asynchronous checks. */
export interface AsyncCheckResult {
  passed: number;
  failed: { name: string; error: string }[];
  /** Backend calls replayed, over all checks. */
  calls: number;
}

/** Runs every check on `target` (record on the reference backend, then replay awaited). */
export async function runChecksAsync(checks: KernelCheck[], target: AsyncBackend): Promise<AsyncCheckResult> {
  const result: AsyncCheckResult = { passed: 0, failed: [], calls: 0 };
  for (const check of checks) {
    try {
      const { backend, log } = recorder(check.name);
      check.run(backend);
      result.calls += log.length;
      await replay(log, target);
      result.passed++;
    } catch (e) {
      result.failed.push({ name: check.name, error: String((e as Error).message).slice(0, 500) });
    }
  }
  return result;
}
