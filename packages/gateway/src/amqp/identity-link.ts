// The `lean` engine's per-identity link: what a DeviceCore drives (links/link.ts in
// `@switchyard/device`), implemented directly on the identity's session of a shared connection
// instead of on an Azure `Client` + `azure-iot-device-amqp` transport. The core above it is the
// same as every other client's: deadlines, states, readers and handlers are not repeated here.
// One file because it is one class over one identity's rhea links, whose handlers are static and
// reach the class's private fields (so an identity costs no closure per link). Measured per identity, that stack (client, transport,
// authentication provider, their machina state machines and retry objects, the twin and method
// clients built eagerly) was most of the gateway's memory; here an idle identity is one object, its
// share of the connection's session and its CBS token. Links are attached on first use: telemetry on the first send, C2D on
// the first `message` listener, methods and twin through the SDK's own `AmqpDeviceMethodClient` and
// `AmqpTwinClient` (its wire code), created only when an identity uses them; file upload through
// the SDK's blob client, which the gateway builds per upload.
import type { Delivery, EventContext, Message as RheaMessage, Receiver, Sender } from 'rhea';
import { SwitchyardError } from '@switchyard/errors';
import { fromAzureMessage, guardTwinClient, isRetryable, toAzureMessage, type C2DMessageData, type DeviceLink, type LinkListener, type OutgoingMessage, type Settlement, type TwinDocument } from '@switchyard/device/internal';
import type { Clock } from '@switchyard/time';
// The Azure packages are CommonJS whose exports Node's ESM loader cannot name statically.
import amqpBase from 'azure-iot-amqp-base';
import azureCommon from 'azure-iot-common';
import methodClientModule from 'azure-iot-device-amqp/dist/amqp_device_method_client.js';
import twinClientModule from 'azure-iot-device-amqp/dist/amqp_twin_client.js';
import type { IdentityChannel } from './identity-channel.ts';
import { releaseAbandoned, spareCredit } from './session-deliveries.ts';

const { AmqpMessage, translateError: translateAmqpError } = amqpBase;
const { errors: azureErrors, SharedAccessSignature, encodeUriComponentStrict } = azureCommon;
const { AmqpDeviceMethodClient } = methodClientModule;
const { AmqpTwinClient } = twinClientModule;
type MethodClient = InstanceType<typeof AmqpDeviceMethodClient>;
type TwinClient = InstanceType<typeof AmqpTwinClient>;

/** What a link needs from its gateway; one object shared by every identity, so no per-identity closures. */
export interface IdentityLinkOwner {
  readonly protocol: 'amqp' | 'amqp-ws';
  readonly clock: Clock;
  readonly tokenValidTimeInSeconds: number;
  readonly tokenRenewalMarginInSeconds: number;
  /** The link holds a token that needs renewing at `renewAt` (ms on the clock). */
  scheduleRenewal(link: IdentityLink): void;
  /** File upload, which goes over HTTPS to the hub rather than over the identity's AMQP links. */
  uploadToBlob(link: IdentityLink, credentials: LeanCredentials, blobName: string, stream: NodeJS.ReadableStream, size: number): Promise<void>;
}

export interface LeanCredentials {
  hubHostName: string;
  sharedAccessKey?: string;
  sharedAccessKeyName?: string;
  /** A fixed token from the connection string: used as is, never renewed. */
  sharedAccessSignature?: string;
}


/** The SDK Message `@switchyard/device` builds for AMQP, in the SDK's own AMQP encoding. */
function toRheaMessage(input: OutgoingMessage, protocol: 'amqp' | 'amqp-ws'): RheaMessage {
  return AmqpMessage.fromMessage(toAzureMessage(input, protocol) as never) as unknown as RheaMessage;
}

/** A received C2D message in `@switchyard/device`'s normalized shape. */
function fromRheaMessage(raw: RheaMessage, protocol: 'amqp' | 'amqp-ws'): C2DMessageData {
  return fromAzureMessage(AmqpMessage.toMessage(raw as never) as never, protocol);
}

