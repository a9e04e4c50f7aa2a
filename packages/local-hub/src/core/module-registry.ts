// Module identities in the registry: records under an existing device, with their own keys,
// persisted in the store. What creating or removing a module means for its sessions and twin is
// the hub core's business, told through the hooks (as for devices, registry.ts).
import { randomBytes } from 'node:crypto';
import type { Clock } from '@switchyard/time';
import { HubError } from './errors.ts';
import { checkEtag, newEtag } from './etag.ts';
import { identityId, moduleIdProblem } from './identity.ts';
import type { ModuleInput, ModuleRecord } from './module-types.ts';
import { normalizeAuthentication, type DeviceRegistry } from './registry.ts';
import type { HubStore } from '../store/index.ts';
import type { HubLogger } from './types.ts';

export interface ModuleRegistryHooks {
  /** A module was registered: its twin must exist from now on. `id` is `<deviceId>/<moduleId>`. */
  created(id: string): void;
  /** The module's live sessions must end (its credentials changed). */
  revoked(id: string, reason: string): void;
  /** The module is about to be deleted (alone or with its device): end its sessions, drop its twin and counters. */
  removing(id: string): void;
}

export interface ModuleRegistryOptions {
  devices: DeviceRegistry;
  store: HubStore;
  logger: HubLogger;
  clock: Clock;
  hooks: ModuleRegistryHooks;
}

function normalizeManagedBy(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value !== 'string' || value.length > 128) throw new HubError('ArgumentInvalid', 'managedBy must be a string of at most 128 characters.');
  return value;
}

export class ModuleRegistry {
  /** Keyed by identity id, `<deviceId>/<moduleId>`. */
  readonly #modules = new Map<string, ModuleRecord>();
  readonly #o: ModuleRegistryOptions;

  constructor(options: ModuleRegistryOptions) {
    this.#o = options;
    for (const module of options.store.loadModules()) this.#modules.set(identityId(module.deviceId, module.moduleId), module);
  }

  /** Identity ids of every module. */
  ids(): IterableIterator<string> {
    return this.#modules.keys();
  }

  /** The live record (not a copy): for the core's own reads only. */
  peek(deviceId: string, moduleId: string): ModuleRecord | undefined {
    return this.#modules.get(identityId(deviceId, moduleId));
  }

  get(deviceId: string, moduleId: string): ModuleRecord | undefined {
    const module = this.peek(deviceId, moduleId);
    return module && structuredClone(module);
  }

  /** The module, or DeviceNotFound / ModuleNotFound; Forbidden once the hub closed. */
  require(deviceId: string, moduleId: string): ModuleRecord {
    this.#o.devices.require(deviceId);
    const module = this.peek(deviceId, moduleId);
    if (!module) throw new HubError('ModuleNotFound', `Module '${moduleId}' is not registered on device '${deviceId}'.`);
    return module;
  }

  /** DeviceNotFound when the device is absent. */
  list(deviceId: string): ModuleRecord[] {
    this.#o.devices.require(deviceId);
    return [...this.#modules.values()].filter((m) => m.deviceId === deviceId).map((m) => structuredClone(m));
  }

  create(deviceId: string, moduleId: string, input: ModuleInput = {}): ModuleRecord {
    this.#o.devices.require(deviceId);
    const problem = moduleIdProblem(moduleId);
    if (problem !== undefined) throw new HubError('ArgumentInvalid', problem);
    const id = identityId(deviceId, moduleId);
    if (this.#modules.has(id)) throw new HubError('ModuleAlreadyExistsOnDevice', `A module with id '${moduleId}' is already registered on device '${deviceId}'.`);
    const module: ModuleRecord = {
      deviceId,
      moduleId,
      authentication: normalizeAuthentication(input.authentication),
      managedBy: normalizeManagedBy(input.managedBy),
      etag: newEtag(),
      generationId: String(BigInt(`0x${randomBytes(7).toString('hex')}`)),
      createdAt: new Date(this.#o.clock.now()).toISOString(),
    };
    this.#o.store.putModule(module);
    this.#modules.set(id, module);
    this.#o.hooks.created(id);
    this.#o.logger.info('module created', { deviceId, moduleId, authentication: module.authentication.type });
    return structuredClone(module);
  }

  /** IoT Hub's PUT /devices/{id}/modules/{mid}: create, or update when `ifMatch` matches (or is '*'). */
  put(deviceId: string, moduleId: string, input: ModuleInput, ifMatch?: string): ModuleRecord {
    this.#o.devices.require(deviceId);
    const existing = this.peek(deviceId, moduleId);
    if (!existing) return this.create(deviceId, moduleId, input);
    if (ifMatch === undefined) {
      throw new HubError('ModuleAlreadyExistsOnDevice', `A module with id '${moduleId}' is already registered on device '${deviceId}'; send If-Match with its etag (or '*') to update it.`);
    }
    checkEtag(existing.etag, ifMatch, `module '${moduleId}' of device '${deviceId}'`);
    const updated: ModuleRecord = {
      ...existing,
      authentication: input.authentication === undefined ? existing.authentication : normalizeAuthentication(input.authentication),
      managedBy: input.managedBy === undefined ? existing.managedBy : normalizeManagedBy(input.managedBy),
      etag: newEtag(),
    };
    this.#o.store.putModule(updated);
    const id = identityId(deviceId, moduleId);
    this.#modules.set(id, updated);
    if (JSON.stringify(updated.authentication) !== JSON.stringify(existing.authentication)) this.#o.hooks.revoked(id, 'module credentials changed');
    return structuredClone(updated);
  }

  remove(deviceId: string, moduleId: string, ifMatch?: string): void {
    const existing = this.require(deviceId, moduleId);
    if (ifMatch !== undefined) checkEtag(existing.etag, ifMatch, `module '${moduleId}' of device '${deviceId}'`);
    const id = identityId(deviceId, moduleId);
    this.#o.hooks.removing(id);
    this.#o.store.deleteModule(deviceId, moduleId);
    this.#modules.delete(id);
    this.#o.logger.info('module removed', { deviceId, moduleId });
  }

  /**
   * The device is being removed: its modules go too. The store drops their records with the
   * device's, in the same write, so only the hooks and the in-memory table are left to do.
   */
  removingDevice(deviceId: string): void {
    for (const [id, module] of [...this.#modules]) {
      if (module.deviceId !== deviceId) continue;
      this.#o.hooks.removing(id);
      this.#modules.delete(id);
    }
  }

  /** Identity ids of the device's modules. */
  idsOf(deviceId: string): string[] {
    return [...this.#modules.values()].filter((m) => m.deviceId === deviceId).map((m) => identityId(m.deviceId, m.moduleId));
  }
}
