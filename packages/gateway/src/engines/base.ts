// What every gateway engine shares: the identity table, the guard on add(), bounded-parallel
// open(), lookups, and (for the AMQP engines) the pool of shared connections. Engines differ in how an identity connects (one shared AMQP connection
// through the Azure client or through lean links, or one connection each) and say only that.
import { EventEmitter } from 'node:events';
import type { Agent } from 'node:https';
import { RedirectAgent } from '@switchyard/device/internal';
import { SwitchyardError } from '@switchyard/errors';
import type { Decision } from '@switchyard/selector';
import { CLOSE_GRACE_MS, CLOSE_SETTLE_MS, Outbox, isRetryable, translateError, type CoreObserver, type DeviceCore, type StateChange } from '@switchyard/device/internal';
import { systemClock, type Clock, type TimerHandle } from '@switchyard/time';
import { AmqpConnectionPool, type ConnectionInfo } from '../amqp/pool.ts';
import type { AmqpEndpoint } from '../amqp/connection.ts';
import { identityOutbox, invalid, parseIdentity, reopenDelayMs, type GatewaySettings, type ParsedIdentity } from '../options.ts';
import type { IdentityHandle } from './identity.ts';
import type { Gateway, GatewayEvents, GatewayIdentity, GatewayIdentityInput, GatewayOptions, GatewayProtocol, OpenSummary } from '../types.ts';

