import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SwitchyardError } from '@switchyard/errors';
import type { C2DMessage, DeviceRecord } from '../core/types.ts';

/** A twin as persisted: both sections carry their own `$version`; `version` is the twin's. */
export interface StoredTwin {
  desired: Record<string, unknown> & { $version: number };
  reported: Record<string, unknown> & { $version: number };
  version: number;
}

/** An undelivered C2D message; `id` is the hub's own key (a device may reuse message ids). */
export interface StoredC2D {
  id: string;
  message: C2DMessage;
}

/**
 * Everything that must survive a killed hub. Locks, sessions, counters and telemetry are
 * deliberately absent: after a restart every message is simply enqueued again, as IoT Hub does
 * when a lock expires.
 */
export interface HubStore {
  readonly path: string | undefined;
  loadDevices(): DeviceRecord[];
  putDevice(device: DeviceRecord): void;
  /** Drops the device with its twin, queue and subscriptions, atomically. */
  deleteDevice(deviceId: string): void;
  loadTwin(deviceId: string): StoredTwin | undefined;
  putTwin(deviceId: string, twin: StoredTwin): void;
  /** Oldest first. */
  loadC2D(): StoredC2D[];
  insertC2D(entry: StoredC2D): void;
  updateC2DDeliveryCount(id: string, deliveryCount: number): void;
  deleteC2D(id: string): void;
  getSubscriptions(deviceId: string): string[];
  setSubscriptions(deviceId: string, topicFilters: string[]): void;
  getPolicyKey(policy: string): string | undefined;
  setPolicyKey(policy: string, key: string): void;
  close(): void;
}

interface C2DRow { id: string; device_id: string; meta: string; body: Buffer }

/**
 * SQLite through better-sqlite3: WAL with synchronous=FULL, so a commit is on disk before the
 * call returns and a SIGKILL loses nothing that was acknowledged. `inMemory` uses `:memory:`.
 */
