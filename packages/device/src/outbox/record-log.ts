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
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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
  const json = JSON.stringify(record);
  const length = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(HEADER + length);
  frame.write(json, HEADER, 'utf8');
  frame.writeUInt32LE(length, 0);
  frame.writeUInt32LE(crc32(frame.subarray(HEADER)), 4);
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

// A rewrite syncs twice on the main thread (temp file, directory): rare enough at 8 MiB.
export const DEFAULT_COMPACTION: CompactionPolicy = { minBytes: 8 * 1024 * 1024, ratio: 4 };

/** Unsynced bytes that start a sync nobody asked for, bounding what a power cut can take. */
export const UNSYNCED_LIMIT = 256 * 1024;

/** Whether a file of `fileBytes` holding `liveBytes` of live records is due a rewrite. */
export function shouldCompact(fileBytes: number, liveBytes: number, policy: CompactionPolicy): boolean {
  return fileBytes >= policy.minBytes && fileBytes >= policy.ratio * liveBytes;
}

function stateFailed(what: string, dir: string, cause: unknown): SwitchyardError {
  return new SwitchyardError('STATE_FAILED', `outbox ${what} failed in ${dir}: ${(cause as Error).message}`, { cause, details: { field: 'outbox.dir', dir } });
}

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The open log: recovers on open, appends in group commits, and rewrites itself to the live
 * records when `shouldCompact` says so (a temp file, fsync, rename, directory fsync: a crash
 * leaves either the old file or the new one).
 *
 * Appends of one event-loop turn are gathered and written with one synchronous write (into the
 * page cache: microseconds, cheaper than a trip through the thread pool); the fdatasync that
 * makes them durable runs in the thread pool, and appends made while it runs wait for the next
 * one. So the main thread never waits for the disk, and a sync covers everything before it.
 */
export class RecordLog {
  readonly path: string;
  #fd: number | undefined;
  #size: number;
  #frames: Buffer[] = [];
  #frameBytes = 0;
  /** Waiting for the next write to be synced. */
  #unsynced: Waiter[] = [];
  /** Waiting for the next write to reach the OS (or for the log to fail). */
  #unwritten: Array<() => void> = [];
  #syncing = false;
  #scheduled = false;
  /** Written since the last sync started, without anyone waiting for it. */
  #unsyncedBytes = 0;
  #failed: SwitchyardError | undefined;
  /** Framed size of each live add record, by seq. */
  readonly #live = new Map<number, number>();
  #liveBytes = 0;
  compactions = 0;
  /** The outbox's live records, for a rewrite; set by the outbox. */
  liveRecords: () => AddRecord[] = () => [];

  private constructor(
    readonly dir: string,
    fd: number,
    size: number,
    readonly policy: CompactionPolicy,
  ) {
    this.path = join(dir, LOG_FILE);
    this.#fd = fd;
    this.#size = size;
  }

  /** Opens (creating) the log in `dir` and returns it with the entries it still holds. */
  static async open(dir: string, policy: CompactionPolicy = DEFAULT_COMPACTION): Promise<{ log: RecordLog; entries: RecoveredEntry[] }> {
    const path = join(dir, LOG_FILE);
    let bytes: Buffer;
    try {
      mkdirSync(dir, { recursive: true });
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw stateFailed('open', dir, err);
      bytes = Buffer.alloc(0);
    }
    const { records, validBytes } = decodeLog(bytes);
    const entries = liveEntries(records);
    let fd: number;
    try {
      fd = openSync(path, 'a');
      // A torn tail is cut off, or the next append would sit behind garbage and be unreadable.
      if (validBytes < bytes.length) {
        ftruncateSync(fd, validBytes);
        fdatasyncSync(fd);
      }
    } catch (err) {
      throw stateFailed('open', dir, err);
    }
    const log = new RecordLog(dir, fd, validBytes, policy);
    for (const entry of entries) {
      entry.size = encodeRecord({ a: entry.seq, i: entry.id, t: entry.enqueuedAt, m: entry.message }).length;
      log.#live.set(entry.seq, entry.size);
      log.#liveBytes += entry.size;
    }
    return { log, entries };
  }

  get fileBytes(): number {
    return this.#size;
  }

  get liveBytes(): number {
    return this.#liveBytes;
  }

