/**
 * An append-capable writer of simulated impressions in the raw Ali-CCP format,
 * for data sets too large to generate as one {@link ImpressionLog}: open it
 * once, append chunks from successive `sim.generate(n)` calls, close it.
 *
 * The lines are the ones `writeSimulatorAliCcp` writes (same raw-id layout,
 * same session keys, same field order), except that sample ids keep counting
 * across chunks. `FunnelSimulator.generate` never splits a session across
 * calls, so every chunk holds whole sessions. The benchmark checks the first
 * chunk byte for byte against `writeSimulatorAliCcp`.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { aliCcpFiles, type AliCcpFiles } from '../models/data/aliccp.js';
import { formatCommonLine, formatSkeletonLine, type FeatureList } from '../models/data/aliccp-format.js';
import { SimulatorRawIds, sessionKey } from '../models/data/aliccp-writer.js';
import type { FunnelSimulator, ImpressionLog, SimBag } from '../models/data/simulator.js';

/** Fields of the common-features file, in line order (as `writeSimulatorAliCcp`). */
const COMMON_FIELDS = ['101', '124', '125', '126', '129', '109_14', '110_14', '127_14'] as const;
/** Fields of the skeleton, in line order (as `writeSimulatorAliCcp`). */
const SKELETON_FIELDS = ['205', '206', '207', '216', '508', '509', '702', '301'] as const;

/** Running totals of an {@link AliCcpAppender}. */
export interface AliCcpAppendStats {
  impressions: number;
  sessions: number;
  skeletonBytes: number;
  commonBytes: number;
  /** Entries written per field, summed over lines (divide by sessions for the mean bag size of a common field). */
  entries: Record<string, number>;
}

/** Writes `sample_skeleton_{split}.csv` + `common_features_{split}.csv` chunk by chunk. */
export class AliCcpAppender {
  readonly stats: AliCcpAppendStats = { impressions: 0, sessions: 0, skeletonBytes: 0, commonBytes: 0, entries: {} };
  private readonly rawIds: SimulatorRawIds;
  private lastSession = -1;

  private constructor(
    private readonly sim: FunnelSimulator,
    readonly files: AliCcpFiles,
    private readonly skeleton: Chunked,
    private readonly common: Chunked,
  ) {
    this.rawIds = new SimulatorRawIds(sim);
  }

  /** Creates (truncates) the split's two files under `dir`. */
  static async create(sim: FunnelSimulator, dir: string, split: 'train' | 'test'): Promise<AliCcpAppender> {
    await mkdir(dir, { recursive: true });
    const files = aliCcpFiles(dir, split);
    const skeleton = new Chunked(await open(files.skeleton, 'w'));
    const common = new Chunked(await open(files.common, 'w'));
    return new AliCcpAppender(sim, files, skeleton, common);
  }

  /** Appends every impression of `log` (sessions must continue the previous chunk's numbering, as `generate` does). */
  async append(log: ImpressionLog): Promise<void> {
    for (let r = 0; r < log.size; r++) {
      const session = log.session[r];
      const key = sessionKey(session);
      if (session !== this.lastSession) {
        if (session < this.lastSession) throw new Error(`AliCcpAppender: session ${session} comes after session ${this.lastSession}; chunks must be appended in stream order`);
        this.lastSession = session;
        this.stats.sessions++;
        const line = formatCommonLine(key, this.count(this.userFeatures(log.user[r])));
        this.stats.commonBytes += line.length + 1;
        await this.common.line(line);
      }
      this.stats.impressions++;
      const line = formatSkeletonLine(this.stats.impressions, log.click[r], log.conversion[r], key, this.count(this.itemFeatures(log, r)));
      this.stats.skeletonBytes += line.length + 1;
      await this.skeleton.line(line);
    }
  }

  /** Writes out what is buffered (the files on disk then hold every appended line). */
  async flush(): Promise<void> {
    await this.skeleton.flush();
    await this.common.flush();
  }

  /** Flushes and closes both files. */
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

  private userFeatures(u: number): FeatureList {
    const user = this.sim.users[u];
    const values: Record<(typeof COMMON_FIELDS)[number], number | SimBag> = {
      '101': u + 1,
      '124': user.gender,
      '125': user.age,
      '126': user.consumption,
      '129': user.geography,
      '109_14': user.categories,
      '110_14': user.shops,
      '127_14': user.brands,
    };
    const list: FeatureList = { fields: [], ids: [], values: [] };
    for (const f of COMMON_FIELDS) this.add(list, f, values[f]);
    return list;
  }

  private itemFeatures(log: ImpressionLog, r: number): FeatureList {
    const item = this.sim.items[log.item[r]];
    const values: Record<(typeof SKELETON_FIELDS)[number], number | SimBag | null> = {
      '205': log.item[r] + 1,
      '206': item.category,
      '207': item.shop,
      '216': item.brand,
      '508': this.sim.cross(r, log, '508'),
      '509': this.sim.cross(r, log, '509'),
      '702': this.sim.cross(r, log, '702'),
      '301': log.context[r],
    };
    const list: FeatureList = { fields: [], ids: [], values: [] };
    for (const f of SKELETON_FIELDS) this.add(list, f, values[f]);
    return list;
  }

  private add(list: FeatureList, field: string, v: number | SimBag | null): void {
    if (v === null || v === 0) return;
    if (typeof v === 'number') {
      list.fields.push(field);
      list.ids.push(this.rawIds.raw(field, v));
      list.values.push(1);
      return;
    }
    for (let k = 0; k < v.ids.length; k++) {
      list.fields.push(field);
      list.ids.push(this.rawIds.raw(field, v.ids[k]));
      list.values.push(v.values[k]);
    }
  }
}

/** Collects lines and writes them ~1 MiB at a time. */
class Chunked {
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
