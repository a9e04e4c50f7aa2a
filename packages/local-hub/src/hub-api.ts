// What a user of the local hub sees: the options of startLocalHub() and the handle it returns.
// The implementation (listeners, front-ends, the core) is hub.ts.
import type { Agent as HttpsAgent } from 'node:https';
import type { Clock } from '@switchyard/time';
import type { EventHubsControl, EventHubsOptions } from './eventhubs/index.ts';
import type { ServiceSideOptions } from './amqp/service-side.ts';
import type { PolicyName } from './core/policies.ts';
import type { HubEvents } from './core/events.ts';
import type { MethodRequest, ModuleInput, ModuleRecord, ModuleTwin } from './core/module-types.ts';
import type {
  C2DMessage, C2DSendInput, DeviceAuthentication, DeviceProtocol, DeviceRecord, HubCounters, HubLogger, HubStats,
  MethodResult, TelemetryFilter, TelemetryRecord, TwinDocument,
} from './core/types.ts';
import type { FaultControl } from './faults/injector.ts';
import type { HubLimits } from './limits.ts';
import type { C2DOptions } from './core/c2d-options.ts';
import type { DeviceCertificate } from './tls/index.ts';

export interface LocalHubOptions {
  /** Where the registry, twins, queued C2D and TLS material live. Without it the hub is in-memory. */
  stateDir?: string;
  /** Keep nothing on disk, even when `stateDir` is given. */
  inMemory?: boolean;
  /**
   * Identities to have on start; existing ones keep their keys. `<deviceId>/<moduleId>` registers
   * a module identity (and its device, if absent).
   */
  devices?: string[];
  /** The hub name devices use in HostName and SAS audiences; default `switchyard-local.azure-devices.net`. */
  hostName?: string;
  /** Loopback address to bind; default 127.0.0.1. */
  address?: string;
  /** Per-listener ports; default 0 (ephemeral), or the standard ones with `standardPorts`. */
  ports?: { mqtt?: number; amqp?: number; https?: number };
  /** Bind 8883, 5671 and 443 so the unmodified SDK connects with only `ca` set (needs CAP_NET_BIND_SERVICE or root for 443). */
  standardPorts?: boolean;
  /** Default: JSON lines on stderr, info suppressed. */
  logger?: HubLogger;
  /**
   * The hub's time: token expiry, C2D locks and TTLs, method timeouts and fault windows run on it
   * (a `ManualClock` from `@switchyard/time` makes them testable without waiting). Protocol
   * timers (keep-alives, heartbeats, handshake deadlines) stay on real time. Default: the system clock.
   */
  clock?: Clock;
  /**
   * C2D rules: `lockTimeoutMs`, how long a delivered message stays locked before it is delivered
   * again (default 60,000, IoT Hub's lock, which IoT Hub does not let you change). A shorter lock
   * lets a test see the redelivery of a message delivered on a connection that then dropped.
   */
  c2d?: C2DOptions;
  /** Defences against hostile peers (frame sizes, timeouts, connections per source); see limits.ts and the README. */
  limits?: Partial<HubLimits>;
  /** The Event Hubs-compatible built-in endpoint: name, partitions, retention, consumer groups (README, "Reading telemetry with @azure/event-hubs"). */
  eventHubs?: EventHubsOptions;
  /** Delivery feedback batching (window, records per message) and service-bound queue retention. */
  service?: ServiceSideOptions;
}

export type ConnectionStringProtocol = DeviceProtocol;

export interface LocalHub {
  readonly hostName: string;
  readonly address: string;
  readonly ports: { mqtt: number; amqp: number; https: number };
  /** PEM of the hub's CA, for clients' `ca` option. */
  readonly ca: string;
  /** `ca.pem` in the state dir; undefined for in-memory hubs. */
  readonly caPath: string | undefined;
  readonly stateDir: string | undefined;
  /** Service connection string for the `iothubowner` policy. */
  readonly serviceConnectionString: string;
  /** The built-in endpoint for `@azure/event-hubs`: `Endpoint=sb://<address>:<amqp port>/;SharedAccessKeyName=iothubowner;SharedAccessKey=…;EntityPath=<name>`. */
  readonly eventHubConnectionString: string;
  /** The built-in endpoint: partitions, consumer groups, the WebSocket address. */
  readonly eventHubs: EventHubsControl;
  /**
   * Connection string for one of IoT Hub's built-in shared access policies: `iothubowner` (all
   * rights), `service` (ServiceConnect), `device` (DeviceConnect), `registryRead`, `registryReadWrite`.
   */
  policyConnectionString(policy: PolicyName): string;

