// A link over one azure-iot-device Client, whatever its transport: the five protocols of
// connect() and the gateway's azure-client engine. It adds what the SDK lacks as a link: typed
// up/down reports with an epoch per Azure client, normalized C2D, callbacks on the send path, and
// the replacement of an AMQP client whose operations wedge (see #recycle).
// One file because it is one class over one Azure client generation at a time, whose listeners,
// feature flags and replacement share its state; abandoning sockets is apart (abandon.ts).
import { isRetryable } from '../errors.ts';
import { fromAzureMessage, toAzureMessage, type OutgoingMessage } from '../message.ts';
import type { PollOutcome } from '../poll-scheduler.ts';
import type { Protocol } from '@switchyard/profile';
import { backoffDelay, systemClock, type Clock } from '@switchyard/time';
import type { MethodRequest, TwinDocument } from '../types.ts';
import { guardTransportTwin } from './amqp-twin-guard.ts';
import { batchElementBytes, HTTPS_BATCH_ELEMENTS_BYTES, httpsBatchSender } from './https-batch.ts';
import type { DirectSend } from './amqp-direct-send.ts';
import { guardAmqpLinks } from './amqp-link-guard.ts';
import { keepConnecting } from './keep-connecting.ts';
import type { DeviceLink, LinkBatching, LinkListener, Settlement } from './link.ts';
import { oneReconnectPerDrop } from './reconnect-gate.ts';

type Callback = (err?: Error | null, result?: unknown) => void;

/** The parts of azure-iot-device's Client a link uses. */
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

export interface RetryPolicyLike {
  shouldRetry(err: Error): boolean;
  nextRetryTimeout(retryCount: number, throttled: boolean): number;
  /**
   * Ends every retry of the operations running on it, at their next failure. close() calls it:
   * the SDK's own chains (a feature re-enabled after a drop) otherwise went on dialling for the
   * rest of their attempts after the client closed, and their timers held the process.
   */
  stop?(): void;
}

/** One generation of Azure client: the client, its transport and (HTTPS) its poll hook. */
export interface AzureGeneration {
  azure: AzureClientLike;
  transport?: unknown;
  pollOnce?: PollOnce;
  /** AMQP: sends one message straight to the attached D2C link, or declines (amqp-direct-send.ts). */
  sendDirect?: DirectSend;
  /**
   * Destroys this client's sockets, for a close the network does not let finish; connect()
   * provides it (links/abandon.ts). Without it, a close over a dead network ends only by the
   * core's deadline and leaves the SDK's sockets behind.
   */
  abandon?: (why: string) => void;
}

export interface AzureClientLinkOptions extends AzureGeneration {
  protocol: Protocol;
  deviceId: string;
  /** The SDK retry policy in force after connecting, so its shouldRetry decides `willRetry`. */
  retryPolicy?: RetryPolicyLike;
  /**
   * Builds and opens a replacement Azure client. When given, an AMQP client whose operation
   * times out is replaced (#recycle); connect() provides it, adapted clients may omit it.
   */
  rebuild?: () => Promise<AzureGeneration>;
  /** For the waits between rebuild attempts. */
  clock?: Clock;
  /**
   * Who re-opens the client after a drop: the SDK by its retry policy (connect()), or the link's
   * owner (a gateway, which re-opens every identity for any retryable failure, whatever the
   * client's own policy, and so also after the client itself gave up).
   */
  reopenedBy?: 'sdk' | 'owner';
  /**
   * False when the client given here was built but not opened: the link then waits for
   * connectInBackground() to open one, and listens to no client before that. Default true.
   */
  opened?: boolean;
}

/**
 * A retry policy that gives up: the SDK's default retries some failures for 240 s, so a connect
 * to a closed port hangs for 4 minutes. Delays double from `baseMs` up to `maxMs`; what is worth
 * retrying is the error taxonomy's `retryable`.
 */
