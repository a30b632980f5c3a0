/**
 * Writes simulated impressions in the raw Ali-CCP format, so the streaming
 * reader (and anything built for the public data) can be exercised end to end
 * on data with known ground truth.
 *
 * Raw feature ids are global: each table gets a block of ids, and fields that
 * name the same entity (item category in 206 and in the history 109_14) use
 * the same id for it, so a vocabulary built on the files can share rows the
 * way the simulator's schema does. User fields go to the common-features file
 * (one line per session, keyed by a hex hash), item, cross and context fields
 * to the skeleton; a missing optional field is simply absent from the line.
 * The item history `205_14` has no Ali-CCP field id and is not written.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { aliCcpFiles, type AliCcpFiles } from './aliccp.js';
import { formatCommonLine, formatSkeletonLine, type FeatureList } from './aliccp-format.js';
import type { FunnelSimulator, ImpressionLog, SimBag } from './simulator.js';
import { tableOf } from '../schema.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** Fields written to the common-features file, in line order. */
const COMMON_FIELDS = ['101', '124', '125', '126', '129', '109_14', '110_14', '127_14'] as const;
/** Fields written to the skeleton, in line order. */
const SKELETON_FIELDS = ['205', '206', '207', '216', '508', '509', '702', '301'] as const;

/** The raw-id layout of a simulator's tables: table → first raw id of its block. */
export class SimulatorRawIds {
  private readonly bases = new Map<string, number>();
  private readonly sizes = new Map<string, number>();
  /** Table of each written field. */
  readonly tableOfField: ReadonlyMap<string, string>;

  constructor(sim: FunnelSimulator) {
    const tables = new Map<string, string>();
    for (const f of sim.schema.fields) {
      if (f.kind === 'numeric') continue;
      const t = tableOf(f);
      tables.set(f.name, t);
      this.sizes.set(t, Math.max(this.sizes.get(t) ?? 0, f.vocabSize));
    }
    this.tableOfField = tables;
    // Blocks start at 1 and follow the schema order, so the layout is a pure function of the config.
    let next = 1;
    for (const [t, size] of this.sizes) {
      this.bases.set(t, next);
      next += size;
    }
  }

  /** Raw feature id of 1-based simulator id `local` of `field`. */
  raw(field: string, local: number): number {
    const t = this.tableOfField.get(field);
    if (t === undefined) throw new Error(`SimulatorRawIds: unknown field ${field}`);
    const size = this.sizes.get(t) as number;
    if (!(Number.isInteger(local) && local > 0 && local < size))
      throw new Error(`SimulatorRawIds: id ${local} of field ${field} outside [1, ${size})`);
    return (this.bases.get(t) as number) + local;
  }
}

