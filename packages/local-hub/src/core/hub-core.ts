// The hub core: one composition of the registry, authentication, sessions, C2D queues, twins,
// direct methods and telemetry, each in its own file, behind the HubCore interface the
// front-ends use and the HubService interface the typed handle and the REST API use.
import { systemClock, type Clock } from '@switchyard/time';
import { Authenticator } from './auth.ts';
import type { ResolvedC2DOptions } from './c2d-options.ts';
import { C2DQueues } from './c2d-queue.ts';
import { CounterTable } from './counters.ts';
import { TypedEmitter, type HubEvents, type SessionInfo } from './events.ts';
import { identityId, refuseModuleC2D, reportedIdentity } from './identity.ts';
import { IdentityDirectory } from './identities.ts';
import { MethodCalls, type MethodRequest } from './methods.ts';
import { ModuleRegistry } from './module-registry.ts';
import type { ModuleInput, ModuleRecord, ModuleService, ModuleTwin } from './module-types.ts';
import { DeviceRegistry, type DeviceInput } from './registry.ts';
import { SessionTable } from './sessions.ts';
import { TelemetryLog, type TelemetryFaultGate } from './telemetry.ts';
import { HubTimers } from './timers.ts';
import { TwinTable, type ServiceTwin } from './twins.ts';
import type { PolicyAuthResult } from './policies.ts';
import type { HubStore } from '../store/index.ts';
import type {
  AuthResult, C2DMessage, C2DSendInput, DeviceProtocol, DeviceRecord, DeviceSession, HubCore, HubCounters, HubLogger,
  HubService, HubStats, LockedC2DMessage, MethodResult, Settlement, TelemetryFilter, TelemetryInput, TelemetryRecord, TwinDocument,
} from './types.ts';

export { LIMITS, SERVICE_POLICY } from './iothub-limits.ts';
export type { TelemetryFaultGate } from './telemetry.ts';

export interface HubCoreOptions {
  /** The hub's name as devices put it in HostName and SAS audiences. */
  hostName: string;
  /** Further names a SAS audience may use (e.g. `localhost`, the bind address); each may carry `:port`. */
  alternateHostNames?: string[];
  store: HubStore;
  logger: HubLogger;
  /** Judges token expiry, C2D locks and TTLs, and runs method timeouts; the system clock by default. */
  clock?: Clock;
  /** How many received telemetry records to keep for `telemetry()`; default 10,000. */
  telemetryCapacity?: number;
  /** Fault injection on the telemetry path (see src/faults/); none by default. */
  faults?: TelemetryFaultGate;
  /** C2D rules a user may change (the lock timeout); IoT Hub's by default. Validated by resolveC2DOptions. */
  c2d?: ResolvedC2DOptions;
}

/**
 * The single implementation of IoT Hub semantics. Front-ends call the HubCore side; the typed
 * handle and the REST API call the HubService side.
 */
export class LocalHubCore extends TypedEmitter<HubEvents> implements HubCore, HubService, ModuleService {
  readonly hostName: string;
  readonly logger: HubLogger;
  readonly #timers: HubTimers;
  readonly #counters = new CounterTable();
  readonly #registry: DeviceRegistry;
  readonly #modules: ModuleRegistry;
  /** Devices and modules by identity id, for everything that is per identity (all but C2D). */
  readonly #identities: IdentityDirectory;
  readonly #auth: Authenticator;
  readonly #sessions: SessionTable;
  readonly #twins: TwinTable;
  readonly #c2d: C2DQueues;
  readonly #methods: MethodCalls;
  readonly #telemetry: TelemetryLog;
  #closed = false;

