import { SwitchyardError } from '@switchyard/errors';
import type { ModuleRecord } from '../core/module-types.ts';
import type { C2DMessage, DeviceRecord, TwinMetadata } from '../core/types.ts';

/** A twin as persisted: both sections carry their own `$version`; `version` is the twin's. */
export interface StoredTwin {
  desired: Record<string, unknown> & { $version: number };
  reported: Record<string, unknown> & { $version: number };
  version: number;
  /** Absent in journals written before tags existed: none. */
  tags?: Record<string, unknown>;
  /** Absent in journals written before metadata was kept: made up on load. */
  metadata?: { desired: TwinMetadata; reported: TwinMetadata };
}

/** An undelivered C2D message; `id` is the hub's own key (a device may reuse message ids). */
export interface StoredC2D {
  id: string;
  message: C2DMessage;
}

/** A C2D message as a journal record carries it: JSON has no bytes, so the body is base64. */
type WireC2D = { id: string; message: Omit<C2DMessage, 'body'> & { body: string } };

/** One journal record: a mutation, or the whole state (always the journal's first record). */
export type StateRecord =
  | { op: 'device'; device: DeviceRecord }
  | { op: 'deleteDevice'; deviceId: string }
  | { op: 'module'; module: ModuleRecord }
  | { op: 'deleteModule'; deviceId: string; moduleId: string }
  /** `deviceId` is an identity id: `<deviceId>/<moduleId>` for a module's twin. */
  | { op: 'twin'; deviceId: string; twin: StoredTwin }
  | ({ op: 'c2d' } & WireC2D)
  | { op: 'c2dDeliveryCount'; id: string; deliveryCount: number }
  | { op: 'c2dDelete'; id: string }
  /** `deviceId` is an identity id, as for twins. */
  | { op: 'subscriptions'; deviceId: string; topicFilters: string[] }
  | { op: 'policy'; policy: string; key: string }
  | SnapshotRecord;

export interface SnapshotRecord {
  op: 'snapshot';
  /** Bumped when a record's meaning changes, so an older hub refuses a newer journal. */
  format: typeof FORMAT;
  devices: DeviceRecord[];
  /** Absent in format 1, which had no module identities. */
  modules?: ModuleRecord[];
  twins: [string, StoredTwin][];
  c2d: WireC2D[];
  subscriptions: [string, string[]][];
  policies: [string, string][];
}

// 2 added module identities; a format-1 journal reads as one without modules.
const FORMAT = 2;
const READABLE_FORMATS: readonly unknown[] = [1, 2];

/** Modules are keyed like their identity id, `<deviceId>/<moduleId>`. */
function moduleKey(deviceId: string, moduleId: string): string {
  return `${deviceId}/${moduleId}`;
}

export function toWire({ id, message }: StoredC2D): WireC2D {
  return { id, message: { ...message, body: message.body.toString('base64') } };
}

/**
 * The hub's persistent state in memory, changed only by records, so that the state a running
 * hub serves and the state a restarted hub replays are one and the same. Maps keep insertion
 * order, which is the order SQLite's rowid and sequence columns used to give.
 */
export class HubState {
  readonly devices = new Map<string, DeviceRecord>();
  readonly modules = new Map<string, ModuleRecord>();
  readonly twins = new Map<string, StoredTwin>();
  /** Oldest first. */
  readonly c2d = new Map<string, StoredC2D>();
  readonly subscriptions = new Map<string, string[]>();
  readonly policies = new Map<string, string>();

  /**
   * Whether the record would change anything, refusing the ones the old schema's foreign and
   * unique keys refused; a change that changes nothing is not worth a synced write.
   */
  changes(record: StateRecord): boolean {
    switch (record.op) {
      case 'device':
      case 'policy':
      case 'snapshot':
        return true;
      case 'deleteDevice':
        return this.devices.has(record.deviceId);
      case 'module':
        this.#requireDevice(record.module.deviceId, `module ${record.module.moduleId}`);
        return true;
      case 'deleteModule':
        return this.modules.has(moduleKey(record.deviceId, record.moduleId));
      case 'twin':
        this.#requireIdentity(record.deviceId, 'a twin');
        return true;
      case 'c2d':
        this.#requireDevice(record.message.deviceId, 'a cloud-to-device message');
        if (this.c2d.has(record.id)) throw new SwitchyardError('INTERNAL', `The hub store already holds cloud-to-device message ${record.id}.`);
        return true;
      case 'c2dDeliveryCount': {
        const entry = this.c2d.get(record.id);
        return entry !== undefined && entry.message.deliveryCount !== record.deliveryCount;
      }
      case 'c2dDelete':
        return this.c2d.has(record.id);
      case 'subscriptions':
        if (record.topicFilters.length === 0) return this.subscriptions.has(record.deviceId);
        this.#requireIdentity(record.deviceId, 'subscriptions');
        return true;
    }
  }