/** Connects identities `concurrency` at a time; one failure never stops the others. */
async function openAll(
  identities: readonly GatewayIdentityInput[],
  concurrency: number,
  add: (identity: GatewayIdentityInput) => Promise<unknown>,
  translate: (err: unknown, deviceId: string) => SwitchyardError,
): Promise<OpenSummary> {
  const summary: OpenSummary = { connected: [], failed: [] };
  const queue = [...identities];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      try {
        await add(next);
        summary.connected.push(next.deviceId);
      } catch (err) {
        summary.failed.push({ deviceId: next.deviceId, error: translate(err, next.deviceId) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  return summary;
}

export abstract class GatewayBase<I extends GatewayIdentity> extends EventEmitter<GatewayEvents> implements Gateway {
  readonly protocol: GatewayProtocol;
  abstract readonly multiplexed: boolean;
  protected readonly identities = new Map<string, I>();
  /** Device ids whose add() is under way, so a second add of the same id is refused. */
  protected readonly pending = new Set<string>();
  protected closed = false;

  constructor(
    protected readonly options: GatewayOptions,
    protected readonly settings: GatewaySettings,
    readonly decision: Decision,
  ) {
    super();
    this.protocol = decision.protocol;
  }

  abstract add(input: GatewayIdentityInput): Promise<GatewayIdentity>;
  abstract connections(): ConnectionInfo[];
  abstract close(): Promise<void>;

  /** Ends one identity; the others, and the connections they share, stay. */
  async remove(deviceId: string): Promise<void> {
    const identity = this.identities.get(deviceId);
    if (!identity) return;
    this.identities.delete(deviceId);
    await this.retire(identity);
    identity.emit('disconnected', { willRetry: false });
    this.emit('identity-disconnected', { deviceId, willRetry: false });
    await this.released(identity);
  }

  /** The engine's part of remove(): close what stands behind the identity. */
  protected abstract retire(identity: I): Promise<void>;
  /** After remove() has told everyone: give back the identity's place on its connection. */
  protected abstract released(identity: I): Promise<void>;

  open(): Promise<OpenSummary> {
    // Bounded parallelism: on a shared connection every identity is a session and a put-token.
    return openAll(this.options.identities ?? [], this.settings.connectConcurrency, (identity) => this.add(identity), (err, deviceId) =>
      this.translate(err, deviceId, 'connect'),
    );
  }

  get(deviceId: string): GatewayIdentity | undefined {
    return this.identities.get(deviceId);
  }

  list(): GatewayIdentity[] {
    return [...this.identities.values()];
  }

  /** The checks every add() starts with; on success the id is pending until the engine settles it. */
  protected claim(input: GatewayIdentityInput): ParsedIdentity {
    if (this.closed) throw new SwitchyardError('NOT_CONNECTED', 'the gateway is closed; create a new one');
    const parsed = parseIdentity(input);
    if (this.identities.has(parsed.deviceId) || this.pending.has(parsed.deviceId)) {
      throw invalid('deviceId', `"${parsed.deviceId}" is already in the gateway; remove it first`);
    }
    return parsed;
  }

  protected translate(err: unknown, deviceId: string, operation: string): SwitchyardError {
    return translateError(err, { identity: deviceId, operation, protocol: this.protocol });
  }
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
    idleTimeoutMs: settings.keepAliveSeconds * 2_000,
  });
}

/** The engines that share AMQP connections: one pool, for the one hub every identity names. */
export abstract class SharedConnectionGateway extends GatewayBase<IdentityHandle> implements CoreObserver {
  readonly multiplexed = true;
  protected pool: AmqpConnectionPool | undefined;
  private hubHostName: string | undefined;
  private uploadAgent: RedirectAgent | undefined;

  connections(): ConnectionInfo[] {
    return this.pool?.connections() ?? [];
  }

  protected async released(identity: IdentityHandle): Promise<void> {
    await this.pool?.release(identity.deviceId);
  }

  protected poolFor(parsed: ParsedIdentity): AmqpConnectionPool {
    if (this.hubHostName !== undefined && this.hubHostName.toLowerCase() !== parsed.hubHostName.toLowerCase()) {
      throw invalid('connectionString', `of "${parsed.deviceId}" names hub "${parsed.hubHostName}", but this gateway connects to "${this.hubHostName}"; one gateway serves one hub`);
    }
    if (this.pool) return this.pool;
    const pool = createPool(this.options, this.settings, this.protocol, parsed);
    pool.on('connection-open', (event) => this.emit('connection-open', event));
    pool.on('connection-closed', (event) => this.emit('connection-closed', event));
    pool.on('connection-lost', ({ connectionId, error }) =>
      this.emit('connection-lost', { connectionId, error: translateError(error, { operation: 'connection', protocol: this.protocol }) }),
    );
    this.pool = pool;
    this.hubHostName = parsed.hubHostName;
    return pool;
  }

  /**
   * Options for the SDK's file-upload client, whose HTTPS calls (the blob SAS request and the
   * completion notice) go to the hub on 443, not over AMQP: the gateway's `ca`, and an agent
   * when `endpoint` or `webSocketAgent` says the hub is elsewhere. The port is `ports.https`,
   * else, over AMQP-WS, `port` (the hub's 443 stand-in), else 443.
   * TLS still checks the hub's name. The blob PUT itself goes where the hub's answer says.
   */
  protected fileUploadOptions(): { ca?: string | Buffer; http?: { agent: Agent } } {
    const { endpoint, ca, webSocketAgent } = this.options;
    if (endpoint !== undefined) {
      const port = endpoint.ports?.https ?? (this.protocol === 'amqp-ws' ? endpoint.port : undefined) ?? 443;
      this.uploadAgent ??= new RedirectAgent({ host: endpoint.host, port });
    }
    const agent = this.uploadAgent ?? webSocketAgent;
    return { ...(ca === undefined ? {} : { ca }), ...(agent === undefined ? {} : { http: { agent } }) };
  }

  /** Closes the pool and what file upload kept open. */
  protected async closeConnections(): Promise<void> {
    this.uploadAgent?.destroy();
    this.uploadAgent = undefined;
    await this.pool?.close();
  }

  // ---- identities' cores report here (one observer for all of them) ------------------------

  /** Cores by which their identities are found, also while an identity is still connecting. */
  protected readonly byCore = new Map<DeviceCore, IdentityHandle>();

  get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  stateChanged(core: DeviceCore, change: StateChange): void {
    const identity = this.byCore.get(core);
    if (identity === undefined || this.closed) return;
    if (change.to === 'connected') {
      identity.reopenAttempt = 0;
      // The first connection is add()'s result; only re-connections are news.
      if (change.from === 'connecting') return;
      identity.emit('connected');
      this.emit('identity-connected', { deviceId: identity.deviceId, connectionId: identity.connectionId });
    } else if (change.to === 'reconnecting' || change.to === 'disconnected') {
      if (!this.identities.has(identity.deviceId)) return;
      const willRetry = change.to === 'reconnecting';
      const event = change.error === undefined ? { willRetry } : { error: change.error, willRetry };
      identity.emit('disconnected', event);
      this.emit('identity-disconnected', { deviceId: identity.deviceId, ...event });
      if (willRetry) this.reopen(identity);
    }
  }

  fault(core: DeviceCore, error: SwitchyardError): void {
    const identity = this.byCore.get(core);
    if (identity !== undefined) this.identityError(identity, error);
  }

  /** A fault on one identity: reported on it (if heard) and on the gateway, never on the others. */
  protected identityError(identity: IdentityHandle, error: SwitchyardError): void {
    if (identity.state === 'closed' || identity.state === 'closing') return;
    // EventEmitter throws on an unheard 'error'; the gateway-level event is the one that must be heard.
    if (identity.listenerCount('error') > 0) identity.emit('error', error);
    this.emit('identity-error', { deviceId: identity.deviceId, error });
  }

  /** The engine's way of opening an identity's link again. */
  protected abstract openLink(identity: IdentityHandle): Promise<void>;
  /** The engine's way of telling an identity's link that nobody re-opens it any more. */
  protected abstract giveUp(identity: IdentityHandle, error: unknown): void;

  /**
   * Re-opens every identity that went down for a transient reason, not only those with C2D,
   * methods or desired-property listeners (which is all the Azure client re-opens by itself): at
   * once after the drop (the pool coalesces the identities' attempts into one connection
   * attempt), then with the capped back-off, for as long as the identity is in the gateway.
   */
  protected reopen(identity: IdentityHandle): void {
    if (this.closed || identity.reopenTimer !== undefined || identity.state === 'closed' || identity.state === 'closing') return;
    this.openLink(identity).then(
      () => undefined,
      (err: unknown) => {
        if (this.closed || identity.state === 'closed' || identity.state === 'closing') return;
        if (isRetryable(err)) {
          const delay = reopenDelayMs(identity.reopenAttempt++, this.settings.reconnect, (this.options.random ?? Math.random)());
          identity.reopenTimer = this.clock.setTimeout(() => {
            identity.reopenTimer = undefined;
            this.reopen(identity);
          }, delay);
          return;
        }
        const failure = translateError(err, { identity: identity.deviceId, operation: 'connect', protocol: this.protocol });
        this.identityError(identity, failure);
        this.giveUp(identity, failure);
      },
    );
  }

  /** Stops re-opening an identity and closes its client. */
  protected async closeIdentity(identity: IdentityHandle): Promise<void> {
    this.clock.clearTimeout(identity.reopenTimer);
    identity.reopenTimer = undefined;
    await identity.core.close().catch(() => undefined);
    this.byCore.delete(identity.core);
  }

  protected retire(identity: IdentityHandle): Promise<void> {
    return this.closeIdentity(identity);
  }

  /**
   * Closes every identity, those still connecting included (their add() is then refused with
   * NOT_CONNECTED: a client left opening would keep retrying into a gateway that is gone), then
   * the connections. As a device's close(): the orderly close gets CLOSE_GRACE_MS; what is left
   * then (a network that does not answer detaches and session ends) is cut by destroying the
   * connections' sockets, and CLOSE_SETTLE_MS more lets the identities' clients settle.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.beforeClose();
    this.identities.clear();
    const orderly = (async () => {
      await Promise.all([...this.byCore.values()].map((identity) => this.closeIdentity(identity)));
      await this.closeConnections();
    })();
    if (await this.settledWithin(orderly, CLOSE_GRACE_MS)) return;
    this.pool?.abandon();
    if (await this.settledWithin(orderly, CLOSE_SETTLE_MS)) return;
    this.uploadAgent?.destroy();
    this.uploadAgent = undefined;
  }

  /** Whether `promise` settled within `ms` of the gateway's clock. */
  private async settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: TimerHandle | undefined;
    try {
      return await Promise.race([
        promise.then(
          () => true,
          () => true,
        ),
        new Promise<false>((resolve) => (timer = this.clock.setTimeout(() => resolve(false), ms))),
      ]);
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  /** The engine's own timers, stopped before its identities close. */
  protected beforeClose(): void {}

  /**
   * The end of every shared-connection add(): once `opening` settles, the identity is in the
   * gateway, or nothing of it is left (its client closed, its place in the pool given back).
   */
  protected async admit(identity: IdentityHandle, deviceId: string, opening: () => Promise<void>): Promise<IdentityHandle> {
    try {
      await opening();
    } catch (err) {
      this.pending.delete(deviceId);
      await this.closeIdentity(identity);
      await this.pool?.release(deviceId);
      throw this.addFailed(err, deviceId);
    }
    this.pending.delete(deviceId);
    if (this.closed) {
      await this.closeIdentity(identity);
      throw this.addFailed(undefined, deviceId);
    }
    this.identities.set(deviceId, identity);
    return identity;
  }

  /**
   * The identity's own outbox, when the gateway has one. A failure (an unusable directory) gives
   * the identity's place back before add() rejects.
   */
  protected async openOutbox(deviceId: string): Promise<Outbox | undefined> {
    if (this.settings.outbox === undefined) return undefined;
    try {
      return await Outbox.open(identityOutbox(this.settings.outbox, deviceId)!);
    } catch (err) {
      this.pending.delete(deviceId);
      await this.pool?.release(deviceId);
      throw this.translate(err, deviceId, 'connect');
    }
  }

  /** What add() throws when connecting failed: the gateway's close, if that is why, else the failure. */
  protected addFailed(err: unknown, deviceId: string): SwitchyardError {
    if (this.closed) return new SwitchyardError('NOT_CONNECTED', `identity ${deviceId}: the gateway was closed while the identity connected`, { details: { deviceId } });
    return this.translate(err, deviceId, 'connect');
  }
}
