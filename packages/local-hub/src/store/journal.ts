import { closeSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';

/**
 * An append-only file of JSON records, each framed as [u32 length][u32 crc32][payload] and
 * fdatasync'ed before `append` returns, so a SIGKILL or power cut loses nothing acknowledged.
 * The first record is always a snapshot; compaction writes a new file holding only a snapshot
 * to a temp path, syncs it and renames it over the journal, so either file is whole at any time.
 */

const HEADER = 8;
/** Larger than any state this hub keeps (a snapshot of 1000 devices with full queues fits). */
const MAX_RECORD = 256 * 1024 * 1024;

export interface JournalOptions {
  /** Wants compaction once the file exceeds this many bytes and twice the last snapshot's size. */
  compactAtBytes: number;
}

/** The file holds something other than a torn last record: bytes we cannot trust. */
export class JournalCorruptError extends Error {
  constructor(readonly path: string, readonly offset: number | undefined, reason: string) {
    super(`${path} is damaged${offset === undefined ? '' : ` at byte ${offset}`} (${reason})`);
    this.name = 'JournalCorruptError';
  }
}

export interface Replay {
  records: unknown[];
  /** Bytes of a torn last record that were dropped, 0 when the file ended cleanly. */
  tornBytes: number;
}

/** Frames one record, given as its JSON text. */
export function frame(json: string): Buffer {
  const payload = Buffer.from(json, 'utf8');
  if (payload.length > MAX_RECORD) throw new RangeError(`a state record of ${payload.length} bytes exceeds ${MAX_RECORD}`);
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  payload.copy(out, HEADER);
  return out;
}

/**
 * Decodes every whole record. Only the last record can be torn (one write is in flight at a
 * time and each is synced before the next starts), so an invalid record is accepted as torn when
 * nothing follows it: it runs past the end, or its checksum fails and it ends at the end, or the
 * rest of the file is zeros (a filesystem that grew the file before writing its data).
 * Anything else is corruption, which is reported rather than silently cut away.
 */
export function decode(path: string, bytes: Buffer): Replay & { validBytes: number } {
  const records: unknown[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const rest = bytes.length - offset;
    if (rest < HEADER) return { records, validBytes: offset, tornBytes: rest };
    const length = bytes.readUInt32LE(offset);
    const end = offset + HEADER + length;
    if (length === 0 || length > MAX_RECORD) {
      if (isZeros(bytes, offset)) return { records, validBytes: offset, tornBytes: rest };
      throw new JournalCorruptError(path, offset, `impossible record length ${length}`);
    }
    if (end > bytes.length) return { records, validBytes: offset, tornBytes: rest };
    const payload = bytes.subarray(offset + HEADER, end);
    if (crc32(payload) !== bytes.readUInt32LE(offset + 4)) {
      if (end === bytes.length || isZeros(bytes, offset + HEADER)) return { records, validBytes: offset, tornBytes: rest };
      throw new JournalCorruptError(path, offset, 'checksum mismatch');
    }
    try {
      records.push(JSON.parse(payload.toString('utf8')));
    } catch {
      throw new JournalCorruptError(path, offset, 'record is not JSON');
    }
    offset = end;
  }
  return { records, validBytes: offset, tornBytes: 0 };
}

function isZeros(bytes: Buffer, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

export class Journal {
  readonly path: string;
  readonly #options: JournalOptions;
  readonly #snapshot: () => unknown;
  #fd: number;
  #size: number;
  #snapshotBytes: number;
  /** Set when a write or sync failed: what is on disk is no longer known, so nothing more is written. */
  #failure: Error | undefined;

  private constructor(path: string, fd: number, size: number, snapshotBytes: number, options: JournalOptions, snapshot: () => unknown) {
    this.path = path;
    this.#fd = fd;
    this.#size = size;
    this.#snapshotBytes = snapshotBytes;
    this.#options = options;
    this.#snapshot = snapshot;
  }

  /**
   * Opens (or creates, holding `initial`, and says so) the journal and returns its records in
   * order. A torn last record is cut off the file so that the next append follows the last whole one.
   * `snapshot` is called at compaction and must return the current state as one record.
   */
  static open(path: string, options: JournalOptions & { initial: unknown; snapshot: () => unknown }): { journal: Journal; created: boolean } & Replay {
    rmSync(`${path}.tmp`, { force: true });
    let bytes: Buffer;
    let created = false;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      replaceWith(path, frame(JSON.stringify(options.initial)));
      bytes = readFileSync(path);
      created = true;
    }
    const { records, validBytes, tornBytes } = decode(path, bytes);
    if (records.length === 0) throw new JournalCorruptError(path, 0, 'no snapshot record at the start');
    const fd = openSync(path, 'r+');
    try {
      if (tornBytes > 0) {
        ftruncateSync(fd, validBytes);
        fsyncSync(fd);
      }
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    const snapshotBytes = HEADER + bytes.readUInt32LE(0);
    return { journal: new Journal(path, fd, validBytes, snapshotBytes, options, options.snapshot), created, records, tornBytes };
  }

  /** Writes and syncs one record (its JSON text); throws, and writes nothing more, if the disk refuses. */
  append(json: string): void {
    if (this.#failure) throw this.#failure;
    const bytes = frame(json);
    try {
      let done = 0;
      while (done < bytes.length) done += writeSync(this.#fd, bytes, done, bytes.length - done, this.#size + done);
      fdatasyncSync(this.#fd);
    } catch (error) {
      // After a failed fsync the kernel may have dropped the dirty pages and a retry would
      // report success for data that is gone, so this journal stops here; a restart replays
      // whatever really reached the disk.
      this.#failure = error as Error;
      throw error;
    }
    this.#size += bytes.length;
  }

  /** Whether the journal has grown past its bound; the owner then calls `compact` once its state includes every appended record. */
  get wantsCompaction(): boolean {
    return this.#failure === undefined && this.#size > Math.max(this.#options.compactAtBytes, 2 * this.#snapshotBytes);
  }

  /**
   * Rewrites the journal as one snapshot of the current state. A failure leaves the previous
   * file in place, which holds the same state, so it is returned, not thrown: every record
   * appended so far is already durable and compaction is tried again after the next append.
   */
  compact(): Error | undefined {
    if (this.#failure) return this.#failure;
    let bytes: Buffer;
    try {
      bytes = frame(JSON.stringify(this.#snapshot()));
    } catch (error) {
      return error as Error;
    }
    // Windows cannot rename over a file that is open, so the old handle goes first; until the
    // rename lands the old file is still the journal, whole.
    closeSync(this.#fd);
    let failed: Error | undefined;
    try {
      replaceWith(this.path, bytes);
      this.#snapshotBytes = bytes.length;
    } catch (error) {
      failed = error as Error;
    }
    try {
      // Whichever file the path names now (old or new), it holds the current state.
      this.#fd = openSync(this.path, 'r+');
      this.#size = fstatSync(this.#fd).size;
    } catch (error) {
      this.#fd = -1;
      this.#failure = error as Error;
      return this.#failure;
    }
    return failed;
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
    this.#failure ??= new Error(`${this.path} is closed`);
  }
}

/** Writes `bytes` to `<path>.tmp`, syncs it, renames it over `path` and syncs the directory. */
function replaceWith(path: string, bytes: Buffer): void {
  const temp = `${path}.tmp`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  syncDirectory(dirname(path));
}

/** Makes a rename durable. Windows cannot open a directory, and its renames need no such sync. */
function syncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch (error) {
    if (process.platform === 'win32') return;
    throw error;
  }
  try {
    fsyncSync(fd);
  } catch (error) {
    if (process.platform !== 'win32') throw error;
  } finally {
    closeSync(fd);
  }
}