  /** A device id, or a module's `<deviceId>/<moduleId>`. */
  #requireIdentity(id: string, what: string): void {
    if (!id.includes('/')) return this.#requireDevice(id, what);
    if (!this.modules.has(id)) throw new SwitchyardError('INTERNAL', `The hub store cannot keep ${what} for module ${id}, which is not in the registry.`);
  }

  #requireDevice(deviceId: string, what: string): void {
    if (!this.devices.has(deviceId)) throw new SwitchyardError('INTERNAL', `The hub store cannot keep ${what} for device ${deviceId}, which is not in the registry.`);
  }

  apply(record: StateRecord): void {
    switch (record.op) {
      case 'device':
        this.devices.set(record.device.deviceId, record.device);
        return;
      case 'deleteDevice':
        this.devices.delete(record.deviceId);
        this.twins.delete(record.deviceId);
        this.subscriptions.delete(record.deviceId);
        for (const [id, entry] of this.c2d) if (entry.message.deviceId === record.deviceId) this.c2d.delete(id);
        // A device's modules go with it, as in IoT Hub.
        for (const [key, module] of this.modules) if (module.deviceId === record.deviceId) this.#dropModule(key);
        return;
      case 'module':
        this.modules.set(moduleKey(record.module.deviceId, record.module.moduleId), record.module);
        return;
      case 'deleteModule':
        this.#dropModule(moduleKey(record.deviceId, record.moduleId));
        return;
      case 'twin':
        this.twins.set(record.deviceId, record.twin);
        return;
      case 'c2d':
        this.c2d.set(record.id, { id: record.id, message: { ...record.message, body: Buffer.from(record.message.body, 'base64') } });
        return;
      case 'c2dDeliveryCount': {
        const entry = this.c2d.get(record.id);
        if (entry) entry.message.deliveryCount = record.deliveryCount;
        return;
      }
      case 'c2dDelete':
        this.c2d.delete(record.id);
        return;
      case 'subscriptions':
        if (record.topicFilters.length === 0) this.subscriptions.delete(record.deviceId);
        else this.subscriptions.set(record.deviceId, record.topicFilters);
        return;
      case 'policy':
        this.policies.set(record.policy, record.key);
        return;
      case 'snapshot':
        this.#clear();
        for (const device of record.devices) this.devices.set(device.deviceId, device);
        for (const module of record.modules ?? []) this.modules.set(moduleKey(module.deviceId, module.moduleId), module);
        for (const [deviceId, twin] of record.twins) this.twins.set(deviceId, twin);
        for (const entry of record.c2d) this.apply({ op: 'c2d', ...entry });
        for (const [deviceId, filters] of record.subscriptions) this.subscriptions.set(deviceId, filters);
        for (const [policy, key] of record.policies) this.policies.set(policy, key);
        return;
    }
  }

  snapshot(): SnapshotRecord {
    return {
      op: 'snapshot',
      format: FORMAT,
      devices: [...this.devices.values()],
      modules: [...this.modules.values()],
      twins: [...this.twins],
      c2d: [...this.c2d.values()].map(toWire),
      subscriptions: [...this.subscriptions],
      policies: [...this.policies],
    };
  }

  #dropModule(key: string): void {
    this.modules.delete(key);
    this.twins.delete(key);
    this.subscriptions.delete(key);
  }

  #clear(): void {
    this.devices.clear();
    this.modules.clear();
    this.twins.clear();
    this.c2d.clear();
    this.subscriptions.clear();
    this.policies.clear();
  }
}

const OPS = new Set(['device', 'deleteDevice', 'module', 'deleteModule', 'twin', 'c2d', 'c2dDeliveryCount', 'c2dDelete', 'subscriptions', 'policy', 'snapshot']);

/** Checks what a journal record claims to be; the checksum already vouches for its bytes. */
export function asStateRecord(value: unknown, first: boolean): StateRecord | string {
  const op = (value as { op?: unknown } | null)?.op;
  if (typeof op !== 'string' || !OPS.has(op)) return `unknown record ${JSON.stringify(op)}`;
  if (first !== (op === 'snapshot')) return first ? 'the first record is not a snapshot' : 'a snapshot after the first record';
  if (op === 'snapshot' && !READABLE_FORMATS.includes((value as { format?: unknown }).format)) {
    return `snapshot format ${String((value as { format?: unknown }).format)}, this hub reads formats ${READABLE_FORMATS.join(' and ')}`;
  }
  return value as StateRecord;
}