  /**
   * Connection string for a SAS device. For `mqtt` and `amqp` it carries
   * `GatewayHostName=<address>:<port>`, so the SDK dials the hub while SAS audiences keep the hub
   * name. The WebSocket and HTTPS transports always dial port 443 of HostName: without
   * `standardPorts`, pass `redirectAgent()` as `mqtt.webSocketAgent`, `amqp.webSocketAgent` or
   * `http.agent`; with it, the string points them at the bound address directly.
   */
  deviceConnectionString(deviceId: string, options?: { protocol?: ConnectionStringProtocol }): string;
  /**
   * `HostName=…;DeviceId=…;ModuleId=…;SharedAccessKey=…` for a module identity, for
   * `ModuleClient.fromConnectionString`, with the same transport rules as `deviceConnectionString`
   * (which also takes `<deviceId>/<moduleId>`). ModuleClient over Http is not served (README).
   */
  moduleConnectionString(deviceId: string, moduleId: string, options?: { protocol?: ConnectionStringProtocol }): string;
  /** An https.Agent that sends the WebSocket and HTTPS transports to this hub's HTTPS port, keeping TLS name checks. */
  redirectAgent(): HttpsAgent;
  /** A SAS token for the service REST API (`Authorization` header). */
  serviceToken(ttlSeconds?: number): string;

  createDevice(deviceId: string, options?: { authentication?: DeviceAuthentication; status?: 'enabled' | 'disabled' }): DeviceRecord;
  getDevice(deviceId: string): DeviceRecord | undefined;
  listDevices(): DeviceRecord[];
  removeDevice(deviceId: string): void;
  /** A module identity under an existing device, with fresh SAS keys unless `authentication` is given. */
  createModule(deviceId: string, moduleId: string, options?: ModuleInput): ModuleRecord;
  getModule(deviceId: string, moduleId: string): ModuleRecord | undefined;
  listModules(deviceId: string): ModuleRecord[];
  /** Ends the module's connections and drops its twin. */
  removeModule(deviceId: string, moduleId: string): void;
  readModuleTwin(deviceId: string, moduleId: string): ModuleTwin;
  updateModuleDesired(deviceId: string, moduleId: string, patch: Record<string, unknown>): ModuleTwin;
  invokeModuleMethod(deviceId: string, moduleId: string, request: MethodRequest): Promise<MethodResult>;
  sendC2D(deviceId: string, input: C2DSendInput): C2DMessage;
  invokeMethod(deviceId: string, request: { methodName: string; payload?: unknown; responseTimeoutInSeconds?: number; connectTimeoutInSeconds?: number }): Promise<MethodResult>;
  updateDesired(deviceId: string, patch: Record<string, unknown>): TwinDocument & { deviceId: string; etag: string; version: number };
  readTwin(deviceId: string): TwinDocument & { deviceId: string; etag: string; version: number };
  /** `moduleId` narrows to one module's telemetry; without it a device's filter also returns its modules'. */
  telemetry(filter?: TelemetryFilter): TelemetryRecord[];
  onTelemetry(listener: (record: TelemetryRecord) => void): () => void;
  stats(): HubStats;
  /** Per identity: a device id, or `<deviceId>/<moduleId>` for a module's counters. */
  counters(deviceId: string): HubCounters;
  /** Fault injection: `inject` IoT Hub faults, `network` faults, `active()`, `clear()`, and 'fault' events (README, "Faults"). */
  readonly faults: FaultControl;
  /** A self-signed client certificate; register `thumbprint` with `createDevice(id, { authentication: { type: 'x509-thumbprint', primaryThumbprint } })`. */
  issueDeviceCertificate(deviceId: string): DeviceCertificate;

  on<K extends keyof HubEvents & string>(event: K, listener: (...args: HubEvents[K]) => void): this;
  once<K extends keyof HubEvents & string>(event: K, listener: (...args: HubEvents[K]) => void): this;
  off<K extends keyof HubEvents & string>(event: K, listener: (...args: HubEvents[K]) => void): this;

  /** Closes every listener and connection, clears timers, closes the store. Idempotent. */
  close(): Promise<void>;
}
