import { existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { SwitchyardError } from '@switchyard/errors';
import type { ModuleRecord } from '../core/module-types.ts';
import type { DeviceRecord, HubLogger } from '../core/types.ts';
import { Journal, JournalCorruptError } from './journal.ts';
import { acquireStateDirLock, StateDirBusyError, type StateDirLock } from './lock.ts';
import { asStateRecord, HubState, toWire, type StateRecord, type StoredC2D, type StoredTwin } from './state.ts';

export type { StoredC2D, StoredTwin } from './state.ts';

/**
 * Everything that must survive a killed hub. Locks, sessions, counters and telemetry are
 * deliberately absent: after a restart every message is simply enqueued again, as IoT Hub does
 * when a lock expires.
 */
export interface HubStore {
  readonly path: string | undefined;
  loadDevices(): DeviceRecord[];
  putDevice(device: DeviceRecord): void;
  /** Drops the device with its twin, queue, subscriptions and modules, atomically. */
  deleteDevice(deviceId: string): void;
  loadModules(): ModuleRecord[];
  /** The module's device must be in the store. */
  putModule(module: ModuleRecord): void;
  /** Drops the module with its twin and subscriptions, atomically. */
  deleteModule(deviceId: string, moduleId: string): void;
  /** Twins and subscriptions are keyed by identity id: a device id, or `<deviceId>/<moduleId>`. */
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

export interface HubStoreOptions {
  stateDir?: string;
  inMemory?: boolean;
  /** Where notices about the state dir go (a torn record dropped, an old SQLite file found); default: a process warning. */
  logger?: HubLogger;
}

export const JOURNAL_FILE = 'hub.journal';
export const LOCK_FILE = 'hub.lock';
/** What hubs before the journal kept their state in; it is not read any more. */
const SQLITE_FILE = 'hub.sqlite';
/** A hub's state is kilobytes; a journal this size replays in milliseconds and is rewritten rarely. */
const COMPACT_AT_BYTES = 1024 * 1024;

/**
 * The hub's state, in memory and (with a state dir) in a journal that is synced on every
 * write, so a SIGKILLed hub restarts with everything it acknowledged. See journal.ts for the
 * file and lock.ts for the one-hub-per-directory rule.
 */
export function openHubStore(options: HubStoreOptions): HubStore {
  if (options.inMemory || options.stateDir === undefined) return createStore(new HubState(), undefined);
  return openJournalStore(options.stateDir, { compactAtBytes: COMPACT_AT_BYTES, ...(options.logger ? { logger: options.logger } : {}) });
}

/** `openHubStore` with a state dir, with the compaction bound open to tests. */
export function openJournalStore(stateDir: string, options: { compactAtBytes: number; logger?: HubLogger }): HubStore {
  const path = join(stateDir, JOURNAL_FILE);
  const notice = (message: string, fields: Record<string, unknown>): void => {
    if (options.logger) options.logger.warn(message, fields);
    else process.emitWarning(`${message} ${JSON.stringify(fields)}`, { code: 'SWITCHYARD_STATE' });
  };
  let lock: StateDirLock | undefined;
  try {
    mkdirSync(stateDir, { recursive: true });
    lock = acquireStateDirLock(join(stateDir, LOCK_FILE));
    const state = new HubState();
    const { journal, created, records, tornBytes } = Journal.open(path, {
      compactAtBytes: options.compactAtBytes,
      initial: state.snapshot(),
      snapshot: () => state.snapshot(),
    });
    try {
      records.forEach((value, index) => {
        const record = asStateRecord(value, index === 0);
        if (typeof record === 'string') throw new JournalCorruptError(path, undefined, `record ${index + 1}: ${record}`);
        state.apply(record);
      });
    } catch (error) {
      journal.close();
      throw error;
    }
    if (tornBytes > 0) notice('hub state: dropped a torn last record left by a crash (it was never acknowledged)', { path, bytes: tornBytes });
    // Said when the journal is first created beside it, which is when the old state goes missing.
    if (created && existsSync(join(stateDir, SQLITE_FILE))) {
      notice(`hub state: ${SQLITE_FILE} from an older hub is not read; this hub starts with an empty registry and keeps its state in ${JOURNAL_FILE} (delete ${SQLITE_FILE}* once you have recreated the devices)`, { stateDir });
    }
    return createStore(state, { journal, lock });
  } catch (cause) {
    lock?.release();
    throw openError(path, cause);
  }
}

function openError(path: string, cause: unknown): SwitchyardError {
  let fix = 'Check that the state directory is writable, or pass --in-memory.';
  if (cause instanceof StateDirBusyError) {
    fix = 'Another hub process is using this state directory; stop it or choose another --state-dir.';
    // A lock from another host cannot be checked from here, so only a person can declare it stale.
    if (cause.owner.host !== hostname()) fix += ` If no hub runs on ${cause.owner.host} any more, delete ${cause.lockPath}.`;
  } else if (cause instanceof JournalCorruptError) {
    fix = `Move ${path} aside to start the hub with an empty state, or restore it from a backup.`;
  }
  return new SwitchyardError('STATE_FAILED', `Cannot open the hub state store at ${path}: ${(cause as Error).message}. ${fix}`, { cause, details: { field: 'stateDir' } });
}

function createStore(state: HubState, disk: { journal: Journal; lock: StateDirLock } | undefined): HubStore {
  let closed = false;
  const write = (record: StateRecord): void => {
    if (!state.changes(record)) return;
    // The state is changed from the serialised record, not the caller's objects, so that what a
    // running hub serves is exactly what a restart replays, and later edits by the caller to
    // objects it passed in cannot reach the store.
    const json = JSON.stringify(record);
    if (disk) {
      try {
        disk.journal.append(json);
      } catch (cause) {
        throw new SwitchyardError('STATE_FAILED', `Cannot write the hub state journal at ${disk.journal.path}: ${(cause as Error).message}. The change was not made and the hub stops persisting state; fix the state directory and restart the hub.`, { cause, details: { field: 'stateDir' } });
      }
    }
    state.apply(JSON.parse(json) as StateRecord);
    // A failed compaction leaves the longer journal in place, which holds the same state.
    if (disk?.journal.wantsCompaction) disk.journal.compact();
  };

  return {
    path: disk?.journal.path,
    loadDevices: () => [...state.devices.values()].map((device) => structuredClone(device)),
    putDevice: (device) => write({ op: 'device', device }),
    deleteDevice: (deviceId) => write({ op: 'deleteDevice', deviceId }),
    loadModules: () => [...state.modules.values()].map((module) => structuredClone(module)),
    putModule: (module) => write({ op: 'module', module }),
    deleteModule: (deviceId, moduleId) => write({ op: 'deleteModule', deviceId, moduleId }),
    loadTwin: (deviceId) => {
      const twin = state.twins.get(deviceId);
      return twin && structuredClone(twin);
    },
    putTwin: (deviceId, twin) => write({ op: 'twin', deviceId, twin }),
    loadC2D: () => [...state.c2d.values()].map(({ id, message: { body, ...meta } }) => ({ id, message: { ...structuredClone(meta), body: Buffer.from(body) } })),
    insertC2D: (entry) => write({ op: 'c2d', ...toWire(entry) }),
    updateC2DDeliveryCount: (id, deliveryCount) => write({ op: 'c2dDeliveryCount', id, deliveryCount }),
    deleteC2D: (id) => write({ op: 'c2dDelete', id }),
    getSubscriptions: (deviceId) => [...(state.subscriptions.get(deviceId) ?? [])],
    setSubscriptions: (deviceId, topicFilters) => write({ op: 'subscriptions', deviceId, topicFilters }),
    getPolicyKey: (policy) => state.policies.get(policy),
    setPolicyKey: (policy, key) => write({ op: 'policy', policy, key }),
    close: () => {
      if (closed) return;
      closed = true;
      disk?.journal.close();
      disk?.lock.release();
    },
  };
}