export function boundedRetryPolicy(maxAttempts: number, baseMs = 100, maxMs = 5_000, clock: Clock = systemClock): RetryPolicyLike {
  // The SDK counts retries per operation and per drop, from 1 each time. A connection that drops
  // right after it came back (the hub drops MQTT on every publish while it throttles or refuses)
  // would restart at the first step every time: a reconnect every 100 ms, ~3 900 in a 30-minute
  // soak. So a first retry soon after the previous one continues the back-off instead; first
  // retries within a few ms of each other (every send in flight failing at once) are one drop.
  let streak = 0;
  let lastFirstAt = Number.NEGATIVE_INFINITY;
  let stopped = false;
  return {
    shouldRetry: (err) => !stopped && maxAttempts > 0 && isRetryable(err),
    stop: () => {
      stopped = true;
    },
    nextRetryTimeout: (retryCount, throttled) => {
      if (stopped || retryCount > maxAttempts) return -1;
      if (retryCount <= 1) {
        const now = clock.now();
        const since = now - lastFirstAt;
        if (since >= SAME_DROP_MS) {
          streak = since < SETTLED_MS ? Math.min(streak + 1, MAX_STREAK) : 0;
          lastFirstAt = now;
        }
      }
      // The one backoff schedule, without jitter: the SDK adds none of its own to ours either.
      const policy = throttled ? { baseMs: Math.max(baseMs, 5_000), maxMs: Math.max(maxMs, 60_000) } : { baseMs, maxMs };
      return backoffDelay({ ...policy, maxRetries: Infinity, jitter: 0 }, Math.max(0, retryCount - 1) + streak)!;
    },
  };
}

/**
 * From the start of close() on: the transport's calls that connect on demand fail at once. An SDK
 * retry timer armed before close (up to 5 s) still fires once; its attempt then ends the chain
 * (the policy is stopped) instead of dialling the hub from a closing client.
 */
function refuseDials(transport: unknown): void {
  const t = transport as Record<string, unknown> | undefined;
  if (t === undefined || t === null) return;
  for (const name of ['connect', 'enableC2D', 'enableMethods', 'enableTwinDesiredPropertiesUpdates', 'getTwin', 'updateTwinReportedProperties']) {
    if (typeof t[name] !== 'function') continue;
    t[name] = (...args: unknown[]) => {
      const done = args.findLast((a) => typeof a === 'function') as ((err: Error) => void) | undefined;
      done?.(new Error('the client was closed'));
    };
  }
}

/** First retries closer together than this are the same drop (every operation in flight failing). */
const SAME_DROP_MS = 50;
/** A connection that stayed up this long was a real recovery: the back-off starts over. */
const SETTLED_MS = 10_000;
/** Enough to reach any cap; keeps the exponent finite. */
const MAX_STREAK = 30;

/**
 * How long close() lets the SDK end the connection in order (feature attaches under way included)
 * before it destroys the sockets. On a live connection that takes milliseconds; over a dead one
 * the SDK would wait for replies for 30 s (MQTT's FIN, AMQP's detaches) or for ever.
 */
export const CLOSE_GRACE_MS = 2_000;
/** After the sockets are destroyed, how long close() lets the SDK settle its callbacks and timers. */
export const CLOSE_SETTLE_MS = 1_000;

/** How many times a twin request goes out when AMQP connections keep dropping under it. */
const TWIN_ATTEMPTS = 3;
const DROPPED: unique symbol = Symbol('the connection dropped');

function plainTwin(twin: TwinLike): TwinDocument {
  return { desired: twin.properties.desired, reported: twin.properties.reported };
}

export class AzureClientLink implements DeviceLink {
  readonly protocol: Protocol;
  readonly deviceId: string;
  readonly holdsDuringReconnect = false;
  readonly c2dMode: 'push' | 'poll';
  #epoch = 1;
  #listener: LinkListener | undefined;
  #gen: AzureGeneration;
  #cleanup: Array<() => void> = [];
  #rebuilding: Promise<void> | undefined;
  #twin: Promise<TwinLike> | undefined;
  #c2d = false;
  #desired = false;
  readonly #methods = new Set<string>();
  #closed = false;
  /** Whether a client of this link ever opened (connectInBackground() is still trying when not). */
  #opened: boolean;
  /** Why the first connection was given up; every operation fails with it from then on. */
  #gaveUp: unknown;
  /** Stops connectInBackground()'s attempts. */
  readonly #stopConnecting = new AbortController();
  /** AMQP feature attaches under way (see #watchAttaches), which close() lets finish first. */
  readonly #attaches = new Set<Promise<void>>();
  /** Twin requests in flight, told when the transport reports its connection lost (#twinRequest). */
  readonly #drops = new Set<() => void>();
  /** Clients replaced after an operation timed out and still closing, which close() waits for. */
  readonly #retiring = new Set<Promise<void>>();
  readonly #o: AzureClientLinkOptions;
  readonly batching: LinkBatching | undefined;

