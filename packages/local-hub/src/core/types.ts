// The contract between the hub core (registry, queues, twins, methods) and the protocol
// front-ends. Front-ends translate wire protocols into these calls and nothing else: all IoT Hub
// semantics (limits, locks, versions, auth rules) live in the core, so the five protocols agree.
import type { PolicyAuthResult } from './policies.ts';

export type DeviceProtocol = 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws' | 'https';

/** What the service says about a device when it creates or updates it; absent fields stay as they are. */
export interface DeviceInput {
  authentication?: DeviceAuthentication;
  status?: 'enabled' | 'disabled';
  /** `null` clears it. */
  statusReason?: string | null;
}

export type DeviceAuthentication =
  | { type: 'sas'; primaryKey: string; secondaryKey: string }
  | { type: 'x509-thumbprint'; primaryThumbprint: string; secondaryThumbprint?: string };

export interface DeviceRecord {
  deviceId: string;
  authentication: DeviceAuthentication;
  status: 'enabled' | 'disabled';
  /** Why the status is what it is, as the service set it (IoT Hub keeps up to 128 characters). */
  statusReason?: string;
  /** ISO time the status last changed; absent until it does. */
  statusUpdatedTime?: string;
  etag: string;
  generationId: string;
  /** ISO time. */
  createdAt: string;
}

/** IoT Hub system properties a device can set on telemetry (wire names vary per protocol). */
export interface SystemProperties {
  messageId?: string;
  correlationId?: string;
  userId?: string;
  contentType?: string;
  contentEncoding?: string;
  /** ISO time. */
  expiryTimeUtc?: string;
  /** `dt-subject` */
  subject?: string;
  interfaceId?: string;
}

export interface TelemetryInput {
  body: Buffer;
  properties: Record<string, string>;
  systemProperties: SystemProperties;
}

export interface TelemetryRecord extends TelemetryInput {
  deviceId: string;
  /** Set when a module identity sent it (Event Hubs' `iothub-connection-module-id`). */
  moduleId?: string;
  protocol: DeviceProtocol;
  /** ISO time the hub accepted it. */
  receivedAt: string;
  /** Monotonic per hub, so consumers can read "everything after N". */
  sequenceNumber: number;
}

export interface TelemetryFilter {
  /** A device's telemetry, its modules' included unless `moduleId` narrows it. */
  deviceId?: string;
  moduleId?: string;
  afterSequence?: number;
}

export interface C2DSendInput {
  body: Buffer;
  properties?: Record<string, string>;
  messageId?: string;
  correlationId?: string;
  /** Defaults to the hub's default TTL (1 hour); any positive time up to 2 days, as IoT Hub allows per message. */
  ttlSeconds?: number;
  /** `iothub-ack`: none | positive | negative | full. */
  ack?: 'none' | 'positive' | 'negative' | 'full';
  /** System properties the device sees (AMQP content-type/-encoding, MQTT `$.ct`/`$.ce`). */
  contentType?: string;
  contentEncoding?: string;
}

export interface C2DMessage {
  deviceId: string;
  messageId: string;
  correlationId?: string;
  body: Buffer;
  properties: Record<string, string>;
  ack?: 'none' | 'positive' | 'negative' | 'full';
  contentType?: string;
  contentEncoding?: string;
  /** `/devices/{id}/messages/devicebound` */
  to: string;
  /** Epoch ms. */
  enqueuedAt: number;
  expiresAt: number;
  deliveryCount: number;
}

/** A message handed to a device, locked for the hub's lock timeout (IoT Hub's 60 s by default). */
export interface LockedC2DMessage extends C2DMessage {
  lockToken: string;
  lockedUntil: number;
}

export type Settlement = 'complete' | 'abandon' | 'reject';

export interface TwinDocument {
  desired: Record<string, unknown> & { $version: number };
  reported: Record<string, unknown> & { $version: number };
}

