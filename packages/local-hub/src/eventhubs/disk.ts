// The endpoint's events on disk, one append-only file per partition in the frame format of the
// hub's journal (store/journal.ts), plus a small metadata file. Telemetry is many small writes,
// so the events of one turn of the event loop go out in one write, and are not fsync'ed one by
// one: a killed hub keeps what was written (the kernel has it) and loses at most the events of
// its last turn, a power cut may lose the last moments; files are synced on close. A file
// holding twice what retention keeps is rewritten with only the retained events.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { HubLogger } from '../core/types.ts';
import { decode, frame } from '../store/journal.ts';
import type { StoredEvent } from './event.ts';

export interface EndpointMeta {
  partitionCount: number;
  /** Epoch ms. */
  createdAt: number;
  /** Created consumer groups; `$Default` is implied. */
  consumerGroups: string[];
}

interface WireEvent {
  s: number;
  o: number;
  t: number;
  z: number;
  d: string;
  m?: string;
  a: 'sas' | 'x509';
  g: string;
  b: string;
  p: Record<string, string>;
  y: StoredEvent['systemProperties'];
}

const META_FILE = 'meta.json';
const COMPACT_SLACK_RECORDS = 1024;

function toWire(e: StoredEvent): WireEvent {
  return { s: e.sequenceNumber, o: e.offset, t: e.enqueuedAt, z: e.size, d: e.deviceId, ...(e.moduleId === undefined ? {} : { m: e.moduleId }), a: e.authType, g: e.generationId, b: e.body.toString('base64'), p: e.properties, y: e.systemProperties };
}

function fromWire(value: unknown): StoredEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const w = value as Partial<WireEvent>;
  if (typeof w.s !== 'number' || typeof w.o !== 'number' || typeof w.t !== 'number' || typeof w.z !== 'number' || typeof w.d !== 'string' || typeof w.b !== 'string') return undefined;
  return {
    sequenceNumber: w.s,
    offset: w.o,
    enqueuedAt: w.t,
    size: w.z,
    deviceId: w.d,
    ...(typeof w.m === 'string' ? { moduleId: w.m } : {}),
    authType: w.a === 'x509' ? 'x509' : 'sas',
    generationId: typeof w.g === 'string' ? w.g : '',
    body: Buffer.from(w.b, 'base64'),
    properties: typeof w.p === 'object' && w.p !== null ? w.p : {},
    systemProperties: typeof w.y === 'object' && w.y !== null ? w.y : {},
  };
}

function readMeta(path: string): EndpointMeta | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<EndpointMeta>;
    if (typeof v.partitionCount !== 'number' || typeof v.createdAt !== 'number') return undefined;
    return { partitionCount: v.partitionCount, createdAt: v.createdAt, consumerGroups: Array.isArray(v.consumerGroups) ? v.consumerGroups.filter((c): c is string => typeof c === 'string') : [] };
  } catch {
    return undefined;
  }
}

export class EndpointDisk {
  readonly #dir: string;
  readonly #logger: HubLogger;
  readonly #fds: number[] = [];
  /** Records in each file, to know when a rewrite pays. */
  readonly #records: number[] = [];
  /** Frames not yet written, per partition, with what the partition retains for a rewrite. */
  readonly #pending = new Map<number, { frames: Buffer[]; retained: () => StoredEvent[] }>();
  #flushScheduled = false;
  #closed = false;

  private constructor(dir: string, logger: HubLogger) {
    this.#dir = dir;
    this.#logger = logger;
  }

