import { randomBytes, randomUUID } from 'node:crypto';
import { HubError } from './errors.ts';
import { TypedEmitter, type C2DOutcome, type HubEvents } from './events.ts';
import { authenticatePolicyToken, hasRight, loadPolicyKeys, type PolicyAuthResult } from './policies.ts';
import { audienceMatches, createSasToken, generateKey, isValidKey, parseSasToken, signatureMatches } from './sas.ts';
import { mergePatch, sectionSize, TWIN_SECTION_LIMIT_BYTES, twinEtag, validatePatch } from './twin.ts';
import type { HubStore, StoredTwin } from '../store/index.ts';
import type {
  AuthFailure, AuthResult, C2DMessage, C2DReceiver, C2DSendInput, DesiredReceiver, DeviceAuthentication, DeviceProtocol,
  DeviceRecord, DeviceSession, HubCore, HubCounters, HubLogger, HubService, HubStats, LockedC2DMessage, MethodReceiver,
  MethodResult, Settlement, TelemetryInput, TelemetryRecord, TwinDocument,
} from './types.ts';

/** Injected time source (epoch ms), so lock and TTL rules are testable without waiting. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** IoT Hub limits and C2D rules (iothub-facts.md §6 and C.3). */
export const LIMITS = {
  telemetryBytes: 256 * 1024,
  c2dBytes: 64 * 1024,
  methodPayloadBytes: 128 * 1024,
  c2dQueueDepth: 50,
  c2dLockMs: 60_000,
  c2dDefaultTtlSeconds: 3600,
  c2dMaxTtlSeconds: 2 * 24 * 3600,
  maxDeliveryCount: 10,
  methodDefaultResponseTimeoutSeconds: 30,
  methodMaxTimeoutSeconds: 300,
} as const;

export const SERVICE_POLICY = 'iothubowner';

const isMqtt = (p: DeviceProtocol): boolean => p === 'mqtt' || p === 'mqtt-ws';
const isAmqp = (p: DeviceProtocol): boolean => p === 'amqp' || p === 'amqp-ws';
/** HTTPS holds no connection to replace; MQTT and AMQP each keep one per device. */
const sameFamily = (a: DeviceProtocol, b: DeviceProtocol): boolean => (isMqtt(a) && isMqtt(b)) || (isAmqp(a) && isAmqp(b));

export interface HubCoreOptions {
  /** The hub's name as devices put it in HostName and SAS audiences. */
  hostName: string;
  /** Further names a SAS audience may use (e.g. `localhost`, the bind address); each may carry `:port`. */
  alternateHostNames?: string[];
  store: HubStore;
  logger: HubLogger;
  clock?: Clock;
  /** How many received telemetry records to keep for `telemetry()`; default 10,000. */
  telemetryCapacity?: number;
  /** Fault injection on the telemetry path (see src/faults/); none by default. */
  faults?: TelemetryFaultGate;
}

/** What the core asks of a fault injector: whether to refuse telemetry, and what was accepted. */
export interface TelemetryFaultGate {
  /** Throws the HubError to refuse the device's telemetry with while a fault window is open. */
  admitTelemetry(deviceId: string, protocol: DeviceProtocol): void;
  /** Sees every accepted message; one carrying AzIoTHub_Fault* properties schedules its fault. */
  telemetryAccepted(record: TelemetryRecord): void;
}

interface QueueEntry {
  id: string;
  message: C2DMessage;
  lockToken?: string;
  lockedUntil?: number;
  lockTimer?: NodeJS.Timeout;
}

interface PendingMethod {
  deviceId: string;
  resolve(result: MethodResult): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

const DEVICE_ID = /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/;
const THUMBPRINT = /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/;

function zeroCounters(): HubCounters {
  return {
    telemetryReceived: 0, c2dSent: 0, c2dCompleted: 0, c2dAbandoned: 0, c2dRejected: 0, c2dDeadLettered: 0,
    httpsC2DPolls: 0, twinReads: 0, twinReportedUpdates: 0, methodCalls: 0, authFailures: 0,
  };
}

function normalizeThumbprint(value: string): string {
  return value.replace(/:/g, '').trim().toUpperCase();
}

function newEtag(): string {
  return randomBytes(9).toString('base64');
}

class Session implements DeviceSession {
  closed = false;
  c2d: C2DReceiver | undefined;
  method: MethodReceiver | undefined;
  desired: DesiredReceiver | undefined;
  readonly #kickListeners: Array<(reason: string) => void> = [];

  constructor(
    private readonly core: LocalHubCore,
    readonly deviceId: string,
    readonly protocol: DeviceProtocol,
    readonly connectionId: string,
  ) {}

  onKicked(listener: (reason: string) => void): void {
    this.#kickListeners.push(listener);
  }

  kicked(reason: string): void {
    for (const listener of this.#kickListeners.splice(0)) {
      try {
        listener(reason);
      } catch (error) {
        this.core.logger.warn('session kick listener threw', { deviceId: this.deviceId, protocol: this.protocol, error: String(error) });
      }
    }
  }

  close(): void {
    this.core.endSession(this, 'closed');
  }

  setC2DReceiver(receiver: C2DReceiver | undefined): void {
    if (this.closed) return;
    this.c2d = receiver;
    if (receiver) this.core.pump(this.deviceId);
  }

  pumpC2D(): void {
    if (!this.closed) this.core.pump(this.deviceId);
  }

  setMethodReceiver(receiver: MethodReceiver | undefined): void {
    if (this.closed) return;
    this.method = receiver;
    if (receiver) this.core.methodReceiverReady(this.deviceId);
  }

