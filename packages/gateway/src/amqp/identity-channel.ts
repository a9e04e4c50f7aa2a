// What one identity's `azure-iot-device-amqp` transport is given in place of its own
// `azure-iot-amqp-base` Amqp client (the constructor's second argument). It implements the part
// of that client the device transport calls, over a session of a shared connection, so the
// transport's features (C2D, methods, twin, settlement, token renewal) run unchanged.
//
// Why not share one stock base client between transports: its disconnect() tears the connection
// down for everyone, setDisconnectHandler keeps only the last handler, initializeCBS replaces the
// CBS agent per call, and any link error of any identity escalates to a connection teardown.
// Working around those means patching four private fields; this facade owns the behaviour instead.
// The Azure packages are CommonJS whose exports Node's ESM loader cannot name statically.
import amqpBase, { type ReceiverLink, type SenderLink } from 'azure-iot-amqp-base';
import type { ReceiverOptions, SenderOptions } from 'rhea';
import azureCommon, { type Message } from 'azure-iot-common';
import type { SharedAmqpConnection, IdentitySession, SessionListener } from './connection.ts';
import type { PeerDetach } from './link-tracker.ts';
import type { ConnectionState } from '@switchyard/device/internal';

const { AmqpMessage, ReceiverLink: ReceiverLinkClass, SenderLink: SenderLinkClass, translateError: translateAmqpError } = amqpBase;
const { errors: azureErrors, results } = azureCommon;

type Callback<T = unknown> = (err?: Error | null, result?: T) => void;

// In the one vocabulary (@switchyard/device's ConnectionState): `reconnecting` is the moment
// between a session failing and the transport hearing of it (and re-opening), `closing` an
// orderly session end under way.
type ChannelState = Exclude<ConnectionState, 'closed'>;

export interface ChannelHooks {
  /** The hub refused or dropped something of this identity alone (a link detach, its session). */
  onIdentityFault?(error: Error, channel: IdentityChannel): void;
  /** Put the identity's links on the connection's shared session rather than a session of its own. */
  readonly sharedSession?: boolean;
}

export class IdentityChannel implements SessionListener {
  private stateValue: ChannelState = 'disconnected';
  private session: IdentitySession | undefined;
  private disconnectHandler: Callback | undefined;
  // Created on first attach: an identity of the lean engine never attaches through the channel.
  private sendersMap: Map<string, SenderLink> | undefined;
  private receiversMap: Map<string, ReceiverLink> | undefined;
  /** Bumped on every connect and loss, so that callbacks of an older session are dropped. */
  private epoch = 0;

  constructor(
    readonly deviceId: string,
    private readonly connection: SharedAmqpConnection,
    private readonly hooks: ChannelHooks = {},
  ) {}

  get state(): ChannelState {
    return this.stateValue;
  }

  get connectionId(): string {
    return this.connection.id;
  }

  /**
   * The identity's session as its link tracker hands it out, for callers that open rhea links
   * themselves (the lean engine): the hub detaching one of them is then a fault of this identity
   * like any other. Undefined unless connected.
   */
  get linkSession(): IdentitySession['tracker']['session'] | undefined {
    return this.stateValue === 'connected' ? this.session?.tracker.session : undefined;
  }

  // ---- the azure-iot-amqp-base Amqp surface used by azure-iot-device-amqp ----------------------

  /**
   * An operation of this identity went unanswered for `timeoutMs`: the shared connection is
   * replaced if it was silent for that long (SharedAmqpConnection.operationTimedOut).
   */
  operationTimedOut(timeoutMs: number): void {
    if (this.stateValue === 'connected') this.connection.operationTimedOut(timeoutMs);
  }

  /** The device transport's URI, TLS and agent settings are ignored: the shared connection has its own. */
  connect(config: { userAgentString?: string } | undefined, done: Callback): void {
    if (this.stateValue === 'connected') {
      process.nextTick(() => done(null, new results.Connected()));
      return;
    }
    if (this.stateValue !== 'disconnected') {
      process.nextTick(() => done(new azureErrors.NotConnectedError(`identity ${this.deviceId} is ${this.stateValue}`)));
      return;
    }
    const epoch = ++this.epoch;
    this.stateValue = 'connecting';
    this.connection
      .open(config?.userAgentString)
      .then(() => (this.hooks.sharedSession ? this.connection.joinSharedSession(this) : this.connection.beginSession(this)))
      .then(
        (session) => {
          if (this.epoch !== epoch) {
            // disconnect() was called meanwhile: the base client would fail this connect too.
            void session.end();
            done(new azureErrors.NotConnectedError(`identity ${this.deviceId} was disconnected while connecting`));
            return;
          }
          this.session = session;
          this.stateValue = 'connected';
          this.connection.watchLoss(this);
          done(null, new results.Connected());
        },
        (err: Error) => {
          if (this.epoch === epoch) this.stateValue = 'disconnected';
          done(err);
        },
      );
  }

