/** `esmm prepare`: turn raw Ali-CCP files into Parquet shards + vocabulary once, for `--data parquet`. */
import { DEFAULT_ROW_GROUP_ROWS, DEFAULT_SHARD_ROWS, prepareAliCcp, type PrepareProgress } from '../data/prepare.js';
import { DATA_FLAGS, malformedPolicy, malformedReport } from './common.js';
import { num, optNum, parseFlags, str, UsageError, type Command, type FlagSpecs } from './flags.js';

const FLAGS: FlagSpecs = {
  dir: { kind: 'string', help: 'folder of the raw Ali-CCP files (sample_skeleton_*.csv, common_features_*.csv)' },
  out: { kind: 'string', help: 'folder to write the Parquet shards, vocabulary.json and prepared.json into' },
  'min-count': DATA_FLAGS['min-count'],
  limit: DATA_FLAGS.limit,
  'on-malformed': DATA_FLAGS['on-malformed'],
  'shard-rows': { kind: 'integer', help: 'rows per Parquet file', default: DEFAULT_SHARD_ROWS, min: 1 },
  'row-group-rows': {
    kind: 'integer',
    help: 'rows per row group (the unit of reading and shuffling; memory grows with it)',
    default: DEFAULT_ROW_GROUP_ROWS,
    min: 1,
  },
};

/** A progress line: rows, rows/s and, from the bytes read, an ETA. */
export function progressLine(p: PrepareProgress, splitStarted: number): string {
  if (p.phase === 'vocabulary') return `${p.split}: building the vocabulary…`;
  const seconds = Math.max(1e-3, p.seconds - splitStarted);
  const rate = p.rows / seconds;
  const fraction = p.totalBytes > 0 ? Math.min(1, p.bytesRead / p.totalBytes) : 0;
  const eta = fraction > 0 ? (seconds * (1 - fraction)) / fraction : NaN;
  const width = 24;
  const filled = Math.round(fraction * width);
  return (
    `${p.split} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ` +
    `${p.rows.toLocaleString('en-US')} rows  ${Math.round(rate).toLocaleString('en-US')} rows/s  ` +
    `ETA ${Number.isFinite(eta) ? formatSeconds(eta) : '?'}`
  );
}

function formatSeconds(s: number): string {
  const t = Math.round(s);
  return t >= 3600
    ? `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`
    : `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
}

export const prepareCommand: Command = {
  name: 'prepare',
  summary: 'Convert raw Ali-CCP files into Parquet shards + vocabulary once, for fast training with --data parquet.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('prepare', args, FLAGS);
    const dir = str(v, 'dir');
    const out = str(v, 'out');
    if (!dir) throw new UsageError('prepare needs --dir PATH (the folder with the raw Ali-CCP csv files)');
    if (!out) throw new UsageError('prepare needs --out PATH (the folder to write the Parquet data into)');
    const tty = process.stderr.isTTY === true;
    let split = '';
    let splitStarted = 0;
    let lastShown = -Infinity;
    const limit = optNum(v, 'limit');
    const manifest = await prepareAliCcp({
      dir,
      out,
      minCount: num(v, 'min-count'),
      onMalformed: malformedPolicy(v),
      shardRows: num(v, 'shard-rows'),
      rowGroupRows: num(v, 'row-group-rows'),
      ...(limit !== undefined ? { limit } : {}),
      onProgress: (p) => {
        if (p.split !== split || p.phase === 'vocabulary') {
          if (tty && split) process.stderr.write('\n');
          split = p.split;
          splitStarted = p.seconds;
        }
        const done = p.phase === 'rows' && p.bytesRead >= p.totalBytes;
        if (tty) process.stderr.write(`\r${progressLine(p, splitStarted)}\x1b[K`);
        else if (done || p.phase === 'vocabulary' || p.seconds - lastShown >= 10) {
          lastShown = p.seconds;
          process.stderr.write(`${progressLine(p, splitStarted)}\n`);
        }
      },
    });
    if (tty) process.stderr.write('\n');
    for (const s of ['train', 'test'] as const) {
      const info = manifest.splits[s];
      if (!info) continue;
      console.log(`${s}: ${info.rows} rows in ${info.files.length} shard(s) → ${out}`);
      for (const line of malformedReport(s, info.stats)) console.log(line);
    }
    console.log(`vocabulary: ${out}/vocabulary.json (sha256 ${manifest.vocabularySha256.slice(0, 12)}…)`);
    return 0;
  },
};
