// What every gateway engine shares: the identity table, the guard on add(), bounded-parallel
// open(), and lookups. Engines differ in how an identity connects (one shared AMQP connection
// through the Azure client or through lean links, or one connection each) and say only that.
import { EventEmitter } from 'node:events';
import type { Agent } from 'node:https';
import { RedirectAgent } from '@switchyard/device/internal';
import { SwitchyardError } from '@switchyard/errors';
import type { Decision } from '@switchyard/selector';
import { translateAzureError } from './errors.ts';
import {
  createPool,
  invalid,
  parseIdentity,
  type Gateway,
  type GatewayEvents,
  type GatewayIdentity,
  type GatewayIdentityInput,
  type GatewayOptions,
  type GatewayProtocol,
  type IdentityState,
  type GatewaySettings,
  type OpenSummary,
  type ParsedIdentity,
} from './gateway.ts';
import type { AmqpConnectionPool, ConnectionInfo } from './pool.ts';

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
    return translateAzureError(err, { deviceId, operation, protocol: this.protocol });
  }
}

/** The engines that share AMQP connections: one pool, for the one hub every identity names. */
export abstract class SharedConnectionGateway<I extends GatewayIdentity & { stateValue: IdentityState }> extends GatewayBase<I> {
  readonly multiplexed = true;
  protected pool: AmqpConnectionPool | undefined;
  private hubHostName: string | undefined;
  private uploadAgent: RedirectAgent | undefined;

  connections(): ConnectionInfo[] {
    return this.pool?.connections() ?? [];
  }

  protected async released(identity: I): Promise<void> {
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
      this.emit('connection-lost', { connectionId, error: translateAzureError(error, { operation: 'connection', protocol: this.protocol }) }),
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

  /** A fault on one identity: reported on it (if heard) and on the gateway, never on the others. */
  protected identityError(identity: I, err: unknown, operation: string): void {
    if (identity.stateValue === 'closed') return;
    const error = translateAzureError(err, { deviceId: identity.deviceId, operation, protocol: this.protocol });
    // EventEmitter throws on an unheard 'error'; the gateway-level event is the one that must be heard.
    if (identity.listenerCount('error') > 0) identity.emit('error', error);
    this.emit('identity-error', { deviceId: identity.deviceId, error });
  }

  /** Re-opening an identity failed for good: it stays disconnected until removed and added again. */
  protected gaveUp(identity: I, reopenErr: unknown): void {
    identity.stateValue = 'disconnected';
    const failure = translateAzureError(reopenErr, { deviceId: identity.deviceId, operation: 'connect', protocol: this.protocol });
    this.identityError(identity, failure, 'reopen');
    identity.emit('disconnected', { error: failure, willRetry: false });
    this.emit('identity-disconnected', { deviceId: identity.deviceId, error: failure, willRetry: false });
  }
}
