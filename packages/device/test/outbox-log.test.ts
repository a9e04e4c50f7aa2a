// The outbox's file without sockets: the binary format (every body kind and field round-trips),
// recovery from a torn or corrupt tail, files it must not read, group commits, the compaction
// bound, and the directory lock.
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSwitchyardError, type SwitchyardError } from '@switchyard/errors';
import { decodeLog, encodeFrame, fileHeader, FrameWriter, liveEntries, LOCK_FILE, LOG_FILE, LOG_VERSION, RecordLog, shouldCompact, truncateLogFile, type AddRecord } from '../src/internal.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'outbox-log-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const add = (seq: number, body = `m${seq}`): AddRecord => ({ seq, enqueuedAt: 1000 + seq, message: { body, messageId: `id-${seq}` } });
const file = (...frames: Buffer[]): Buffer => Buffer.concat([fileHeader(), ...frames]);

describe('outbox log format', () => {
  it('round-trips every body kind and message field, and keeps only what was added and never removed, in order', () => {
    const records: AddRecord[] = [
      { seq: 1, enqueuedAt: 1_700_000_000_123, message: { body: Buffer.from([0, 1, 2, 255]), messageId: 'bytes' } },
      { seq: 2, enqueuedAt: 2, message: { body: 'text, ünïcödé and 🚀', messageId: 'text-ü' } },
      { seq: 3, enqueuedAt: 3, message: { body: { reading: 21.5, tags: ['a', 'b'] }, messageId: 'json' } },
      {
        seq: 2 ** 40 + 7,
        enqueuedAt: 4,
        message: { body: new Uint8Array([9, 8, 7]), messageId: 'all', properties: { k: 'v', 'with space': 'ä"\\' }, correlationId: 'c', contentType: 'application/json', contentEncoding: 'utf-8', expiresAt: new Date(1_800_000_000_000) },
      },
      { seq: 5, enqueuedAt: 5, message: { body: '', messageId: 'empty' } },
    ];
    const bytes = file(encodeFrame(records), encodeFrame([{ acks: [3] }]));
    const { records: decoded, validBytes } = decodeLog(bytes);
    expect(validBytes).toBe(bytes.length);
    expect(decoded).toHaveLength(6);
    const live = liveEntries(decoded);
    expect(live.map((e) => e.message.messageId)).toEqual(['bytes', 'text-ü', 'empty', 'all']);
    const bySeq = new Map(live.map((e) => [e.seq, e]));
    for (const record of records.filter((r) => r.seq !== 3)) {
      const got = bySeq.get(record.seq)!;
      expect(got.enqueuedAt).toBe(record.enqueuedAt);
      const want = record.message.body instanceof Uint8Array ? { ...record.message, body: Buffer.from(record.message.body) } : record.message;
      expect(got.message).toEqual(want);
    }
  });

  it('stores a body as its own bytes: neither base64 nor JSON-escaped', () => {
    const body = Buffer.from('raw "body" \\ bytes');
    const frame = encodeFrame([{ seq: 1, enqueuedAt: 0, message: { body, messageId: 'x' } }]);
    expect(frame.includes(body)).toBe(true);
    expect(frame.includes(Buffer.from(body.toString('base64')))).toBe(false);
  });

  it('stops at a torn last frame, at every cut inside it', () => {
    const first = encodeFrame([add(1)]);
    const whole = file(first, encodeFrame([add(2), { acks: [1] }]));
    const kept = fileHeader().length + first.length;
    for (let cut = kept; cut < whole.length; cut++) {
      const { records, validBytes } = decodeLog(whole.subarray(0, cut));
      expect(validBytes).toBe(kept);
      expect(records.map((r) => ('acks' in r ? -1 : r.seq))).toEqual([1]);
    }
  });

  it('stops at a frame whose checksum does not match (a flipped byte)', () => {
    const second = encodeFrame([add(2)]);
    second.writeUInt8(second.readUInt8(second.length - 2) ^ 0xff, second.length - 2);
    const { records } = decodeLog(file(encodeFrame([add(1)]), second, encodeFrame([add(3)])));
    expect(records.map((r) => ('acks' in r ? -1 : r.seq))).toEqual([1]);
  });

  it('an empty file, or one cut inside its header, holds nothing; anything else without the header is refused', () => {
    expect(decodeLog(Buffer.alloc(0))).toEqual({ records: [], validBytes: 0 });
    expect(decodeLog(fileHeader().subarray(0, 5))).toEqual({ records: [], validBytes: 0 });
    const other = Buffer.from(fileHeader());
    other.writeUInt32LE(LOG_VERSION + 1, 4);
    expect(() => decodeLog(other)).toThrow(/format 2/);
    // The JSON-framed records of before format 1: [u32 length][u32 crc][JSON].
    expect(() => decodeLog(Buffer.from([0x10, 0, 0, 0, 1, 2, 3, 4, 0x7b, 0x7d]))).toThrow(/SYOB/);
  });

  it('closes a frame past 1 MiB and opens the next, each readable', () => {
    const writer = new FrameWriter(16);
    const body = Buffer.alloc(300 * 1024, 7);
    for (let seq = 1; seq <= 8; seq++) writer.add({ seq, enqueuedAt: 0, message: { body, messageId: `b${seq}` } });
    const bytes = file(Buffer.from(writer.take()!));
    const { records, validBytes } = decodeLog(bytes);
    expect(validBytes).toBe(bytes.length);
    expect(records).toHaveLength(8);
    // A cut inside the last frame keeps the frames before it: more than one frame was written.
    expect(decodeLog(bytes.subarray(0, bytes.length - 1)).records.length).toBeGreaterThan(0);
  });
});