/** The common-feature key of a session: a 16-digit hex string (a hash, then the session number, so keys never collide). */
export function sessionKey(session: number): string {
  let h = Math.imul(session ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
  return h.toString(16).padStart(8, '0') + (session >>> 0).toString(16).padStart(8, '0');
}

/** What {@link writeSimulatorAliCcp} wrote. */
export interface AliCcpWriteResult {
  files: AliCcpFiles;
  impressions: number;
  sessions: number;
  rawIds: SimulatorRawIds;
}

/** Running totals of an {@link AliCcpAppender}. */
export interface AliCcpAppendStats {
  impressions: number;
  sessions: number;
  skeletonBytes: number;
  commonBytes: number;
  /** Entries written per field, summed over lines (divide by sessions for a common field's mean bag size). */
  entries: Record<string, number>;
}

/**
 * Writes a split's two files chunk by chunk, for data sets too large to generate as one
 * {@link ImpressionLog}: create it, append the logs of successive `sim.generate(n)` calls
 * (sessions continue across calls, in order), close it. Sample ids count across chunks.
 */
export class AliCcpAppender {
  readonly stats: AliCcpAppendStats = { impressions: 0, sessions: 0, skeletonBytes: 0, commonBytes: 0, entries: {} };
  readonly rawIds: SimulatorRawIds;
  private lastSession = -1;

  private constructor(
    private readonly sim: FunnelSimulator,
    readonly files: AliCcpFiles,
    private readonly skeleton: BufferedWriter,
    private readonly common: BufferedWriter,
  ) {
    this.rawIds = new SimulatorRawIds(sim);
  }

  /** Create (truncate) the split's two files under `dir`. */
  static async create(sim: FunnelSimulator, dir: string, split: 'train' | 'test'): Promise<AliCcpAppender> {
    requireNode('AliCcpAppender.create', [open, mkdir], INSTEAD.data);
    await mkdir(dir, { recursive: true });
    const files = aliCcpFiles(dir, split);
    const skeleton = new BufferedWriter(await open(files.skeleton, 'w'));
    const common = new BufferedWriter(await open(files.common, 'w'));
    return new AliCcpAppender(sim, files, skeleton, common);
  }

  /** Append every impression of `log`; a session's impressions must be consecutive and sessions in stream order. */
  async append(log: ImpressionLog): Promise<void> {
    for (let r = 0; r < log.size; r++) {
      const session = log.session[r];
      const key = sessionKey(session);
      if (session !== this.lastSession) {
        if (session < this.lastSession) {
          throw new Error(
            `AliCcpAppender: session ${session} comes after session ${this.lastSession} (row ${r}); Ali-CCP needs a session's impressions together and in order`,
          );
        }
        this.lastSession = session;
        this.stats.sessions++;
        const line = formatCommonLine(key, this.count(userFeatures(this.sim, log.user[r], this.rawIds)));
        this.stats.commonBytes += line.length + 1;
        await this.common.line(line);
      }
      this.stats.impressions++;
      const line = formatSkeletonLine(
        this.stats.impressions,
        log.click[r],
        log.conversion[r],
        key,
        this.count(itemFeatures(this.sim, log, r, this.rawIds)),
      );
      this.stats.skeletonBytes += line.length + 1;
      await this.skeleton.line(line);
    }
  }

  /** Write out what is buffered, so the files on disk hold every appended line. */
  async flush(): Promise<void> {
    await this.skeleton.flush();
    await this.common.flush();
  }

  /** Flush and close both files. */
  async close(): Promise<void> {
    try {
      await this.skeleton.close();
    } finally {
      await this.common.close();
    }
  }

  private count(list: FeatureList): FeatureList {
    const e = this.stats.entries;
    for (const f of list.fields) e[f] = (e[f] ?? 0) + 1;
    return list;
  }
}

/** Writes `log` as `sample_skeleton_{split}.csv` + `common_features_{split}.csv` under `dir`. */
export async function writeSimulatorAliCcp(
  sim: FunnelSimulator,
  log: ImpressionLog,
  dir: string,
  split: 'train' | 'test',
): Promise<AliCcpWriteResult> {
  requireNode('writeSimulatorAliCcp', [open, mkdir], INSTEAD.data);
  const writer = await AliCcpAppender.create(sim, dir, split);
  try {
    await writer.append(log);
  } finally {
    await writer.close();
  }
  return {
    files: writer.files,
    impressions: writer.stats.impressions,
    sessions: writer.stats.sessions,
    rawIds: writer.rawIds,
  };
}

function userFeatures(sim: FunnelSimulator, u: number, rawIds: SimulatorRawIds): FeatureList {
  const user = sim.users[u];
  const list: FeatureList = { fields: [], ids: [], values: [] };
  const single: Record<(typeof COMMON_FIELDS)[number], number | SimBag> = {
    '101': u + 1,
    '124': user.gender,
    '125': user.age,
    '126': user.consumption,
    '129': user.geography,
    '109_14': user.categories,
    '110_14': user.shops,
    '127_14': user.brands,
  };
  for (const f of COMMON_FIELDS) add(list, f, single[f], rawIds);
  return list;
}

function itemFeatures(sim: FunnelSimulator, log: ImpressionLog, r: number, rawIds: SimulatorRawIds): FeatureList {
  const item = sim.items[log.item[r]];
  const list: FeatureList = { fields: [], ids: [], values: [] };
  const values: Record<(typeof SKELETON_FIELDS)[number], number | SimBag | null> = {
    '205': log.item[r] + 1,
    '206': item.category,
    '207': item.shop,
    '216': item.brand,
    '508': sim.cross(r, log, '508'),
    '509': sim.cross(r, log, '509'),
    '702': sim.cross(r, log, '702'),
    '301': log.context[r],
  };
  for (const f of SKELETON_FIELDS) add(list, f, values[f], rawIds);
  return list;
}

function add(list: FeatureList, field: string, v: number | SimBag | null, rawIds: SimulatorRawIds): void {
  if (v === null || v === 0) return;
  if (typeof v === 'number') {
    list.fields.push(field);
    list.ids.push(rawIds.raw(field, v));
    list.values.push(1);
    return;
  }
  for (let k = 0; k < v.ids.length; k++) {
    list.fields.push(field);
    list.ids.push(rawIds.raw(field, v.ids[k]));
    list.values.push(v.values[k]);
  }
}

/** Collects lines and writes them in large chunks (one syscall per ~1 MiB, not per line). */
class BufferedWriter {
  private parts: string[] = [];
  private bytes = 0;

  constructor(private readonly fh: FileHandle) {}

  async line(s: string): Promise<void> {
    this.parts.push(s, '\n');
    this.bytes += s.length + 1;
    if (this.bytes >= 1 << 20) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.bytes = 0;
    await this.fh.write(chunk, null, 'latin1');
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.fh.close();
    }
  }
}
