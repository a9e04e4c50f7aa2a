// The one DeviceClient implementation, for connect() over any protocol and for every gateway
// identity. It owns what a link must not have to know: the connection state machine, operation
// deadlines and abort, the wait for a reconnect, C2D readers and settlement, method dispatch,
// twin normalisation and the HTTPS poll scheduler. A link (links/link.ts) only talks to the hub.
// One file because it is one class: its parts share private state (the state machine, the held
// operations, the readers) that splitting would have to expose; the separable parts already
// live beside it (operation.ts, deadlines.ts, state.ts, polling.ts, guard.ts).
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { SwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';
import type { Decision } from '@switchyard/selector';
import { systemClock, type Clock } from '@switchyard/time';
import { featureUnsupported, isRetryable, translateError, type ErrorContext } from '../errors.ts';
import type { DeviceLink, LinkDown, LinkListener, LinkMessage, Settlement } from '../links/link.ts';
import { queueIterator, type MessageQueue } from '../message-queue.ts';
import type { DeviceMessage, OutgoingMessage } from '../message.ts';
import type { Outbox, OutboxAttempt, OutboxBatching, OutboxDroppedEvent, OutboxHost } from '../outbox/outbox.ts';
import type { PollEvent } from '../poll-scheduler.ts';
import type { C2DMessage, DeviceClient, MethodHandler, MethodRequest, MethodResult, OperationOptions, SendOptions, TwinDocument } from '../types.ts';
import { abortedError, Operation, type OperationHost } from './operation.ts';
import { startPolling, type PollingOptions, type PollingHandle } from './polling.ts';
import { ConnectionStateMachine, type ConnectionState, type StateChange } from './state.ts';

export const DEFAULT_OPERATION_TIMEOUT_MS = 30_000;

export interface DeviceCoreOptions extends PollingOptions {
  link: DeviceLink;
  decision?: Decision;
  /** Deadline of every operation that does not set its own, ms. Default 30 000. */
  operationTimeoutMs?: number;
  clock?: Clock;
  /** 'connected' when the link was opened before the core was made (connect()); default 'connecting'. */
  initialState?: 'connecting' | 'connected';
  /** The gateway's identity: errors name it. */
  identity?: string;
  /** Runs after the link closed (connect() frees its agents here). */
  afterClose?: () => void;
  /**
   * Told of every state change and background fault of this core. One object for many cores (a
   * gateway's identities), so that following them costs no closure per identity.
   */
  observer?: CoreObserver;
  /** An outbox from Outbox.open() (its directory already read); every send goes through it. */
  outbox?: Outbox;
}

export interface CoreObserver {
  stateChanged(core: DeviceCore, change: StateChange): void;
  fault(core: DeviceCore, error: SwitchyardError): void;
}

function plain(value: unknown): Record<string, unknown> {
  // Twin property objects carry SDK methods (update); JSON drops them.
  return JSON.parse(JSON.stringify(value ?? {})) as Record<string, unknown>;
}

function messageIdOf(message: OutgoingMessage): string | undefined {
  return typeof message === 'object' && message !== null && !(message instanceof Uint8Array) ? message.messageId : undefined;
}

const isMqtt = (protocol: Protocol): boolean => protocol === 'mqtt' || protocol === 'mqtt-ws';

export class DeviceCore extends EventEmitter implements DeviceClient, LinkListener, OperationHost, OutboxHost {
  readonly protocol: Protocol;
  readonly decision: Decision | undefined;
  readonly deviceId: string;
  readonly clock: Clock;
  readonly identity: string | undefined;
  readonly #link: DeviceLink;
  readonly #machine: ConnectionStateMachine;
  readonly #timeoutMs: number;
  readonly #options: DeviceCoreOptions;
  /** Operations waiting for a re-open (links that hold during reconnect), oldest first. */
  #held: Array<() => void> | undefined;
  #queues: Set<MessageQueue<C2DMessage>> | undefined;
  #methods: Map<string, MethodHandler> | undefined;
  #c2d = false;
  #desired = false;
  #polling: PollingHandle | undefined;
  #closing: Promise<void> | undefined;
  readonly #outbox: Outbox | undefined;
  /** OutboxHost: set when the link sends batches that keep message ids (HTTPS). */
  readonly batch: OutboxBatching | undefined;

  constructor(options: DeviceCoreOptions) {
    super();
    this.#options = options;
    this.#link = options.link;
    this.protocol = options.link.protocol;
    this.deviceId = options.link.deviceId;
    this.decision = options.decision;
    this.clock = options.clock ?? systemClock;
    this.identity = options.identity;
    this.#timeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.#machine = new ConnectionStateMachine(options.initialState ?? 'connecting', this.#changed);
    this.#machine.nextEpoch();
    options.link.bind(this);
    const batching = options.link.batching;
    this.batch = batching === undefined ? undefined : { maxBytes: batching.maxBytes, bytesOf: (m) => batching.bytesOf(m), attempt: (messages, done) => this.#attemptBatch(messages, done) };
    this.#outbox = options.outbox?.bind(this);
    if (this.#machine.current === 'connected') this.#outbox?.resume();
  }

  /** The outbox's counters; undefined without the `outbox` option. */
  get outbox(): Outbox | undefined {
    return this.#outbox;
  }

  get state(): ConnectionState {
    return this.#machine.current;
  }

  /** The link this core drives; the gateway re-opens it. */
  get link(): DeviceLink {
    return this.#link;
  }

  // An arrow, handed to the state machine once: it runs on every transition.
  readonly #changed = (change: StateChange): void => {
    this.emit('state', change);
    this.#options.observer?.stateChanged(this, change);
    if (change.to === 'connected') {
      this.emit('connected');
      this.#release();
      this.#outbox?.resume();
    } else if (change.to === 'reconnecting' || change.to === 'disconnected') {
      const event = { reason: change.reason, willRetry: change.to === 'reconnecting', ...(change.error === undefined ? {} : { error: change.error }) };
      this.emit('disconnected', event);
      // Nothing brings a disconnected link back by itself: held operations go to the link now,
      // which fails them or reconnects on demand, rather than waiting out their deadline.
      if (change.to === 'disconnected') this.#release();
      // A link that holds operations while it reconnects (the gateway's) comes back by itself:
      // the outbox waits for it. The SDK's transports do not always: telemetry-only, nothing in
      // flight, they reconnect only when given an operation, so an outbox that waited for
      // `connected` waited for good. It sends again after its back-off instead.
      if (change.to === 'disconnected' || !this.#link.holdsDuringReconnect) this.#outbox?.retryLater();
      else this.#outbox?.pause();
    }
  };

  #context(operation: string): ErrorContext {
    return this.identity === undefined ? { protocol: this.protocol, operation } : { protocol: this.protocol, operation, identity: this.identity };
  }

  #emitError(err: unknown, operation: string): void {
    const error = translateError(err, this.#context(operation));
    this.#options.observer?.fault(this, error);
    // An 'error' nobody listens to would throw; the observer (a gateway) reports it its own way.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  #closedError(what: string): SwitchyardError {
    const who = this.identity === undefined ? 'the client is closed; call connect() again' : `identity ${this.identity} was removed from the gateway`;
    return new SwitchyardError('NOT_CONNECTED', `${what}: ${who}`, { details: { protocol: this.protocol, operation: what, delivered: 'no' } });
  }

  #assertOpen(what: string): void {
    if (this.#machine.desired === 'closed') throw this.#closedError(what);
  }

  // ---- LinkListener ------------------------------------------------------------------------

  /**
   * Whether a report of connection attempt `epoch` still counts: one of an older attempt (a
   * replaced connection's late callback) does not; a newer one makes that attempt current.
   */
  #current(epoch: number): boolean {
    if (epoch < this.#machine.epoch) return false;
    while (this.#machine.epoch < epoch) this.#machine.nextEpoch();
    return true;
  }

  linkUp(epoch: number): void {
    if (this.#current(epoch)) this.#machine.transition('connected', 'the link is up', { epoch });
  }

  linkDown(epoch: number, down: LinkDown): void {
    if (!this.#current(epoch)) return;
    const error = down.error === undefined ? undefined : translateError(down.error, this.#context('connection'));
    const reason = down.reason ?? error?.message ?? 'closed by the hub';
    this.#machine.transition(down.willRetry ? 'reconnecting' : 'disconnected', reason, error === undefined ? { epoch } : { epoch, error });
  }

  linkMessage(message: LinkMessage): void {
    const settle = (how: Settlement) => (options?: OperationOptions): Promise<void> => {
      if (how !== 'complete' && isMqtt(this.protocol)) return Promise.reject(featureUnsupported(this.protocol, 'c2d-reject-abandon'));
      // Settled on the link that delivered it, never held for a reconnect: a lock belongs to its link.
      return this.#run(how, () => message.settle(how), options, false);
    };
    const c2d: C2DMessage = { ...message.data, complete: settle('complete'), abandon: settle('abandon'), reject: settle('reject') };
    for (const q of this.#queues ?? []) q.push(c2d);
    this.emit('message', c2d);
  }

  linkDesired(patch: Record<string, unknown>): void {
    this.emit('desired', plain(patch));
  }

  linkMethod(request: MethodRequest, respond: (result: MethodResult) => Promise<void>): void {
    const handler = this.#methods?.get(request.methodName);
    Promise.resolve()
      .then(() => {
        if (handler === undefined) return { status: 501, payload: { error: `no handler for method ${request.methodName}` } };
        return handler(request);
      })
      .then(
        (result) => respond({ status: result.status, payload: result.payload ?? null }),
        (err: unknown) => respond({ status: 500, payload: { error: translateError(err).message } }),
      )
      .catch((err: unknown) => this.#emitError(err, `method ${request.methodName}`));
  }

  linkFault(error: unknown, operation: string): void {
    this.#emitError(error, operation);
  }

  // ---- OperationHost -----------------------------------------------------------------------

  operationTimedOut(operation: string, epoch: number, timeoutMs: number): void {
    if (this.#machine.desired === 'open') this.#link.operationTimedOut(operation, epoch, timeoutMs);
  }

  // ---- running operations ------------------------------------------------------------------

  /** Whether an operation must wait in the core for the link to come back before it starts. */
  #mustHold(): boolean {
    const state = this.#machine.current;
    return (state === 'reconnecting' || state === 'connecting') && this.#link.holdsDuringReconnect;
  }

  #hold(start: () => void): void {
    (this.#held ??= []).push(start);
  }

  #release(): void {
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    for (const start of held) start();
  }

  /**
   * Runs `op` under the deadline; while the link is re-opening, waits for it first. A retryable
   * failure during a re-open is tried again once the link is back, within the same deadline.
   */
  #run<T>(what: string, op: () => Promise<T>, options: OperationOptions | undefined, mayHold = true, messageId?: string): Promise<T> {
    const signal = options?.signal;
    if (this.#machine.desired === 'closed') return Promise.reject(this.#closedError(what));
    if (signal?.aborted === true) return Promise.reject(abortedError(signal, what));
    return new Promise<T>((resolve, reject) => {
      const operation = new Operation<T>(this, what, options?.timeoutMs ?? this.#timeoutMs, signal, resolve, reject, messageId);
      const start = (): void => {
        if (operation.settled) return;
        if (this.#machine.desired === 'closed') return operation.refused(this.#closedError(what));
        operation.handedOver = true;
        operation.epoch = this.#link.epoch;
        let started: Promise<T>;
        try {
          started = op();
        } catch (err) {
          operation.failed(err);
          return;
        }
        started.then(
          (value) => operation.succeeded(value),
          (err: unknown) => {
            if (mayHold && this.#mustHold() && isRetryable(err)) this.#hold(start);
            else operation.failed(err);
          },
        );
      };
      if (mayHold && this.#mustHold()) this.#hold(start);
      else start();
    });
  }

  // ---- telemetry ---------------------------------------------------------------------------

  /**
   * The hot path: no async function, one Operation, and the link gets the operation's callback,
   * so an SDK link builds no promise of its own (bench/README.md, "Where the CPU went").
   */
  sendEvent(message: OutgoingMessage, options?: SendOptions): Promise<void> {
    if (this.#outbox !== undefined) return this.#outbox.send('sendEvent', [message], this.#outboxOptions(options));
    const signal = options?.signal;
    if (this.#machine.desired === 'closed') return Promise.reject(this.#closedError('sendEvent'));
    if (signal?.aborted === true) return Promise.reject(abortedError(signal, 'sendEvent'));
    return new Promise<void>((resolve, reject) => {
      const operation = new Operation<void>(this, 'sendEvent', options?.timeoutMs ?? this.#timeoutMs, signal, resolve, reject, messageIdOf(message));
      if (this.#mustHold()) this.#hold(() => this.#sendNow(operation, message));
      else this.#sendNow(operation, message);
    });
  }

  #sendNow(operation: Operation<void>, message: OutgoingMessage): void {
    if (operation.settled) return;
    if (this.#machine.desired === 'closed') return operation.refused(this.#closedError('sendEvent'));
    operation.handedOver = true;
    operation.epoch = this.#link.epoch;
    try {
      this.#link.send(message, this.#link.holdsDuringReconnect ? (err) => this.#sent(operation, message, err) : operation.done);
    } catch (err) {
      operation.failed(err);
    }
  }

  #sent(operation: Operation<void>, message: OutgoingMessage, err: unknown): void {
    if (err && this.#mustHold() && isRetryable(err)) this.#hold(() => this.#sendNow(operation, message));
    else operation.done(err);
  }

  #outboxOptions(options: SendOptions | undefined): { signal: AbortSignal | undefined; timeoutMs: number; until: 'queued' | 'acknowledged' } {
    return { signal: options?.signal, timeoutMs: options?.timeoutMs ?? this.#timeoutMs, until: options?.until ?? 'acknowledged' };
  }

  /** OutboxHost: each attempt's deadline, which the outbox keeps on the entry itself. */
  get attemptTimeoutMs(): number {
    return this.#timeoutMs;
  }

  /** OutboxHost: an attempt handed to the link of `epoch` was not acknowledged in time. */
  attemptTimedOut(epoch: number): void {
    this.operationTimedOut('sendEvent', epoch, this.#timeoutMs);
  }

  /**
   * OutboxHost: one attempt at one queued message. No Operation: the outbox's entry is the
   * attempt's deadline node and its record; `done` is the outbox's callback for this attempt.
   */
  attempt(message: DeviceMessage, done: (err?: unknown) => void, attempt: OutboxAttempt): void {
    if (this.#mustHold()) this.#holdAttempt(message, done, attempt);
    else this.#attemptNow(message, done, attempt);
  }

  #holdAttempt(message: DeviceMessage, done: (err?: unknown) => void, attempt: OutboxAttempt): void {
    const count = attempt.attempts;
    // Its deadline may pass while it waits, and the outbox may start it again meanwhile.
    this.#hold(() => {
      if (attempt.inFlight && attempt.attempts === count) this.#attemptNow(message, done, attempt);
    });
  }

  #attemptNow(message: DeviceMessage, done: (err?: unknown) => void, attempt: OutboxAttempt): void {
    if (this.#machine.desired === 'closed') return done(this.#closedError('sendEvent'));
    attempt.handedOver = true;
    const link = this.#link;
    attempt.epoch = link.epoch;
    try {
      (link.sendOnce ?? link.send).call(
        link,
        message,
        link.holdsDuringReconnect
          ? (err) => {
              if (err && this.#mustHold() && isRetryable(err)) this.#holdAttempt(message, done, attempt);
              else done(err);
            }
          : done,
      );
    } catch (err) {
      done(err);
    }
  }

  /** One request for several queued messages (OutboxBatching), under the client's deadline. */
  #attemptBatch(messages: DeviceMessage[], done: (err?: unknown) => void): void {
    const operation = new Operation<void>(this, 'sendEventBatch', this.#timeoutMs, undefined, done, done, messages[0]?.messageId);
    const start = (): void => {
      if (operation.settled) return;
      if (this.#machine.desired === 'closed') return operation.refused(this.#closedError('sendEventBatch'));
      operation.handedOver = true;
      operation.epoch = this.#link.epoch;
      this.#link.batching!.send(messages, (err) => {
        if (err && this.#mustHold() && isRetryable(err)) this.#hold(start);
        else operation.done(err);
      });
    };
    if (this.#mustHold()) this.#hold(start);
    else start();
  }

  /** OutboxHost: messages left the outbox unsent. */
  dropped(event: OutboxDroppedEvent): void {
    this.emit('outbox-dropped', event);
  }

  sendEventBatch(messages: readonly OutgoingMessage[], options?: SendOptions): Promise<void> {
    if (this.#outbox !== undefined && messages.length > 0) return this.#outbox.send('sendEventBatch', messages, this.#outboxOptions(options));
    if (messages.length === 0) {
      try {
        this.#assertOpen('sendEventBatch');
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve();
    }
    return this.#run('sendEventBatch', () => this.#link.sendBatch(messages, options?.signal), options);
  }

  // ---- cloud to device ---------------------------------------------------------------------

  // Listening is what enables a feature: the first 'message' listener starts C2D, the first
  // 'desired' listener subscribes to patches. The signatures are the emitter's; DeviceClient's
  // typed ones are checked by `implements`.
  override on(event: string | symbol, listener: (...args: never) => void): this {
    super.on(event, listener as (...args: unknown[]) => void);
    this.#featureFor(event);
    return this;
  }

  override once(event: string | symbol, listener: (...args: never) => void): this {
    super.once(event, listener as (...args: unknown[]) => void);
    this.#featureFor(event);
    return this;
  }

  #featureFor(event: string | symbol): void {
    if (event === 'message') this.#enableC2D();
    else if (event === 'desired') this.#enableDesired();
  }

  #enableC2D(): void {
    if (this.#c2d || this.#machine.desired === 'closed') return;
    this.#c2d = true;
    // Push links deliver by themselves; a polling link's messages also arrive through linkMessage.
    this.#link.enableC2D();
    if (this.#link.c2dMode === 'poll') this.#polling = startPolling(this, this.#link, this.#options);
  }

  messages(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<C2DMessage> {
    const iterator = queueIterator((this.#queues ??= new Set()), { ...options, closed: this.#machine.desired === 'closed' });
    this.#enableC2D();
    return iterator;
  }

  /** For the poll scheduler (core/polling.ts): events it reports through the client. */
  pollEvent(event: PollEvent): void {
    this.emit('poll', event);
  }

  warn(message: string): void {
    this.emit('warning', message);
  }

  // ---- twin --------------------------------------------------------------------------------

  #requireTwin(what: string): void {
    if (this.protocol === 'https') throw featureUnsupported(this.protocol, 'twin');
    this.#assertOpen(what);
  }

  async getTwin(options?: OperationOptions): Promise<TwinDocument> {
    this.#requireTwin('getTwin');
    const twin = await this.#run('getTwin', () => this.#link.getTwin(), options);
    return { desired: plain(twin.desired), reported: plain(twin.reported) };
  }

  async updateReported(patch: Record<string, unknown>, options?: OperationOptions): Promise<void> {
    this.#requireTwin('updateReported');
    await this.#run('updateReported', () => this.#link.updateReported(patch), options);
  }

  #enableDesired(): void {
    if (this.#desired || this.#machine.desired === 'closed') return;
    if (this.protocol === 'https') {
      queueMicrotask(() => this.#emitError(featureUnsupported(this.protocol, 'twin'), 'desired'));
      return;
    }
    this.#desired = true;
    this.#link.enableDesired().catch((err: unknown) => {
      this.#desired = false;
      this.#emitError(err, 'desired');
    });
  }

  // ---- methods -----------------------------------------------------------------------------

  onMethod(methodName: string, handler: MethodHandler): void {
    if (this.protocol === 'https') throw featureUnsupported(this.protocol, 'methods');
    this.#assertOpen('onMethod');
    if (typeof methodName !== 'string' || methodName === '') {
      throw new SwitchyardError('CONFIG_INVALID', 'onMethod needs a method name', { details: { field: 'methodName' } });
    }
    if (typeof handler !== 'function') {
      throw new SwitchyardError('CONFIG_INVALID', `onMethod("${methodName}") needs a handler function`, { details: { field: 'handler' } });
    }
    const methods = (this.#methods ??= new Map());
    const known = methods.has(methodName);
    methods.set(methodName, handler);
    if (!known) this.#link.enableMethod(methodName);
  }

  // ---- file upload -------------------------------------------------------------------------

  async uploadToBlob(blobName: string, data: Buffer | NodeJS.ReadableStream, length?: number, options?: OperationOptions): Promise<void> {
    this.#assertOpen('uploadToBlob');
    const size = Buffer.isBuffer(data) ? data.length : length;
    if (size === undefined) throw new SwitchyardError('CONFIG_INVALID', 'uploadToBlob needs the stream length for a stream', { details: { field: 'length' } });
    const stream = Buffer.isBuffer(data) ? Readable.from([data]) : data;
    await this.#run('uploadToBlob', () => this.#link.uploadToBlob(blobName, stream, size), options);
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /**
   * Ends every reader, stops polling, fails operations still waiting for a reconnect, and closes
   * the link. A second call waits for the first. A link close that hangs past the deadline (a
   * wedged AMQP transport) is abandoned with a warning: the client is closed either way.
   */
  close(options?: OperationOptions): Promise<void> {
    this.#closing ??= this.#close(options);
    return this.#closing;
  }

  async #close(options?: OperationOptions): Promise<void> {
    this.#machine.transition('closing', 'close() was called');
    for (const q of this.#queues ?? []) q.end();
    this.#queues?.clear();
    // Held operations see the closed state when released and are refused with delivered: 'no'.
    this.#release();
    await this.#outbox?.close();
    await this.#polling?.stop();
    const timeoutMs = options?.timeoutMs ?? this.#timeoutMs;
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    try {
      const closed = await Promise.race([
        this.#link.close().then(() => true),
        new Promise<false>((resolve) => {
          timer = this.clock.setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      if (!closed) this.emit('warning', `${this.protocol} close did not complete within ${timeoutMs} ms; the connection was abandoned`);
    } catch (err) {
      throw translateError(err, this.#context('close'));
    } finally {
      this.clock.clearTimeout(timer);
      this.#machine.transition('closed', 'closed');
      this.#options.afterClose?.();
    }
  }
}
