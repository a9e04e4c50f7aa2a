// The outbox's file: an append-only log of framed records, written in group commits. Each record
// is [u32 LE payload length][u32 LE crc32 of the payload][payload: JSON]. An append is one
// sequential write, and one fdatasync covers every record written since the last one, so a
// thousand sends queued in one turn cost one sync, not a thousand. A crash can tear only the last
// write; recovery keeps the records before the first bad frame and truncates the rest. Acks are
// records too ({"k": [seq…]}), written without waiting for a sync: a lost ack only means a
// message is sent once more after a restart, which its stable message id lets the hub drop.
//
// Why not the alternatives (bench/README.md, "Outbox"): one file per message costs a create, a
// sync and a directory sync per message and an unlink per ack; a rewrite-the-whole-state file
// (as the poll state does) costs O(queue) per send; SQLite or LevelDB need native modules, which
// npm 11 no longer builds by default.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, ftruncateSync, mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { SwitchyardError } from '@switchyard/errors';
import type { StoredMessage } from './stored-message.ts';

export const LOG_FILE = 'outbox.log';
const HEADER = 8;
/** A frame longer than this is garbage (a torn length), not a record: IoT Hub caps a message at 256 KiB. */
const MAX_RECORD = 4 * 1024 * 1024;

export interface AddRecord {
  a: number;
  i: string;
  t: number;
  m: StoredMessage;
}
export interface AckRecord {
  k: number[];
}
export type LogRecord = AddRecord | AckRecord;