/**
 * IoT Hub's `$metadata` of a twin section: every object node carries `$lastUpdated` (ISO) and, in
 * the desired section, `$lastUpdatedVersion`; leaves are `{ $lastUpdated, $lastUpdatedVersion? }`.
 */
export type TwinMetadata = { $lastUpdated: string; $lastUpdatedVersion?: number } & { [key: string]: unknown };

/** The service's view of a twin: what `GET /twins/{id}` is built from. */
export interface ServiceTwinDocument extends TwinDocument {
  deviceId: string;
  etag: string;
  version: number;
  tags: Record<string, unknown>;
  metadata: { desired: TwinMetadata; reported: TwinMetadata };
}

export interface MethodResult {
  status: number;
  payload: unknown;
}

/** A device's live presence on one connection; the core uses it to push work to the device. */
export interface DeviceSession {
  readonly deviceId: string;
  readonly protocol: DeviceProtocol;
  /** Which transport connection carries it; several AMQP sessions may share one. */
  readonly connectionId: string;
  /**
   * Called by the core when this session must end: a newer MQTT connection for the same device
   * (IoT Hub allows one), the device was removed or disabled, or the hub is closing.
   */
  onKicked(listener: (reason: string) => void): void;
  /** Ends the session; the core stops pushing to it and unlocks nothing (locks expire on their own). */
  close(): void;

  /**
   * Push receivers. A front-end sets one when the device subscribes/attaches; the core then
   * delivers queued and new messages through it while `canDeliver()` holds (AMQP credit,
   * MQTT in-flight window). A front-end calls `pumpC2D()` when its capacity grows again.
   */
  setC2DReceiver(receiver: C2DReceiver | undefined): void;
  pumpC2D(): void;
  setMethodReceiver(receiver: MethodReceiver | undefined): void;
  setDesiredReceiver(receiver: DesiredReceiver | undefined): void;
}

export interface C2DReceiver {
  canDeliver(): boolean;
  deliver(message: LockedC2DMessage): void;
}

export interface MethodReceiver {
  /** The front-end sends the request; the device's answer comes back via `core.methodResponse`. */
  invoke(request: { requestId: string; methodName: string; payload: unknown }): void;
}

export interface DesiredReceiver {
  /** `patch` includes `$version`. */
  desiredChanged(patch: Record<string, unknown> & { $version: number }): void;
}

export type AuthFailure = 'unknown-device' | 'disabled' | 'bad-signature' | 'expired' | 'wrong-audience' | 'malformed' | 'wrong-credential-type';

export type AuthResult =
  | { ok: true; deviceId: string; /** Epoch ms; undefined for X.509. */ expiresAt?: number }
  | { ok: false; reason: AuthFailure; message: string };

export interface HubCounters {
  telemetryReceived: number;
  c2dSent: number;
  c2dCompleted: number;
  c2dAbandoned: number;
  c2dRejected: number;
  c2dDeadLettered: number;
  httpsC2DPolls: number;
  twinReads: number;
  twinReportedUpdates: number;
  methodCalls: number;
  authFailures: number;
}

export interface HubStats {
  connections: Record<DeviceProtocol, number>;
  /** `moduleId` is set for a module identity's session, which is apart from its device's. */
  connectedIdentities: Array<{ deviceId: string; moduleId?: string; protocol: DeviceProtocol; connectionId: string }>;
  devices: Record<string, HubCounters & { queuedC2D: number }>;
}

/**
 * What the core offers front-ends. Every method may throw a HubError (see errors.ts). Where a
 * method serves a connected identity, `deviceId` is its identity id: the device id, or
 * `<deviceId>/<moduleId>` for a module identity (see identity.ts); C2D is for devices only.
 */
export interface HubCore {
  readonly hostName: string;

