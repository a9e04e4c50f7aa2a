// The gateway: many device identities, each with its own Azure device client, multiplexed over a
// pool of shared AMQP (or AMQP over WebSocket) connections; or, when the profile or
// SWITCHYARD_PROTOCOL asks for MQTT, MQTT-WS or HTTPS, one connection per identity.
import { EventEmitter } from 'node:events';
import type { Agent } from 'node:https';
// The Azure packages are CommonJS whose exports Node's ESM loader cannot name statically.
import azureDevice from 'azure-iot-device';
import azureDeviceAmqp from 'azure-iot-device-amqp';
import type { Amqp as BaseAmqpClient } from 'azure-iot-amqp-base';
import azureCommon, { type RetryPolicy } from 'azure-iot-common';
import { SwitchyardError } from '@switchyard/errors';
import { adaptAzureClient, systemClock, type Clock, type DeviceClient } from '@switchyard/device/internal';
import type { ProfileDefinition, Protocol } from '@switchyard/profile';
import type { Decision } from '@switchyard/selector';
import type { AmqpEndpoint } from './amqp-connection.ts';
import { IdentityChannel } from './identity-channel.ts';
import { AmqpConnectionPool, DEFAULT_MAX_IDENTITIES_PER_CONNECTION, type ConnectionInfo } from './pool.ts';
import { translateAzureError } from './errors.ts';
import { decideProtocol, isMultiplexing } from './decide.ts';
import { PerConnectionGateway } from './per-connection-gateway.ts';
import { LeanAmqpGateway } from './lean-gateway.ts';
import { SharedConnectionGateway } from './gateway-base.ts';

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
  /** Time source for the reconnect back-off; default the system clock. */
  clock?: Clock;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  /** Bound on opening a connection (TCP, TLS, AMQP open, CBS attach). Default 30 000. */
  openTimeoutMs?: number;
  /** Bound on the hub answering a detach or session end. Default 5 000. */
  closeTimeoutMs?: number;
  /**
   * AMQP and AMQP-WS only: what each identity runs on. 'lean' (default): a DeviceClient on the
   * connection's shared session, links attached on first use, the SDK's own AMQP message, method
   * and twin code; a few KiB per identity. 'azure-client': an unmodified azure-iot-device `Client`
   * per identity on a session of its own (`identity.client`, `retryPolicy`), about
   * six times the memory per identity (see the README's Memory section).
   */
  engine?: GatewayEngine;
}

export type GatewayEngine = 'azure-client' | 'lean';

export type IdentityState = 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed';

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

export interface ParsedIdentity {
  deviceId: string;
  connectionString: string;
  hubHostName: string;
  dialHost: string;
  dialPort: number | undefined;
}

const { Client } = azureDevice;
type Client = InstanceType<typeof Client>;
const { Amqp: AmqpTransport } = azureDeviceAmqp;
type AmqpTransport = InstanceType<typeof AmqpTransport>;
const { ConnectionString, ExponentialBackOffWithJitter } = azureCommon;

export function invalid(field: string, message: string): SwitchyardError {
  return new SwitchyardError('CONFIG_INVALID', `${field} ${message}`, { details: { field } });
}

function positiveInteger(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw invalid(field, `must be an integer >= 1, got ${String(value)}`);
  return value;
}

/** Splits "host:port"; the port stays undefined when absent. */
function splitHostPort(value: string): { host: string; port: number | undefined } {
  const match = /^(.*):(\d+)$/.exec(value);
  if (!match || match[1] === undefined || match[2] === undefined) return { host: value, port: undefined };
  return { host: match[1], port: Number(match[2]) };
}

/** `index` places the identity in `options.identities` for error messages; absent for `add()`. */
export function parseIdentity(input: GatewayIdentityInput, index?: number): ParsedIdentity {
  const where = index === undefined ? 'identity' : `identities[${index}]`;
  if (typeof input?.deviceId !== 'string' || input.deviceId === '') throw invalid(`${where}.deviceId`, 'must be a non-empty string');
  if (typeof input.connectionString !== 'string' || input.connectionString === '') throw invalid(`${where}.connectionString`, 'must be a device connection string');
  let parsed: ReturnType<typeof ConnectionString.parse>;
  try {
    parsed = ConnectionString.parse(input.connectionString, ['HostName', 'DeviceId']);
  } catch (err) {
    throw invalid(`${where}.connectionString`, `is not a device connection string (needs HostName and DeviceId): ${(err as Error).name}`);
  }
  if (parsed.DeviceId !== input.deviceId) {
    throw invalid(`${where}.deviceId`, `is "${input.deviceId}" but the connection string names DeviceId "${parsed.DeviceId}"; make them agree`);
  }
  if (parsed.ModuleId) throw invalid(`${where}.connectionString`, 'names a module (ModuleId); the gateway connects device identities only');
  if (!parsed.SharedAccessKey && !parsed.SharedAccessSignature) {
    throw invalid(`${where}.connectionString`, 'has no SharedAccessKey or SharedAccessSignature: X.509 identities authenticate with their own TLS connection and cannot be multiplexed');
  }
  const hub = splitHostPort(parsed.HostName!);
  const dial = splitHostPort(parsed.GatewayHostName ?? parsed.HostName!);
  return { deviceId: input.deviceId, connectionString: input.connectionString, hubHostName: hub.host, dialHost: dial.host, dialPort: dial.port };
}