  constructor(options: HubCoreOptions) {
    super();
    const { store, logger } = options;
    const clock = options.clock ?? systemClock;
    const isClosed = (): boolean => this.#closed;
    const logRefusal = this.logRefusal.bind(this);
    this.hostName = options.hostName;
    this.logger = logger;
    this.#timers = new HubTimers(clock);
    const counters = this.#counters;
    const timers = this.#timers;
    this.#registry = new DeviceRegistry({
      store, logger, clock, isClosed,
      hooks: {
        created: (device) => this.#twins.create(device.deviceId),
        revoked: (deviceId, reason) => {
          this.#sessions.kickDevice(deviceId, reason);
          // A disabled device's modules cannot connect either (authentication checks the device's
          // status), so their live sessions end with it; new device keys leave the modules' alone.
          if (this.#registry.peek(deviceId)?.status === 'disabled') {
            for (const id of this.#modules.idsOf(deviceId)) this.#sessions.kickDevice(id, reason);
          }
        },
        removing: (deviceId) => {
          this.#modules.removingDevice(deviceId);
          this.#sessions.kickDevice(deviceId, 'device removed');
          this.#twins.drop(deviceId);
          this.#c2d.drop(deviceId);
          this.#counters.delete(deviceId);
        },
      },
    });
    const registry = this.#registry;
    this.#modules = new ModuleRegistry({
      devices: registry, store, logger, clock,
      hooks: {
        created: (id) => this.#twins.create(id),
        revoked: (id, reason) => this.#sessions.kickDevice(id, reason),
        removing: (id) => {
          this.#sessions.kickDevice(id, 'module removed');
          this.#twins.drop(id);
          this.#counters.delete(id);
        },
      },
    });
    const identities = new IdentityDirectory(registry, this.#modules);
    this.#identities = identities;
    this.#auth = new Authenticator({
      hostName: options.hostName,
      hosts: [...new Set([options.hostName, ...(options.alternateHostNames ?? [])])],
      registry: identities, counters, store, logger, clock, logRefusal,
    });
    this.#sessions = new SessionTable({
      pump: (deviceId) => this.#c2d.pump(deviceId),
      methodReceiverReady: (deviceId) => this.#methods.receiverReady(deviceId),
      connected: (info) => this.#emitSafe('connected', reportedSession(info)),
      disconnected: (info) => this.#emitSafe('disconnected', reportedSession(info)),
    }, identities, counters, logger);
    const sessions = this.#sessions;
    this.#twins = new TwinTable({ registry: identities, sessions, counters, store, logger, clock });
    // C2D is the device registry's alone: IoT Hub has no cloud-to-device queue for modules.
    this.#c2d = new C2DQueues({
      registry, sessions, counters, store, logger, clock, timers, isClosed, logRefusal,
      ...(options.c2d === undefined ? {} : { lockMs: options.c2d.lockTimeoutMs }),
      settled: (event) => this.#emitSafe('c2dSettled', event),
    });
    this.#methods = new MethodCalls({ registry: identities, sessions, counters, logger, timers, isClosed });
    this.#telemetry = new TelemetryLog({
      registry: identities, counters, logger, clock, logRefusal,
      capacity: options.telemetryCapacity ?? 10_000,
      faults: options.faults,
      accepted: (record) => this.#emitSafe('telemetry', record),
    });
  }

  // identity and authentication
  getDevice(deviceId: string): DeviceRecord | undefined { return this.#registry.get(deviceId); }
  /** How a device authenticates and its generation, without copying the record (telemetry's hot path). */
  deviceIdentity(deviceId: string): { authType: DeviceRecord['authentication']['type']; generationId: string } | undefined {
    const device = this.#registry.peek(deviceId);
    return device && { authType: device.authentication.type, generationId: device.generationId };
  }
  listDevices(): DeviceRecord[] { return this.#registry.list(); }
  createDevice(deviceId: string, options?: DeviceInput): DeviceRecord { return this.#registry.create(deviceId, options); }
  putDevice(deviceId: string, body: DeviceInput, ifMatch?: string): DeviceRecord { return this.#registry.put(deviceId, body, ifMatch); }
  removeDevice(deviceId: string, ifMatch?: string): void { this.#registry.remove(deviceId, ifMatch); }
  hasIdentity(id: string): boolean { return this.#identities.has(id); }

  // module identities
  createModule(deviceId: string, moduleId: string, input?: ModuleInput): ModuleRecord { return this.#modules.create(deviceId, moduleId, input); }
  putModule(deviceId: string, moduleId: string, input: ModuleInput, ifMatch?: string): ModuleRecord { return this.#modules.put(deviceId, moduleId, input, ifMatch); }
  getModule(deviceId: string, moduleId: string): ModuleRecord | undefined { return this.#modules.get(deviceId, moduleId); }
  requireModule(deviceId: string, moduleId: string): ModuleRecord { return structuredClone(this.#modules.require(deviceId, moduleId)); }
  listModules(deviceId: string): ModuleRecord[] { return this.#modules.list(deviceId); }
  removeModule(deviceId: string, moduleId: string, ifMatch?: string): void { this.#modules.remove(deviceId, moduleId, ifMatch); }
  readModuleTwin(deviceId: string, moduleId: string): ModuleTwin {
    this.#modules.require(deviceId, moduleId);
    return { ...this.#twins.read(identityId(deviceId, moduleId)), deviceId, moduleId };
  }
  updateModuleDesired(deviceId: string, moduleId: string, patch: Record<string, unknown>, ifMatch?: string): ModuleTwin {
    this.#modules.require(deviceId, moduleId);
    return { ...this.#twins.updateDesired(identityId(deviceId, moduleId), patch, ifMatch), deviceId, moduleId };
  }
  updateModuleTwin(deviceId: string, moduleId: string, patch: { tags?: Record<string, unknown>; desired?: Record<string, unknown> }, ifMatch?: string): ModuleTwin {
    this.#modules.require(deviceId, moduleId);
    return { ...this.#twins.update(identityId(deviceId, moduleId), patch, ifMatch), deviceId, moduleId };
  }
  // Async so that an unknown module rejects, as every other failure of a method call does.
  async invokeModuleMethod(deviceId: string, moduleId: string, request: MethodRequest): Promise<MethodResult> {
    this.#modules.require(deviceId, moduleId);
    return this.#methods.invoke(identityId(deviceId, moduleId), request);
  }
  /** The `iothubowner` policy's key, for service connection strings. */
  get serviceKey(): string { return this.#auth.serviceKey; }
  /** A service SAS token for `iothubowner`, e.g. for REST calls in tests. */
  serviceToken(ttlSeconds?: number): string { return this.#auth.serviceToken(ttlSeconds); }
  authenticateSas(deviceId: string, token: string): AuthResult { return this.#auth.sas(deviceId, token); }
  /**
   * Accepts a SHA-1 or SHA-256 thumbprint, or both (Node's `fingerprint` and `fingerprint256`), so
   * a front-end need not know which one the registry holds.
   */
  authenticateX509(deviceId: string, thumbprint: string | readonly string[]): AuthResult { return this.#auth.x509(deviceId, thumbprint); }
  authenticateService(token: string, protocol?: DeviceProtocol): PolicyAuthResult { return this.#auth.service(token, protocol); }
  /** The key of a built-in shared access policy (iothubowner, service, device, registryRead, registryReadWrite). */
  policyKey(policy: string): string | undefined { return this.#auth.policyKey(policy); }

  // sessions
  openSession(deviceId: string, protocol: DeviceProtocol, connectionId: string): DeviceSession {
    return this.#sessions.open(deviceId, protocol, connectionId);
  }
  connectionOpened(protocol: DeviceProtocol, connectionId: string): void { this.#sessions.connectionOpened(protocol, connectionId); }
  connectionClosed(_protocol: DeviceProtocol, connectionId: string): void { this.#sessions.connectionClosed(connectionId); }

  // telemetry
  acceptTelemetry(deviceId: string, protocol: DeviceProtocol, message: TelemetryInput): TelemetryRecord {
    return this.#telemetry.accept(deviceId, protocol, message);
  }
  telemetry(filter?: TelemetryFilter): TelemetryRecord[] { return this.#telemetry.list(filter); }
  onTelemetry(listener: (record: TelemetryRecord) => void): () => void { return this.#telemetry.onRecord(listener); }

  // cloud to device
  sendC2D(deviceId: string, input: C2DSendInput): C2DMessage {
    refuseModuleC2D(deviceId);
    return this.#c2d.send(deviceId, input);
  }
  pollC2D(deviceId: string): LockedC2DMessage | undefined { return this.#c2d.poll(deviceId); }
  settleC2D(deviceId: string, lockToken: string, how: Settlement): void { this.#c2d.settle(deviceId, lockToken, how); }

  // twins
  getTwin(deviceId: string): TwinDocument { return this.#twins.get(deviceId); }
  patchReported(deviceId: string, patch: Record<string, unknown>): number { return this.#twins.patchReported(deviceId, patch); }
  readTwin(deviceId: string): ServiceTwin { return this.#twins.read(deviceId); }
  updateDesired(deviceId: string, patch: Record<string, unknown>, ifMatch?: string): ServiceTwin { return this.#twins.updateDesired(deviceId, patch, ifMatch); }
  updateTwin(deviceId: string, patch: { tags?: Record<string, unknown>; desired?: Record<string, unknown> }, ifMatch?: string): ServiceTwin {
    return this.#twins.update(deviceId, patch, ifMatch);
  }

  // methods
  invokeMethod(deviceId: string, request: MethodRequest): Promise<MethodResult> { return this.#methods.invoke(deviceId, request); }
  methodResponse(deviceId: string, requestId: string, result: MethodResult): void { this.#methods.respond(deviceId, requestId, result); }

  // counters and diagnostics
  counters(deviceId: string): HubCounters {
    this.#identities.require(deviceId);
    return { ...this.#counters.of(deviceId) };
  }

  stats(): HubStats {
    const devices: HubStats['devices'] = {};
    for (const deviceId of this.#registry.ids()) {
      const queuedC2D = this.#c2d.depth(deviceId);
      devices[deviceId] = { ...this.#counters.of(deviceId), queuedC2D };
    }
    const { connections, connectedIdentities } = this.#sessions.stats();
    return { connections, connectedIdentities: connectedIdentities.map(reportedSession), devices };
  }

  logRefusal(event: { deviceId?: string; protocol: DeviceProtocol; connectionId?: string; what: string; why: string }): void {
    this.logger.warn('refused', { ...event });
    const { deviceId, ...rest } = event;
    this.#emitSafe('refused', deviceId === undefined ? rest : { ...reportedIdentity(deviceId), ...rest });
  }

  #emitSafe<K extends keyof HubEvents & string>(event: K, ...args: HubEvents[K]): void {
    try {
      this.emit(event, ...args);
    } catch (error) {
      this.logger.warn(`'${event}' listener threw`, { error: String(error) });
    }
  }

  // lifecycle
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The hub is shutting down: sessions that end from now on (as front-ends cut their
   * connections) are reported as 'hub closing' rather than as ordinary disconnects.
   */
  beginClose(): void {
    this.#sessions.beginClose();
  }

  /** Kicks every session, fails pending method calls, clears timers. Does not close the store. */
  close(): void {
    if (this.#closed) return;
    this.#sessions.kickAll('hub closing');
    this.#closed = true;
    this.#methods.close();
    this.#timers.clearAll();
    this.#telemetry.close();
    this.removeAllListeners();
  }
}

/** Sessions are keyed by identity id; what the hub reports names the device and the module apart. */
function reportedSession<T extends SessionInfo>(info: T): T {
  return { ...info, ...reportedIdentity(info.deviceId) };
}

export function createHubCore(options: HubCoreOptions): LocalHubCore {
  return new LocalHubCore(options);
}