  setDesiredReceiver(receiver: DesiredReceiver | undefined): void {
    if (!this.closed) this.desired = receiver;
  }
}

/**
 * The single implementation of IoT Hub semantics. Front-ends call the HubCore side; the typed
 * handle and the REST API call the HubService side.
 */
export class LocalHubCore extends TypedEmitter<HubEvents> implements HubCore, HubService {
  readonly hostName: string;
  readonly logger: HubLogger;
  readonly #hosts: string[];
  readonly #store: HubStore;
  readonly #clock: Clock;
  readonly #telemetryCapacity: number;
  readonly #faults: TelemetryFaultGate | undefined;

  readonly #devices = new Map<string, DeviceRecord>();
  readonly #twins = new Map<string, StoredTwin>();
  readonly #queues = new Map<string, QueueEntry[]>();
  readonly #counters = new Map<string, HubCounters>();
  readonly #sessions = new Map<string, Set<Session>>();
  readonly #connections = new Map<string, DeviceProtocol>();
  readonly #telemetry: TelemetryRecord[] = [];
  readonly #telemetryListeners = new Set<(record: TelemetryRecord) => void>();
  readonly #pendingMethods = new Map<string, PendingMethod>();
  readonly #methodWaiters = new Map<string, Set<() => void>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #pumping = new Set<string>();
  readonly #pumpAgain = new Set<string>();
  #sequence = 0;
  #requestSequence = 0;
  #serviceKey: string;
  readonly #policyKeys: Map<string, string>;
  #closed = false;
  #closing = false;