function callbackPromise<T = unknown>(run: (done: (err?: Error | null, result?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => run((err, result) => (err ? reject(err) : resolve(result as T))));
}

/** The error of an operation the link could not even start: nothing reached the hub. */
function notConnected(deviceId: string): SwitchyardError {
  return new SwitchyardError('NOT_CONNECTED', `identity ${deviceId} is not connected`, { details: { deviceId, delivered: 'no' } });
}

export class IdentityLink implements DeviceLink {
  readonly holdsDuringReconnect = true;
  readonly c2dMode = 'push';
  #epoch = 0;
  #up = false;
  #closed = false;
  #listener: LinkListener | undefined;
  /** When the current token should be renewed, in clock ms; undefined for a fixed SAS. */
  renewAt: number | undefined;
  #sender: Sender | undefined;
  #senderReady: Promise<Sender> | undefined;
  #senderOk: ((sender: Sender) => void) | undefined;
  /** Fails the attach in flight: a connection that dies silently never answers it. */
  #senderFail: ((error: Error) => void) | undefined;
  #inFlight: Map<Delivery, (err?: unknown) => void> | undefined;
  /** Deliveries handed to the current sender since it was opened (spareCredit). */
  #handed = 0;
  /** Sends waiting for credit: settled by the hub's next flow, or failed when the sender goes. */
  #credit: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } | undefined;
  #receiver: Receiver | undefined;
  #c2d = false;
  #methods: Set<string> | undefined;
  #methodClient: MethodClient | undefined;
  #twinClient: TwinClient | undefined;
  #desired = false;

  constructor(
    readonly deviceId: string,
    readonly channel: IdentityChannel,
    private readonly credentials: LeanCredentials,
    private readonly owner: IdentityLinkOwner,
  ) {
    channel.setDisconnectHandler((err) => this.#dropped(err ?? new azureErrors.NotConnectedError('the session ended')));
  }

  get protocol(): 'amqp' | 'amqp-ws' {
    return this.owner.protocol;
  }

  get epoch(): number {
    return this.#epoch;
  }

  bind(listener: LinkListener): void {
    this.#listener = listener;
  }

  /** For the SDK's method and twin clients, which ask the "authentication provider" whose endpoint to use. */
  getDeviceCredentials(callback: (err: Error | null, credentials: { deviceId: string }) => void): void {
    callback(null, { deviceId: this.deviceId });
  }

  // ---- connection ------------------------------------------------------------------------

  /** Begins the session, puts the token, re-attaches what was in use. Rejects with an Azure SDK error. */
  async open(): Promise<void> {
    const epoch = ++this.#epoch;
    await callbackPromise((done) => this.channel.connect({ userAgentString: 'switchyard-gateway-lean' }, done));
    try {
      await this.#putToken();
    } catch (err) {
      await callbackPromise((done) => this.channel.disconnect(done)).catch(() => undefined);
      throw err;
    }
    if (this.#closed || epoch !== this.#epoch) return;
    this.#up = true;
    if (this.#c2d) this.#attachReceiver();
    if (this.#methods !== undefined) this.#attachMethods();
    if (this.#desired) this.#subscribeDesired();
    this.#listener?.linkUp(epoch);
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
    if (!this.#up || this.renewAt === undefined) return;
    this.renewAt = undefined;
    this.#putToken().catch((err: unknown) => {
      if (!this.#up) return;
      const error = err instanceof Error ? err : new azureErrors.UnauthorizedError(String(err));
      this.#listener?.linkFault(error, 'renew token');
      // Ending the session makes the channel report the drop through #dropped.
      callbackPromise((done) => this.channel.disconnect(done)).then(
        () => this.#dropped(error),
        () => this.#dropped(error),
      );
    });
  }

  /** The session is gone: forget the links, report it (the gateway re-opens, or gives up). */
  #dropped(error: Error): void {
    if (this.#closed || !this.#up) return;
    this.#up = false;
    this.#forgetLinks(error);
    this.#listener?.linkDown(this.#epoch, { error, willRetry: isRetryable(error) });
  }

  /** The gateway gave up re-opening this identity. */
  gaveUp(error: unknown): void {
    this.#up = false;
    this.#listener?.linkDown(this.#epoch, { error, willRetry: false });
  }

  #forgetLinks(error: Error): void {
    this.#sender = undefined;
    this.#creditLost(error);
    this.#senderReady = undefined;
    const senderFail = this.#senderFail;
    this.#senderOk = undefined;
    this.#senderFail = undefined;
    senderFail?.(error);
    this.#receiver = undefined;
    const inFlight = this.#inFlight;
    this.#inFlight = undefined;
    for (const done of inFlight?.values() ?? []) done(error);
    // The hub settles nothing more on a link that is gone; left unsettled, these would hold the
    // session's delivery ring for every identity sharing it (session-deliveries.ts).
    if (inFlight) releaseAbandoned(inFlight.keys());
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

  // ---- telemetry ---------------------------------------------------------------------------

  send(message: OutgoingMessage, done: (err?: unknown) => void): void {
    const amqpMessage = toRheaMessage(message, this.protocol);
    if (!this.#up) return done(notConnected(this.deviceId));
    this.#send(amqpMessage).then(() => done(), done);
  }

  async sendBatch(messages: readonly OutgoingMessage[]): Promise<void> {
    const amqpMessages = messages.map((m) => toRheaMessage(m, this.protocol));
    if (!this.#up) throw notConnected(this.deviceId);
    // Pipelined on the one link, as the SDK's AMQP transport does (it has no batch frame).
    await Promise.all(amqpMessages.map((m) => this.#send(m)));
  }

  async #send(message: RheaMessage): Promise<void> {
    const sender = await this.#ensureSender();
    // Out of credit: wait for the hub to grant more rather than queueing deliveries in rhea
    // beyond it; a link closed meanwhile (a fault under way) takes nothing: the outbox sends again
    // once the identity is back (session-deliveries.ts says what either would cost).
    while (spareCredit(sender, this.#handed) === 0) {
      if (this.#sender !== sender || !sender.is_open()) throw new azureErrors.NotConnectedError('the telemetry link was detached');
      await this.#waitCredit();
    }
    this.#handed++;
    await new Promise<void>((resolve, reject) => {
      const delivery = sender.send(message);
      (this.#inFlight ??= new Map()).set(delivery, (err?: unknown) => (err ? reject(err) : resolve()));
    });
  }

  /** The identity's one telemetry link, attached on first use and kept while the session lives. */
  #ensureSender(): Promise<Sender> {
    if (this.#senderReady) return this.#senderReady;
    if (this.#sender) return Promise.resolve(this.#sender);
    this.#senderReady = new Promise<Sender>((resolve, reject) => {
      const session = this.channel.linkSession;
      if (!session) return reject(notConnected(this.deviceId));
      const sender = session.open_sender({ target: { address: `/devices/${this.deviceId}/messages/events` } });
      this.#sender = sender;
      this.#handed = 0;
      this.#senderOk = resolve;
      this.#senderFail = reject;
      IdentityLink.#bySender.set(sender, this);
      sender.on('accepted', IdentityLink.#onAccepted);
      sender.on('rejected', IdentityLink.#onRejected);
      // rhea reports 'modified' as 'released' (treat_modified_as_released); both mean "not taken".
      sender.on('released', IdentityLink.#onReleased);
      sender.on('sendable', IdentityLink.#onSendable);
      sender.on('sender_close', IdentityLink.#onSenderClose);
    });
    return this.#senderReady;
  }

  #waitCredit(): Promise<void> {
    if (this.#credit) return this.#credit.promise;
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#credit = { promise, resolve, reject };
    return promise;
  }

  #creditLost(error: Error): void {
    const credit = this.#credit;
    this.#credit = undefined;
    credit?.reject(error);
  }

  // Every identity has a telemetry link once it sends, so its rhea handlers are shared functions
  // that find their link here rather than closures per link.
  static readonly #bySender = new WeakMap<Sender, IdentityLink>();

  static #settle(context: EventContext, error?: Error): void {
    const delivery = context.delivery;
    const link = context.sender ? IdentityLink.#bySender.get(context.sender) : undefined;
    const done = delivery && link ? link.#inFlight?.get(delivery) : undefined;
    if (!done || !delivery || !link) return;
    link.#inFlight!.delete(delivery);
    if (link.#inFlight!.size === 0) link.#inFlight = undefined;
    done(error);
  }

  static #onAccepted(this: void, context: EventContext): void {
    IdentityLink.#settle(context);
  }

  static #onRejected(this: void, context: EventContext): void {
    const condition = (context.delivery as { remote_state?: { error?: { condition?: unknown; description?: unknown } } } | undefined)?.remote_state?.error;
    IdentityLink.#settle(context, translateAmqpError('the hub rejected the message', Object.assign(new Error(String(condition?.description ?? 'rejected')), { condition: condition?.condition })));
  }

  static #onReleased(this: void, context: EventContext): void {
    IdentityLink.#settle(context, new azureErrors.ServiceUnavailableError('the hub released the message'));
  }

  static #onSendable(this: void, context: EventContext): void {
    const link = context.sender ? IdentityLink.#bySender.get(context.sender) : undefined;
    if (link && link.#sender === context.sender && link.#credit) {
      const credit = link.#credit;
      link.#credit = undefined;
      credit.resolve();
    }
    const resolve = link ? link.#senderOk : undefined;
    const sender = context.sender;
    if (!link || !resolve || !sender || link.#sender !== sender) return;
    link.#senderReady = undefined;
    link.#senderOk = undefined;
    link.#senderFail = undefined;
    resolve(sender);
  }

  static #onSenderClose(this: void, context: EventContext): void {
    const link = context.sender ? IdentityLink.#bySender.get(context.sender) : undefined;
    if (!link || link.#sender !== context.sender) return;
    const reject = link.#senderFail;
    link.#sender = undefined;
    link.#senderReady = undefined;
    link.#senderOk = undefined;
    link.#senderFail = undefined;
    const error = new azureErrors.NotConnectedError('the telemetry link was detached');
    link.#creditLost(error);
    reject?.(error);
  }

  // ---- cloud to device ---------------------------------------------------------------------

  enableC2D(): void {
    if (this.#c2d || this.#closed) return;
    this.#c2d = true;
    if (this.#up) this.#attachReceiver();
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
    this.#listener?.linkMessage({ data, settle: (how) => this.#settleC2D(delivery, how) });
  }

  #settleC2D(delivery: Delivery, how: Settlement): Promise<void> {
    // A lock belongs to its link: settling after that link is gone cannot reach the hub.
    if (this.#receiver !== delivery.link || !delivery.link.is_open()) {
      return Promise.reject(new azureErrors.NotConnectedError('the link that delivered this message is gone; the hub will redeliver it'));
    }
    if (how === 'complete') delivery.accept();
    else if (how === 'abandon') delivery.release();
    else delivery.reject();
    return Promise.resolve();
  }

  // ---- methods -----------------------------------------------------------------------------

  enableMethod(methodName: string): void {
    const methods = (this.#methods ??= new Set());
    if (methods.has(methodName)) return;
    methods.add(methodName);
    if (!this.#up) return;
    if (this.#methodClient === undefined) this.#attachMethods();
    else this.#listenMethod(this.#methodClient, methodName);
  }

  #attachMethods(): void {
    const client = new AmqpDeviceMethodClient(this as never, this.channel as never);
    this.#methodClient = client;
    client.on('error', (err: unknown) => this.#listener?.linkFault(err, 'methods'));
    for (const name of this.#methods ?? []) this.#listenMethod(client, name);
    client.attach((err?: Error) => {
      if (err && this.#methodClient === client) this.#listener?.linkFault(err, 'methods');
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
      this.#listener?.linkMethod({ methodName, requestId: req.requestId, payload }, (result) =>
        callbackPromise((done) => client.sendMethodResponse({ requestId: req.requestId, status: result.status, payload: result.payload ?? null } as never, done)).then(() => undefined),
      );
    });
  }

  // ---- twin --------------------------------------------------------------------------------

  #twin(): TwinClient {
    if (this.#twinClient) return this.#twinClient;
    const client = new AmqpTwinClient(this as never, this.channel as never);
    // A link error while its first attach is under way (the channel force-detaching a dropped
    // session's links) made the SDK's detach throw an uncaught TypeError (amqp-twin-guard.ts).
    guardTwinClient(client);
    client.on('error', (err: unknown) => this.#listener?.linkFault(err, 'twin'));
    client.on('twinDesiredPropertiesUpdate', (patch: Record<string, unknown>) => this.#listener?.linkDesired(patch));
    this.#twinClient = client;
    return client;
  }

  async getTwin(): Promise<TwinDocument> {
    if (!this.#up) throw notConnected(this.deviceId);
    const twin = await callbackPromise<{ desired?: Record<string, unknown>; reported?: Record<string, unknown> }>((done) => this.#twin().getTwin(done as never));
    return { desired: twin?.desired ?? {}, reported: twin?.reported ?? {} };
  }

  updateReported(patch: Record<string, unknown>): Promise<void> {
    if (!this.#up) return Promise.reject(notConnected(this.deviceId));
    return callbackPromise<void>((done) => this.#twin().updateTwinReportedProperties(patch, done as never));
  }

  enableDesired(): Promise<void> {
    if (this.#desired) return Promise.resolve();
    this.#desired = true;
    if (this.#up) this.#subscribeDesired();
    return Promise.resolve();
  }

  #subscribeDesired(): void {
    const client = this.#twin();
    client.enableTwinDesiredPropertiesUpdates((err?: Error) => {
      if (err && this.#twinClient === client) this.#listener?.linkFault(err, 'desired');
    });
  }

  // ---- file upload -------------------------------------------------------------------------

  uploadToBlob(blobName: string, stream: NodeJS.ReadableStream, size: number): Promise<void> {
    return this.owner.uploadToBlob(this, this.credentials, blobName, stream, size);
  }

  /**
   * A wedged identity session is dropped and re-opened by the gateway; the shared connection is
   * replaced only when it read nothing for the operation's whole deadline, i.e. nobody is answered.
   */
  operationTimedOut(_operation: string, epoch: number, timeoutMs: number): void {
    if (this.#up && !this.#closed && epoch === this.#epoch) this.channel.operationTimedOut(timeoutMs);
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Ends the identity's session; the connection stays for the others. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#up = false;
    this.renewAt = undefined;
    this.#forgetLinks(new azureErrors.NotConnectedError(`identity ${this.deviceId} was removed`));
    await callbackPromise((done) => this.channel.disconnect(done)).catch(() => undefined);
  }
}