  // identity
  getDevice(deviceId: string): DeviceRecord | undefined;
  /** Whether a device, or a module given as `<deviceId>/<moduleId>`, is registered. */
  hasIdentity(id: string): boolean;
  /** `token` is the full "SharedAccessSignature sr=…&sig=…&se=…" string. */
  authenticateSas(deviceId: string, token: string): AuthResult;
  /** Thumbprint = SHA-1 or SHA-256 hex of the client certificate's DER, any case. */
  authenticateX509(deviceId: string, thumbprint: string): AuthResult;
  /** A token for a shared access policy; resolves the policy (with its rights and the token's expiry) or refuses. */
  authenticateService(token: string, protocol?: DeviceProtocol): PolicyAuthResult;

  // connections
  openSession(deviceId: string, protocol: DeviceProtocol, connectionId: string): DeviceSession;
  connectionOpened(protocol: DeviceProtocol, connectionId: string): void;
  connectionClosed(protocol: DeviceProtocol, connectionId: string): void;

  // device → cloud
  acceptTelemetry(deviceId: string, protocol: DeviceProtocol, message: TelemetryInput): TelemetryRecord;

  // cloud → device
  /** For polling (HTTPS): lock and return the next message, or undefined when the queue is empty. */
  pollC2D(deviceId: string): LockedC2DMessage | undefined;
  settleC2D(deviceId: string, lockToken: string, how: Settlement): void;

  // twins
  getTwin(deviceId: string): TwinDocument;
  /** Returns the new reported `$version`. */
  patchReported(deviceId: string, patch: Record<string, unknown>): number;

  // methods
  methodResponse(deviceId: string, requestId: string, result: MethodResult): void;

  counters(deviceId: string): HubCounters;
  /** Audit log for refused operations: never delivered, always recorded. */
  logRefusal(event: { deviceId?: string; protocol: DeviceProtocol; connectionId?: string; what: string; why: string }): void;
}

/** The service side of the core: what the typed handle API and the REST API both call. */
export interface HubService {
  /** Creates a device with fresh SAS keys unless `authentication` is given; DeviceAlreadyExists if present. */
  createDevice(deviceId: string, options?: DeviceInput): DeviceRecord;
  /** IoT Hub's PUT /devices/{id}: create, or update when `ifMatch` matches (or is '*'). */
  putDevice(deviceId: string, body: DeviceInput, ifMatch?: string): DeviceRecord;
  /** Also ends the device's live sessions and drops its queue and twin. */
  removeDevice(deviceId: string, ifMatch?: string): void;
  listDevices(): DeviceRecord[];
  sendC2D(deviceId: string, input: C2DSendInput): C2DMessage;
  /** Rejects with HubError DeviceNotOnline (404103) or GatewayTimeout (504101) as IoT Hub does. */
  invokeMethod(deviceId: string, request: { methodName: string; payload?: unknown; responseTimeoutInSeconds?: number; connectTimeoutInSeconds?: number }): Promise<MethodResult>;
  readTwin(deviceId: string): ServiceTwinDocument;
  updateDesired(deviceId: string, patch: Record<string, unknown>, ifMatch?: string): ServiceTwinDocument;
  /** IoT Hub's PATCH /twins/{id}: merges tags and desired properties in one twin version. */
  updateTwin(deviceId: string, patch: { tags?: Record<string, unknown>; desired?: Record<string, unknown> }, ifMatch?: string): ServiceTwinDocument;
  /** Received telemetry, oldest first; `afterSequence` skips what a reader has already seen. */
  telemetry(filter?: TelemetryFilter): TelemetryRecord[];
  onTelemetry(listener: (record: TelemetryRecord) => void): () => void;
  stats(): HubStats;
}

/** Structured log sink; callers never pass secrets, and the default sink redacts anyway. */
export interface HubLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** What each protocol front-end module exports, so hub.ts can assemble listeners uniformly. */
export interface FrontEnd {
  /** Closes every connection this front-end holds (not the listening sockets hub.ts owns). */
  close(): Promise<void>;
}
