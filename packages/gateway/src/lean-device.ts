// The `lean` engine's per-identity DeviceClient: the same interface as `@switchyard/device`'s,
// implemented directly on the identity's session of a shared connection instead of on an Azure
// `Client` + `azure-iot-device-amqp` transport. Measured per identity, that stack (client, transport,
// authentication provider, their machina state machines and retry objects, the twin and method
// clients built eagerly) was most of the gateway's memory; here an idle identity is one object, its
// share of the connection's session and its CBS token. Links are attached on first use: telemetry on the first send, C2D on
// the first `message` listener, methods and twin through the SDK's own `AmqpDeviceMethodClient` and
// `AmqpTwinClient` (its wire code), created only when an identity uses them; file upload through
// the SDK's blob client, which the gateway builds per upload.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { Delivery, EventContext, Message as RheaMessage, Receiver, Sender } from 'rhea';
import { SwitchyardError } from '@switchyard/errors';
import { fromAzureMessage, queueIterator, toAzureMessage, type MessageQueue, type C2DMessage, type Clock, type MethodHandler, type OperationOptions, type OutgoingMessage, type TwinDocument } from '@switchyard/device/internal';
import type { Decision } from '@switchyard/selector';
// The Azure packages are CommonJS whose exports Node's ESM loader cannot name statically.
import amqpBase from 'azure-iot-amqp-base';
import azureCommon from 'azure-iot-common';
import methodClientModule from 'azure-iot-device-amqp/dist/amqp_device_method_client.js';
import twinClientModule from 'azure-iot-device-amqp/dist/amqp_twin_client.js';
import type { IdentityChannel } from './identity-channel.ts';
import { translateAzureError } from './errors.ts';

const { AmqpMessage, translateError: translateAmqpError } = amqpBase;
const { errors: azureErrors, SharedAccessSignature, encodeUriComponentStrict } = azureCommon;
const { AmqpDeviceMethodClient } = methodClientModule;
const { AmqpTwinClient } = twinClientModule;
type MethodClient = InstanceType<typeof AmqpDeviceMethodClient>;
type TwinClient = InstanceType<typeof AmqpTwinClient>;

export type LeanState = 'connected' | 'disconnected' | 'closing' | 'closed';

/** What a device needs from its gateway; one object shared by every identity, so no per-identity closures. */
export interface LeanOwner {
  readonly protocol: 'amqp' | 'amqp-ws';
  readonly decision: Decision;
  readonly clock: Clock;
  readonly operationTimeoutMs: number;
  readonly tokenValidTimeInSeconds: number;
  readonly tokenRenewalMarginInSeconds: number;
  /** The identity's session is gone (connection lost, link detached by the hub, renewal refused). */
  deviceDropped(device: LeanDevice, error: Error): void;
  /** A fault that concerns this identity alone, reported before the drop. */
  deviceFault(device: LeanDevice, error: Error, operation: string): void;
  /** The device holds a token that needs renewing at `renewAt` (ms on the clock). */
  scheduleRenewal(device: LeanDevice): void;
  /** File upload, which goes over HTTPS to the hub rather than over the identity's AMQP links. */
  uploadToBlob(device: LeanDevice, credentials: LeanCredentials, blobName: string, stream: NodeJS.ReadableStream, size: number): Promise<void>;
}

export interface LeanCredentials {
  hubHostName: string;
  sharedAccessKey?: string;
  sharedAccessKeyName?: string;
  /** A fixed token from the connection string: used as is, never renewed. */
  sharedAccessSignature?: string;
}

interface PendingSend {
  resolve(): void;
  reject(error: Error): void;
}

const RETRYABLE = new Set(['NotConnectedError', 'TimeoutError', 'ServiceUnavailableError', 'ThrottlingError', 'InternalServerError']);

/** The SDK Message `@switchyard/device` builds for AMQP, in the SDK's own AMQP encoding. */
function toRheaMessage(input: OutgoingMessage, protocol: 'amqp' | 'amqp-ws'): RheaMessage {
  return AmqpMessage.fromMessage(toAzureMessage(input, protocol) as never) as unknown as RheaMessage;
}

