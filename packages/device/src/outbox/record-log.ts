// The outbox's file: an append-only log (its bytes: log-format.ts), written in group commits. An
// append is one sequential write, and one fdatasync covers every record written since the last
// one, so a thousand sends queued in one turn cost one sync, not a thousand. A crash can tear only
// the last write; recovery keeps the frames before the first bad one and truncates the rest. Acks
// are records too, written without waiting for a sync: a lost ack only means a message is sent
// once more after a restart, which its stable message id lets the hub side drop.
//
// Why not the alternatives (bench/README.md, "Outbox"): one file per message costs a create, a
// sync and a directory sync per message and an unlink per ack; a rewrite-the-whole-state file
// (as the poll state does) costs O(queue) per send; SQLite or LevelDB need native modules, which
// npm 11 no longer builds by default.
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSwitchyardError, SwitchyardError } from '@switchyard/errors';
import { lockDir, type DirLock } from './dir-lock.ts';
import { decodeLog, fileHeader, FrameWriter, liveEntries, UnknownLogFormat, type AddRecord, type DecodedAdd } from './log-format.ts';

export const LOG_FILE = 'outbox.log';

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
  if (isSwitchyardError(cause)) return cause;
  return new SwitchyardError('STATE_FAILED', `outbox ${what} failed in ${dir}: ${(cause as Error).message}`, { cause, details: { field: 'outbox.dir', dir } });
}

function unreadable(dir: string, path: string, cause: UnknownLogFormat): SwitchyardError {
  return new SwitchyardError('STATE_FAILED', `outbox ${path} cannot be read: ${cause.message}. It was left as it is; move it away (or drain it with the version that wrote it) to start an empty outbox in ${dir}`, {
    details: { field: 'outbox.dir', dir, reason: 'format' },
  });
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
  readonly #writer = new FrameWriter();
  readonly #lock: DirLock;
  /** Waiting for the next write to be synced. */
  #unsynced: Waiter[] = [];
  /** Waiting for the next write to reach the OS (or for the log to fail). */
  #unwritten: Array<() => void> = [];
  #syncing = false;
  #scheduled = false;
  /** Written since the last sync started, without anyone waiting for it. */
  #unsyncedBytes = 0;
  #failed: SwitchyardError | undefined;
  /** The framed size of the live add records (each record holds its own: `logBytes`). */
  #liveBytes = 0;
  compactions = 0;
  /** Writes to the file so far (each one frame or a few): messages per write is what a turn gathers. */
  writes = 0;
  /** The outbox's live records, for a rewrite; set by the outbox. */
  liveRecords: () => AddRecord[] = () => [];

  private constructor(
    readonly dir: string,
    fd: number,
    size: number,
    readonly policy: CompactionPolicy,
    lock: DirLock,
  ) {
    this.path = join(dir, LOG_FILE);
    this.#fd = fd;
    this.#size = size;
    this.#lock = lock;
  }

  /**
   * Opens (creating) the log in `dir`, taking the directory's lock, and returns it with the
   * entries it still holds.
   */
  static async open(dir: string, policy: CompactionPolicy = DEFAULT_COMPACTION): Promise<{ log: RecordLog; entries: DecodedAdd[] }> {
    const path = join(dir, LOG_FILE);
    let lock: DirLock;
    try {
      mkdirSync(dir, { recursive: true });
      lock = lockDir(dir);
    } catch (err) {
      throw stateFailed('open', dir, err);
    }
    try {
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        bytes = Buffer.alloc(0);
      }
      let decoded;
      try {
        decoded = decodeLog(bytes);
      } catch (err) {
        if (err instanceof UnknownLogFormat) throw unreadable(dir, path, err);
        throw err;
      }
      const { records, validBytes } = decoded;
      const fd = openSync(path, 'a');
      let size = validBytes;
      try {
        // A torn tail is cut off, or the next append would sit behind garbage and be unreadable.
        if (validBytes < bytes.length) ftruncateSync(fd, validBytes);
        if (validBytes === 0) {
          const header = fileHeader();
          writeSync(fd, header);
          size = header.length;
        }
        if (validBytes < bytes.length || validBytes === 0) fdatasyncSync(fd);
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      const log = new RecordLog(dir, fd, size, policy, lock);
      const entries = liveEntries(records);
      for (const entry of entries) {
        entry.logBytes = entry.size;
        log.#liveBytes += entry.size;
      }
      return { log, entries };
    } catch (err) {
      lock.release();
      throw stateFailed('open', dir, err);
    }
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
    this.append(records);
    return durable ? this.#durable() : Promise.resolve();
  }

  /**
   * `add(records, false)` without the promise, for the path every message takes: the records
   * reach the OS in this turn and are synced with the next sync. Nothing when the log has failed
   * (every later `add` and `flush` rejects then).
   */
  append(records: readonly AddRecord[]): void {
    if (this.#failed !== undefined) return;
    for (const record of records) {
      const size = this.#writer.add(record);
      record.logBytes = size;
      this.#liveBytes += size;
    }
    this.#schedule();
  }

  /**
   * Appends that these records left the outbox (acknowledged or dropped); not synced on its own.
   * `written` runs once the record reached the OS (it survives a crash of the process), or at once
   * when the log has failed.
   */
  remove(records: readonly AddRecord[], written?: () => void): void {
    if (this.#failed !== undefined || records.length === 0) {
      written?.();
      return;
    }
    if (written !== undefined) this.#unwritten.push(written);
    for (const record of records) {
      this.#liveBytes -= record.logBytes ?? 0;
      record.logBytes = 0;
    }
    this.#writer.ack(records);
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
    setImmediate(this.#writeScheduled);
  }

  // One function for every turn's write, not a closure per turn.
  readonly #writeScheduled = (): void => {
    this.#scheduled = false;
    this.#write();
  };

  #fail(err: unknown): void {
    this.#failed ??= stateFailed('write', this.dir, err);
    for (const waiter of this.#unsynced.splice(0)) waiter.reject(this.#failed);
    this.#writer.clear();
  }

  #write(): void {
    try {
      this.#writeFrames();
    } finally {
      if (this.#unwritten.length > 0) {
        const written = this.#unwritten;
        this.#unwritten = [];
        for (const callback of written) callback();
      }
    }
  }

  #writeFrames(): void {
    const fd = this.#fd;
    if (this.#failed !== undefined || fd === undefined) return;
    try {
      const data = this.#writer.take();
      if (data !== undefined) {
        // Written before anything is added again: `data` is a view of the writer's reused buffer.
        for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
        this.writes++;
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
      if (this.#unsynced.length > 0 || !this.#writer.empty || this.#unsyncedBytes >= UNSYNCED_LIMIT) this.#schedule();
    });
  }

  // Synchronous on purpose: nothing may append to the old file between the copy and the rename,
  // and no sync of the old descriptor is running (the caller checked).
  #compact(): void {
    const tmp = `${this.path}.tmp`;
    const records = this.liveRecords();
    const writer = new FrameWriter();
    const sizes = records.map((record) => writer.add(record));
    const frames = writer.take();
    const header = fileHeader();
    const data = frames === undefined ? header : Buffer.concat([header, frames]);
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
    this.#liveBytes = 0;
    records.forEach((record, index) => {
      record.logBytes = sizes[index]!;
      this.#liveBytes += sizes[index]!;
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
    this.#lock.release();
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
