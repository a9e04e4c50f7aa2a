// One DeviceClient over an azure-iot-device Client, whatever the transport. The wrapper adds what
// the SDK lacks: deadlines and abort where it can hang, typed events, normalized C2D messages,
// FEATURE_UNSUPPORTED instead of NotImplementedError, and our own HTTPS poll scheduling.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { SwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';
import type { Decision } from '@switchyard/selector';
import { clearDeadline, DeadlineNode, startDeadline } from './deadlines.ts';
import { featureUnsupported, translateError } from './errors.ts';
import { queueIterator, type MessageQueue } from './message-queue.ts';
import { fromAzureMessage, toAzureMessage, type OutgoingMessage } from './message.ts';
import { PollRunner, pollPolicy, systemClock, type Clock, type PollOutcome, type PollPolicyInput } from './poll-scheduler.ts';
import type { C2DMessage, ConnectionState, DeviceClient, MethodHandler, OperationOptions, TwinDocument } from './types.ts';

type Callback = (err?: Error | null, result?: unknown) => void;

/** The parts of azure-iot-device's Client this wrapper uses. */
export interface AzureClientLike {
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  open(): Promise<unknown>;
  close(): Promise<unknown>;
  /** With a callback the SDK skips building a promise of its own (its callbackToPromise). */
  sendEvent(message: unknown, done?: Callback): Promise<unknown> | void;
  sendEventBatch(messages: unknown[]): Promise<unknown>;
  complete(message: unknown): Promise<unknown>;
  abandon(message: unknown): Promise<unknown>;
  reject(message: unknown): Promise<unknown>;
  getTwin(): Promise<unknown>;
  onDeviceMethod(name: string, callback: (request: unknown, response: unknown) => void): void;
  uploadToBlob(blobName: string, stream: unknown, length: number): Promise<unknown>;
  setRetryPolicy(policy: unknown): void;
}

interface TwinLike {
  properties: { desired: Record<string, unknown>; reported: Record<string, unknown> & { update(patch: unknown, done: Callback): void } };
  get(): Promise<unknown>;
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** HTTPS only: issues one C2D GET and reports how it ended. */
export type PollOnce = () => Promise<PollOutcome>;

export interface AdaptOptions {
  protocol: Protocol;
  decision?: Decision;
  /** The transport instance the Azure client was built with; its 'disconnect' events drive 'disconnected'. */
  transport?: unknown;
  deviceId?: string;
  /** Deadline for operations the SDK can leave pending, in ms (default 30 000). */
  operationTimeoutMs?: number;
  /** The SDK retry policy used after connecting (so its shouldRetry decides `willRetry`). */
  retryPolicy?: RetryPolicyLike;
  /** HTTPS: the manual poll hook; without it C2D over HTTPS is unavailable. */
  pollOnce?: PollOnce;
  poll?: Omit<PollPolicyInput, 'development'> & { development?: boolean };
  pollStateDir?: string;
  clock?: Clock;
  random?: () => number;
  /**
   * Builds and opens a replacement Azure client. When given, an AMQP client whose operation
   * times out is replaced (see #recycle); connect() provides it, adapted clients may omit it.
   */
  rebuild?: () => Promise<{ azure: AzureClientLike; transport: unknown; pollOnce?: PollOnce }>;
}

export interface RetryPolicyLike {
  shouldRetry(err: Error): boolean;
  nextRetryTimeout(retryCount: number, throttled: boolean): number;
}

// The SDK's DefaultErrorFilter: the names its own operations retry.
const RETRYABLE = new Set(['NotConnectedError', 'InternalServerError', 'ServiceUnavailableError', 'ThrottlingError', 'TimeoutError']);

/**
 * A retry policy that gives up: the SDK's default retries some failures for 240 s, so a connect
 * to a closed port hangs for 4 minutes. Delays double from `baseMs` up to `maxMs`.
 */
export function boundedRetryPolicy(maxAttempts: number, baseMs = 100, maxMs = 5_000): RetryPolicyLike {
  return {
    shouldRetry: (err) => maxAttempts > 0 && RETRYABLE.has(err?.name ?? ''),
    nextRetryTimeout: (retryCount, throttled) => {
      if (retryCount > maxAttempts) return -1;
      const base = throttled ? Math.max(baseMs, 5_000) : baseMs;
      return Math.min(base * 2 ** Math.max(0, retryCount - 1), throttled ? Math.max(maxMs, 60_000) : maxMs);
    },
  };
}

function abortedError(signal: AbortSignal, what: string): SwitchyardError {
  const reason: unknown = signal.reason;
  return new SwitchyardError('ABORTED', `${what} was aborted${reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : ''}`, { cause: reason });
}

/** Told when a guarded operation's deadline passed (after it was rejected). */
interface TimeoutObserver {
  timedOut(what: string, azure: AzureClientLike | undefined): void;
}

/**
 * One operation under a deadline and an abort signal. A class with prototype methods rather than
 * closures because every send goes through one: the deadline list and the signal call back into it,
 * and it is its own deadline node, so arming the deadline allocates nothing.
 */
class Guarded<T> extends DeadlineNode {
  #done = false;