/** A received C2D message in `@switchyard/device`'s normalized shape (minus settlement). */
function fromRheaMessage(raw: RheaMessage, protocol: 'amqp' | 'amqp-ws'): Omit<C2DMessage, 'complete' | 'abandon' | 'reject'> {
  return fromAzureMessage(AmqpMessage.toMessage(raw as never) as never, protocol);
}

function waitSendable(sender: Sender): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onSendable = (): void => {
      sender.removeListener('sender_close', onClose);
      resolve();
    };
    const onClose = (): void => {
      sender.removeListener('sendable', onSendable);
      reject(new azureErrors.NotConnectedError('the telemetry link was detached'));
    };
    sender.once('sendable', onSendable);
    sender.once('sender_close', onClose);
  });
}

function callbackPromise<T = unknown>(run: (done: (err?: Error | null, result?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => run((err, result) => (err ? reject(err) : resolve(result as T))));
}

export class LeanDevice extends EventEmitter {
  readonly decision: Decision;
  #state: LeanState = 'disconnected';
  /** When the current token should be renewed, in clock ms; undefined for a fixed SAS. */
  renewAt: number | undefined;
  #sender: Sender | undefined;
  #senderReady: Promise<Sender> | undefined;
  #senderOk: ((sender: Sender) => void) | undefined;
  /** Fails the attach in flight: a connection that dies silently never answers it. */
  #senderFail: ((error: Error) => void) | undefined;
  #inFlight: Map<Delivery, PendingSend> | undefined;
  #receiver: Receiver | undefined;
  #c2d = false;
  #queues: Set<MessageQueue<C2DMessage>> | undefined;
  #methods: Map<string, MethodHandler> | undefined;
  #methodClient: MethodClient | undefined;
  #twinClient: TwinClient | undefined;
  #desired = false;
  #reconnected: Promise<void> | undefined;
  #reconnectedResolve: (() => void) | undefined;

  constructor(
    readonly deviceId: string,
    readonly channel: IdentityChannel,
    private readonly credentials: LeanCredentials,
    private readonly owner: LeanOwner,
  ) {
    super();
    this.decision = owner.decision;
    channel.setDisconnectHandler((err) => this.#dropped(err ?? new azureErrors.NotConnectedError('the session ended')));
  }

  get protocol(): 'amqp' | 'amqp-ws' {
    return this.owner.protocol;
  }

  get state(): LeanState {
    return this.#state;
  }

  /** For the SDK's method and twin clients, which ask the "authentication provider" whose endpoint to use. */
  getDeviceCredentials(callback: (err: Error | null, credentials: { deviceId: string }) => void): void {
    callback(null, { deviceId: this.deviceId });
  }

  // ---- connection ------------------------------------------------------------------------

  /** Begins the session, puts the token, re-attaches what was in use. Rejects with an Azure SDK error. */
  async open(): Promise<void> {
    await callbackPromise((done) => this.channel.connect({ userAgentString: 'switchyard-gateway-lean' }, done));
    try {
      await this.#putToken();
    } catch (err) {
      await callbackPromise((done) => this.channel.disconnect(done)).catch(() => undefined);
      throw err;
    }
    const wasDown = this.#state === 'disconnected' && this.#reconnectedResolve !== undefined;
    this.#state = 'connected';
    if (this.#c2d) this.#attachReceiver();
    if (this.#methods !== undefined) this.#attachMethods();
    if (this.#desired) this.#enableDesired();
    const resolve = this.#reconnectedResolve;
    this.#reconnected = undefined;
    this.#reconnectedResolve = undefined;
    resolve?.();
    if (wasDown) this.emit('connected');
  }

  #putToken(): Promise<void> {
    const { hubHostName, sharedAccessKey, sharedAccessKeyName, sharedAccessSignature } = this.credentials;
    let token: string;
    if (sharedAccessKey !== undefined) {
      const expiry = Math.floor(this.owner.clock.now() / 1000) + this.owner.tokenValidTimeInSeconds;
      token = SharedAccessSignature.create(encodeUriComponentStrict(`${hubHostName}/devices/${this.deviceId}`), sharedAccessKeyName as string, sharedAccessKey, expiry).toString();
      this.renewAt = (expiry - this.owner.tokenRenewalMarginInSeconds) * 1000;
    } else {
      token = sharedAccessSignature!;
      this.renewAt = undefined;
    }
    // The CBS audience is the token's own resource, as the SDK's transport sends it.
    const audience = SharedAccessSignature.parse(token, ['sr', 'sig', 'se']).sr;
    return callbackPromise<void>((done) => this.channel.putToken(audience, token, done)).then(() => {
      if (this.renewAt !== undefined) this.owner.scheduleRenewal(this);
    });
  }

  /** Called by the gateway's one renewal timer; a refused renewal drops the identity like the SDK does. */
  renew(): void {
    if (this.#state !== 'connected' || this.renewAt === undefined) return;
    this.renewAt = undefined;
    this.#putToken().catch((err: unknown) => {
      if (this.#state !== 'connected') return;
      const error = err instanceof Error ? err : new azureErrors.UnauthorizedError(String(err));
      this.owner.deviceFault(this, error, 'renew token');
      // Ending the session makes the channel report the drop through #dropped.
      callbackPromise((done) => this.channel.disconnect(done)).then(
        () => this.#dropped(error),
        () => this.#dropped(error),
      );
    });
  }

  /** The session is gone: forget the links, tell the gateway (which re-opens or gives up). */
  #dropped(error: Error): void {
    if (this.#state === 'closing' || this.#state === 'closed' || this.#state === 'disconnected') return;
    this.#state = 'disconnected';
    this.#forgetLinks(error);
    this.#reconnected ??= new Promise<void>((resolve) => {
      this.#reconnectedResolve = resolve;
    });
    const translated = translateAzureError(error, { deviceId: this.deviceId, operation: 'connection', protocol: this.protocol });
    this.emit('disconnected', { reason: translated.message, willRetry: RETRYABLE.has(error.name), error: translated });
    this.owner.deviceDropped(this, error);
  }

  /** The gateway gave up on this identity: operations waiting for a reconnect fail now. */
  gaveUp(): void {
    const resolve = this.#reconnectedResolve;
    this.#reconnectedResolve = undefined;
    this.#reconnected = undefined;
    resolve?.();
  }

  #forgetLinks(error: Error): void {
    this.#sender = undefined;
    this.#senderReady = undefined;
    const senderFail = this.#senderFail;
    this.#senderOk = undefined;
    this.#senderFail = undefined;
    senderFail?.(error);
    this.#receiver = undefined;
    const inFlight = this.#inFlight;
    this.#inFlight = undefined;
    for (const pending of inFlight?.values() ?? []) pending.reject(error);
    // The SDK clients' links were force-detached by the channel; new ones are built on next use.
    const methodClient = this.#methodClient;
    this.#methodClient = undefined;
    if (methodClient) {
      methodClient.removeAllListeners();
      methodClient.on('error', () => undefined);
      methodClient.forceDetach();
    }
    const twinClient = this.#twinClient;
    this.#twinClient = undefined;
    if (twinClient) {
      twinClient.removeAllListeners();
      twinClient.on('error', () => undefined);
    }
  }

  #assertOpen(what: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new SwitchyardError('NOT_CONNECTED', `${what}: the identity was removed from the gateway`, { details: { protocol: this.protocol, operation: what } });
    }
  }

  #emitError(err: unknown, operation: string): void {
    const error = translateAzureError(err, { deviceId: this.deviceId, operation, protocol: this.protocol });
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  /**
   * Runs `op` with the client's deadline. While the identity is reconnecting, a retryable failure
   * waits for the reconnect and tries again, as the Azure client's retry policy does, so what is
   * sent during an outage arrives once the hub is back.
   */
  async #run<T>(what: string, op: () => Promise<T>, options?: OperationOptions): Promise<T> {
    this.#assertOpen(what);
    const timeoutMs = options?.timeoutMs ?? this.owner.operationTimeoutMs;
    const signal = options?.signal;
    const deadline = this.owner.clock.now() + timeoutMs;
    const attempt = async (): Promise<T> => {
      for (;;) {
        if (this.#state === 'disconnected' && this.#reconnected) await this.#reconnected;
        this.#assertOpen(what);
        if (this.#state !== 'connected') throw new azureErrors.NotConnectedError(`identity ${this.deviceId} is disconnected`);
        try {
          return await op();
        } catch (err) {
          const retry = err instanceof Error && RETRYABLE.has(err.name) && this.state === 'disconnected' && this.#reconnected !== undefined && this.owner.clock.now() < deadline;
          if (!retry) throw err;
        }
      }
    };
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        this.owner.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const timer = this.owner.clock.setTimeout(() => {
        finish(() => reject(new SwitchyardError('TIMEOUT', `${this.protocol} ${what} did not complete within ${timeoutMs} ms`, { details: { protocol: this.protocol, operation: what, timeoutMs } })));
      }, timeoutMs);
      const onAbort = (): void => finish(() => reject(new SwitchyardError('ABORTED', `${what} was aborted`, { cause: signal?.reason })));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      attempt().then(
        (value) => finish(() => resolve(value)),
        (err: unknown) => finish(() => reject(translateAzureError(err, { deviceId: this.deviceId, operation: what, protocol: this.protocol }))),
      );
    });
  }

  // ---- telemetry ---------------------------------------------------------------------------

  sendEvent(message: OutgoingMessage, options?: OperationOptions): Promise<void> {
    this.#assertOpen('sendEvent');
    const amqpMessage = toRheaMessage(message, this.protocol);
    return this.#run('sendEvent', () => this.#send(amqpMessage), options);
  }

  async sendEventBatch(messages: readonly OutgoingMessage[], options?: OperationOptions): Promise<void> {
    this.#assertOpen('sendEventBatch');
    const amqpMessages = messages.map((m) => toRheaMessage(m, this.protocol));
    // Pipelined on the one link, as the SDK's AMQP transport does (it has no batch frame).
    await this.#run('sendEventBatch', () => Promise.all(amqpMessages.map((m) => this.#send(m))).then(() => undefined), options);
  }

  async #send(message: RheaMessage): Promise<void> {
    const sender = await this.#ensureSender();
    // Out of credit: wait for the hub to grant more rather than piling deliveries onto rhea's
    // session buffer (which throws when full), as the SDK's SenderLink does.
    while (!sender.sendable()) await waitSendable(sender);
    await new Promise<void>((resolve, reject) => {
      const delivery = sender.send(message);
      (this.#inFlight ??= new Map()).set(delivery, { resolve, reject });
    });
  }

  /** The identity's one telemetry link, attached on first use and kept while the session lives. */
  #ensureSender(): Promise<Sender> {
    if (this.#senderReady) return this.#senderReady;
    if (this.#sender) return Promise.resolve(this.#sender);
    this.#senderReady = new Promise<Sender>((resolve, reject) => {
      const session = this.channel.linkSession;
      if (!session) return reject(new azureErrors.NotConnectedError(`identity ${this.deviceId} is not connected`));
      const sender = session.open_sender({ target: { address: `/devices/${this.deviceId}/messages/events` } });
      this.#sender = sender;
      this.#senderOk = resolve;
      this.#senderFail = reject;
      LeanDevice.#bySender.set(sender, this);
      sender.on('accepted', LeanDevice.#onAccepted);
      sender.on('rejected', LeanDevice.#onRejected);
      // rhea reports 'modified' as 'released' (treat_modified_as_released); both mean "not taken".
      sender.on('released', LeanDevice.#onReleased);
      sender.on('sendable', LeanDevice.#onSendable);
      sender.on('sender_close', LeanDevice.#onSenderClose);
    });
    return this.#senderReady;
  }

  // Every identity has a telemetry link once it sends, so its rhea handlers are shared functions
  // that find their device here rather than closures per link.
  static readonly #bySender = new WeakMap<Sender, LeanDevice>();

  static #settle(context: EventContext, error?: Error): void {
    const delivery = context.delivery;
    const device = context.sender ? LeanDevice.#bySender.get(context.sender) : undefined;
    const pending = delivery && device ? device.#inFlight?.get(delivery) : undefined;
    if (!pending || !delivery || !device) return;
    device.#inFlight!.delete(delivery);
    if (device.#inFlight!.size === 0) device.#inFlight = undefined;
    if (error) pending.reject(error);
    else pending.resolve();
  }

  static #onAccepted(this: void, context: EventContext): void {
    LeanDevice.#settle(context);
  }

  static #onRejected(this: void, context: EventContext): void {
    const condition = (context.delivery as { remote_state?: { error?: { condition?: unknown; description?: unknown } } } | undefined)?.remote_state?.error;
    LeanDevice.#settle(context, translateAmqpError('the hub rejected the message', Object.assign(new Error(String(condition?.description ?? 'rejected')), { condition: condition?.condition })));
  }

  static #onReleased(this: void, context: EventContext): void {
    LeanDevice.#settle(context, new azureErrors.ServiceUnavailableError('the hub released the message'));
  }

  static #onSendable(this: void, context: EventContext): void {
    const device = context.sender ? LeanDevice.#bySender.get(context.sender) : undefined;
    const resolve = device ? device.#senderOk : undefined;
    const sender = context.sender;
    if (!device || !resolve || !sender || device.#sender !== sender) return;
    device.#senderReady = undefined;
    device.#senderOk = undefined;
    device.#senderFail = undefined;
    resolve(sender);
  }

  static #onSenderClose(this: void, context: EventContext): void {
    const device = context.sender ? LeanDevice.#bySender.get(context.sender) : undefined;
    if (!device || device.#sender !== context.sender) return;
    const reject = device.#senderFail;
    device.#sender = undefined;
    device.#senderReady = undefined;
    device.#senderOk = undefined;
    device.#senderFail = undefined;
    reject?.(new azureErrors.NotConnectedError('the telemetry link was detached'));
  }

  // ---- cloud to device ---------------------------------------------------------------------

  override on(event: string | symbol, listener: (...args: never[]) => void): this {
    super.on(event, listener as (...args: unknown[]) => void);
    this.#featureFor(event);
    return this;
  }

  override once(event: string | symbol, listener: (...args: never[]) => void): this {
    super.once(event, listener as (...args: unknown[]) => void);
    this.#featureFor(event);
    return this;
  }

  #featureFor(event: string | symbol): void {
    if (event === 'message') this.#enableC2D();
    if (event === 'desired' && !this.#desired) {
      this.#desired = true;
      if (this.#state === 'connected') this.#enableDesired();
    }
  }

  #enableC2D(): void {
    if (this.#c2d || this.#state === 'closing' || this.#state === 'closed') return;
    this.#c2d = true;
    if (this.#state === 'connected') this.#attachReceiver();
  }

  #attachReceiver(): void {
    const session = this.channel.linkSession;
    if (!session || this.#receiver) return;
    // Manual settlement (the container's default): complete/abandon/reject are the caller's.
    const receiver = session.open_receiver({ source: { address: `/devices/${this.deviceId}/messages/devicebound` } });
    this.#receiver = receiver;
    receiver.on('message', (context: EventContext) => this.#deliver(context));
    receiver.once('receiver_close', () => {
      if (this.#receiver === receiver) this.#receiver = undefined;
    });
  }

  #deliver(context: EventContext): void {
    const delivery = context.delivery;
    if (!context.message || !delivery) return;
    const data = fromRheaMessage(context.message, this.protocol);
    const settle = (how: 'accept' | 'release' | 'reject', what: string) => async (): Promise<void> => {
      this.#assertOpen(what);
      // A lock belongs to its link: settling after that link is gone cannot reach the hub.
      if (this.#receiver !== delivery.link || !delivery.link.is_open()) {
        throw translateAzureError(new azureErrors.NotConnectedError(`the link that delivered this message is gone; the hub will redeliver it`), { deviceId: this.deviceId, operation: what, protocol: this.protocol });
      }
      delivery[how]();
    };
    const message: C2DMessage = { ...data, complete: settle('accept', 'complete'), abandon: settle('release', 'abandon'), reject: settle('reject', 'reject') };
    for (const q of this.#queues ?? []) q.push(message);
    super.emit('message', message);
  }

  messages(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<C2DMessage> {
    const iterator = queueIterator((this.#queues ??= new Set()), { ...options, closed: this.#state === 'closed' || this.#state === 'closing' });
    this.#enableC2D();
    return iterator;
  }

  // ---- methods -----------------------------------------------------------------------------

  onMethod(methodName: string, handler: MethodHandler): void {
    this.#assertOpen('onMethod');
    if (typeof methodName !== 'string' || methodName === '') {
      throw new SwitchyardError('CONFIG_INVALID', 'onMethod needs a method name', { details: { field: 'methodName' } });
    }
    const methods = (this.#methods ??= new Map());
    const known = methods.has(methodName);
    methods.set(methodName, handler);
    if (this.#state !== 'connected') return;
    if (this.#methodClient === undefined) this.#attachMethods();
    else if (!known) this.#listenMethod(this.#methodClient, methodName);
  }

  #attachMethods(): void {
    const client = new AmqpDeviceMethodClient(this as never, this.channel as never);
    this.#methodClient = client;
    client.on('error', (err: unknown) => this.#emitError(err, 'methods'));
    for (const name of this.#methods?.keys() ?? []) this.#listenMethod(client, name);
    client.attach((err?: Error) => {
      if (err && this.#methodClient === client) this.#emitError(err, 'methods');
    });
  }

  #listenMethod(client: MethodClient, methodName: string): void {
    client.onDeviceMethod(methodName, (request: unknown) => {
      const req = request as { requestId: string; body?: string };
      let payload: unknown = req.body;
      if (typeof req.body === 'string') {
        try {
          payload = JSON.parse(req.body);
        } catch {
          payload = req.body;
        }
      }
      const handler = this.#methods?.get(methodName);
      Promise.resolve()
        .then(() => {
          if (!handler) throw new Error(`no handler for ${methodName}`);
          return handler({ methodName, requestId: req.requestId, payload });
        })
        .then(
          (result) => ({ status: result.status, payload: result.payload ?? null }),
          (err: unknown) => ({ status: 500, payload: { error: translateAzureError(err, { operation: `method ${methodName}` }).message } }),
        )
        .then((response) => callbackPromise((done) => client.sendMethodResponse({ requestId: req.requestId, ...response } as never, done)))
        .catch((err: unknown) => this.#emitError(err, `method ${methodName}`));
    });
  }

  // ---- twin --------------------------------------------------------------------------------

  #twin(): TwinClient {
    if (this.#twinClient) return this.#twinClient;
    const client = new AmqpTwinClient(this as never, this.channel as never);
    client.on('error', (err: unknown) => this.#emitError(err, 'twin'));
    client.on('twinDesiredPropertiesUpdate', (patch: Record<string, unknown>) => super.emit('desired', patch));
    this.#twinClient = client;
    return client;
  }

  getTwin(options?: OperationOptions): Promise<TwinDocument> {
    return this.#run(
      'getTwin',
      () =>
        callbackPromise<{ desired?: Record<string, unknown>; reported?: Record<string, unknown> }>((done) => this.#twin().getTwin(done as never)).then((twin) => ({
          desired: twin?.desired ?? {},
          reported: twin?.reported ?? {},
        })),
      options,
    );
  }

  updateReported(patch: Record<string, unknown>, options?: OperationOptions): Promise<void> {
    return this.#run('updateReported', () => callbackPromise<void>((done) => this.#twin().updateTwinReportedProperties(patch, done as never)), options);
  }

  #enableDesired(): void {
    const client = this.#twin();
    client.enableTwinDesiredPropertiesUpdates((err?: Error) => {
      if (err && this.#twinClient === client) this.#emitError(err, 'desired');
    });
  }

  // ---- file upload -------------------------------------------------------------------------

  async uploadToBlob(blobName: string, data: Buffer | NodeJS.ReadableStream, length?: number, options?: OperationOptions): Promise<void> {
    this.#assertOpen('uploadToBlob');
    const size = Buffer.isBuffer(data) ? data.length : length;
    if (size === undefined) throw new SwitchyardError('CONFIG_INVALID', 'uploadToBlob needs the stream length for a stream', { details: { field: 'length' } });
    const stream = Buffer.isBuffer(data) ? Readable.from([data]) : data;
    await this.#run('uploadToBlob', () => this.owner.uploadToBlob(this, this.credentials, blobName, stream, size), options);
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Ends the identity's session; the connection stays for the others. The gateway's remove() calls this. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closing';
    for (const q of this.#queues ?? []) q.end();
    this.#queues?.clear();
    this.gaveUp();
    this.renewAt = undefined;
    this.#forgetLinks(new azureErrors.NotConnectedError(`identity ${this.deviceId} was removed`));
    await callbackPromise((done) => this.channel.disconnect(done)).catch(() => undefined);
    this.#state = 'closed';
  }
}
