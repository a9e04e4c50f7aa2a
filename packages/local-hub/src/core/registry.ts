// The identity registry: device records, their credentials and status, persisted in the store.
// What removing or disabling a device means for its sessions, queue and twin is the caller's
// (the hub core's) business, told through the hooks.
import { randomBytes } from 'node:crypto';
import type { Clock } from '@switchyard/time';
import { HubError } from './errors.ts';
import { checkEtag, newEtag } from './etag.ts';
import { generateKey, isValidKey } from './sas.ts';
import type { HubStore } from '../store/index.ts';
import type { DeviceAuthentication, DeviceInput, DeviceRecord, HubLogger } from './types.ts';

export type { DeviceInput } from './types.ts';

const DEVICE_ID = /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/;
const THUMBPRINT = /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/;
const STATUS_REASON_MAX = 128;

export function normalizeThumbprint(value: string): string {
  return value.replace(/:/g, '').trim().toUpperCase();
}

export interface RegistryHooks {
  /** A device was registered: its twin must exist from now on. */
  created(device: DeviceRecord): void;
  /** The device's live sessions must end (disabled, or its credentials changed). */
  revoked(deviceId: string, reason: string): void;
  /** The device is about to be deleted: end its sessions, drop its queue, twin and counters. */
  removing(deviceId: string): void;
}

export interface RegistryOptions {
  store: HubStore;
  logger: HubLogger;
  clock: Clock;
  hooks: RegistryHooks;
  /** True once the hub closed; every registry call then refuses. */
  isClosed(): boolean;
}

export class DeviceRegistry {
  readonly #devices = new Map<string, DeviceRecord>();
  readonly #options: RegistryOptions;

  constructor(options: RegistryOptions) {
    this.#options = options;
    for (const device of options.store.loadDevices()) this.#devices.set(device.deviceId, device);
  }

  has(deviceId: string): boolean {
    return this.#devices.has(deviceId);
  }

  /** The live record (not a copy): for the core's own reads only. */
  peek(deviceId: string): DeviceRecord | undefined {
    return this.#devices.get(deviceId);
  }

  get(deviceId: string): DeviceRecord | undefined {
    const device = this.#devices.get(deviceId);
    return device && structuredClone(device);
  }

