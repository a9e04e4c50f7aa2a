import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DeviceRecord, HubLogger } from '../src/core/types.ts';
import { JOURNAL_FILE, openHubStore, openJournalStore, type HubStore } from '../src/store/index.ts';
import { frame } from '../src/store/journal.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-journal-'));
  dirs.push(dir);
  return dir;
}

function recordingLogger(): HubLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info: () => undefined, warn: (message) => { warnings.push(message); } };
}

const device = (deviceId: string, key = 'k'): DeviceRecord => ({
  deviceId,
  authentication: { type: 'sas', primaryKey: `${key}-primary`, secondaryKey: `${key}-secondary` },
  status: 'enabled',
  etag: 'e1',
  generationId: `g-${deviceId}`,
  createdAt: new Date(0).toISOString(),
});

const c2d = (deviceId: string, n: number) => ({
  deviceId,
  messageId: `m${n}`,
  body: Buffer.from([n & 0xff, 0, 255, n >> 8]),
  properties: { n: String(n) },
  to: `/devices/${deviceId}/messages/devicebound`,
  enqueuedAt: n,
  expiresAt: n + 3_600_000,
  deliveryCount: 0,
});

/** Everything a store holds, through its public interface. */
function dump(store: HubStore) {
  const devices = store.loadDevices();
  return {
    devices,
    twins: devices.map((d) => store.loadTwin(d.deviceId)),
    subscriptions: devices.map((d) => store.getSubscriptions(d.deviceId)),
    c2d: store.loadC2D(),
    policy: store.getPolicyKey('iothubowner'),
  };
}

const open = (stateDir: string, logger?: HubLogger, compactAtBytes = 1024 * 1024): HubStore =>
  openJournalStore(stateDir, { compactAtBytes, ...(logger ? { logger } : {}) });