class Identity extends EventEmitter<IdentityEvents> implements GatewayIdentity {
  stateValue: IdentityState = 'connecting';
  deviceClient: DeviceClient | undefined;
  /** The pending re-open back-off timer, cleared when the identity is removed. */
  reopenTimer: unknown;
  constructor(
    readonly deviceId: string,
    readonly client: Client,
    readonly channel: IdentityChannel,
    readonly retryPolicy: RetryPolicy,
  ) {
    super();
  }
  get device(): DeviceClient {
    if (!this.deviceClient) throw new SwitchyardError('NOT_CONNECTED', `identity ${this.deviceId} has not connected yet`);
    return this.deviceClient;
  }
  get state(): IdentityState {
    return this.stateValue;
  }
  get connectionId(): string {
    return this.channel.connectionId;
  }
}

export interface GatewaySettings {
  engine: GatewayEngine;
  maxPerConnection: number;
  connectConcurrency: number;
  openTimeoutMs: number;
  closeTimeoutMs: number;
  reconnect: ReconnectPolicy;
}

export interface ReconnectPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
}

/**
 * Delay before re-open attempt `attempt` (0-based): doubling from `initialDelayMs`, capped at
 * `maxDelayMs`, then scaled into [50 %, 100 %] by `random`, so identities that lost the same
 * connection do not all come back in the same instant.
 */
export function reopenDelayMs(attempt: number, policy: ReconnectPolicy, random: number): number {
  const exponential = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(attempt, 30));
  return Math.round(exponential * (0.5 + Math.min(Math.max(random, 0), 1) / 2));
}

// Failures that say nothing about the identity itself (the SDK's DefaultErrorFilter names):
// worth re-opening for as long as the identity is in the gateway.
const TRANSIENT = new Set(['NotConnectedError', 'TimeoutError', 'ServiceUnavailableError', 'ThrottlingError', 'InternalServerError']);

export function isTransientFailure(err: unknown): boolean {
  const name = typeof err === 'object' && err !== null ? (err as { name?: unknown }).name : undefined;
  return typeof name === 'string' && TRANSIENT.has(name);
}

/** Everything that can be checked without the network, so a typo fails createGateway. */
function validateOptions(options: GatewayOptions): GatewaySettings {
  const maxPerConnection = positiveInteger(options.maxIdentitiesPerConnection, 'maxIdentitiesPerConnection', DEFAULT_MAX_IDENTITIES_PER_CONNECTION);
  if (maxPerConnection > 999) throw invalid('maxIdentitiesPerConnection', `must be <= 999 (IoT Hub accepts 999 tokens per connection), got ${maxPerConnection}`);
  if (options.engine !== undefined && options.engine !== 'azure-client' && options.engine !== 'lean') {
    throw invalid('engine', `must be "azure-client" or "lean", got ${JSON.stringify(options.engine)}`);
  }
  const settings: GatewaySettings = {
    engine: options.engine ?? 'lean',
    maxPerConnection,
    connectConcurrency: positiveInteger(options.connectConcurrency, 'connectConcurrency', 50),
    openTimeoutMs: positiveInteger(options.openTimeoutMs, 'openTimeoutMs', 30_000),
    closeTimeoutMs: positiveInteger(options.closeTimeoutMs, 'closeTimeoutMs', 5_000),
    reconnect: {
      initialDelayMs: positiveInteger(options.reconnect?.initialDelayMs, 'reconnect.initialDelayMs', 1_000),
      maxDelayMs: positiveInteger(options.reconnect?.maxDelayMs, 'reconnect.maxDelayMs', 60_000),
    },
  };
  if (settings.reconnect.maxDelayMs < settings.reconnect.initialDelayMs) {
    throw invalid('reconnect.maxDelayMs', `must be >= reconnect.initialDelayMs (${settings.reconnect.initialDelayMs})`);
  }
  const renewal = options.tokenRenewal;
  if (renewal !== undefined) {
    positiveInteger(renewal.tokenValidTimeInSeconds, 'tokenRenewal.tokenValidTimeInSeconds', 1);
    positiveInteger(renewal.tokenRenewalMarginInSeconds, 'tokenRenewal.tokenRenewalMarginInSeconds', 1);
    if (renewal.tokenRenewalMarginInSeconds >= renewal.tokenValidTimeInSeconds) {
      throw invalid('tokenRenewal.tokenRenewalMarginInSeconds', 'must be smaller than tokenValidTimeInSeconds, or tokens would be renewed before they are used');
    }
  }
  if (options.endpoint !== undefined) {
    if (typeof options.endpoint.host !== 'string' || options.endpoint.host === '') throw invalid('endpoint.host', 'must be a host name or IP address');
    const ports: Array<[string, number | undefined]> = [['endpoint.port', options.endpoint.port], ...Object.entries(options.endpoint.ports ?? {}).map(([k, v]): [string, number | undefined] => [`endpoint.ports.${k}`, v])];
    for (const [field, port] of ports) {
      if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw invalid(field, `must be a TCP port 1..65535, got ${String(port)}`);
    }
  }
  const seen = new Set<string>();
  (options.identities ?? []).forEach((identity, index) => {
    parseIdentity(identity, index);
    if (seen.has(identity.deviceId)) throw invalid(`identities[${index}].deviceId`, `"${identity.deviceId}" is listed twice; list each identity once`);
    seen.add(identity.deviceId);
  });
  return settings;
}