  constructor(options: AzureClientLinkOptions) {
    this.#o = options;
    this.protocol = options.protocol;
    this.deviceId = options.deviceId;
    this.c2dMode = options.protocol === 'https' ? 'poll' : 'push';
    this.#gen = options;
    this.#opened = options.opened ?? true;
    // MQTT and AMQP have no batch in the SDK; the outbox's window pipelines them instead.
    this.batching =
      options.protocol === 'https' && httpsBatchSender(options.transport) !== undefined
        ? { maxBytes: HTTPS_BATCH_ELEMENTS_BYTES, bytesOf: batchElementBytes, send: (messages, done) => this.#sendHttpsBatch(messages, done) }
        : undefined;
  }

  #sendHttpsBatch(messages: Parameters<LinkBatching['send']>[0], done: (err?: unknown) => void): void {
    if (this.#rebuilding !== undefined) {
      this.#rebuilding.then(() => this.#sendHttpsBatch(messages, done), done);
      return;
    }
    const send = httpsBatchSender(this.#gen.transport);
    if (send === undefined) done(new Error('the HTTPS transport in force cannot send batches'));
    else send(messages, done);
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** The Azure client in force (the gateway's azure-client engine re-opens it). */
  get azure(): AzureClientLike {
    return this.#gen.azure;
  }

  bind(listener: LinkListener): void {
    this.#listener = listener;
    if (this.#opened) this.#attach(this.#gen);
  }

  /**
   * Opens the link without anyone waiting (connect()'s waitForConnection: false): `open` makes
   * one bounded attempt and returns the opened client. A failed attempt is reported once as a
   * drop the link retries (`reconnecting`), the next follows on `schedule` (the SDK reconnect
   * back-off), until one succeeds (`connected`), one fails for good (`disconnected` with the
   * error, and a fault), or close(). Operations wait for it meanwhile, within their deadlines.
   */
  connectInBackground(open: (signal: AbortSignal) => Promise<AzureGeneration>, schedule: RetryPolicyLike): void {
    const listener = this.#listener!;
    const clock = this.#o.clock ?? systemClock;
    const signal = this.#stopConnecting.signal;
    this.#rebuilding = keepConnecting({
      clock,
      signal,
      schedule,
      attempt: open,
      failed: (error, retryInMs, attempt) => {
        if (this.#closed) return;
        // The first failure says the device is offline; the later ones would say it again.
        if (retryInMs !== undefined && attempt === 1) listener.linkDown(this.#epoch, { error, willRetry: true, reason: `${this.protocol} first connection failed, retrying: ${error.message}` });
      },
    }).then(
      async (gen) => {
        if (this.#closed) {
          await this.#closeGeneration(gen, 'opened after close()').catch(() => undefined);
          return;
        }
        this.#install(gen);
      },
      (err: unknown) => {
        if (this.#closed) return;
        this.#gaveUp = err;
        listener.linkFault(err, 'connect');
        listener.linkDown(this.#epoch, { error: err, willRetry: false });
      },
    ).finally(() => {
      this.#rebuilding = undefined;
    });
  }

  /** Makes an opened client the one in force and restores every feature in use on it. */
  #install(gen: AzureGeneration): void {
    const listener = this.#listener!;
    // A first client has no twin to forget: a getTwin or desired subscription asked for while it
    // opened is waiting (#withAzure) to run on it.
    const replacing = this.#opened;
    this.#gen = gen;
    if (replacing) this.#twin = undefined;
    this.#epoch++;
    this.#opened = true;
    this.#attach(gen);
    for (const name of this.#methods) this.#registerMethod(name);
    if (replacing && this.#desired) {
      this.#desired = false;
      // Not awaited: it runs on the new client once the replacement under way (#rebuilding, of
      // which this is the end) has settled; awaiting it here would wait for itself.
      this.enableDesired().catch((err: unknown) => listener.linkFault(err, 'desired'));
    }
    listener.linkUp(this.#epoch);
  }

  #listen(target: Pick<AzureClientLike, 'on' | 'removeListener'>, event: string, fn: (...args: never[]) => void): void {
    target.on(event, fn);
    this.#cleanup.push(() => target.removeListener(event, fn));
  }

  /**
   * azure-iot-device-amqp's disconnect wedges when a feature link (C2D, methods, twin) finishes
   * attaching after the disconnect began: it ends the socket, then writes that link's detach into
   * it and waits 45 s for a reply that cannot come. So close() right after `messages()` took the
   * full close deadline. The transport's enable calls are wrapped to know which are in flight.
   */
  #watchAttaches(transport: unknown): void {
    if (this.protocol !== 'amqp' && this.protocol !== 'amqp-ws') return;
    // Its twin client's detach while the first twin request attaches threw out of the SDK and
    // wedged the transport's disconnect (amqp-twin-guard.ts).
    guardTransportTwin(transport);
    // A link force-detached while attaching told the base client it attached (amqp-link-guard.ts).
    guardAmqpLinks(transport);
    const t = transport as Record<string, unknown> | undefined;
    for (const name of ['enableC2D', 'enableMethods', 'enableTwinDesiredPropertiesUpdates']) {
      const original = t?.[name];
      if (typeof original !== 'function') continue;
      t![name] = (done?: (err?: unknown) => void) => {
        let settle!: () => void;
        const pending = new Promise<void>((resolve) => (settle = resolve));
        this.#attaches.add(pending);
        (original as (cb: (err?: unknown) => void) => void).call(transport, (err?: unknown) => {
          this.#attaches.delete(pending);
          settle();
          done?.(err);
        });
      };
    }
  }

  /** Listens to one generation of Azure client and transport; undone by #detach. */
  #attach(gen: AzureGeneration): void {
    // Before the link's own listeners: the ones on the transport now are the Azure client's.
    oneReconnectPerDrop(gen.transport);
    this.#watchAttaches(gen.transport);
    const listener = this.#listener!;
    const epoch = this.#epoch;
    const { azure } = gen;
    // An 'error' event without a listener crashes the process; the SDK emits them for failed
    // feature re-enables after reconnects (azure-sdk-transports.md §8 item 15).
    this.#listen(azure, 'error', (err: unknown) => listener.linkFault(err, 'background'));
    let gaveUp = false;
    this.#listen(azure, 'connect', () => {
      if (gaveUp) {
        gaveUp = false;
        // Outside the SDK's state transition that announced the connection.
        queueMicrotask(() => this.#restoreFeatures(gen));
      }
      listener.linkUp(epoch);
    });
    // The client's own 'disconnect' comes when it gave up (or never retried).
    this.#listen(azure, 'disconnect', (result: unknown) => {
      if (this.#closed || this.#o.reopenedBy === 'owner') return;
      gaveUp = true;
      const error = (result as { transportObj?: unknown } | undefined)?.transportObj;
      listener.linkDown(epoch, error === undefined ? { willRetry: false } : { error, willRetry: false });
    });
    const transport = gen.transport as Partial<Pick<AzureClientLike, 'on' | 'removeListener'>> | undefined;
    if (typeof transport?.on === 'function' && typeof transport.removeListener === 'function') {
      const t = transport as Pick<AzureClientLike, 'on' | 'removeListener'>;
      this.#listen(t, 'disconnect', (err: unknown) => {
        for (const dropped of [...this.#drops]) dropped();
        if (this.#closed) return;
        if (this.#o.reopenedBy === 'owner') {
          listener.linkDown(epoch, err === undefined ? { willRetry: false } : { error: err, willRetry: isRetryable(err) });
          return;
        }
        // The client reports only give-ups; a drop the SDK retries is visible only here.
        if (!(err instanceof Error)) return;
        // The dropped connection's sockets go now, before the SDK dials again: rhea ends a
        // WebSocket it dropped as idle with a close handshake that a dead peer never answers.
        gen.abandon?.('the transport reported the connection lost');
        const willRetry = this.#o.retryPolicy?.shouldRetry(err) ?? isRetryable(err);
        if (willRetry) listener.linkDown(epoch, { error: err, willRetry: true });
      });
      // HTTP poll failures appear only as transport 'error' events, which the SDK merely logs.
      if (this.protocol === 'https') this.#listen(t, 'error', (err: unknown) => listener.linkFault(err, 'poll'));
    }
    if (this.#c2d) this.#listen(azure, 'message', (msg: unknown) => this.#deliver(azure, msg));
  }

  #detach(): void {
    for (const undo of this.#cleanup.splice(0)) undo();
  }

  /**
   * After the Azure client gave up, the next operation reconnects an AMQP transport on demand, but
   * neither the Client nor the transport attaches again what the drop detached: the SDK re-enables
   * C2D, methods and desired updates only after a drop it retries itself (InternalClient's and
   * DeviceClient's disconnect handlers). So after KillAmqpConnection, whose amqp:connection:forced
   * the SDK's retry filter does not retry, telemetry came back and C2D and methods did not. An
   * AMQP link belongs to its connection; MQTT's subscriptions live on in its session.
   */
  #restoreFeatures(gen: AzureGeneration): void {
    if (this.#closed || (this.protocol !== 'amqp' && this.protocol !== 'amqp-ws') || gen !== this.#gen) return;
    const transport = gen.transport as Partial<Record<string, (done: (err?: unknown) => void) => void>> | undefined;
    const enable = (method: string, operation: string): void => {
      const fn = transport?.[method];
      if (typeof fn !== 'function') return;
      fn.call(transport, (err?: unknown) => {
        if (err !== undefined && err !== null && !this.#closed) this.#listener?.linkFault(err, operation);
      });
    };
    if (this.#c2d) enable('enableC2D', 'c2d');
    if (this.#methods.size > 0) enable('enableMethods', 'methods');
    if (this.#desired) enable('enableTwinDesiredPropertiesUpdates', 'desired');
  }

  /**
   * The AMQP transport can wedge for good: when the hub force-detaches links and then drops the
   * connection, azure-iot-amqp-base waits in 'disconnecting' for detach replies that never come
   * and queues every later send. Nothing is emitted, so the first operation that times out
   * replaces the whole Azure client and restores C2D, methods and desired updates on the new one.
   */
  operationTimedOut(what: string, epoch: number): void {
    if (this.protocol !== 'amqp' && this.protocol !== 'amqp-ws') return;
    const rebuild = this.#o.rebuild;
    if (rebuild === undefined || this.#rebuilding !== undefined || this.#closed || epoch !== this.#epoch) return;
    const listener = this.#listener!;
    listener.linkDown(epoch, { willRetry: true, reason: `${this.protocol} ${what} timed out; replacing the connection` });
    const oldGen = this.#gen;
    this.#detach();
    oldGen.azure.on('error', () => undefined);
    const retiring = this.#closeGeneration(oldGen, 'replaced after an operation timed out').catch(() => undefined);
    this.#retiring.add(retiring);
    void retiring.finally(() => this.#retiring.delete(retiring));
    const clock = this.#o.clock ?? systemClock;
    // Until one opens, a failure no retry can cure, or close(). Three attempts (about 4 s) used to be
    // all: a timeout during an outage then left the link on the old client, which it no longer
    // listened to. Sends still reached the hub through it (its transport reconnects on demand),
    // but the state stayed `disconnected`, and C2D, methods and desired updates never came back
    // (bench/README.md, "Soak").
    this.#rebuilding = keepConnecting({ clock, signal: this.#stopConnecting.signal, schedule: boundedRetryPolicy(Infinity, 500, 30_000, clock), attempt: () => rebuild() })
      .then(
        async (next) => {
          if (this.#closed) {
            await next.azure.close().catch(() => undefined);
            return;
          }
          this.#install(next);
        },
        (err: unknown) => {
          if (this.#closed) return;
          // Operations fail with this from now on, rather than go to the retired client.
          this.#opened = false;
          this.#gaveUp = err;
          listener.linkDown(this.#epoch, { error: err, willRetry: false });
        },
      )
      .finally(() => {
        this.#rebuilding = undefined;
      });
  }

  /** Runs `op` on the client in force, after a replacement under way. */
  #withAzure<T>(op: (azure: AzureClientLike) => Promise<T>): Promise<T> {
    if (this.#rebuilding !== undefined) return this.#rebuilding.then(() => this.#withAzure(op));
    if (!this.#opened) return Promise.reject(this.#neverOpened());
    return op(this.#gen.azure);
  }

  /** What an operation fails with on a link whose first connection was given up. */
  #neverOpened(): unknown {
    return this.#gaveUp ?? new Error(`${this.protocol} link was never opened`);
  }

  // ---- telemetry ---------------------------------------------------------------------------

  send(message: OutgoingMessage, done: (err?: unknown) => void): void {
    this.#send(message, done, false);
  }

  /** send() straight to the transport, past the Azure client's RetryOperation (DeviceLink.sendOnce). */
  sendOnce(message: OutgoingMessage, done: (err?: unknown) => void): void {
    this.#send(message, done, true);
  }

  #send(message: OutgoingMessage, done: (err?: unknown) => void, once: boolean): void {
    const azureMessage = toAzureMessage(message, this.protocol);
    if (this.#rebuilding !== undefined) {
      this.#rebuilding.then(() => this.#sendAzure(azureMessage, done, once), done);
      return;
    }
    this.#sendAzure(azureMessage, done, once);
  }

  #sendAzure(azureMessage: unknown, done: (err?: unknown) => void, once: boolean): void {
    if (!this.#opened) {
      // Later, as the SDK answers: a caller that fails over to the next message from inside
      // `done` (the outbox's pump) must not find itself called back before it returned.
      const error = this.#neverOpened();
      queueMicrotask(() => done(error));
      return;
    }
    try {
      const gen = this.#gen;
      // Over AMQP, straight to the attached D2C link when nothing is in its way (amqp-direct-send.ts).
      if (gen.sendDirect?.(azureMessage, done as Callback, once ? undefined : this.#retryThroughSdk) === true) return;
      // The transport connects on demand, as the client's retry would have it do, once.
      const transport = once ? (gen.transport as { sendEvent?: (message: unknown, done: Callback) => void } | undefined) : undefined;
      if (typeof transport?.sendEvent === 'function') {
        transport.sendEvent(azureMessage, done as Callback);
        return;
      }
      this.#sendThroughSdk(gen, azureMessage, done);
    } catch (err) {
      done(err);
    }
  }

  #sendThroughSdk(gen: AzureGeneration, azureMessage: unknown, done: (err?: unknown) => void): void {
    const returned = gen.azure.sendEvent(azureMessage, done as Callback);
    // The SDK returns nothing when given a callback; a client-like object adapted from
    // elsewhere may ignore the callback and return a promise instead.
    if (returned !== undefined && typeof (returned as Promise<unknown>).then === 'function') {
      (returned as Promise<unknown>).then(() => done(), done);
    }
  }

  /**
   * A direct send that failed, handled as the client's RetryOperation handles its first attempt's
   * failure: the retry policy decides and sets the wait, and then the message goes through the
   * client (the one that replaced this one, if one did), whose own retry carries it on from there.
   * Never at once: the link fails its deliveries from inside its own state change.
   */
  readonly #retryThroughSdk = (azureMessage: unknown, err: Error, done: Callback): void => {
    const policy = this.#o.retryPolicy;
    const wait = policy === undefined ? (isRetryable(err) ? 0 : -1) : policy.shouldRetry(err) ? policy.nextRetryTimeout(1, err.name === 'ThrottlingError') : -1;
    if (wait < 0) {
      done(err);
      return;
    }
    (this.#o.clock ?? systemClock).setTimeout(() => {
      try {
        this.#sendThroughSdk(this.#gen, azureMessage, done as (err?: unknown) => void);
      } catch (thrown) {
        done(thrown as Error);
      }
    }, wait);
  };

  sendBatch(messages: readonly OutgoingMessage[], signal?: AbortSignal): Promise<void> {
    const azureMessages = messages.map((m) => toAzureMessage(m, this.protocol));
    return this.#withAzure(async (azure) => {
      if (this.protocol === 'https') {
        await azure.sendEventBatch(azureMessages);
      } else if (this.protocol === 'amqp' || this.protocol === 'amqp-ws') {
        // No AMQP batch in the SDK: all transfers go out on the one link without waiting for
        // each disposition, which is what a batch would buy.
        await Promise.all(azureMessages.map((m) => azure.sendEvent(m)));
      } else {
        for (const m of azureMessages) {
          // Stop between messages once the caller gave up; the core reports the abort.
          if (signal?.aborted === true) return;
          await azure.sendEvent(m);
        }
      }
    });
  }

  // ---- cloud to device ---------------------------------------------------------------------

  enableC2D(): void {
    if (this.#c2d || this.#closed) return;
    this.#c2d = true;
    // Not opened yet: #attach listens once a client is.
    if (!this.#opened) return;
    const azure = this.#gen.azure;
    this.#listen(azure, 'message', (msg: unknown) => this.#deliver(azure, msg));
  }

  #deliver(from: AzureClientLike, msg: unknown): void {
    const data = fromAzureMessage(msg as Parameters<typeof fromAzureMessage>[0], this.protocol);
    // Settled on the client that delivered it: a lock belongs to its link.
    this.#listener?.linkMessage({ data, settle: (how: Settlement) => from[how](msg).then(() => undefined) });
  }

  pollOnce(): Promise<PollOutcome> {
    // The client in force when the poll starts: a replacement brings its own hook.
    return this.#withAzure(() => this.#gen.pollOnce?.() ?? Promise.resolve<PollOutcome>('failed'));
  }

  // ---- twin --------------------------------------------------------------------------------

  /**
   * Runs one twin request, and again if the AMQP connection drops while it is pending:
   * azure-iot-device-amqp's AmqpTwinClient forgets the requests in flight when its links go down
   * with the connection (it never calls them back), so one sent just as the connection went down
   * (on the link the hub had just force-detached, in the fault suite's KillAmqpTwinLinkReq) waited
   * for the core's deadline. Twin requests bear repeating: a GET reads; a reported-properties PATCH
   * merges the same values again.
   */
  async #twinRequest<T>(request: () => Promise<T>): Promise<T> {
    if (this.protocol !== 'amqp' && this.protocol !== 'amqp-ws') return request();
    for (let attempt = 1; ; attempt++) {
      let onDrop!: () => void;
      const dropped = new Promise<typeof DROPPED>((resolve) => (onDrop = () => resolve(DROPPED)));
      this.#drops.add(onDrop);
      const pending = request();
      try {
        const outcome = await Promise.race([pending, dropped]);
        if (outcome !== DROPPED) return outcome;
        // Bounded: after that, the request's own answer (or the core's deadline) decides.
        if (attempt >= TWIN_ATTEMPTS) return await pending;
      } finally {
        this.#drops.delete(onDrop);
      }
      pending.catch(() => undefined);
      if (this.#closed) return pending;
    }
  }

  #ensureTwin(): Promise<TwinLike> {
    if (this.#twin !== undefined) return this.#twin;
    const pending = this.#withAzure((azure) => this.#twinRequest(() => azure.getTwin() as Promise<TwinLike>)).then((twin) => {
      // The Twin is an emitter of its own; an unhandled 'error' there crashes too.
      twin.on('error', (err: unknown) => this.#listener?.linkFault(err, 'twin'));
      return twin;
    });
    this.#twin = pending;
    pending.catch(() => {
      if (this.#twin === pending) this.#twin = undefined;
    });
    return pending;
  }

  async getTwin(): Promise<TwinDocument> {
    const first = this.#twin === undefined;
    const twin = await this.#ensureTwin();
    if (!first) await this.#twinRequest(() => twin.get());
    return plainTwin(twin);
  }

  async updateReported(patch: Record<string, unknown>): Promise<void> {
    const twin = await this.#ensureTwin();
    await this.#twinRequest(() => new Promise<void>((resolve, reject) => twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()))));
  }

  async enableDesired(): Promise<void> {
    if (this.#desired) return;
    this.#desired = true;
    try {
      const twin = await this.#ensureTwin();
      twin.on('properties.desired', (delta: unknown) => this.#listener?.linkDesired(delta as Record<string, unknown>));
    } catch (err) {
      this.#desired = false;
      throw err;
    }
  }

  // ---- methods -----------------------------------------------------------------------------

  enableMethod(methodName: string): void {
    if (this.#methods.has(methodName)) return;
    this.#methods.add(methodName);
    this.#registerMethod(methodName);
  }

  #registerMethod(methodName: string): void {
    // Not opened yet: #install registers every method once a client is.
    if (!this.#opened) return;
    this.#gen.azure.onDeviceMethod(methodName, (request, response) => {
      const req = request as { methodName: string; requestId: string; payload: unknown };
      const res = response as { send(status: number, payload?: unknown): Promise<void> };
      const payload = Buffer.isBuffer(req.payload) ? req.payload.toString('utf8') : req.payload;
      const call: MethodRequest = { methodName: req.methodName, requestId: req.requestId, payload };
      this.#listener?.linkMethod(call, (result) => res.send(result.status, result.payload ?? null));
    });
  }

  // ---- file upload -------------------------------------------------------------------------

  uploadToBlob(blobName: string, stream: NodeJS.ReadableStream, size: number): Promise<void> {
    return this.#withAzure((azure) => azure.uploadToBlob(blobName, stream, size)).then(() => undefined);
  }

  /** The Azure client in force finished an open() someone else called (the gateway's re-open). */
  opened(): void {
    if (!this.#closed) this.#listener?.linkUp(this.#epoch);
  }

  /** The gateway gave up re-opening this identity: report it down for good. */
  gaveUp(error: unknown): void {
    this.#listener?.linkDown(this.#epoch, { error, willRetry: false });
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Waits for `promise` at most until `deadline` on the link's clock; true when it settled first. */
  async #within(promise: Promise<unknown>, deadline: number): Promise<boolean> {
    const clock = this.#o.clock ?? systemClock;
    const ms = deadline - clock.now();
    if (ms <= 0) return false;
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const settled = promise.then(
      () => true,
      () => true,
    );
    try {
      return await Promise.race([settled, new Promise<false>((resolve) => (timer = clock.setTimeout(() => resolve(false), ms)))]);
    } finally {
      clock.clearTimeout(timer);
    }
  }

  /**
   * Closes one Azure client within CLOSE_GRACE_MS + CLOSE_SETTLE_MS: in order when the network
   * lets it; otherwise its sockets are destroyed and the SDK gets a moment to notice. Rejects
   * only with the SDK's own close error.
   */
  async #closeGeneration(gen: AzureGeneration, why: string, deadline?: number): Promise<void> {
    const clock = this.#o.clock ?? systemClock;
    const closing = gen.azure.close();
    closing.catch(() => undefined);
    // Even when waits before it used the budget up, the orderly close gets a moment of its own.
    const until = Math.max(deadline ?? clock.now() + CLOSE_GRACE_MS, clock.now() + 250);
    if (!(await this.#within(closing, until)) && gen.abandon !== undefined) {
      gen.abandon(why);
      await this.#within(closing, clock.now() + CLOSE_SETTLE_MS);
      return;
    }
    await closing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopConnecting.abort();
    this.#o.retryPolicy?.stop?.();
    const clock = this.#o.clock ?? systemClock;
    // One budget for everything close() waits on: a replacement under way, feature attaches
    // (azure-iot-device-amqp wedges its disconnect for 45 s when one lands after it began, see
    // #watchAttaches), and the SDK's orderly disconnect.
    const deadline = clock.now() + CLOSE_GRACE_MS;
    if (this.#rebuilding !== undefined) await this.#within(this.#rebuilding, deadline);
    if (this.#attaches.size > 0) await this.#within(Promise.all([...this.#attaches]), deadline);
    const gen = this.#gen;
    // Before the orderly disconnect, not after it: an SDK retry timer armed before close() that
    // fires during the disconnect's grace otherwise dialled, and its connection (a socket and the
    // SAS renewal timer) held the process after close() resolved.
    refuseDials(gen.transport);
    // Bounded by #closeGeneration's own budget; waited for so that nothing of this link still
    // runs once close() resolved.
    const retired = this.#within(Promise.all([...this.#retiring]), clock.now() + CLOSE_GRACE_MS + CLOSE_SETTLE_MS);
    try {
      await this.#closeGeneration(gen, 'close() over a connection that did not answer', deadline);
    } finally {
      this.#detach();
      // Keep swallowing late SDK errors after close: nobody listens any more.
      gen.azure.on('error', () => undefined);
      // A reconnect the SDK had under way when close() began can still finish afterwards and
      // leave a live session at the hub: close the client again if it connects after all.
      gen.azure.on('connect', () => void gen.azure.close().catch(() => undefined));
    }
    await retired;
  }
}