  /** Opens (or creates) the endpoint's directory and returns what it held. */
  static open(dir: string, wanted: EndpointMeta, logger: HubLogger): { disk: EndpointDisk; meta: EndpointMeta; events: StoredEvent[][] } {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const disk = new EndpointDisk(dir, logger);
    let meta = readMeta(join(dir, META_FILE));
    const events: StoredEvent[][] = [];
    if (meta !== undefined && meta.partitionCount !== wanted.partitionCount) {
      // IoT Hub cannot change a hub's partition count either; the events hashed to the old
      // partitions cannot be re-homed without reordering them, so they are dropped.
      logger.warn('event hubs endpoint: partition count changed; retained events dropped', { was: meta.partitionCount, now: wanted.partitionCount });
      for (let i = 0; i < meta.partitionCount; i++) rmSync(disk.#partitionPath(i), { force: true });
      meta = { ...wanted, consumerGroups: meta.consumerGroups };
    }
    meta ??= wanted;
    for (let i = 0; i < meta.partitionCount; i++) {
      const path = disk.#partitionPath(i);
      let loaded: StoredEvent[] = [];
      if (existsSync(path)) {
        try {
          const replay = decode(path, readFileSync(path));
          loaded = replay.records.map(fromWire).filter((e): e is StoredEvent => e !== undefined);
          if (replay.tornBytes > 0) logger.warn('event hubs endpoint: torn last event dropped', { partition: i, bytes: replay.tornBytes });
        } catch (error) {
          logger.warn('event hubs endpoint: damaged partition file set aside', { partition: i, error: error instanceof Error ? error.message : String(error) });
          renameSync(path, `${path}.damaged`);
        }
      }
      events.push(loaded);
    }
    disk.saveMeta(meta);
    for (let i = 0; i < meta.partitionCount; i++) {
      // Rewriting on open also drops a torn tail, so later appends start on a frame boundary.
      disk.#rewrite(i, events[i]!);
    }
    return { disk, meta, events };
  }

  #partitionPath(partition: number): string {
    return join(this.#dir, `partition-${partition}.log`);
  }

  saveMeta(meta: EndpointMeta): void {
    const path = join(this.#dir, META_FILE);
    writeFileSync(`${path}.tmp`, JSON.stringify(meta), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  append(partition: number, event: StoredEvent, retained: () => StoredEvent[]): void {
    if (this.#closed || this.#fds[partition] === undefined) return;
    let pending = this.#pending.get(partition);
    if (!pending) this.#pending.set(partition, (pending = { frames: [], retained }));
    pending.frames.push(frame(JSON.stringify(toWire(event))));
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what is pending; a failure is logged and those events stay in memory only. */
  flush(): void {
    this.#flushScheduled = false;
    for (const [partition, { frames, retained }] of this.#pending) {
      this.#pending.delete(partition);
      const fd = this.#fds[partition];
      if (fd === undefined || frames.length === 0) continue;
      try {
        const bytes = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
        let done = 0;
        while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
        const records = (this.#records[partition] ?? 0) + frames.length;
        this.#records[partition] = records;
        if (records > COMPACT_SLACK_RECORDS) {
          const kept = retained();
          if (records > 2 * kept.length + COMPACT_SLACK_RECORDS) this.#rewrite(partition, kept);
        }
      } catch (error) {
        this.#logger.warn('event hubs endpoint: writing events to disk failed', { partition, error: error instanceof Error ? error.message : String(error) });
      }
    }
  }

  #rewrite(partition: number, retained: StoredEvent[]): void {
    const old = this.#fds[partition];
    if (old !== undefined) closeSync(old);
    const path = this.#partitionPath(partition);
    const temp = `${path}.tmp`;
    const fd = openSync(temp, 'w', 0o600);
    try {
      const bytes = Buffer.concat(retained.map((e) => frame(JSON.stringify(toWire(e)))));
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    this.#fds[partition] = openSync(path, 'a', 0o600);
    this.#records[partition] = retained.length;
  }

  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    for (const fd of this.#fds) {
      try {
        fsyncSync(fd);
        closeSync(fd);
      } catch (error) {
        this.#logger.warn('event hubs endpoint: closing a partition file failed', { error: error instanceof Error ? error.message : String(error) });
      }
    }
    this.#fds.length = 0;
  }
}