  /** Ends this identity's session only; the connection stays up for the others. */
  disconnect(done: Callback): void {
    const session = this.session;
    if (this.stateValue === 'disconnected' || !session) {
      // Also while connecting: the bumped epoch makes the connect in flight end its session and fail.
      if (this.stateValue === 'connecting') this.epoch++;
      this.stateValue = 'disconnected';
      process.nextTick(() => done(null, new results.Disconnected()));
      return;
    }
    this.epoch++;
    this.stateValue = 'closing';
    this.connection.unwatchLoss(this);
    void session.end().then(() => {
      this.forgetLinks();
      if (this.session === session) this.session = undefined;
      if (this.stateValue === 'closing') this.stateValue = 'disconnected';
      done(null, new results.Disconnected());
    });
  }

  setDisconnectHandler(handler: Callback): void {
    this.disconnectHandler = handler;
  }

  /** The connection's one CBS agent serves every identity; nothing to set up per identity. */
  initializeCBS(callback: (err?: Error) => void): void {
    const ready = this.stateValue === 'connected' && this.connection.cbsReady;
    process.nextTick(() => callback(ready ? undefined : new azureErrors.NotConnectedError('CBS is not available: the connection is not open')));
  }

  putToken(audience: string, token: string, callback: (err?: Error) => void): void {
    if (this.stateValue !== 'connected') {
      process.nextTick(() => callback(new azureErrors.NotConnectedError(`identity ${this.deviceId} is not connected`)));
      return;
    }
    this.connection.putToken(audience, token, callback);
  }

  attachSenderLink(endpoint: string, linkOptions: unknown, done: Callback<SenderLink>): void {
    if (!endpoint) throw new ReferenceError(`endpoint cannot be '${endpoint}'`);
    this.attachLink((this.sendersMap ??= new Map()), endpoint, done, (session) => new SenderLinkClass(endpoint, linkOptions as SenderOptions, session));
  }

  attachReceiverLink(endpoint: string, linkOptions: unknown, done: Callback<ReceiverLink>): void {
    if (!endpoint) throw new ReferenceError(`endpoint cannot be '${endpoint}'`);
    this.attachLink((this.receiversMap ??= new Map()), endpoint, done, (session) => new ReceiverLinkClass(endpoint, linkOptions as ReceiverOptions, session));
  }

  detachSenderLink(endpoint: string, done: Callback): void {
    this.detachLink(this.sendersMap, endpoint, done);
  }

  detachReceiverLink(endpoint: string, done: Callback): void {
    this.detachLink(this.receiversMap, endpoint, done);
  }

  /** The deprecated base `send`, which the device transport still uses for method responses. */
  send(message: Message, endpoint: string, to: string | undefined, done: Callback): void {
    const amqpMessage = AmqpMessage.fromMessage(message);
    if (to !== undefined) amqpMessage.to = to;
    // The SDK's SenderLink hands a refused delivery's bare AMQP error ({ condition, description })
    // to the callback, which the device transport passes on as is: it would reach the user as
    // "[object Object]". Made an SDK error here, with the hub's reason in its message.
    const sent: Callback = (err, result) => done(isAmqpErrorObject(err) ? refused(endpoint, err) : err, result);
    const existing = this.sendersMap?.get(endpoint);
    if (existing) {
      existing.send(amqpMessage, sent);
      return;
    }
    this.attachSenderLink(endpoint, null, (err, link) => {
      if (err || !link) done(err ?? new azureErrors.NotConnectedError('sender link missing'));
      else link.send(amqpMessage, sent);
    });
  }

  getReceiver(endpoint: string, done: Callback<ReceiverLink>): void {
    const existing = this.receiversMap?.get(endpoint);
    if (existing) done(null, existing);
    else this.attachReceiverLink(endpoint, null, done);
  }

  // ---- internals -------------------------------------------------------------------------------