  list(): DeviceRecord[] {
    return [...this.#devices.values()].map((d) => structuredClone(d));
  }

  ids(): IterableIterator<string> {
    return this.#devices.keys();
  }

  /** The device, or DeviceNotFound; Forbidden once the hub closed. */
  require(deviceId: string): DeviceRecord {
    this.checkOpen();
    const device = this.#devices.get(deviceId);
    if (!device) throw new HubError('DeviceNotFound', `Device '${deviceId}' is not registered.`);
    return device;
  }

  checkOpen(): void {
    if (this.#options.isClosed()) throw new HubError('Forbidden', 'The hub is closed.');
  }

  create(deviceId: string, input: DeviceInput = {}): DeviceRecord {
    this.checkOpen();
    if (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId)) {
      throw new HubError('ArgumentInvalid', `Device id '${String(deviceId)}' is invalid: use 1-128 characters from A-Z a-z 0-9 - . % _ * ? ! ( ) , : = @ $ '.`);
    }
    if (this.#devices.has(deviceId)) throw new HubError('DeviceAlreadyExists', `A device with id '${deviceId}' is already registered.`);
    const device: DeviceRecord = {
      deviceId,
      authentication: normalizeAuthentication(input.authentication),
      status: normalizeStatus(input.status),
      ...statusReasonOf(input.statusReason, undefined),
      etag: newEtag(),
      generationId: String(BigInt(`0x${randomBytes(7).toString('hex')}`)),
      createdAt: new Date(this.#options.clock.now()).toISOString(),
    };
    this.#options.store.putDevice(device);
    this.#devices.set(deviceId, device);
    this.#options.hooks.created(device);
    this.#options.logger.info('device created', { deviceId, authentication: device.authentication.type });
    return structuredClone(device);
  }

  /** IoT Hub's PUT /devices/{id}: create, or update when `ifMatch` matches (or is '*'). */
  put(deviceId: string, input: DeviceInput, ifMatch?: string): DeviceRecord {
    const existing = this.#devices.get(deviceId);
    if (!existing) return this.create(deviceId, input);
    this.checkOpen();
    if (ifMatch === undefined) throw new HubError('DeviceAlreadyExists', `A device with id '${deviceId}' is already registered; send If-Match with its etag (or '*') to update it.`);
    checkEtag(existing.etag, ifMatch, `device '${deviceId}'`);
    const status = input.status === undefined ? existing.status : normalizeStatus(input.status);
    const { statusReason: _previous, ...rest } = existing;
    const updated: DeviceRecord = {
      ...rest,
      authentication: input.authentication === undefined ? existing.authentication : normalizeAuthentication(input.authentication),
      status,
      ...statusReasonOf(input.statusReason, existing.statusReason),
      ...(status === existing.status ? {} : { statusUpdatedTime: new Date(this.#options.clock.now()).toISOString() }),
      etag: newEtag(),
    };
    this.#options.store.putDevice(updated);
    this.#devices.set(deviceId, updated);
    const credentialsChanged = JSON.stringify(updated.authentication) !== JSON.stringify(existing.authentication);
    if (updated.status === 'disabled' || credentialsChanged) {
      this.#options.hooks.revoked(deviceId, updated.status === 'disabled' ? 'device disabled' : 'device credentials changed');
    }
    return structuredClone(updated);
  }

  remove(deviceId: string, ifMatch?: string): void {
    const existing = this.require(deviceId);
    if (ifMatch !== undefined) checkEtag(existing.etag, ifMatch, `device '${deviceId}'`);
    this.#options.hooks.removing(deviceId);
    this.#options.store.deleteDevice(deviceId);
    this.#devices.delete(deviceId);
    this.#options.logger.info('device removed', { deviceId });
  }
}

/** Also the rule for module identities' credentials (module-registry.ts). */
export function normalizeAuthentication(auth: DeviceAuthentication | undefined): DeviceAuthentication {
  if (auth === undefined) return { type: 'sas', primaryKey: generateKey(), secondaryKey: generateKey() };
  if (auth.type === 'sas') {
    // IoT Hub generates keys the caller leaves empty (REST bodies with null keys).
    const primaryKey = auth.primaryKey || generateKey();
    const secondaryKey = auth.secondaryKey || generateKey();
    for (const [field, key] of [['primaryKey', primaryKey], ['secondaryKey', secondaryKey]] as const) {
      if (!isValidKey(key)) throw new HubError('ArgumentInvalid', `authentication.${field} must be base64 of 16 to 64 bytes.`);
    }
    return { type: 'sas', primaryKey, secondaryKey };
  }
  if (auth.type === 'x509-thumbprint') {
    const primaryThumbprint = normalizeThumbprint(auth.primaryThumbprint ?? '');
    const secondaryThumbprint = auth.secondaryThumbprint ? normalizeThumbprint(auth.secondaryThumbprint) : undefined;
    for (const [field, value] of [['primaryThumbprint', primaryThumbprint], ['secondaryThumbprint', secondaryThumbprint]] as const) {
      if (value !== undefined && !THUMBPRINT.test(value)) throw new HubError('ArgumentInvalid', `authentication.${field} must be a SHA-1 (40 hex) or SHA-256 (64 hex) thumbprint.`);
    }
    return { type: 'x509-thumbprint', primaryThumbprint, ...(secondaryThumbprint ? { secondaryThumbprint } : {}) };
  }
  throw new HubError('ArgumentInvalid', `authentication.type must be 'sas' or 'x509-thumbprint'.`);
}

/** The reason to keep: the given one, none for `null`, the existing one when not given. */
function statusReasonOf(given: string | null | undefined, existing: string | undefined): { statusReason?: string } {
  if (given === null) return {};
  if (given === undefined) return existing === undefined ? {} : { statusReason: existing };
  if (typeof given !== 'string' || given.length > STATUS_REASON_MAX) throw new HubError('ArgumentInvalid', `statusReason must be a string of at most ${STATUS_REASON_MAX} characters.`);
  return given === '' ? {} : { statusReason: given };
}

function normalizeStatus(status: unknown): 'enabled' | 'disabled' {
  if (status === undefined || status === 'enabled') return 'enabled';
  if (status === 'disabled') return 'disabled';
  throw new HubError('ArgumentInvalid', `status must be 'enabled' or 'disabled'.`);
}