/** The pool of shared connections for the hub `parsed` names, dialled where the options say. */
export function createPool(options: GatewayOptions, settings: GatewaySettings, protocol: GatewayProtocol, parsed: ParsedIdentity): AmqpConnectionPool {
  const tls = protocol === 'amqp';
  const listed = tls ? options.endpoint?.ports?.amqp : options.endpoint?.ports?.https;
  const endpoint: AmqpEndpoint = {
    transport: tls ? 'tls' : 'wss',
    host: options.endpoint?.host ?? parsed.dialHost,
    // The WebSocket flavour ignores a port in the connection string, as the SDK does (443).
    port: options.endpoint?.port ?? listed ?? (tls ? parsed.dialPort : undefined) ?? (tls ? 5671 : 443),
    hubHostName: parsed.hubHostName,
  };
  if (options.ca !== undefined) endpoint.ca = options.ca;
  if (options.webSocketAgent !== undefined) endpoint.webSocketAgent = options.webSocketAgent;
  return new AmqpConnectionPool({
    endpoint,
    maxIdentitiesPerConnection: settings.maxPerConnection,
    userAgent: 'switchyard-gateway',
    openTimeoutMs: settings.openTimeoutMs,
    closeTimeoutMs: settings.closeTimeoutMs,
  });
}

class AmqpGateway extends SharedConnectionGateway<Identity> {
  async add(input: GatewayIdentityInput): Promise<GatewayIdentity> {
    const parsed = this.claim(input);
    const pool = this.poolFor(parsed);
    this.pending.add(parsed.deviceId);
    const connection = pool.assign(parsed.deviceId);
    // The channel exists before the identity that owns it; faults reach the identity through this.
    const owner: { identity?: Identity } = {};
    const channel = new IdentityChannel(parsed.deviceId, connection, {
      onIdentityFault: (error) => {
        if (owner.identity) this.identityError(owner.identity, error, 'link');
      },
    });
    // The stock transport, given the channel in place of its own base client (its second,
    // documented constructor argument); the class is typed with private fields, hence the cast.
    const base = channel as unknown as BaseAmqpClient;
    const Transport = class extends AmqpTransport {
      constructor(authenticationProvider: ConstructorParameters<typeof AmqpTransport>[0]) {
        super(authenticationProvider, base);
      }
    };
    let client: Client;
    try {
      client = Client.fromConnectionString(parsed.connectionString, Transport);
    } catch (err) {
      this.pending.delete(parsed.deviceId);
      await pool.release(parsed.deviceId);
      throw translateAzureError(err, { deviceId: parsed.deviceId, operation: 'connect', protocol: this.protocol });
    }
    // The policy object is kept so that `willRetry` is exactly what the client will decide.
    const retryPolicy = this.options.retryPolicy?.() ?? new ExponentialBackOffWithJitter();
    const identity = new Identity(parsed.deviceId, client, channel, retryPolicy);
    owner.identity = identity;
    const created = identity;
    // An 'error' without a listener would crash the process (feature re-enable failures land here).
    client.on('error', (err: unknown) => this.identityError(created, err, 'client'));
    const transport = (client as unknown as { _transport: AmqpTransport })._transport;
    transport.on('connected', () => this.identityConnected(created));
    transport.on('disconnect', (err?: Error) => this.identityDropped(created, err));

    try {
      client.setRetryPolicy(retryPolicy);
      // One setOptions call: the SDK replaces, never merges, its options object. The AMQP
      // transport only keeps it; the channel owns the connection's TLS and agent.
      const sdkOptions = { ...this.fileUploadOptions(), ...(this.options.tokenRenewal ? { tokenRenewal: { ...this.options.tokenRenewal } } : {}) };
      if (Object.keys(sdkOptions).length > 0) await client.setOptions(sdkOptions as never);
      await client.open();
    } catch (err) {
      this.pending.delete(parsed.deviceId);
      identity.stateValue = 'closed';
      await client.close().catch(() => undefined);
      await pool.release(parsed.deviceId);
      throw translateAzureError(err, { deviceId: parsed.deviceId, operation: 'connect', protocol: this.protocol });
    }
    this.pending.delete(parsed.deviceId);
    if (this.closed) {
      await client.close().catch(() => undefined);
      throw new SwitchyardError('NOT_CONNECTED', 'the gateway was closed while the identity connected');
    }
    identity.deviceClient = adaptAzureClient(client, { protocol: this.protocol, decision: this.decision, transport, deviceId: parsed.deviceId, retryPolicy });
    if (identity.stateValue === 'connecting') identity.stateValue = 'connected';
    this.identities.set(parsed.deviceId, identity);
    return identity;
  }