  private attachLink<L extends SenderLink | ReceiverLink>(
    map: Map<string, L>,
    endpoint: string,
    done: Callback<L>,
    create: (session: IdentitySession['tracker']['session']) => L,
  ): void {
    const session = this.session;
    if (this.stateValue !== 'connected' || !session) {
      process.nextTick(() => done(new azureErrors.NotConnectedError(`identity ${this.deviceId} is not connected`)));
      return;
    }
    // Same bookkeeping as the base client: a link that errors is forgotten, so the next
    // operation attaches a fresh one.
    const link = create(session.tracker.session);
    map.set(endpoint, link);
    const forget = (): void => {
      if (map.get(endpoint) === link) map.delete(endpoint);
    };
    const onAttachError = (err: Error): void => done(err);
    link.on('error', forget);
    link.on('error', onAttachError);
    link.attach((err?: Error) => {
      if (err) {
        forget();
        onAttachError(err);
        return;
      }
      link.removeListener('error', onAttachError);
      done(null, link);
    });
  }

  private detachLink(map: Map<string, SenderLink | ReceiverLink> | undefined, endpoint: string, done: Callback): void {
    if (!endpoint) throw new ReferenceError(`endpoint cannot be '${endpoint}'`);
    const link = map?.get(endpoint);
    if (!link) {
      process.nextTick(() => done());
      return;
    }
    link.detach((err?: Error) => {
      if (map?.get(endpoint) === link) map.delete(endpoint);
      done(err);
    });
  }

  /** Like the base client on a dropped connection: links are force-detached before anyone is told. */
  private forgetLinks(error?: Error): void {
    for (const link of [...(this.sendersMap?.values() ?? []), ...(this.receiversMap?.values() ?? [])]) link.forceDetach(error);
    this.sendersMap?.clear();
    this.receiversMap?.clear();
  }

  /**
   * Nothing answers this identity's close (a network that drops everything): its SDK links are
   * force-detached, so the transport's disconnect, which waits for each detach, goes on without
   * the hub. The connection's sockets are the gateway's to destroy.
   */
  abandon(why: string): void {
    this.forgetLinks(new azureErrors.NotConnectedError(`identity ${this.deviceId}: ${why}`));
  }

  /** The shared connection dropped (it calls this on every identity it carries). */
  connectionLost(error: Error): void {
    this.connection.unwatchLoss(this);
    if (this.stateValue !== 'connected' && this.stateValue !== 'reconnecting') return;
    this.epoch++;
    this.session = undefined;
    this.stateValue = 'disconnected';
    this.forgetLinks(error);
    this.disconnectHandler?.(error);
  }

  // ---- SessionListener: the channel itself, so an identity costs no closures for it ------------

  peerDetached(session: IdentitySession, detach: PeerDetach): void {
    if (this.session !== session || this.stateValue !== 'connected') return;
    // The translation the stock client applies to a link error, so the Azure retry filter sees
    // the same classes: detach-forced is retryable, unauthorized-access is not.
    const error = detach.error
      ? translateAmqpError(`AMQP link ${detach.address ?? ''} detached by the hub`, toError(detach.error))
      : new azureErrors.NotConnectedError(`AMQP link ${detach.address ?? ''} detached by the hub`);
    this.fail(this.epoch, error);
  }

  sessionLost(session: IdentitySession, error: Error): void {
    if (this.session !== session || this.stateValue !== 'connected') return;
    this.fail(this.epoch, error);
  }

  /**
   * One identity went wrong while the connection lives on: its remaining links are closed and its
   * session ended (so the transport has nothing left to detach on a dead session), then the
   * transport hears about it exactly as it would hear about its own connection dropping.
   */
  private fail(epoch: number, error: Error): void {
    const session = this.session;
    this.stateValue = 'reconnecting';
    this.hooks.onIdentityFault?.(error, this);
    void (session ? session.end() : Promise.resolve()).then(() => {
      if (this.epoch !== epoch || this.stateValue !== 'reconnecting') return;
      this.epoch++;
      this.connection.unwatchLoss(this);
      this.session = undefined;
      this.stateValue = 'disconnected';
      this.forgetLinks(error);
      this.disconnectHandler?.(error);
    });
  }
}

function isAmqpErrorObject(err: unknown): err is { condition?: unknown; description?: unknown } {
  return typeof err === 'object' && err !== null && !(err instanceof Error) && ('condition' in err || 'description' in err);
}

function refused(endpoint: string, amqpError: { condition?: unknown; description?: unknown }): Error {
  const why = typeof amqpError.description === 'string' ? amqpError.description : String(amqpError.condition ?? 'no reason given');
  return translateAmqpError(`the hub refused the message on ${endpoint}: ${why}`, toError(amqpError));
}

/** translateError reads `condition` off the error, as rhea's LinkError carries it. */
function toError(amqpError: { condition?: unknown; description?: unknown }): Error {
  const error = new Error(typeof amqpError.description === 'string' ? amqpError.description : String(amqpError.condition ?? 'AMQP error'));
  (error as Error & { condition?: unknown }).condition = amqpError.condition;
  return error;
}