export function encodeRecord(record: LogRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  const frame = Buffer.allocUnsafe(HEADER + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  payload.copy(frame, HEADER);
  return frame;
}

export interface DecodedLog {
  records: LogRecord[];
  /** Bytes of whole, valid records; anything after is a torn or corrupt tail. */
  validBytes: number;
}

/** Reads records up to the first frame that is short, oversized, fails its checksum or is not JSON. */
export function decodeLog(bytes: Buffer): DecodedLog {
  const records: LogRecord[] = [];
  let at = 0;
  while (at + HEADER <= bytes.length) {
    const length = bytes.readUInt32LE(at);
    if (length > MAX_RECORD || at + HEADER + length > bytes.length) break;
    const payload = bytes.subarray(at + HEADER, at + HEADER + length);
    if (crc32(payload) !== bytes.readUInt32LE(at + 4)) break;
    let record: LogRecord;
    try {
      record = JSON.parse(payload.toString('utf8')) as LogRecord;
    } catch {
      break;
    }
    records.push(record);
    at += HEADER + length;
  }
  return { records, validBytes: at };
}

export interface RecoveredEntry {
  seq: number;
  id: string;
  enqueuedAt: number;
  message: StoredMessage;
  /** Framed size in the file, for the compaction bound. */
  size: number;
}

/** The entries a log still holds (added, never acknowledged or dropped), oldest first. */
export function liveEntries(records: readonly LogRecord[]): RecoveredEntry[] {
  const live = new Map<number, RecoveredEntry>();
  for (const record of records) {
    if ('a' in record) live.set(record.a, { seq: record.a, id: record.i, enqueuedAt: record.t, message: record.m, size: 0 });
    else for (const seq of record.k) live.delete(seq);
  }
  return [...live.values()].sort((x, y) => x.seq - y.seq);
}

export interface CompactionPolicy {
  /** Never compact a file smaller than this. */
  minBytes: number;
  /** Compact once the file is this many times the live records' size. */
  ratio: number;
}

export const DEFAULT_COMPACTION: CompactionPolicy = { minBytes: 1024 * 1024, ratio: 4 };

/** Whether a file of `fileBytes` holding `liveBytes` of live records is due a rewrite. */
export function shouldCompact(fileBytes: number, liveBytes: number, policy: CompactionPolicy): boolean {
  return fileBytes >= policy.minBytes && fileBytes >= policy.ratio * liveBytes;
}

function stateFailed(what: string, dir: string, cause: unknown): SwitchyardError {
  return new SwitchyardError('STATE_FAILED', `outbox ${what} failed in ${dir}: ${(cause as Error).message}`, { cause, details: { field: 'outbox.dir', dir } });
}

interface Pending {
  frames: Buffer[];
  bytes: number;
  durable: Array<{ resolve: () => void; reject: (error: unknown) => void }>;
}

/**
 * The open log: recovers on open, appends in group commits, and rewrites itself to the live
 * records when `shouldCompact` says so (a temp file, fsync, rename, directory fsync: a crash
 * leaves either the old file or the new one).
 */
export class RecordLog {
  readonly path: string;
  #file: FileHandle | undefined;
  #size: number;
  #next: Pending = { frames: [], bytes: 0, durable: [] };
  #flushing: Promise<void> | undefined;
  #failed: SwitchyardError | undefined;
  /** Framed size of each live add record, by seq; maintained from appends and acks. */
  readonly #live = new Map<number, number>();
  #liveBytes = 0;
  compactions = 0;

  private constructor(
    readonly dir: string,
    file: FileHandle,
    size: number,
    readonly policy: CompactionPolicy,
  ) {
    this.path = join(dir, LOG_FILE);
    this.#file = file;
    this.#size = size;
  }

  /** Opens (creating) the log in `dir` and returns it with the entries it still holds. */
  static async open(dir: string, policy: CompactionPolicy = DEFAULT_COMPACTION): Promise<{ log: RecordLog; entries: RecoveredEntry[] }> {
    const path = join(dir, LOG_FILE);
    let bytes: Buffer;
    try {
      mkdirSync(dir, { recursive: true });
      bytes = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw stateFailed('open', dir, err);
      bytes = Buffer.alloc(0);
    }
    const { records, validBytes } = decodeLog(bytes);
    const entries = liveEntries(records);
    let file: FileHandle;
    try {
      file = await open(path, 'a+');
      // A torn tail is cut off, or the next append would sit behind garbage and be unreadable.
      if (validBytes < bytes.length) {
        await file.truncate(validBytes);
        await file.datasync();
      }
    } catch (err) {
      throw stateFailed('open', dir, err);
    }
    const log = new RecordLog(dir, file, validBytes, policy);
    for (const entry of entries) {
      const frame = encodeRecord({ a: entry.seq, i: entry.id, t: entry.enqueuedAt, m: entry.message });
      entry.size = frame.length;
      log.#live.set(entry.seq, frame.length);
      log.#liveBytes += frame.length;
    }
    if (shouldCompact(log.#size, log.#liveBytes, policy)) await log.#schedule();
    return { log, entries };
  }

  get fileBytes(): number {
    return this.#size;
  }

  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Appends add records; resolves once they are on disk (fdatasync). */
  add(records: readonly AddRecord[]): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const next = this.#next;
    for (const record of records) {
      const frame = encodeRecord(record);
      next.frames.push(frame);
      next.bytes += frame.length;
      this.#live.set(record.a, frame.length);
      this.#liveBytes += frame.length;
    }
    const synced = new Promise<void>((resolve, reject) => next.durable.push({ resolve, reject }));
    void this.#schedule();
    return synced;
  }

  /** Appends that these entries left the outbox (acknowledged or dropped); not synced on its own. */
  remove(seqs: readonly number[]): void {
    if (this.#failed !== undefined || seqs.length === 0) return;
    for (const seq of seqs) {
      this.#liveBytes -= this.#live.get(seq) ?? 0;
      this.#live.delete(seq);
    }
    const frame = encodeRecord({ k: [...seqs] });
    this.#next.frames.push(frame);
    this.#next.bytes += frame.length;
    void this.#schedule();
  }

  /** Writes what is pending; resolves when every append made so far is written and synced. */
  async flush(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      if (this.#flushing !== undefined) await this.#flushing;
      else if (this.#next.frames.length > 0 && this.#failed === undefined) await this.#schedule();
      else return;
    }
  }

  #schedule(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
      // Appends made after the loop saw an empty batch, but before this ran, start the next one.
      if (this.#next.frames.length > 0 && this.#failed === undefined) void this.#schedule();
    });
    return this.#flushing;
  }

  // One loop writes every batch: appends made while a write or sync is under way gather into the
  // next batch, which is what makes the syncs group commits.
  async #drain(): Promise<void> {
    for (;;) {
      const batch = this.#next;
      if (batch.frames.length === 0 && !shouldCompact(this.#size, this.#liveBytes, this.policy)) return;
      this.#next = { frames: [], bytes: 0, durable: [] };
      try {
        const file = this.#file;
        if (file === undefined) throw new Error('the outbox log is closed');
        if (batch.frames.length > 0) {
          const data = batch.frames.length === 1 ? batch.frames[0]! : Buffer.concat(batch.frames, batch.bytes);
          await file.write(data, 0, data.length, null);
          this.#size += data.length;
          if (batch.durable.length > 0) await file.datasync();
        }
        for (const waiter of batch.durable) waiter.resolve();
        if (shouldCompact(this.#size, this.#liveBytes, this.policy) && this.#next.frames.length === 0) await this.#compact();
      } catch (err) {
        this.#failed = stateFailed('write', this.dir, err);
        for (const waiter of [...batch.durable, ...this.#next.durable]) waiter.reject(this.#failed);
        this.#next = { frames: [], bytes: 0, durable: [] };
        return;
      }
    }
  }

  /** Rewrites the log to its live records; `liveRecords` is the outbox's view of them. */
  liveRecords: () => AddRecord[] = () => [];

  async #compact(): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const records = this.liveRecords();
    const frames = records.map(encodeRecord);
    const data = Buffer.concat(frames);
    // Synchronous on purpose: nothing may append to the old file between the copy and the rename.
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    await this.#file?.close();
    renameSync(tmp, this.path);
    const dirFd = openSync(this.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    this.#file = await open(this.path, 'a+');
    this.#size = data.length;
    this.#live.clear();
    this.#liveBytes = 0;
    records.forEach((record, index) => {
      this.#live.set(record.a, frames[index]!.length);
      this.#liveBytes += frames[index]!.length;
    });
    this.compactions++;
  }

  async close(): Promise<void> {
    await this.flush().catch(() => undefined);
    const file = this.#file;
    this.#file = undefined;
    await file?.close().catch(() => undefined);
  }
}

/** Test seam: cuts a log file to `bytes`, as a crash in the middle of a write leaves it. */
export function truncateLogFile(dir: string, bytes: number): void {
  const fd = openSync(join(dir, LOG_FILE), 'r+');
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}