  constructor(
    readonly protocol: Protocol,
    readonly what: string,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
    readonly observer: TimeoutObserver | undefined,
    readonly azure: AzureClientLike | undefined,
  ) {
    super();
    startDeadline(this, timeoutMs);
    signal?.addEventListener('abort', this, { once: true });
  }

  expire(): void {
    if (!this.#finish()) return;
    const { protocol, what, timeoutMs } = this;
    this.reject(new SwitchyardError('TIMEOUT', `${protocol} ${what} did not complete within ${timeoutMs} ms`, { details: { protocol, operation: what, timeoutMs } }));
    this.observer?.timedOut(what, this.azure);
  }

  /** The abort listener (EventTarget calls handleEvent on an object listener). */
  handleEvent(): void {
    if (this.#finish()) this.reject(abortedError(this.signal!, this.what));
  }

  succeeded(value: T): void {
    if (this.#finish()) this.resolve(value);
  }

  failed(err: unknown): void {
    if (this.#finish()) this.reject(translateError(err, { protocol: this.protocol, operation: this.what }));
  }

  /** The Node-style callback handed to an SDK operation. */
  readonly done = (err?: Error | null, result?: unknown): void => {
    if (err) this.failed(err);
    else this.succeeded(result as T);
  };

  #finish(): boolean {
    if (this.#done) return false;
    this.#done = true;
    clearDeadline(this);
    this.signal?.removeEventListener('abort', this);
    return true;
  }
}

/**
 * Runs `run` with a deadline and an abort signal; failures come back translated. `onTimeout`
 * runs after the deadline has rejected the operation.
 */
export function guard<T>(
  protocol: Protocol,
  what: string,
  run: () => Promise<T>,
  options: OperationOptions & { defaultTimeoutMs: number },
  onTimeout?: () => void,
): Promise<T> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(abortedError(signal, what));
  const timeoutMs = options.timeoutMs ?? options.defaultTimeoutMs;
  const observer = onTimeout === undefined ? undefined : { timedOut: onTimeout };
  return new Promise<T>((resolve, reject) => {
    const op = new Guarded<T>(protocol, what, timeoutMs, signal, resolve, reject, observer, undefined);
    let started: Promise<T>;
    try {
      started = run();
    } catch (err) {
      op.failed(err);
      return;
    }
    started.then(
      (value) => op.succeeded(value),
      (err: unknown) => op.failed(err),
    );
  });
}

function plain(value: unknown): Record<string, unknown> {
  // Twin property objects carry SDK methods (update); JSON drops them.
  return JSON.parse(JSON.stringify(value ?? {})) as Record<string, unknown>;
}

function reasonOf(err: unknown): string {
  if (err === undefined || err === null) return 'closed by the hub';
  const e = translateError(err);
  return e.message;
}

/**
 * The DeviceClient implementation. Construct through connect(), or adaptAzureClient() for a
 * Client built elsewhere (the gateway's multiplexed AMQP clients).
 */
export class SwitchyardDeviceClient extends EventEmitter {
  readonly protocol: Protocol;
  readonly decision: Decision | undefined;
  readonly deviceId: string;
  #state: ConnectionState = 'connected';
  #azure: AzureClientLike;
  #pollOnce: PollOnce | undefined;
  #generationCleanup: Array<() => void> = [];
  #rebuilding: Promise<void> | undefined;
  readonly #methods = new Map<string, MethodHandler>();
  readonly #o: AdaptOptions;
  readonly #timeoutMs: number;
  #c2dEnabled = false;
  #twin: Promise<TwinLike> | undefined;
  #desiredEnabled = false;
  #poller: PollRunner | undefined;
  #closing: Promise<void> | undefined;
  readonly #queues = new Set<MessageQueue<C2DMessage>>();
  readonly #onTimeout: TimeoutObserver | undefined;

  constructor(azure: AzureClientLike, options: AdaptOptions) {
    super();
    this.#azure = azure;
    this.#pollOnce = options.pollOnce;
    this.#o = options;
    this.protocol = options.protocol;
    // An AMQP operation that times out leaves the SDK's link wedged (see azure-sdk-transports.md):
    // the connection is replaced, unless that already happened. One object for every operation.
    this.#onTimeout =
      this.protocol === 'amqp' || this.protocol === 'amqp-ws'
        ? {
            timedOut: (what, from) => {
              if (from === this.#azure) this.#recycle(`${this.protocol} ${what} timed out; replacing the connection`);
            },
          }
        : undefined;
    this.decision = options.decision;
    this.deviceId = options.deviceId ?? '';
    this.#timeoutMs = options.operationTimeoutMs ?? 30_000;
    this.#attach(azure, options.transport);
  }

  /** Listens to one generation of Azure client and transport; undone by #detach. */
  #attach(azure: AzureClientLike, transportObj: unknown): void {
    const options = this.#o;
    // An 'error' event without a listener crashes the process; the SDK emits them for failed
    // feature re-enables after reconnects (§8 item 15).
    this.#listen(azure, 'error', (err: unknown) => this.#emitError(err, 'background'));
    this.#listen(azure, 'connect', () => {
      if (this.#state === 'disconnected') this.#state = 'connected';
      this.emit('connected');
    });
    this.#listen(azure, 'disconnect', (result: unknown) => {
      if (this.#state === 'closing' || this.#state === 'closed') return;
      const err = (result as { transportObj?: unknown } | undefined)?.transportObj;
      this.#state = 'disconnected';
      const event = { reason: reasonOf(err), willRetry: false, ...(err === undefined ? {} : { error: translateError(err, { protocol: this.protocol, operation: 'connection' }) }) };
      this.emit('disconnected', event);
    });
    const transport = transportObj as { on?: unknown } | undefined;
    if (typeof transport?.on === 'function') {
      const t = transport as Pick<AzureClientLike, 'on' | 'removeListener'>;
      this.#listen(t, 'disconnect', (err: unknown) => {
        if (this.#state === 'closing' || this.#state === 'closed') return;
        const willRetry = err instanceof Error && (options.retryPolicy?.shouldRetry(err) ?? RETRYABLE.has(err.name));
        // The client reports only give-ups; a retried drop is visible only here.
        if (!willRetry) return;
        this.#state = 'disconnected';
        this.emit('disconnected', { reason: reasonOf(err), willRetry: true, error: translateError(err, { protocol: this.protocol, operation: 'connection' }) });
      });
      // HTTP poll failures appear only as transport 'error' events, which the SDK merely logs.
      if (this.protocol === 'https') this.#listen(t, 'error', (err: unknown) => this.#emitError(err, 'poll'));
    }
    if (this.#c2dEnabled) this.#listen(azure, 'message', (msg: unknown) => this.#deliver(azure, msg));
  }

  #detach(): void {
    for (const undo of this.#generationCleanup.splice(0)) undo();
  }

  /**
   * The AMQP transport can wedge for good: when the hub force-detaches links and then drops the
   * connection, azure-iot-amqp-base waits in 'disconnecting' for detach replies that never come
   * and queues every later send. Nothing is emitted, so the first operation that times out
   * replaces the whole Azure client and restores C2D, methods and desired updates on the new one.
   */
  #recycle(reason: string): void {
    const rebuild = this.#o.rebuild;
    if (rebuild === undefined || this.#rebuilding !== undefined || this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'disconnected';
    this.emit('disconnected', { reason, willRetry: true });
    const old = this.#azure;
    this.#detach();
    old.on('error', () => undefined);
    void old.close().catch(() => undefined);
    this.#rebuilding = (async () => {
      const attempts = Math.max(1, this.#o.retryPolicy === undefined ? 3 : 5);
      for (let attempt = 1; attempt <= attempts; attempt++) {
        try {
          const next = await rebuild();
          if (this.#state === 'closing' || this.#state === 'closed') {
            await next.azure.close().catch(() => undefined);
            return;
          }
          this.#azure = next.azure;
          this.#pollOnce = next.pollOnce;
          this.#twin = undefined;
          this.#attach(next.azure, next.transport);
          for (const [name, handler] of this.#methods) this.#registerMethod(name, handler);
          if (this.#desiredEnabled) {
            this.#desiredEnabled = false;
            this.#enableDesired();
          }
          this.#state = 'connected';
          this.emit('connected');
          return;
        } catch (err) {
          if (attempt === attempts) {
            this.emit('disconnected', { reason: reasonOf(err), willRetry: false, error: translateError(err, { protocol: this.protocol, operation: 'connect' }) });
            return;
          }
          await new Promise((r) => setTimeout(r, 500 * attempt).unref());
        }
      }
    })().finally(() => {
      this.#rebuilding = undefined;
    });
  }

  /** Runs an SDK operation with deadline and abort; an AMQP timeout triggers #recycle. */
  #run<T>(what: string, op: (azure: AzureClientLike) => Promise<T>, options?: OperationOptions): Promise<T> {
    if (this.#rebuilding !== undefined) return this.#rebuilding.then(() => this.#run(what, op, options));
    const azure = this.#azure;
    return guard(this.protocol, what, () => op(azure), this.#opts(options), this.#onTimeout === undefined ? undefined : () => this.#onTimeout?.timedOut(what, azure));
  }

  /**
   * sendEvent's own path, the one every message takes: no closures, and the SDK gets a callback,
   * so it builds no promise of its own. Per send that leaves one promise (ours, where the raw
   * client has the SDK's) and one Guarded, where the first version had three promises, five
   * closures and a Node timer (bench/README.md, "Where the CPU went").
   */
  #send(azureMessage: unknown, options: OperationOptions | undefined): Promise<void> {
    // While a recycled AMQP client is being replaced, wait for the new one like every other operation.
    if (this.#rebuilding !== undefined) return this.#rebuilding.then(() => this.#send(azureMessage, options));
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortedError(signal, 'sendEvent'));
    const azure = this.#azure;
    const timeoutMs = options?.timeoutMs ?? this.#timeoutMs;
    return new Promise<void>((resolve, reject) => {
      const op = new Guarded<void>(this.protocol, 'sendEvent', timeoutMs, signal, resolve, reject, this.#onTimeout, azure);
      try {
        const returned = azure.sendEvent(azureMessage, op.done);
        // The SDK returns nothing when given a callback; a client-like object adapted from
        // elsewhere may ignore the callback and return a promise instead.
        if (returned !== undefined && typeof (returned as Promise<unknown>).then === 'function') {
          (returned as Promise<unknown>).then(
            () => op.succeeded(),
            (err: unknown) => op.failed(err),
          );
        }
      } catch (err) {
        op.failed(err);
      }
    });
  }

  get state(): ConnectionState {
    return this.#state;
  }

  #listen(target: Pick<AzureClientLike, 'on' | 'removeListener'>, event: string, listener: (...args: never[]) => void): void {
    target.on(event, listener);
    this.#generationCleanup.push(() => target.removeListener(event, listener));
  }

  #emitError(err: unknown, operation: string): void {
    const error = translateError(err, { protocol: this.protocol, operation });
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  #opts(options: OperationOptions | undefined): OperationOptions & { defaultTimeoutMs: number } {
    return options === undefined ? { defaultTimeoutMs: this.#timeoutMs } : { ...options, defaultTimeoutMs: this.#timeoutMs };
  }

  #assertOpen(what: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new SwitchyardError('NOT_CONNECTED', `${what}: the client is closed; call connect() again`, { details: { protocol: this.protocol, operation: what } });
    }
  }

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
    if (event === 'desired') this.#enableDesired();
  }

  // ---- telemetry ------------------------------------------------------------------------

  sendEvent(message: OutgoingMessage, options?: OperationOptions): Promise<void> {
    // Not async (the hot path): the refusals below still arrive as rejections.
    let azureMessage: unknown;
    try {
      this.#assertOpen('sendEvent');
      azureMessage = toAzureMessage(message, this.protocol);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#send(azureMessage, options);
  }

  async sendEventBatch(messages: readonly OutgoingMessage[], options?: OperationOptions): Promise<void> {
    this.#assertOpen('sendEventBatch');
    if (messages.length === 0) return;
    const azureMessages = messages.map((m) => toAzureMessage(m, this.protocol));
    if (this.protocol === 'https') {
      await this.#run('sendEventBatch', (azure) => azure.sendEventBatch(azureMessages), options);
    } else if (this.protocol === 'amqp' || this.protocol === 'amqp-ws') {
      // No AMQP batch in the SDK: all transfers go out on the one link without waiting for
      // each disposition, which is what a batch would buy.
      await this.#run('sendEventBatch', (azure) => Promise.all(azureMessages.map((m) => azure.sendEvent(m))), options);
    } else {
      await this.#run(
        'sendEventBatch',
        async (azure) => {
          for (const m of azureMessages) {
            if (options?.signal?.aborted) throw abortedError(options.signal, 'sendEventBatch');
            await azure.sendEvent(m);
          }
        },
        options,
      );
    }
  }

  // ---- cloud to device ------------------------------------------------------------------

  #enableC2D(): void {
    if (this.#c2dEnabled || this.#state === 'closed' || this.#state === 'closing') return;
    this.#c2dEnabled = true;
    const azure = this.#azure;
    this.#listen(azure, 'message', (msg: unknown) => this.#deliver(azure, msg));
    if (this.protocol === 'https') this.#startPolling();
  }

  #deliver(from: AzureClientLike, msg: unknown): void {
    const data = fromAzureMessage(msg as Parameters<typeof fromAzureMessage>[0], this.protocol);
    const settle = (how: 'complete' | 'abandon' | 'reject') => async (options?: OperationOptions): Promise<void> => {
      if (how !== 'complete' && (this.protocol === 'mqtt' || this.protocol === 'mqtt-ws')) throw featureUnsupported(this.protocol, 'c2d-reject-abandon');
      this.#assertOpen(how);
      // Settle on the client that delivered it: a lock belongs to its link.
      await guard(this.protocol, how, () => from[how](msg), this.#opts(options));
    };
    const message: C2DMessage = { ...data, complete: settle('complete'), abandon: settle('abandon'), reject: settle('reject') };
    for (const q of this.#queues) q.push(message);
    super.emit('message', message);
  }

  #startPolling(): void {
    if (this.#pollOnce === undefined) {
      this.#emitError(new SwitchyardError('FEATURE_UNSUPPORTED', 'C2D over HTTPS needs the poll hook that connect() installs; this client was adapted without one', { details: { protocol: 'https', feature: 'c2d' } }), 'poll');
      return;
    }
    const development = this.#o.poll?.development ?? this.decision?.profile.environment === 'development';
    const policy = pollPolicy({
      ...this.#o.poll,
      development,
      ...((this.#o.poll?.pollIntervalSeconds ?? this.decision?.pollIntervalSeconds ?? this.decision?.profile.pollIntervalSeconds) === undefined
        ? {}
        : { pollIntervalSeconds: this.#o.poll?.pollIntervalSeconds ?? this.decision?.pollIntervalSeconds ?? this.decision?.profile.pollIntervalSeconds }),
    });
    const warnings: string[] = [];
    if (development) warnings.push(`development mode: polling C2D every ${policy.intervalMs / 1000} s; IoT Hub asks production devices to poll at most every 1500 s`);
    else if (this.#o.pollStateDir === undefined) warnings.push(`no pollStateDir: the device cannot know when it last polled, so its first C2D poll waits ${policy.intervalMs / 1000} s`);
    // Next turn, so a 'warning' listener attached after on('message') still hears it.
    if (warnings.length > 0) setImmediate(() => warnings.forEach((w) => this.emit('warning', w)));
    const runner = new PollRunner({
      deviceId: this.deviceId,
      policy,
      clock: this.#o.clock ?? systemClock,
      ...(this.#o.pollStateDir === undefined ? {} : { stateDir: this.#o.pollStateDir }),
      ...(this.#o.random === undefined ? {} : { random: this.#o.random }),
      pollOnce: () => this.#pollOnce!(),
      onPoll: (event) => this.emit('poll', event),
      onError: (err) => this.#emitError(err, 'poll'),
    });
    this.#poller = runner;
    runner.start().catch((err: unknown) => this.#emitError(err, 'poll'));
  }

  messages(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<C2DMessage> {
    const iterator = queueIterator(this.#queues, { ...options, closed: this.#state === 'closed' || this.#state === 'closing' });
    this.#enableC2D();
    return iterator;
  }

  // ---- twin -----------------------------------------------------------------------------

  #requireTwin(what: string): void {
    if (this.protocol === 'https') throw featureUnsupported(this.protocol, 'twin');
    this.#assertOpen(what);
  }

  #ensureTwin(options?: OperationOptions): Promise<TwinLike> {
    if (this.#twin === undefined) {
      const pending = this.#run('getTwin', (azure) => azure.getTwin() as Promise<TwinLike>, options).then((twin) => {
        // The Twin is an emitter of its own; an unhandled 'error' there crashes too.
        twin.on('error', (err: unknown) => this.#emitError(err, 'twin'));
        return twin;
      });
      this.#twin = pending;
      pending.catch(() => {
        if (this.#twin === pending) this.#twin = undefined;
      });
      return pending;
    }
    return this.#twin;
  }

  async getTwin(options?: OperationOptions): Promise<TwinDocument> {
    this.#requireTwin('getTwin');
    const first = this.#twin === undefined;
    const twin = await this.#ensureTwin(options);
    if (!first) await this.#run('getTwin', () => twin.get(), options);
    return { desired: plain(twin.properties.desired), reported: plain(twin.properties.reported) };
  }

  async updateReported(patch: Record<string, unknown>, options?: OperationOptions): Promise<void> {
    this.#requireTwin('updateReported');
    const twin = await this.#ensureTwin(options);
    await this.#run('updateReported', () => new Promise<void>((resolve, reject) => twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()))), options);
  }

  #enableDesired(): void {
    if (this.#desiredEnabled) return;
    if (this.protocol === 'https') {
      queueMicrotask(() => this.#emitError(featureUnsupported(this.protocol, 'twin'), 'desired'));
      return;
    }
    this.#desiredEnabled = true;
    this.#ensureTwin().then(
      (twin) => twin.on('properties.desired', (delta: unknown) => super.emit('desired', plain(delta))),
      (err: unknown) => {
        this.#desiredEnabled = false;
        this.#emitError(err, 'desired');
      },
    );
  }

  // ---- methods --------------------------------------------------------------------------

  onMethod(methodName: string, handler: MethodHandler): void {
    // Http's onDeviceMethod throws NotImplementedError synchronously; answer in our taxonomy.
    if (this.protocol === 'https') throw featureUnsupported(this.protocol, 'methods');
    this.#assertOpen('onMethod');
    if (typeof methodName !== 'string' || methodName === '') {
      throw new SwitchyardError('CONFIG_INVALID', 'onMethod needs a method name', { details: { field: 'methodName' } });
    }
    this.#methods.set(methodName, handler);
    this.#registerMethod(methodName, handler);
  }

  #registerMethod(methodName: string, handler: MethodHandler): void {
    this.#azure.onDeviceMethod(methodName, (request, response) => {
      const req = request as { methodName: string; requestId: string; payload: unknown };
      const res = response as { send(status: number, payload?: unknown): Promise<void> };
      const payload = Buffer.isBuffer(req.payload) ? req.payload.toString('utf8') : req.payload;
      Promise.resolve()
        .then(() => handler({ methodName: req.methodName, requestId: req.requestId, payload }))
        .then(
          (result) => res.send(result.status, result.payload ?? null),
          (err: unknown) => res.send(500, { error: translateError(err).message }),
        )
        .catch((err: unknown) => this.#emitError(err, `method ${methodName}`));
    });
  }

  // ---- file upload ----------------------------------------------------------------------

  async uploadToBlob(blobName: string, data: Buffer | NodeJS.ReadableStream, length?: number, options?: OperationOptions): Promise<void> {
    this.#assertOpen('uploadToBlob');
    const size = Buffer.isBuffer(data) ? data.length : length;
    if (size === undefined) throw new SwitchyardError('CONFIG_INVALID', 'uploadToBlob needs the stream length for a stream', { details: { field: 'length' } });
    const stream = Buffer.isBuffer(data) ? Readable.from([data]) : data;
    await this.#run('uploadToBlob', (azure) => azure.uploadToBlob(blobName, stream, size), options);
  }

  // ---- lifecycle ------------------------------------------------------------------------

  /**
   * Stops polling, ends every iterator and closes the Azure client. Resolves once closed (a
   * second call waits for the first). An SDK close that hangs past the deadline, as a wedged
   * AMQP transport does, is abandoned rather than reported: the client is closed either way.
   */
  close(options?: OperationOptions): Promise<void> {
    this.#closing ??= this.#close(options);
    return this.#closing;
  }

  async #close(options?: OperationOptions): Promise<void> {
    this.#state = 'closing';
    for (const q of this.#queues) q.end();
    this.#queues.clear();
    await this.#poller?.stop();
    await this.#rebuilding?.catch(() => undefined);
    try {
      await guard(this.protocol, 'close', () => this.#azure.close(), this.#opts(options));
    } catch (err) {
      if ((err as SwitchyardError).code !== 'TIMEOUT') throw err;
      this.emit('warning', `${this.protocol} close did not complete in time; the connection was abandoned`);
    } finally {
      this.#detach();
      // Keep swallowing late SDK errors after close: nobody listens any more.
      this.#azure.on('error', () => undefined);
      this.#state = 'closed';
    }
  }
}

/**
 * Wraps an azure-iot-device Client that was built elsewhere (e.g. the gateway's clients on one
 * shared AMQP connection) in the DeviceClient interface. The client should already be open.
 */
export function adaptAzureClient(azureClient: unknown, options: AdaptOptions): DeviceClient {
  if (typeof azureClient !== 'object' || azureClient === null || typeof (azureClient as AzureClientLike).sendEvent !== 'function') {
    throw new SwitchyardError('CONFIG_INVALID', 'adaptAzureClient needs an azure-iot-device Client', { details: { field: 'azureClient' } });
  }
  return new SwitchyardDeviceClient(azureClient as AzureClientLike, options) as unknown as DeviceClient;
}
