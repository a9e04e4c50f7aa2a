// The outbox's file without sockets: framing, recovery from a torn or corrupt tail, group
// commits, and the compaction bound.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeLog, encodeRecord, liveEntries, LOG_FILE, RecordLog, shouldCompact, truncateLogFile } from '../src/internal.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'outbox-log-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const add = (seq: number, body = `m${seq}`) => ({ a: seq, i: `id-${seq}`, t: 1000 + seq, m: { id: `id-${seq}`, s: body } });

describe('outbox log format', () => {
  it('round-trips records and keeps only what was added and never removed, in order', () => {
    const bytes = Buffer.concat([encodeRecord(add(1)), encodeRecord(add(2)), encodeRecord({ k: [1] }), encodeRecord(add(3))]);
    const { records, validBytes } = decodeLog(bytes);
    expect(validBytes).toBe(bytes.length);
    expect(records).toHaveLength(4);
    expect(liveEntries(records).map((e) => e.id)).toEqual(['id-2', 'id-3']);
  });

  it('stops at a torn last record, at every cut inside it', () => {
    const whole = Buffer.concat([encodeRecord(add(1)), encodeRecord(add(2))]);
    const first = encodeRecord(add(1)).length;
    for (let cut = first; cut < whole.length; cut++) {
      const { records, validBytes } = decodeLog(whole.subarray(0, cut));
      expect(validBytes).toBe(first);
      expect(records.map((r) => ('a' in r ? r.a : -1))).toEqual([1]);
    }
  });

  it('stops at a record whose checksum does not match (a flipped byte)', () => {
    const second = encodeRecord(add(2));
    second.writeUInt8(second.readUInt8(second.length - 2) ^ 0xff, second.length - 2);
    const { records } = decodeLog(Buffer.concat([encodeRecord(add(1)), second, encodeRecord(add(3))]));
    expect(records).toHaveLength(1);
  });

  it('opens after a crash mid-write: the torn tail is cut off and later appends are readable', async () => {
    const dir = tempDir();
    const first = await RecordLog.open(dir);
    await first.log.add([add(1), add(2)]);
    await first.log.close();
    const size = statSync(join(dir, LOG_FILE)).size;
    truncateLogFile(dir, size - 3);
    const second = await RecordLog.open(dir);
    expect(second.entries.map((e) => e.seq)).toEqual([1]);
    expect(statSync(join(dir, LOG_FILE)).size).toBe(encodeRecord(add(1)).length);
    await second.log.add([add(3)]);
    await second.log.close();
    const third = await RecordLog.open(dir);
    expect(third.entries.map((e) => e.seq)).toEqual([1, 3]);
    await third.log.close();
  });

  it('a garbage tail (not a frame) is dropped too', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOG_FILE), encodeRecord(add(1)));
    appendFileSync(join(dir, LOG_FILE), Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    const { log, entries } = await RecordLog.open(dir);
    expect(entries.map((e) => e.seq)).toEqual([1]);
    await log.close();
  });

  it('gathers appends made while a sync is under way into one write (group commit)', async () => {
    const dir = tempDir();
    const { log } = await RecordLog.open(dir);
    const all = Array.from({ length: 200 }, (_, i) => log.add([add(i + 1)]));
    await Promise.all(all);
    await log.close();
    const { records } = decodeLog(readFileSync(join(dir, LOG_FILE)));
    expect(records).toHaveLength(200);
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
    const live = new Map<number, ReturnType<typeof add>>();
    log.liveRecords = () => [...live.values()];
    let maxSeen = 0;
    let seq = 0;
    for (let round = 0; round < 60; round++) {
      const batch = Array.from({ length: 20 }, () => add(++seq, 'x'.repeat(100)));
      for (const record of batch) live.set(record.a, record);
      await log.add(batch);
      // The oldest go: acknowledged.
      const gone = [...live.keys()].slice(0, 20);
      for (const s of gone) live.delete(s);
      log.remove(gone);
      await log.flush();
      const size = statSync(join(dir, LOG_FILE)).size;
      maxSeen = Math.max(maxSeen, size);
      expect(size).toBeLessThanOrEqual(Math.max(policy.minBytes, policy.ratio * log.liveBytes) + 20 * encodeRecord(add(1, 'x'.repeat(100))).length * 2);
    }
    expect(log.compactions).toBeGreaterThan(0);
    await log.close();
    // What survives a reopen after compactions is exactly what is live.
    const reopened = await RecordLog.open(dir, policy);
    expect(reopened.entries.map((e) => e.seq)).toEqual([...live.keys()]);
    await reopened.log.close();
    expect(maxSeen).toBeGreaterThan(0);
  });
});