  protected async retire(identity: Identity): Promise<void> {
    identity.stateValue = 'closed';
    await closeIdentity(identity, this.options.clock ?? systemClock);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.identities.values()];
    this.identities.clear();
    await Promise.all(
      all.map(async (identity) => {
        identity.stateValue = 'closed';
        await closeIdentity(identity, this.options.clock ?? systemClock);
      }),
    );
    await this.closeConnections();
  }

  private identityConnected(identity: Identity): void {
    if (identity.stateValue === 'closed') return;
    identity.stateValue = 'connected';
    identity.emit('connected');
    this.emit('identity-connected', { deviceId: identity.deviceId, connectionId: identity.connectionId });
  }

  /**
   * The identity's transport lost its session (its connection dropped, or the hub detached one
   * of its links). The Azure client re-opens by itself only when C2D, methods or desired
   * properties are in use; the gateway re-opens every identity, so that all of them come back.
   */
  private identityDropped(identity: Identity, err: Error | undefined): void {
    if (identity.stateValue === 'closed' || this.closed) return;
    const error = err === undefined ? undefined : translateAzureError(err, { deviceId: identity.deviceId, operation: 'connection', protocol: this.protocol });
    const willRetry = err !== undefined && isTransientFailure(err);
    identity.stateValue = willRetry ? 'reconnecting' : 'disconnected';
    const event = error === undefined ? { willRetry } : { error, willRetry };
    identity.emit('disconnected', event);
    this.emit('identity-disconnected', { deviceId: identity.deviceId, ...event });
    if (willRetry) this.reopen(identity, 0);
  }

  /**
   * One re-open: the Azure client's open() with its own retry policy (the pool turns the
   * identities' concurrent attempts into one connection attempt); if that gives up on a transient
   * failure, another try after the back-off, for as long as the identity is in the gateway.
   */
  private reopen(identity: Identity, attempt: number): void {
    if (identity.stateValue === 'closed' || this.closed) return;
    identity.stateValue = 'reconnecting';
    identity.client.open().then(
      () => {
        if (identity.stateValue === 'reconnecting') identity.stateValue = 'connected';
      },
      (reopenErr: unknown) => {
        if (identity.stateValue === 'closed' || this.closed) return;
        if (isTransientFailure(reopenErr)) {
          const delay = reopenDelayMs(attempt, this.settings.reconnect, (this.options.random ?? Math.random)());
          const clock = this.options.clock ?? systemClock;
          identity.reopenTimer = clock.setTimeout(() => {
            identity.reopenTimer = undefined;
            this.reopen(identity, attempt + 1);
          }, delay);
          return;
        }
        this.gaveUp(identity, reopenErr);
      },
    );
  }

}

async function closeIdentity(identity: Identity, clock: Clock): Promise<void> {
  if (identity.reopenTimer !== undefined) clock.clearTimeout(identity.reopenTimer);
  identity.reopenTimer = undefined;
  // The adapter closes the Azure client and detaches its own listeners; before it exists, the raw client.
  const closing = identity.deviceClient ? identity.deviceClient.close() : identity.client.close();
  await Promise.resolve(closing).catch(() => undefined);
}

/**
 * Validates the options (CONFIG_INVALID naming the field), resolves the protocol from
 * `options.protocol`, SWITCHYARD_PROTOCOL and the profile through the selector, and returns a
 * gateway that has connected nothing yet. PROTOCOL_REFUSED when the forced protocol cannot serve
 * the profile for reasons other than multiplexing.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const settings = validateOptions(options);
  const decision = await decideProtocol(options);
  if (isMultiplexing(decision.protocol)) {
    return settings.engine === 'lean' ? new LeanAmqpGateway(options, settings, decision) : new AmqpGateway(options, settings, decision);
  }
  return new PerConnectionGateway(options, settings, decision);
}
