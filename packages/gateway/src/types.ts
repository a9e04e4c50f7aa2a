// The gateway's public types. Nothing here imports an engine: engines import these.
import type { EventEmitter } from 'node:events';
import type { Agent } from 'node:https';
import type { Client } from 'azure-iot-device';
import type { RetryPolicy } from 'azure-iot-common';
import type { SwitchyardError } from '@switchyard/errors';
import type { ConnectionState, DeviceClient, OutboxOptions } from '@switchyard/device';
import type { ProfileDefinition, Protocol } from '@switchyard/profile';
import type { Decision } from '@switchyard/selector';
import type { Clock } from '@switchyard/time';
import type { ConnectionInfo } from './amqp/pool.ts';

export type GatewayProtocol = Protocol;

export interface GatewayIdentityInput {
  deviceId: string;
  /** `HostName=…;DeviceId=…;SharedAccessKey=…` (or `SharedAccessSignature=…`); X.509 cannot share a connection. */
  connectionString: string;
}

export interface TokenRenewal {
  tokenValidTimeInSeconds: number;
  tokenRenewalMarginInSeconds: number;
}

export interface GatewayOptions {
  /**
   * Forces a protocol, like SWITCHYARD_PROTOCOL (which applies when this is absent). Only 'amqp'
   * and 'amqp-ws' carry several identities over one connection; with 'mqtt', 'mqtt-ws' or 'https'
   * every identity gets its own connection and the decision record says why.
   */
  protocol?: GatewayProtocol;
  /** The capability profile (object or JSON file path); default SWITCHYARD_PROFILE, else the defaults. */
  profile?: ProfileDefinition | string;
  /** Where SWITCHYARD_PROTOCOL and SWITCHYARD_PROFILE are read; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The hub's CA (PEM), for hubs whose certificate is not in Node's store (e.g. the local hub). */
  ca?: string | Buffer;
  /**
   * Where to dial, when it is not the connection strings' GatewayHostName or HostName (a local hub
   * on loopback, a relay). `port` is for the chosen protocol; `ports` per listener, as in
   * `@switchyard/device` (WebSocket flavours and HTTPS use `https`). Defaults: 5671, 8883, 443.
   */
  endpoint?: { host: string; port?: number; ports?: { mqtt?: number; amqp?: number; https?: number } };
  /** Connected by `open()`. */
  identities?: GatewayIdentityInput[];
  /** Default 995 (the C# SDK's cap; IoT Hub allows 999 tokens per connection). */
  maxIdentitiesPerConnection?: number;
  /** SAS validity and renewal margin per identity; renewals are put-tokens on the live connection. */
  tokenRenewal?: TokenRenewal;
  /** Identities `open()` connects at a time. Default 50. */
  connectConcurrency?: number;
  /**
   * Engine 'azure-client' only: the Azure retry policy each identity's client uses. Default: the
   * SDK's exponential back-off. The lean engine has no Azure client to give it to: its operations
   * wait for the identity's reconnect (the `reconnect` back-off) until their own deadline.
   */
  retryPolicy?: () => RetryPolicy;
  /** AMQP over WebSocket only: an agent for proxies. */
  webSocketAgent?: Agent;
  /**
   * How the gateway keeps re-opening an identity after a transient failure (connection lost, hub
   * unreachable) once the Azure client's own retries (at most 240 s) gave up: capped exponential
   * back-off with jitter. Defaults 1 000 and 60 000 ms. Auth and not-found failures are not retried.
   */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Time for the reconnect back-off, token renewal and operation deadlines; default the system clock. */
  clock?: Clock;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  /** Bound on opening a connection (TCP, TLS, AMQP open, CBS attach). Default 30 000. */
  openTimeoutMs?: number;
  /** Bound on the hub answering a detach or session end. Default 5 000. */
  closeTimeoutMs?: number;
  /**
   * Each shared AMQP connection asks the hub for a frame at least every `keepAliveSeconds`, and
   * is dropped and re-opened after twice that without one: a half-open connection (a NAT or cell
   * change, a silent peer) is replaced within 2 × keepAliveSeconds. As the device client's
   * `keepAliveSeconds`. Default 30.
   */
  keepAliveSeconds?: number;
  /**
   * AMQP and AMQP-WS only: what each identity runs on. 'lean' (default): a DeviceClient on the
   * connection's shared session, links attached on first use, the SDK's own AMQP message, method
   * and twin code; a few KiB per identity. 'azure-client': an unmodified azure-iot-device `Client`
   * per identity on a session of its own (`identity.client`, `retryPolicy`), about
   * six times the memory per identity (see the README's Memory section).
   */
  engine?: GatewayEngine;
  /**
   * An outbox for every identity, each its own (the `outbox` option of `@switchyard/device`'s
   * connect()): its sends are recorded first and replayed, in order, until the hub acknowledges
   * them. With `dir`, identity `id` keeps its log in `<dir>/<encodeURIComponent(id)>/`. Off by default.
   */
  outbox?: OutboxOptions;
}

export type GatewayEngine = 'azure-client' | 'lean';

/** How an identity is re-opened after a transient failure: capped exponential back-off with jitter. */
export interface ReconnectPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
}

/** An identity's connection state, in the one vocabulary of `@switchyard/device`. */
export type IdentityState = ConnectionState;

export interface IdentityEvents {
  connected: [];
  disconnected: [{ error?: SwitchyardError; willRetry: boolean }];
  error: [SwitchyardError];
}

export interface GatewayIdentity extends EventEmitter<IdentityEvents> {
  readonly deviceId: string;
  readonly state: IdentityState;
  /** The connection of the pool that carries this identity. */
  readonly connectionId: string;
  /**
   * The identity's client with the same interface as a single device's (`@switchyard/device`).
   * Use `gateway.remove(deviceId)` rather than its close(), so the pool gives the place back.
   */
  readonly device: DeviceClient;
  /**
   * The underlying Azure device client (sendEvent, on('message'), onDeviceMethod, getTwin...),
   * over AMQP and AMQP-WS; undefined over the other protocols. Do not call open() or close() on
   * it: the gateway owns its lifetime.
   */
  readonly client: Client | undefined;
}

export interface GatewayEvents {
  'identity-connected': [{ deviceId: string; connectionId: string }];
  'identity-disconnected': [{ deviceId: string; error?: SwitchyardError; willRetry: boolean }];
  'identity-error': [{ deviceId: string; error: SwitchyardError }];
  'connection-open': [{ connectionId: string }];
  'connection-lost': [{ connectionId: string; error: SwitchyardError }];
  'connection-closed': [{ connectionId: string }];
}

export interface OpenSummary {
  connected: string[];
  failed: Array<{ deviceId: string; error: SwitchyardError }>;
}

export interface Gateway extends EventEmitter<GatewayEvents> {
  readonly protocol: GatewayProtocol;
  /** True over AMQP and AMQP-WS: identities share connections. */
  readonly multiplexed: boolean;
  /** The selector's record of the choice; its warnings say so when multiplexing was lost. */
  readonly decision: Decision;
  /** Connects `options.identities`; one failing identity does not fail the others. */
  open(): Promise<OpenSummary>;
  /** Connects one more identity; rejects (and keeps nothing) if that identity cannot connect. */
  add(identity: GatewayIdentityInput): Promise<GatewayIdentity>;
  /** Disconnects one identity; the connection stays up for the others. */
  remove(deviceId: string): Promise<void>;
  get(deviceId: string): GatewayIdentity | undefined;
  list(): GatewayIdentity[];
  connections(): ConnectionInfo[];
  close(): Promise<void>;
}