describe('outbox log file', () => {
  it('opens after a crash mid-write: the torn tail is cut off and later appends are readable', async () => {
    const dir = tempDir();
    const first = await RecordLog.open(dir);
    await first.log.add([add(1)]);
    await first.log.add([add(2)]);
    await first.log.close();
    const size = statSync(join(dir, LOG_FILE)).size;
    truncateLogFile(dir, size - 3);
    const second = await RecordLog.open(dir);
    expect(second.entries.map((e) => e.seq)).toEqual([1]);
    expect(statSync(join(dir, LOG_FILE)).size).toBe(fileHeader().length + encodeFrame([add(1)]).length);
    await second.log.add([add(3)]);
    await second.log.close();
    const third = await RecordLog.open(dir);
    expect(third.entries.map((e) => e.seq)).toEqual([1, 3]);
    await third.log.close();
  });

  it('a garbage tail (not a frame) is dropped too', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOG_FILE), file(encodeFrame([add(1)])));
    appendFileSync(join(dir, LOG_FILE), Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    const { log, entries } = await RecordLog.open(dir);
    expect(entries.map((e) => e.seq)).toEqual([1]);
    await log.close();
  });

  it('refuses a file of another format with STATE_FAILED and leaves it as it was', async () => {
    const dir = tempDir();
    const old = Buffer.from([0x10, 0, 0, 0, 1, 2, 3, 4, 0x7b, 0x7d]);
    writeFileSync(join(dir, LOG_FILE), old);
    const error = await RecordLog.open(dir).catch((e: unknown) => e);
    expect(isSwitchyardError(error, 'STATE_FAILED')).toBe(true);
    expect((error as SwitchyardError).details).toMatchObject({ dir, reason: 'format' });
    expect(readFileSync(join(dir, LOG_FILE))).toEqual(old);
    // The refusal gave the directory's lock back.
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it('gathers appends of one turn, and those made while a sync runs, into few writes (group commit)', async () => {
    const dir = tempDir();
    const { log } = await RecordLog.open(dir);
    const all = Array.from({ length: 200 }, (_, i) => log.add([add(i + 1)]));
    await Promise.all(all);
    await log.close();
    const bytes = readFileSync(join(dir, LOG_FILE));
    const { records } = decodeLog(bytes);
    expect(records).toHaveLength(200);
    // One frame per write: 200 records in one frame cost one frame header, not 200.
    const oneFrame = fileHeader().length + encodeFrame(Array.from({ length: 200 }, (_, i) => add(i + 1))).length;
    expect(bytes.length).toBe(oneFrame);
  });
});