  /**
   * Appends add records. With `durable` (the default) resolves once they are synced to the disk;
   * without, they reach the OS (surviving a crash of the process, not of the machine) in this
   * turn of the event loop and are synced with the next sync anyone asks for, or once
   * UNSYNCED_LIMIT bytes have gathered.
   */
  add(records: readonly AddRecord[], durable = true): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    for (const record of records) {
      const frame = encodeRecord(record);
      this.#frames.push(frame);
      this.#frameBytes += frame.length;
      this.#live.set(record.a, frame.length);
      this.#liveBytes += frame.length;
    }
    if (durable) return this.#durable();
    this.#schedule();
    return Promise.resolve();
  }

  /**
   * Appends that these entries left the outbox (acknowledged or dropped); not synced on its own.
   * `written` runs once the record reached the OS (it survives a crash of the process), or at once
   * when the log has failed.
   */
  remove(seqs: readonly number[], written?: () => void): void {
    if (this.#failed !== undefined || seqs.length === 0) {
      written?.();
      return;
    }
    if (written !== undefined) this.#unwritten.push(written);
    for (const seq of seqs) {
      this.#liveBytes -= this.#live.get(seq) ?? 0;
      this.#live.delete(seq);
    }
    const frame = encodeRecord({ k: [...seqs] });
    this.#frames.push(frame);
    this.#frameBytes += frame.length;
    this.#schedule();
  }

  /** Resolves when every append made so far is written and synced. */
  flush(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    return this.#durable();
  }

  #durable(): Promise<void> {
    const synced = new Promise<void>((resolve, reject) => this.#unsynced.push({ resolve, reject }));
    this.#schedule();
    return synced;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#write();
    });
  }

  #fail(err: unknown): void {
    this.#failed ??= stateFailed('write', this.dir, err);
    for (const waiter of this.#unsynced.splice(0)) waiter.reject(this.#failed);
    this.#frames = [];
  }

  #write(): void {
    try {
      this.#writeFrames();
    } finally {
      for (const written of this.#unwritten.splice(0)) written();
    }
  }

  #writeFrames(): void {
    const fd = this.#fd;
    if (this.#failed !== undefined || fd === undefined) return;
    try {
      if (this.#frames.length > 0) {
        const data = this.#frames.length === 1 ? this.#frames[0]! : Buffer.concat(this.#frames, this.#frameBytes);
        this.#frames = [];
        this.#frameBytes = 0;
        for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
        this.#size += data.length;
        this.#unsyncedBytes += data.length;
      }
      if (!this.#syncing) {
        if (shouldCompact(this.#size, this.#liveBytes, this.policy)) this.#compact();
        if (this.#unsynced.length > 0 || this.#unsyncedBytes >= UNSYNCED_LIMIT) this.#sync();
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  // Everything waiting was written before this sync started, so this sync makes it durable.
  #sync(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    const waiters = this.#unsynced;
    this.#unsynced = [];
    this.#unsyncedBytes = 0;
    this.#syncing = true;
    fdatasync(fd, (err) => {
      this.#syncing = false;
      if (err) {
        for (const waiter of waiters) waiter.reject(stateFailed('sync', this.dir, err));
        this.#fail(err);
        return;
      }
      for (const waiter of waiters) waiter.resolve();
      // What was written while this sync ran waits for the next one.
      if (this.#unsynced.length > 0 || this.#frames.length > 0 || this.#unsyncedBytes >= UNSYNCED_LIMIT) this.#schedule();
    });
  }

  // Synchronous on purpose: nothing may append to the old file between the copy and the rename,
  // and no sync of the old descriptor is running (the caller checked).
  #compact(): void {
    const tmp = `${this.path}.tmp`;
    const records = this.liveRecords();
    const frames = records.map(encodeRecord);
    const data = Buffer.concat(frames);
    const fd = openSync(tmp, 'w');
    try {
      for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dirFd = openSync(this.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    closeSync(this.#fd!);
    this.#fd = openSync(this.path, 'a');
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
    if (this.#fd === undefined) return;
    await this.flush().catch(() => undefined);
    const fd = this.#fd;
    this.#fd = undefined;
    try {
      if (fd !== undefined) closeSync(fd);
    } catch {
      // Already closed by a failed compaction: nothing left to release.
    }
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