  constructor(options: HubCoreOptions) {
    super();
    this.hostName = options.hostName;
    this.#hosts = [...new Set([options.hostName, ...(options.alternateHostNames ?? [])])];
    this.#store = options.store;
    this.logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#telemetryCapacity = options.telemetryCapacity ?? 10_000;
    this.#faults = options.faults;

    for (const device of this.#store.loadDevices()) {
      this.#devices.set(device.deviceId, device);
      this.#twins.set(device.deviceId, this.#store.loadTwin(device.deviceId) ?? { desired: { $version: 1 }, reported: { $version: 1 }, version: 1 });
    }
    for (const { id, message } of this.#store.loadC2D()) this.#queue(message.deviceId).push({ id, message });
    this.#policyKeys = loadPolicyKeys(this.#store);
    this.#serviceKey = this.#policyKeys.get(SERVICE_POLICY)!;
  }

  // ───────────────────────────── identity ─────────────────────────────

  getDevice(deviceId: string): DeviceRecord | undefined {
    const device = this.#devices.get(deviceId);
    return device && structuredClone(device);
  }

  listDevices(): DeviceRecord[] {
    return [...this.#devices.values()].map((d) => structuredClone(d));
  }

  /** The `iothubowner` policy's key, for service connection strings. */
  get serviceKey(): string {
    return this.#serviceKey;
  }

  /** The key of a built-in shared access policy (iothubowner, service, device, registryRead, registryReadWrite). */
  policyKey(policy: string): string | undefined {
    return this.#policyKeys.get(policy);
  }

  /** A service SAS token for `iothubowner`, e.g. for REST calls in tests. */
  serviceToken(ttlSeconds = 3600): string {
    return createSasToken(this.hostName, this.#serviceKey, Math.floor(this.#clock.now() / 1000) + ttlSeconds, SERVICE_POLICY);
  }

  authenticateSas(deviceId: string, token: string): AuthResult {
    const parsed = parseSasToken(token);
    if (!parsed) return this.#authFailed(deviceId, 'malformed', 'The credential is not a SharedAccessSignature with sr, sig and se.');
    const device = this.#devices.get(deviceId);
    if (!device) return this.#authFailed(deviceId, 'unknown-device', `Device '${deviceId}' is not registered.`);
    if (device.status === 'disabled') return this.#authFailed(deviceId, 'disabled', `Device '${deviceId}' is disabled.`);
    if (device.authentication.type !== 'sas') return this.#authFailed(deviceId, 'wrong-credential-type', `Device '${deviceId}' authenticates with an X.509 certificate, not a SAS token.`);
    if (parsed.keyName !== undefined) return this.#authenticateDeviceByPolicy(deviceId, token);
    if (!audienceMatches(parsed.resource, this.#hosts, `/devices/${deviceId}`)) {
      return this.#authFailed(deviceId, 'wrong-audience', `The token's audience (sr) is not ${this.hostName}/devices/${deviceId}.`);
    }
    const { primaryKey, secondaryKey } = device.authentication;
    if (!signatureMatches(parsed, primaryKey) && !signatureMatches(parsed, secondaryKey)) {
      return this.#authFailed(deviceId, 'bad-signature', `The token's signature does not match either key of device '${deviceId}'.`);
    }
    const expiresAt = parsed.expiry * 1000;
    if (expiresAt <= this.#clock.now()) return this.#authFailed(deviceId, 'expired', `The token expired at ${new Date(expiresAt).toISOString()}.`);
    return { ok: true, deviceId, expiresAt };
  }

  /**
   * Accepts a SHA-1 or SHA-256 thumbprint, or both (Node's `fingerprint` and `fingerprint256`), so
   * a front-end need not know which one the registry holds. Passing an array is an extension of
   * the contract; a single string works as before.
   */
  authenticateX509(deviceId: string, thumbprint: string | readonly string[]): AuthResult {
    const device = this.#devices.get(deviceId);
    if (!device) return this.#authFailed(deviceId, 'unknown-device', `Device '${deviceId}' is not registered.`);
    if (device.status === 'disabled') return this.#authFailed(deviceId, 'disabled', `Device '${deviceId}' is disabled.`);
    if (device.authentication.type !== 'x509-thumbprint') return this.#authFailed(deviceId, 'wrong-credential-type', `Device '${deviceId}' authenticates with SAS keys, not a certificate.`);
    const given = (typeof thumbprint === 'string' ? [thumbprint] : thumbprint).map(normalizeThumbprint);
    if (given.length === 0 || given.some((t) => t === '')) return this.#authFailed(deviceId, 'malformed', 'No client certificate was presented.');
    const known = [device.authentication.primaryThumbprint, device.authentication.secondaryThumbprint]
      .filter((t): t is string => typeof t === 'string' && t !== '')
      .map(normalizeThumbprint);
    if (!given.some((t) => known.includes(t))) return this.#authFailed(deviceId, 'bad-signature', `The client certificate's thumbprint is not registered for device '${deviceId}'.`);
    return { ok: true, deviceId };
  }

  /** A token of one of the built-in policies; the result carries the policy's rights and the token's expiry. */
  authenticateService(token: string, protocol: DeviceProtocol = 'https'): PolicyAuthResult {
    const result = authenticatePolicyToken(token, { keys: this.#policyKeys, hosts: this.#hosts, now: this.#clock.now() });
    if (!result.ok) this.logRefusal({ protocol, what: 'service request', why: result.message });
    return result;
  }

  /** A device may also connect with a token of a policy that grants DeviceConnect (IoT Hub's `device` policy). */
  #authenticateDeviceByPolicy(deviceId: string, token: string): AuthResult {
    const result = authenticatePolicyToken(token, { keys: this.#policyKeys, hosts: this.#hosts, now: this.#clock.now(), path: `/devices/${deviceId}` });
    if (!result.ok) return this.#authFailed(deviceId, result.message.startsWith('The token expired') ? 'expired' : 'bad-signature', result.message);
    if (!hasRight(result.rights, 'DeviceConnect')) {
      return this.#authFailed(deviceId, 'wrong-credential-type', `The shared access policy '${result.policy}' does not grant DeviceConnect.`);
    }
    return { ok: true, deviceId, expiresAt: result.expiresAt };
  }

  #authFailed(deviceId: string, reason: AuthFailure, message: string): AuthResult {
    const counters = this.#counters.get(deviceId) ?? (this.#devices.has(deviceId) ? this.#countersFor(deviceId) : undefined);
    if (counters) counters.authFailures++;
    this.logger.warn('authentication refused', { deviceId, reason, detail: message });
    return { ok: false, reason, message };
  }

  // ──────────────────────────── registry ──────────────────────────────

  createDevice(deviceId: string, options: { authentication?: DeviceAuthentication; status?: 'enabled' | 'disabled' } = {}): DeviceRecord {
    this.#checkOpen();
    if (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId)) {
      throw new HubError('ArgumentInvalid', `Device id '${String(deviceId)}' is invalid: use 1-128 characters from A-Z a-z 0-9 - . % _ * ? ! ( ) , : = @ $ '.`);
    }
    if (this.#devices.has(deviceId)) throw new HubError('DeviceAlreadyExists', `A device with id '${deviceId}' is already registered.`);
    const device: DeviceRecord = {
      deviceId,
      authentication: this.#normalizeAuthentication(options.authentication),
      status: this.#normalizeStatus(options.status),
      etag: newEtag(),
      generationId: String(BigInt(`0x${randomBytes(7).toString('hex')}`)),
      createdAt: new Date(this.#clock.now()).toISOString(),
    };
    const twin: StoredTwin = { desired: { $version: 1 }, reported: { $version: 1 }, version: 1 };
    this.#store.putDevice(device);
    this.#store.putTwin(deviceId, twin);
    this.#devices.set(deviceId, device);
    this.#twins.set(deviceId, twin);
    this.logger.info('device created', { deviceId, authentication: device.authentication.type });
    return structuredClone(device);
  }

  putDevice(deviceId: string, body: { authentication?: DeviceAuthentication; status?: 'enabled' | 'disabled' }, ifMatch?: string): DeviceRecord {
    const existing = this.#devices.get(deviceId);
    if (!existing) return this.createDevice(deviceId, body);
    if (ifMatch === undefined) throw new HubError('DeviceAlreadyExists', `A device with id '${deviceId}' is already registered; send If-Match with its etag (or '*') to update it.`);
    this.#checkEtag(existing.etag, ifMatch, `device '${deviceId}'`);
    const updated: DeviceRecord = {
      ...existing,
      authentication: body.authentication === undefined ? existing.authentication : this.#normalizeAuthentication(body.authentication),
      status: body.status === undefined ? existing.status : this.#normalizeStatus(body.status),
      etag: newEtag(),
    };
    this.#store.putDevice(updated);
    this.#devices.set(deviceId, updated);
    const credentialsChanged = JSON.stringify(updated.authentication) !== JSON.stringify(existing.authentication);
    if (updated.status === 'disabled' || credentialsChanged) {
      this.#kickDevice(deviceId, updated.status === 'disabled' ? 'device disabled' : 'device credentials changed');
    }
    return structuredClone(updated);
  }

  removeDevice(deviceId: string, ifMatch?: string): void {
    const existing = this.#requireDevice(deviceId);
    if (ifMatch !== undefined) this.#checkEtag(existing.etag, ifMatch, `device '${deviceId}'`);
    this.#kickDevice(deviceId, 'device removed');
    // Purged before the record goes, so the feedback still names the device's generation.
    for (const entry of this.#queues.get(deviceId) ?? []) {
      this.#unlock(entry);
      this.#c2dSettled(deviceId, entry, 'purged');
    }
    this.#store.deleteDevice(deviceId);
    this.#devices.delete(deviceId);
    this.#twins.delete(deviceId);
    this.#queues.delete(deviceId);
    this.#counters.delete(deviceId);
    this.logger.info('device removed', { deviceId });
  }

  #normalizeAuthentication(auth: DeviceAuthentication | undefined): DeviceAuthentication {
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

  #normalizeStatus(status: unknown): 'enabled' | 'disabled' {
    if (status === undefined || status === 'enabled') return 'enabled';
    if (status === 'disabled') return 'disabled';
    throw new HubError('ArgumentInvalid', `status must be 'enabled' or 'disabled'.`);
  }

  #checkEtag(current: string, ifMatch: string, what: string): void {
    const wanted = ifMatch.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
    if (wanted !== '*' && wanted !== current) throw new HubError('PreconditionFailed', `The etag in If-Match does not match ${what}; read it again and retry.`);
  }

  #requireDevice(deviceId: string): DeviceRecord {
    this.#checkOpen();
    const device = this.#devices.get(deviceId);
    if (!device) throw new HubError('DeviceNotFound', `Device '${deviceId}' is not registered.`);
    return device;
  }

  #checkOpen(): void {
    if (this.#closed) throw new HubError('Forbidden', 'The hub is closed.');
  }

  // ──────────────────────────── sessions ──────────────────────────────

  openSession(deviceId: string, protocol: DeviceProtocol, connectionId: string): DeviceSession {
    this.#requireDevice(deviceId);
    for (const older of [...(this.#sessions.get(deviceId) ?? [])]) {
      // IoT Hub keeps one connection per device and protocol family (400027
      // ConnectionForcefullyClosedOnNewConnection): a new MQTT connection closes the older one, and
      // a new AMQP connection detaches the identity from the older one (which, on a gateway's
      // shared connection, leaves the other identities there alone). One identity twice on one
      // AMQP connection is a re-attach, so the older one goes too.
      if (sameFamily(protocol, older.protocol) || older.connectionId === connectionId) this.kick(older, 'a newer connection for this device was opened');
    }
    const session = new Session(this, deviceId, protocol, connectionId);
    // Looked up after the kicks: ending the last older session deletes the device's set.
    const sessions = this.#sessions.get(deviceId) ?? new Set<Session>();
    this.#sessions.set(deviceId, sessions);
    sessions.add(session);
    this.#countersFor(deviceId);
    this.logger.info('device connected', { deviceId, protocol, connectionId });
    this.#emitSafe('connected', { deviceId, protocol, connectionId });
    return session;
  }

  /** Ends a session from the hub's side and tells its front-end why. */
  kick(session: Session, reason: string): void {
    if (session.closed) return;
    this.endSession(session, reason);
    session.kicked(reason);
  }

  endSession(session: Session, reason: string): void {
    if (session.closed) return;
    if (this.#closing) reason = 'hub closing';
    session.closed = true;
    session.c2d = undefined;
    session.method = undefined;
    session.desired = undefined;
    const sessions = this.#sessions.get(session.deviceId);
    sessions?.delete(session);
    if (sessions?.size === 0) this.#sessions.delete(session.deviceId);
    this.logger.info('device disconnected', { deviceId: session.deviceId, protocol: session.protocol, connectionId: session.connectionId, reason });
    this.#emitSafe('disconnected', { deviceId: session.deviceId, protocol: session.protocol, connectionId: session.connectionId, reason });
  }

  #kickDevice(deviceId: string, reason: string): void {
    for (const session of [...(this.#sessions.get(deviceId) ?? [])]) this.kick(session, reason);
  }

  connectionOpened(protocol: DeviceProtocol, connectionId: string): void {
    this.#connections.set(connectionId, protocol);
  }

  connectionClosed(_protocol: DeviceProtocol, connectionId: string): void {
    this.#connections.delete(connectionId);
    // A front-end that forgets a session on a dead connection must not leave a ghost identity.
    for (const sessions of [...this.#sessions.values()]) {
      for (const session of [...sessions]) if (session.connectionId === connectionId) this.endSession(session, 'connection closed');
    }
  }

  getPersistentSubscriptions(deviceId: string): string[] {
    return this.#devices.has(deviceId) ? this.#store.getSubscriptions(deviceId) : [];
  }

  setPersistentSubscriptions(deviceId: string, topicFilters: string[]): void {
    this.#requireDevice(deviceId);
    this.#store.setSubscriptions(deviceId, [...new Set(topicFilters)]);
  }

  clearPersistentSubscriptions(deviceId: string): void {
    if (this.#devices.has(deviceId)) this.#store.setSubscriptions(deviceId, []);
  }

  // ─────────────────────────── telemetry ──────────────────────────────

  acceptTelemetry(deviceId: string, protocol: DeviceProtocol, message: TelemetryInput): TelemetryRecord {
    this.#requireDevice(deviceId);
    let size = message.body.length;
    for (const [k, v] of Object.entries(message.properties)) size += Buffer.byteLength(k) + Buffer.byteLength(v);
    for (const v of Object.values(message.systemProperties)) if (typeof v === 'string') size += Buffer.byteLength(v);
    if (size > LIMITS.telemetryBytes) {
      this.logRefusal({ deviceId, protocol, what: 'telemetry', why: `message of ${size} bytes exceeds ${LIMITS.telemetryBytes}` });
      throw new HubError('MessageTooLarge', `Telemetry of ${size} bytes (body and properties) exceeds IoT Hub's limit of ${LIMITS.telemetryBytes} bytes.`);
    }
    try {
      this.#faults?.admitTelemetry(deviceId, protocol);
    } catch (error) {
      this.logRefusal({ deviceId, protocol, what: 'telemetry', why: error instanceof Error ? error.message : String(error) });
      throw error;
    }
    const record: TelemetryRecord = {
      deviceId,
      protocol,
      body: message.body,
      properties: { ...message.properties },
      systemProperties: { ...message.systemProperties },
      receivedAt: new Date(this.#clock.now()).toISOString(),
      sequenceNumber: ++this.#sequence,
    };
    this.#telemetry.push(record);
    // Trim in chunks so the ring costs O(1) amortized instead of a shift per message.
    if (this.#telemetry.length > this.#telemetryCapacity + 1024) this.#telemetry.splice(0, this.#telemetry.length - this.#telemetryCapacity);
    this.#countersFor(deviceId).telemetryReceived++;
    for (const listener of this.#telemetryListeners) {
      try {
        listener(record);
      } catch (error) {
        this.logger.warn('telemetry listener threw', { error: String(error) });
      }
    }
    this.#emitSafe('telemetry', record);
    try {
      this.#faults?.telemetryAccepted(record);
    } catch (error) {
      this.logger.warn('fault injector threw on accepted telemetry', { deviceId, error: String(error) });
    }
    return record;
  }

  telemetry(filter: { deviceId?: string; afterSequence?: number } = {}): TelemetryRecord[] {
    const start = Math.max(0, this.#telemetry.length - this.#telemetryCapacity);
    const out: TelemetryRecord[] = [];
    for (let i = start; i < this.#telemetry.length; i++) {
      const record = this.#telemetry[i]!;
      if (filter.afterSequence !== undefined && record.sequenceNumber <= filter.afterSequence) continue;
      if (filter.deviceId !== undefined && record.deviceId !== filter.deviceId) continue;
      out.push(record);
    }
    return out;
  }

  onTelemetry(listener: (record: TelemetryRecord) => void): () => void {
    this.#telemetryListeners.add(listener);
    return () => { this.#telemetryListeners.delete(listener); };
  }

  // ──────────────────────────── C2D queue ─────────────────────────────

  sendC2D(deviceId: string, input: C2DSendInput): C2DMessage {
    this.#requireDevice(deviceId);
    if (!Buffer.isBuffer(input.body)) throw new HubError('ArgumentInvalid', 'body must be a Buffer.');
    const properties = { ...(input.properties ?? {}) };
    for (const [k, v] of Object.entries(properties)) {
      if (typeof v !== 'string') throw new HubError('ArgumentInvalid', `properties.${k} must be a string.`);
    }
    let size = input.body.length;
    for (const [k, v] of Object.entries(properties)) size += Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > LIMITS.c2dBytes) throw new HubError('MessageTooLarge', `A C2D message of ${size} bytes exceeds IoT Hub's limit of ${LIMITS.c2dBytes} bytes.`);
    const ttl = input.ttlSeconds ?? LIMITS.c2dDefaultTtlSeconds;
    // The 1-minute floor is the hub-wide default TTL's; a message's own expiry may be any positive
    // time up to the hub's maximum, as IoT Hub accepts it.
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0 || ttl > LIMITS.c2dMaxTtlSeconds) {
      throw new HubError('ArgumentInvalid', `ttlSeconds must be more than 0 and at most ${LIMITS.c2dMaxTtlSeconds} (2 days).`);
    }
    if (input.ack !== undefined && !['none', 'positive', 'negative', 'full'].includes(input.ack)) {
      throw new HubError('ArgumentInvalid', `ack must be one of none, positive, negative, full.`);
    }
    const queue = this.#queue(deviceId);
    this.#maintain(deviceId);
    if (queue.length >= LIMITS.c2dQueueDepth) {
      this.logRefusal({ deviceId, protocol: 'https', what: 'c2d send', why: `queue holds ${queue.length} messages` });
      throw new HubError('DeviceMaximumQueueDepthExceeded', `The C2D queue of device '${deviceId}' already holds ${LIMITS.c2dQueueDepth} messages; the device must receive or complete some first.`);
    }
    const now = this.#clock.now();
    const message: C2DMessage = {
      deviceId,
      messageId: input.messageId ?? randomUUID(),
      ...(input.correlationId === undefined ? {} : { correlationId: input.correlationId }),
      body: Buffer.from(input.body),
      properties,
      ...(input.ack === undefined ? {} : { ack: input.ack }),
      ...(typeof input.contentType === 'string' ? { contentType: input.contentType } : {}),
      ...(typeof input.contentEncoding === 'string' ? { contentEncoding: input.contentEncoding } : {}),
      to: `/devices/${deviceId}/messages/devicebound`,
      enqueuedAt: now,
      expiresAt: now + ttl * 1000,
      deliveryCount: 0,
    };
    const entry: QueueEntry = { id: randomUUID(), message };
    this.#store.insertC2D({ id: entry.id, message });
    queue.push(entry);
    this.#countersFor(deviceId).c2dSent++;
    this.pump(deviceId);
    return this.#copyMessage(message);
  }

  pollC2D(deviceId: string): LockedC2DMessage | undefined {
    this.#requireDevice(deviceId);
    this.#countersFor(deviceId).httpsC2DPolls++;
    this.#maintain(deviceId);
    const entry = this.#queue(deviceId).find((e) => e.lockToken === undefined);
    return entry && this.#lock(entry);
  }

  settleC2D(deviceId: string, lockToken: string, how: Settlement): void {
    this.#requireDevice(deviceId);
    this.#maintain(deviceId);
    const queue = this.#queue(deviceId);
    const index = queue.findIndex((e) => e.lockToken !== undefined && e.lockToken === lockToken);
    const entry = queue[index];
    if (!entry) {
      throw new HubError('DeviceMessageLockLost', `No message of device '${deviceId}' is locked with that lock token: its lock expired (60 s) or it was already settled.`);
    }
    const counters = this.#countersFor(deviceId);
    if (how === 'complete') {
      this.#remove(deviceId, entry);
      counters.c2dCompleted++;
      this.#c2dSettled(deviceId, entry, 'completed');
    } else if (how === 'reject') {
      counters.c2dRejected++;
      this.#deadLetter(deviceId, entry, 'rejected', 'rejected');
    } else if (how === 'abandon') {
      counters.c2dAbandoned++;
      entry.message.deliveryCount++;
      this.#unlock(entry);
      if (entry.message.deliveryCount >= LIMITS.maxDeliveryCount) {
        this.#deadLetter(deviceId, entry, `abandoned ${entry.message.deliveryCount} times`, 'deliveryCountExceeded');
      } else {
        this.#store.updateC2DDeliveryCount(entry.id, entry.message.deliveryCount);
        this.pump(deviceId);
      }
    } else {
      throw new HubError('ArgumentInvalid', `Settlement must be complete, abandon or reject.`);
    }
  }

  /** Delivers queued messages to every session that has a C2D receiver with capacity. */
  pump(deviceId: string): void {
    if (this.#closed) return;
    // A receiver may settle synchronously inside deliver(); rerun instead of recursing.
    if (this.#pumping.has(deviceId)) {
      this.#pumpAgain.add(deviceId);
      return;
    }
    this.#pumping.add(deviceId);
    try {
      do {
        this.#pumpAgain.delete(deviceId);
        this.#maintain(deviceId);
        const queue = this.#queues.get(deviceId);
        const sessions = this.#sessions.get(deviceId);
        if (!queue || !sessions) break;
        for (const session of [...sessions]) {
          for (;;) {
            const receiver = session.c2d;
            if (session.closed || !receiver || !receiver.canDeliver()) break;
            const entry = queue.find((e) => e.lockToken === undefined);
            if (!entry) break;
            const locked = this.#lock(entry);
            try {
              receiver.deliver(locked);
            } catch (error) {
              this.logger.warn('c2d receiver threw; the message stays locked until its lock expires', { deviceId, protocol: session.protocol, error: String(error) });
              break;
            }
          }
        }
      } while (this.#pumpAgain.has(deviceId));
    } finally {
      this.#pumping.delete(deviceId);
      this.#pumpAgain.delete(deviceId);
    }
  }

  #lock(entry: QueueEntry): LockedC2DMessage {
    const lockToken = randomUUID();
    const lockedUntil = this.#clock.now() + LIMITS.c2dLockMs;
    entry.lockToken = lockToken;
    entry.lockedUntil = lockedUntil;
    const deviceId = entry.message.deviceId;
    // Real time drives redelivery; the injected clock decides whether the lock is really gone.
    entry.lockTimer = this.#schedule(LIMITS.c2dLockMs + 5, () => this.pump(deviceId));
    return { ...this.#copyMessage(entry.message), lockToken, lockedUntil };
  }

  /** Applies lock expiry (requeue, count unchanged) and TTL expiry (dead-letter) as of now. */
  #maintain(deviceId: string): void {
    const queue = this.#queues.get(deviceId);
    if (!queue) return;
    const now = this.#clock.now();
    for (const entry of [...queue]) {
      if (entry.lockedUntil !== undefined && entry.lockedUntil <= now) this.#unlock(entry);
      if (entry.lockToken === undefined && entry.message.expiresAt <= now) this.#deadLetter(deviceId, entry, 'expired', 'expired');
    }
  }

  #deadLetter(deviceId: string, entry: QueueEntry, why: string, outcome: C2DOutcome): void {
    this.#remove(deviceId, entry);
    this.#countersFor(deviceId).c2dDeadLettered++;
    this.logger.info('c2d message dead-lettered', { deviceId, messageId: entry.message.messageId, why });
    this.#c2dSettled(deviceId, entry, outcome);
  }

  /** How each message ended, for delivery feedback (the service's `iothub-ack`). */
  #c2dSettled(deviceId: string, entry: QueueEntry, outcome: C2DOutcome): void {
    const deviceGenerationId = this.#devices.get(deviceId)?.generationId ?? '';
    this.#emitSafe('c2dSettled', { deviceId, deviceGenerationId, messageId: entry.message.messageId, ack: entry.message.ack, outcome, at: this.#clock.now() });
  }

  #unlock(entry: QueueEntry): void {
    if (entry.lockTimer) this.#clearTimer(entry.lockTimer);
    delete entry.lockToken;
    delete entry.lockedUntil;
    delete entry.lockTimer;
  }

  #remove(deviceId: string, entry: QueueEntry): void {
    this.#unlock(entry);
    const queue = this.#queues.get(deviceId);
    const index = queue ? queue.indexOf(entry) : -1;
    if (queue && index >= 0) queue.splice(index, 1);
    this.#store.deleteC2D(entry.id);
  }

  #queue(deviceId: string): QueueEntry[] {
    let queue = this.#queues.get(deviceId);
    if (!queue) {
      queue = [];
      this.#queues.set(deviceId, queue);
    }
    return queue;
  }

  #copyMessage(message: C2DMessage): C2DMessage {
    return { ...message, body: Buffer.from(message.body), properties: { ...message.properties } };
  }

  // ────────────────────────────── twins ───────────────────────────────

  getTwin(deviceId: string): TwinDocument {
    this.#requireDevice(deviceId);
    this.#countersFor(deviceId).twinReads++;
    const twin = this.#twins.get(deviceId)!;
    return { desired: structuredClone(twin.desired), reported: structuredClone(twin.reported) };
  }

  patchReported(deviceId: string, patch: Record<string, unknown>): number {
    this.#requireDevice(deviceId);
    validatePatch(patch, 'The reported properties patch');
    const twin = this.#twins.get(deviceId)!;
    const reported = structuredClone(twin.reported);
    mergePatch(reported, patch);
    const size = sectionSize(reported);
    if (size > TWIN_SECTION_LIMIT_BYTES) throw new HubError('MessageTooLarge', `Reported properties would be ${size} bytes; IoT Hub allows ${TWIN_SECTION_LIMIT_BYTES}.`);
    reported.$version = twin.reported.$version + 1;
    const next: StoredTwin = { desired: twin.desired, reported, version: twin.version + 1 };
    this.#store.putTwin(deviceId, next);
    this.#twins.set(deviceId, next);
    this.#countersFor(deviceId).twinReportedUpdates++;
    return reported.$version;
  }

  readTwin(deviceId: string): TwinDocument & { deviceId: string; etag: string; version: number } {
    this.#requireDevice(deviceId);
    const twin = this.#twins.get(deviceId)!;
    return { deviceId, etag: twinEtag(twin.version), version: twin.version, desired: structuredClone(twin.desired), reported: structuredClone(twin.reported) };
  }

  updateDesired(deviceId: string, patch: Record<string, unknown>, ifMatch?: string): TwinDocument & { deviceId: string; etag: string; version: number } {
    this.#requireDevice(deviceId);
    const twin = this.#twins.get(deviceId)!;
    if (ifMatch !== undefined) this.#checkEtag(twinEtag(twin.version), ifMatch, `the twin of '${deviceId}'`);
    validatePatch(patch, 'The desired properties patch');
    const desired = structuredClone(twin.desired);
    mergePatch(desired, patch);
    const size = sectionSize(desired);
    if (size > TWIN_SECTION_LIMIT_BYTES) throw new HubError('MessageTooLarge', `Desired properties would be ${size} bytes; IoT Hub allows ${TWIN_SECTION_LIMIT_BYTES}.`);
    desired.$version = twin.desired.$version + 1;
    const next: StoredTwin = { desired, reported: twin.reported, version: twin.version + 1 };
    this.#store.putTwin(deviceId, next);
    this.#twins.set(deviceId, next);
    const { $version: _v, ...changes } = patch;
    const notification = { ...structuredClone(changes), $version: desired.$version };
    for (const session of [...(this.#sessions.get(deviceId) ?? [])]) {
      try {
        session.desired?.desiredChanged(structuredClone(notification));
      } catch (error) {
        this.logger.warn('desired receiver threw', { deviceId, protocol: session.protocol, error: String(error) });
      }
    }
    return this.readTwin(deviceId);
  }

  // ───────────────────────────── methods ──────────────────────────────

  async invokeMethod(
    deviceId: string,
    request: { methodName: string; payload?: unknown; responseTimeoutInSeconds?: number; connectTimeoutInSeconds?: number },
  ): Promise<MethodResult> {
    this.#requireDevice(deviceId);
    if (typeof request.methodName !== 'string' || request.methodName === '' || request.methodName.length > 100) {
      throw new HubError('ArgumentInvalid', 'methodName must be a non-empty string of at most 100 characters.');
    }
    // IoT Hub's lower bound for the response timeout is 5 s; any positive value is allowed here so
    // tests of the timeout path stay short.
    const responseTimeout = request.responseTimeoutInSeconds ?? LIMITS.methodDefaultResponseTimeoutSeconds;
    const connectTimeout = request.connectTimeoutInSeconds ?? 0;
    if (!(responseTimeout > 0 && responseTimeout <= LIMITS.methodMaxTimeoutSeconds)) {
      throw new HubError('ArgumentInvalid', `responseTimeoutInSeconds must be > 0 and <= ${LIMITS.methodMaxTimeoutSeconds}.`);
    }
    if (!(connectTimeout >= 0 && connectTimeout <= LIMITS.methodMaxTimeoutSeconds)) {
      throw new HubError('ArgumentInvalid', `connectTimeoutInSeconds must be between 0 and ${LIMITS.methodMaxTimeoutSeconds}.`);
    }
    const payload = request.payload ?? null;
    const payloadBytes = Buffer.byteLength(JSON.stringify(payload) ?? 'null');
    if (payloadBytes > LIMITS.methodPayloadBytes) throw new HubError('MessageTooLarge', `The method payload of ${payloadBytes} bytes exceeds ${LIMITS.methodPayloadBytes}.`);
    this.#countersFor(deviceId).methodCalls++;

    let receiver = this.#methodReceiver(deviceId);
    if (!receiver && connectTimeout > 0) receiver = await this.#waitForMethodReceiver(deviceId, connectTimeout * 1000);
    if (!receiver) throw new HubError('DeviceNotOnline', `Device '${deviceId}' is not connected with a method subscription.`);

    const requestId = String(++this.#requestSequence);
    const key = `${deviceId}\n${requestId}`;
    const result = new Promise<MethodResult>((resolve, reject) => {
      const timer = this.#schedule(responseTimeout * 1000, () => {
        if (!this.#pendingMethods.delete(key)) return;
        reject(new HubError('GatewayTimeout', `Device '${deviceId}' did not answer method '${request.methodName}' within ${responseTimeout} s.`));
      });
      this.#pendingMethods.set(key, { deviceId, resolve, reject, timer });
    });
    try {
      receiver.invoke({ requestId, methodName: request.methodName, payload });
    } catch (error) {
      const pending = this.#pendingMethods.get(key);
      this.#pendingMethods.delete(key);
      if (pending) this.#clearTimer(pending.timer);
      this.logger.warn('method receiver threw', { deviceId, error: String(error) });
      throw new HubError('DeviceNotOnline', `Device '${deviceId}' could not be reached for method '${request.methodName}'.`);
    }
    return result;
  }

  methodResponse(deviceId: string, requestId: string, result: MethodResult): void {
    const key = `${deviceId}\n${requestId}`;
    const pending = this.#pendingMethods.get(key);
    if (!pending) {
      // Late answers (after the timeout) are dropped, as IoT Hub does.
      this.logger.info('method response without a pending request dropped', { deviceId, requestId });
      return;
    }
    this.#pendingMethods.delete(key);
    this.#clearTimer(pending.timer);
    // IoT Hub caps the response as it caps the request: the caller gets the error, not the payload.
    const bytes = result.payload === undefined ? 0 : Buffer.byteLength(JSON.stringify(result.payload) ?? '');
    if (bytes > LIMITS.methodPayloadBytes) {
      pending.reject(new HubError('MessageTooLarge', `The response of device '${deviceId}' to method request ${requestId} is ${bytes} bytes, over IoT Hub's limit of ${LIMITS.methodPayloadBytes}.`));
      return;
    }
    pending.resolve({ status: result.status, payload: result.payload });
  }

  #methodReceiver(deviceId: string): MethodReceiver | undefined {
    const sessions = [...(this.#sessions.get(deviceId) ?? [])].reverse();
    return sessions.find((s) => !s.closed && s.method)?.method;
  }

  #waitForMethodReceiver(deviceId: string, ms: number): Promise<MethodReceiver | undefined> {
    return new Promise((resolve) => {
      const waiters = this.#methodWaiters.get(deviceId) ?? new Set<() => void>();
      this.#methodWaiters.set(deviceId, waiters);
      const done = (): void => {
        waiters.delete(done);
        if (waiters.size === 0) this.#methodWaiters.delete(deviceId);
        this.#clearTimer(timer);
        resolve(this.#closed ? undefined : this.#methodReceiver(deviceId));
      };
      const timer = this.#schedule(ms, done);
      waiters.add(done);
    });
  }

  methodReceiverReady(deviceId: string): void {
    for (const waiter of [...(this.#methodWaiters.get(deviceId) ?? [])]) waiter();
  }

  // ──────────────────────────── counters ──────────────────────────────

  counters(deviceId: string): HubCounters {
    this.#requireDevice(deviceId);
    return { ...this.#countersFor(deviceId) };
  }

  stats(): HubStats {
    const connections: Record<DeviceProtocol, number> = { mqtt: 0, 'mqtt-ws': 0, amqp: 0, 'amqp-ws': 0, https: 0 };
    for (const protocol of this.#connections.values()) connections[protocol]++;
    const connectedIdentities: HubStats['connectedIdentities'] = [];
    for (const sessions of this.#sessions.values()) {
      for (const s of sessions) connectedIdentities.push({ deviceId: s.deviceId, protocol: s.protocol, connectionId: s.connectionId });
    }
    const devices: HubStats['devices'] = {};
    for (const deviceId of this.#devices.keys()) {
      this.#maintain(deviceId);
      devices[deviceId] = { ...this.#countersFor(deviceId), queuedC2D: this.#queues.get(deviceId)?.length ?? 0 };
    }
    return { connections, connectedIdentities, devices };
  }

  #countersFor(deviceId: string): HubCounters {
    let counters = this.#counters.get(deviceId);
    if (!counters) {
      counters = zeroCounters();
      this.#counters.set(deviceId, counters);
    }
    return counters;
  }

  logRefusal(event: { deviceId?: string; protocol: DeviceProtocol; connectionId?: string; what: string; why: string }): void {
    this.logger.warn('refused', { ...event });
    this.#emitSafe('refused', event);
  }

  // ──────────────────────────── lifecycle ─────────────────────────────

  #schedule(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.#timers.add(timer);
    return timer;
  }

  #clearTimer(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.#timers.delete(timer);
  }

  #emitSafe<K extends keyof HubEvents & string>(event: K, ...args: HubEvents[K]): void {
    try {
      this.emit(event, ...args);
    } catch (error) {
      this.logger.warn(`'${event}' listener threw`, { error: String(error) });
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The hub is shutting down: sessions that end from now on (as front-ends cut their
   * connections) are reported as 'hub closing' rather than as ordinary disconnects.
   */
  beginClose(): void {
    this.#closing = true;
  }

  /** Kicks every session, fails pending method calls, clears timers. Does not close the store. */
  close(): void {
    if (this.#closed) return;
    for (const sessions of [...this.#sessions.values()]) for (const session of [...sessions]) this.kick(session, 'hub closing');
    this.#closed = true;
    for (const [key, pending] of [...this.#pendingMethods]) {
      this.#pendingMethods.delete(key);
      pending.reject(new HubError('DeviceNotOnline', `The hub closed before device '${pending.deviceId}' answered.`));
    }
    for (const waiters of [...this.#methodWaiters.values()]) for (const waiter of [...waiters]) waiter();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#telemetryListeners.clear();
    this.removeAllListeners();
  }
}

export function createHubCore(options: HubCoreOptions): LocalHubCore {
  return new LocalHubCore(options);
}