describe('outbox log compaction', () => {
  it('says when: past the minimum size and the ratio, never below either', () => {
    const policy = { minBytes: 1000, ratio: 4 };
    expect(shouldCompact(999, 0, policy)).toBe(false);
    expect(shouldCompact(1000, 0, policy)).toBe(true);
    expect(shouldCompact(4000, 1001, policy)).toBe(false);
    expect(shouldCompact(4004, 1001, policy)).toBe(true);
  });

  it('keeps the file within max(minBytes, ratio x live) plus one batch while messages come and go', async () => {
    const dir = tempDir();
    const policy = { minBytes: 8 * 1024, ratio: 4 };
    const { log } = await RecordLog.open(dir, policy);
    const live = new Map<number, AddRecord>();
    log.liveRecords = () => [...live.values()];
    let seq = 0;
    const batchBytes = encodeFrame(Array.from({ length: 20 }, (_, i) => add(i + 1, 'x'.repeat(100)))).length;
    for (let round = 0; round < 60; round++) {
      const batch = Array.from({ length: 20 }, () => add(++seq, 'x'.repeat(100)));
      for (const record of batch) live.set(record.seq, record);
      await log.add(batch);
      // The oldest go: acknowledged.
      const gone = [...live.values()].slice(0, 20);
      for (const record of gone) live.delete(record.seq);
      log.remove(gone);
      await log.flush();
      const size = statSync(join(dir, LOG_FILE)).size;
      expect(size).toBe(log.fileBytes);
      expect(size).toBeLessThanOrEqual(Math.max(policy.minBytes, policy.ratio * log.liveBytes) + 2 * batchBytes);
    }
    expect(log.compactions).toBeGreaterThan(0);
    await log.close();
    // What survives a reopen after compactions is exactly what is live, bodies included.
    const reopened = await RecordLog.open(dir, policy);
    expect(reopened.entries.map((e) => e.seq)).toEqual([...live.keys()]);
    expect(reopened.entries.map((e) => e.message.body)).toEqual([...live.values()].map((r) => r.message.body));
    await reopened.log.close();
  });
});

describe('outbox dir lock', () => {
  it('a second open of the same dir in this process fails with STATE_FAILED naming the dir and the fix; after close it opens', async () => {
    const dir = tempDir();
    const first = await RecordLog.open(dir);
    const error = await RecordLog.open(dir).catch((e: unknown) => e);
    expect(isSwitchyardError(error, 'STATE_FAILED')).toBe(true);
    expect((error as SwitchyardError).message).toContain(dir);
    expect((error as SwitchyardError).message).toContain('give each identity its own dir');
    expect((error as SwitchyardError).details).toMatchObject({ field: 'outbox.dir', dir, reason: 'locked' });
    // The refused open left the holder's lock and log alone.
    await first.log.add([add(1)]);
    await first.log.close();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    const again = await RecordLog.open(dir);
    expect(again.entries.map((e) => e.seq)).toEqual([1]);
    await again.log.close();
  });

  it('takes over the lock of a process that is gone', async () => {
    const dir = tempDir();
    const gone = spawnSync(process.execPath, ['-e', '']);
    expect(gone.status).toBe(0);
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: gone.pid, host: hostname(), token: 'stale' }));
    const { log } = await RecordLog.open(dir);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    await log.close();
  });

  it('takes over a lock with this pid that this process does not hold (a restarted container\'s pid 1)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), token: 'earlier-incarnation' }));
    const { log } = await RecordLog.open(dir);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).not.toMatchObject({ token: 'earlier-incarnation' });
    await log.close();
  });

  it('refuses the lock of a live process, naming its pid, and leaves the lock in place', async () => {
    const dir = tempDir();
    const lock = JSON.stringify({ pid: process.ppid, host: hostname(), token: 'alive' });
    writeFileSync(join(dir, LOCK_FILE), lock);
    const error = await RecordLog.open(dir).catch((e: unknown) => e);
    expect(isSwitchyardError(error, 'STATE_FAILED')).toBe(true);
    expect((error as SwitchyardError).details).toMatchObject({ reason: 'locked', pid: process.ppid });
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(lock);
  });
});