export function openHubStore(options: { stateDir?: string; inMemory?: boolean }): HubStore {
  let path: string | undefined;
  let db: Database.Database;
  try {
    if (options.inMemory || options.stateDir === undefined) {
      db = new Database(':memory:');
    } else {
      mkdirSync(options.stateDir, { recursive: true });
      path = join(options.stateDir, 'hub.sqlite');
      db = new Database(path, { timeout: 200 });
      // One hub per state dir: two processes would each serve their own in-memory view of the
      // same queues. The exclusive lock is the OS's, so a SIGKILLed hub does not leave it behind.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.exec('BEGIN EXCLUSIVE; COMMIT;');
    }
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.exec(`
      CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, record TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS twins (device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE, twin TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS c2d (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        meta TEXT NOT NULL,
        body BLOB NOT NULL
      );
      CREATE TABLE IF NOT EXISTS subscriptions (device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE, filters TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS policies (name TEXT PRIMARY KEY, key TEXT NOT NULL);
    `);
  } catch (cause) {
    const busy = (cause as { code?: string }).code === 'SQLITE_BUSY';
    const fix = busy
      ? 'Another hub process is using this state directory; stop it or choose another --state-dir.'
      : 'Check that the state directory is writable, or pass --in-memory.';
    throw new SwitchyardError('STATE_FAILED', `Cannot open the hub state store${path ? ` at ${path}` : ''}: ${(cause as Error).message}. ${fix}`, { cause, details: { field: 'stateDir' } });
  }

  const stmt = {
    allDevices: db.prepare<[], { record: string }>('SELECT record FROM devices ORDER BY rowid'),
    putDevice: db.prepare<[string, string]>('INSERT INTO devices (id, record) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record'),
    deleteDevice: db.prepare<[string]>('DELETE FROM devices WHERE id = ?'),
    getTwin: db.prepare<[string], { twin: string }>('SELECT twin FROM twins WHERE device_id = ?'),
    putTwin: db.prepare<[string, string]>('INSERT INTO twins (device_id, twin) VALUES (?, ?) ON CONFLICT(device_id) DO UPDATE SET twin = excluded.twin'),
    allC2D: db.prepare<[], C2DRow>('SELECT id, device_id, meta, body FROM c2d ORDER BY seq'),
    insertC2D: db.prepare<[string, string, string, Buffer]>('INSERT INTO c2d (id, device_id, meta, body) VALUES (?, ?, ?, ?)'),
    getC2DMeta: db.prepare<[string], { meta: string }>('SELECT meta FROM c2d WHERE id = ?'),
    setC2DMeta: db.prepare<[string, string]>('UPDATE c2d SET meta = ? WHERE id = ?'),
    deleteC2D: db.prepare<[string]>('DELETE FROM c2d WHERE id = ?'),
    getSubs: db.prepare<[string], { filters: string }>('SELECT filters FROM subscriptions WHERE device_id = ?'),
    putSubs: db.prepare<[string, string]>('INSERT INTO subscriptions (device_id, filters) VALUES (?, ?) ON CONFLICT(device_id) DO UPDATE SET filters = excluded.filters'),
    deleteSubs: db.prepare<[string]>('DELETE FROM subscriptions WHERE device_id = ?'),
    getPolicy: db.prepare<[string], { key: string }>('SELECT key FROM policies WHERE name = ?'),
    putPolicy: db.prepare<[string, string]>('INSERT INTO policies (name, key) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET key = excluded.key'),
  };

  // better-sqlite3 runs each statement in its own implicit transaction; the explicit ones group
  // the multi-statement mutations so a kill between them cannot leave half a change.
  const deleteDevice = db.transaction((id: string) => {
    stmt.deleteSubs.run(id);
    stmt.deleteDevice.run(id);
  });
  const updateDeliveryCount = db.transaction((id: string, count: number) => {
    const row = stmt.getC2DMeta.get(id);
    if (!row) return;
    const meta = JSON.parse(row.meta) as Omit<C2DMessage, 'body'>;
    stmt.setC2DMeta.run(JSON.stringify({ ...meta, deliveryCount: count }), id);
  });

  let closed = false;
  return {
    path,
    loadDevices: () => stmt.allDevices.all().map((r) => JSON.parse(r.record) as DeviceRecord),
    putDevice: (device) => { stmt.putDevice.run(device.deviceId, JSON.stringify(device)); },
    deleteDevice: (deviceId) => { deleteDevice(deviceId); },
    loadTwin: (deviceId) => {
      const row = stmt.getTwin.get(deviceId);
      return row ? (JSON.parse(row.twin) as StoredTwin) : undefined;
    },
    putTwin: (deviceId, twin) => { stmt.putTwin.run(deviceId, JSON.stringify(twin)); },
    loadC2D: () => stmt.allC2D.all().map((r) => {
      const meta = JSON.parse(r.meta) as Omit<C2DMessage, 'body'>;
      return { id: r.id, message: { ...meta, body: Buffer.from(r.body) } };
    }),
    insertC2D: ({ id, message }) => {
      const { body, ...meta } = message;
      stmt.insertC2D.run(id, message.deviceId, JSON.stringify(meta), body);
    },
    updateC2DDeliveryCount: (id, deliveryCount) => { updateDeliveryCount(id, deliveryCount); },
    deleteC2D: (id) => { stmt.deleteC2D.run(id); },
    getSubscriptions: (deviceId) => {
      const row = stmt.getSubs.get(deviceId);
      return row ? (JSON.parse(row.filters) as string[]) : [];
    },
    setSubscriptions: (deviceId, filters) => {
      if (filters.length === 0) stmt.deleteSubs.run(deviceId);
      else stmt.putSubs.run(deviceId, JSON.stringify(filters));
    },
    getPolicyKey: (policy) => stmt.getPolicy.get(policy)?.key,
    setPolicyKey: (policy, key) => { stmt.putPolicy.run(policy, key); },
    close: () => {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