function openError(stateDir: string): unknown {
  try {
    open(stateDir).close();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** A state dir with a few records; returns the journal's size before and after its last record (a twin). */
function fixture(): { dir: string; before: number; after: number; expected: ReturnType<typeof dump> } {
  const dir = tempDir();
  const store = open(dir);
  store.setPolicyKey('iothubowner', 'svc');
  store.putDevice(device('d1'));
  store.putTwin('d1', { desired: { $version: 1 }, reported: { $version: 1 }, version: 1 });
  store.insertC2D({ id: 'c1', message: c2d('d1', 1) });
  store.setSubscriptions('d1', ['devices/d1/messages/devicebound/#']);
  const expected = dump(store);
  const before = statSync(join(dir, JOURNAL_FILE)).size;
  store.putTwin('d1', { desired: { interval: 10, $version: 2 }, reported: { fw: '2.0', $version: 2 }, version: 3 });
  const after = statSync(join(dir, JOURNAL_FILE)).size;
  store.close();
  return { dir, before, after, expected };
}

/** A copy of `from`'s journal, cut to `bytes` or with `edit` applied, in a fresh state dir. */
function copyJournal(from: string, edit: (bytes: Buffer) => Buffer): string {
  const dir = tempDir();
  writeFileSync(join(dir, JOURNAL_FILE), edit(readFileSync(join(from, JOURNAL_FILE))));
  return dir;
}

describe('state journal: torn and damaged files', () => {
  it('drops a last record cut at any byte, keeps every record before it, and appends cleanly after', () => {
    const { dir, before, after, expected } = fixture();
    expect(after - before).toBeGreaterThan(8);
    for (let cut = before + 1; cut < after; cut++) {
      const copy = copyJournal(dir, (bytes) => bytes.subarray(0, cut));
      const logger = recordingLogger();
      const store = open(copy, logger);
      expect(dump(store)).toEqual(expected);
      expect(logger.warnings).toEqual([expect.stringContaining('torn last record')]);
      expect(statSync(join(copy, JOURNAL_FILE)).size).toBe(before);
      store.setPolicyKey('iothubowner', `svc-${cut}`);
      store.close();
      const reopened = open(copy);
      expect(reopened.getPolicyKey('iothubowner')).toBe(`svc-${cut}`);
      expect(reopened.loadTwin('d1')).toEqual(expected.twins[0]);
      reopened.close();
    }
  });

  it('drops a last record whose checksum fails, and a zero-filled tail', () => {
    const { dir, before, expected } = fixture();
    const flipped = copyJournal(dir, (bytes) => {
      const copy = Buffer.from(bytes);
      copy[copy.length - 3] = copy[copy.length - 3]! ^ 0x20;
      return copy;
    });
    const zeros = copyJournal(dir, (bytes) => Buffer.concat([bytes.subarray(0, before), Buffer.alloc(300)]));
    for (const copy of [flipped, zeros]) {
      const store = open(copy, recordingLogger());
      expect(dump(store)).toEqual(expected);
      store.close();
    }
  });

  it('refuses damage before the last record instead of cutting acknowledged records away', () => {
    const { dir, before } = fixture();
    const copy = copyJournal(dir, (bytes) => {
      const damaged = Buffer.from(bytes);
      damaged[before - 5] = damaged[before - 5]! ^ 0x01;
      return damaged;
    });
    const error = openError(copy);
    expect(error).toMatchObject({ code: 'STATE_FAILED', details: { field: 'stateDir' } });
    expect((error as Error).message).toMatch(/damaged at byte \d+ \(checksum mismatch\)/);
    expect((error as Error).message).toContain('aside');
    // The damaged file is left as it was, for a person to look at.
    expect(readFileSync(join(copy, JOURNAL_FILE)).length).toBe(statSync(join(dir, JOURNAL_FILE)).size);
  });

  it('refuses a journal written in a format this hub does not read', () => {
    const dir = tempDir();
    writeFileSync(join(dir, JOURNAL_FILE), frame(JSON.stringify({ op: 'snapshot', format: 3, devices: [], twins: [], c2d: [], subscriptions: [], policies: [] })));
    expect((openError(dir) as Error).message).toContain('snapshot format 3');
  });

  it('ignores a compaction temp file left by a crash; the journal beside it is whole', () => {
    const { dir, expected } = fixture();
    writeFileSync(join(dir, `${JOURNAL_FILE}.tmp`), Buffer.from('half a snapshot'));
    const store = open(dir);
    expect(dump(store).devices).toEqual(expected.devices);
    expect(existsSync(join(dir, `${JOURNAL_FILE}.tmp`))).toBe(false);
    store.close();
  });
});

describe('state journal: compaction', () => {
  it('bounds the file and keeps the state identical to an in-memory store across restarts', () => {
    const dir = tempDir();
    const path = join(dir, JOURNAL_FILE);
    const compactAtBytes = 4096;
    const reference = openHubStore({ inMemory: true });
    let store = open(dir, undefined, compactAtBytes);
    const both = (f: (s: HubStore) => void): void => { f(store); f(reference); };
    let snapshotSize = statSync(path).size;
    let compactions = 0;
    let largest = 0;
    let previous = snapshotSize;
    let appended = 0;
    const queued: { id: string; deviceId: string }[] = [];
    for (let i = 0; i < 1200; i++) {
      const deviceId = `d${Math.floor(i / 10) % 5}`;
      switch (i % 10) {
        case 0: both((s) => s.putDevice(device(deviceId, `k${i}`))); break;
        case 1: case 2: both((s) => s.putTwin(deviceId, { desired: { n: i, $version: i }, reported: { n: i, $version: i }, version: i })); break;
        case 3: case 4: case 5: {
          const id = `c${i}`;
          both((s) => s.insertC2D({ id, message: c2d(deviceId, i) }));
          queued.push({ id, deviceId });
          break;
        }
        case 6: if (queued[0]) { const { id } = queued[0]; both((s) => s.updateC2DDeliveryCount(id, i)); } break;
        case 7: { const done = queued.splice(0, queued.length > 8 ? 3 : 2); both((s) => { for (const { id } of done) s.deleteC2D(id); }); break; }
        case 8: both((s) => s.setSubscriptions(deviceId, i % 20 === 8 ? [] : [`devices/${deviceId}/messages/devicebound/#`, `t${i}`])); break;
        case 9:
          if (i % 50 === 49) {
            both((s) => s.deleteDevice(deviceId));
            queued.splice(0, queued.length, ...queued.filter((q) => q.deviceId !== deviceId));
          } else {
            both((s) => s.setPolicyKey('iothubowner', `svc${i}`));
          }
          break;
      }
      const size = statSync(path).size;
      if (size < previous) {
        compactions++;
        snapshotSize = size;
      } else {
        appended += size - previous;
      }
      previous = size;
      largest = Math.max(largest, size);
      // The bound is checked after each write; one record may overshoot it before compaction.
      expect(size).toBeLessThanOrEqual(Math.max(compactAtBytes, 2 * snapshotSize) + 1024);
      if (i % 400 === 399) {
        const live = dump(store);
        store.close();
        store = open(dir, undefined, compactAtBytes);
        expect(dump(store)).toEqual(live);
      }
    }
    expect(compactions).toBeGreaterThanOrEqual(5);
    expect(appended).toBeGreaterThan(5 * largest);
    const live = dump(store);
    expect(live).toEqual(dump(reference));
    expect(live.devices.length).toBeGreaterThan(0);
    expect(live.c2d.length).toBeGreaterThan(0);
    store.close();
    const restarted = open(dir, undefined, compactAtBytes);
    expect(dump(restarted)).toEqual(live);
    restarted.close();
    reference.close();
  });
});

describe('state journal: semantics kept from the SQLite schema', () => {
  it('refuses what the old foreign and unique keys refused, and writes nothing for it', () => {
    const dir = tempDir();
    const store = open(dir);
    store.putDevice(device('d1'));
    store.insertC2D({ id: 'c1', message: c2d('d1', 1) });
    const size = statSync(join(dir, JOURNAL_FILE)).size;
    expect(() => store.putTwin('ghost', { desired: { $version: 1 }, reported: { $version: 1 }, version: 1 })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => store.insertC2D({ id: 'c2', message: c2d('ghost', 2) })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => store.insertC2D({ id: 'c1', message: c2d('d1', 3) })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => store.setSubscriptions('ghost', ['#'])).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(statSync(join(dir, JOURNAL_FILE)).size).toBe(size);
    expect(store.loadC2D().map((e) => e.message.messageId)).toEqual(['m1']);
    store.close();
  });

  it('writes nothing for a change that changes nothing', () => {
    const dir = tempDir();
    const store = open(dir);
    store.putDevice(device('d1'));
    store.insertC2D({ id: 'c1', message: c2d('d1', 1) });
    const size = statSync(join(dir, JOURNAL_FILE)).size;
    store.deleteC2D('nope');
    store.deleteDevice('nope');
    store.updateC2DDeliveryCount('c1', 0);
    store.updateC2DDeliveryCount('nope', 4);
    store.setSubscriptions('d1', []);
    store.setSubscriptions('ghost', []);
    expect(statSync(join(dir, JOURNAL_FILE)).size).toBe(size);
    store.updateC2DDeliveryCount('c1', 1);
    expect(statSync(join(dir, JOURNAL_FILE)).size).toBeGreaterThan(size);
    store.close();
  });

  it('deleting a device drops its twin, queue and subscriptions, and keeps the registry order', () => {
    const dir = tempDir();
    const store = open(dir);
    for (const id of ['a', 'b', 'c']) store.putDevice(device(id));
    store.putTwin('b', { desired: { $version: 1 }, reported: { $version: 1 }, version: 1 });
    store.insertC2D({ id: 'c1', message: c2d('b', 1) });
    store.insertC2D({ id: 'c2', message: c2d('c', 2) });
    store.setSubscriptions('b', ['#']);
    store.putDevice({ ...device('a'), status: 'disabled' });
    store.deleteDevice('b');
    store.putDevice(device('b'));
    store.close();
    const reopened = open(dir);
    expect(reopened.loadDevices().map((d) => [d.deviceId, d.status])).toEqual([['a', 'disabled'], ['c', 'enabled'], ['b', 'enabled']]);
    expect(reopened.loadTwin('b')).toBeUndefined();
    expect(reopened.getSubscriptions('b')).toEqual([]);
    expect(reopened.loadC2D().map((e) => e.id)).toEqual(['c2']);
    reopened.close();
  });

  it('hands out copies: neither loaded objects nor objects passed in can change the store behind its back', () => {
    const store = openHubStore({ inMemory: true });
    const twin = { desired: { a: 1, $version: 1 }, reported: { $version: 1 }, version: 1 };
    store.putDevice(device('d1'));
    store.putTwin('d1', twin);
    store.insertC2D({ id: 'c1', message: c2d('d1', 1) });
    store.setSubscriptions('d1', ['#']);
    twin.desired.a = 2;
    store.loadTwin('d1')!.desired['a'] = 3;
    const loaded = store.loadC2D()[0]!;
    loaded.message.deliveryCount = 9;
    loaded.message.body[0] = 42;
    loaded.message.properties['n'] = 'x';
    store.getSubscriptions('d1').push('more');
    store.loadDevices()[0]!.status = 'disabled';
    expect(store.loadTwin('d1')?.desired['a']).toBe(1);
    expect(store.loadC2D()[0]?.message).toEqual(c2d('d1', 1));
    expect(store.getSubscriptions('d1')).toEqual(['#']);
    expect(store.loadDevices()[0]?.status).toBe('enabled');
    store.close();
  });
});

describe('state journal: the state dir', () => {
  it('ignores a hub.sqlite left by an older hub and says so once, on the first start beside it', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hub.sqlite'), 'SQLite format 3\0');
    const logger = recordingLogger();
    const store = openHubStore({ stateDir: dir, logger });
    expect(logger.warnings).toEqual([expect.stringContaining('hub.sqlite from an older hub is not read')]);
    expect(store.loadDevices()).toEqual([]);
    store.close();
    openHubStore({ stateDir: dir, logger }).close();
    expect(logger.warnings).toHaveLength(1);
    expect(existsSync(join(dir, 'hub.sqlite'))).toBe(true);
  });

  it.skipIf(process.platform === 'win32')('keeps keys readable by the owner only (POSIX modes)', () => {
    const dir = tempDir();
    const store = open(dir);
    store.setPolicyKey('iothubowner', 'secret');
    store.close();
    expect(statSync(join(dir, JOURNAL_FILE)).mode & 0o777).toBe(0o600);
  });

  it('names the fix when the state dir cannot be created', () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, '');
    const error = openError(join(file, 'state'));
    expect(error).toMatchObject({ code: 'STATE_FAILED', details: { field: 'stateDir' } });
    expect((error as Error).message).toContain('Check that the state directory is writable');
  });

  it('a copy of a state dir opens to the same state', () => {
    const { dir, expected } = fixture();
    const copy = tempDir();
    cpSync(join(dir, JOURNAL_FILE), join(copy, JOURNAL_FILE));
    const store = open(copy);
    expect(dump(store).devices).toEqual(expected.devices);
    store.close();
  });
});
