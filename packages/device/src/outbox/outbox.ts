// The outbox: every telemetry message is recorded before it is sent, and leaves only when the hub
// acknowledged it. Messages go to the link in the order they were queued, several at a time; a
// failed attempt stops the flow until the connection is back (the core's `connected`) or a
// back-off passes, and then everything unacknowledged is sent again from the oldest. Each message
// carries a stable message id, the same on every attempt and after a restart, so a hub (or a
// consumer) can drop the copies an at-least-once replay produces.
// One file because it is one queue whose order, in-flight window, back-off and TTL timer share its
// state; the log format and the options are apart (outbox/ holds them).
import { SwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';
import { backoffDelay, type Clock, type TimerHandle } from '@switchyard/time';
import { clearDeadline, DeadlineNode, startDeadline } from '../core/deadlines.ts';
import { abortedError } from '../core/operation.ts';
import { translateError } from '../errors.ts';
import type { DeviceMessage, OutgoingMessage } from '../message.ts';
import { outboxSettings, type OutboxOptions, type OutboxSettings } from './options.ts';
import type { AddRecord } from './log-format.ts';
import { messageIdSource } from './message-ids.ts';
import { RecordLog } from './record-log.ts';
import { messageBytes, withMessageId } from './stored-message.ts';

/**
 * Messages on the wire at once, over every protocol (so also the most a crash can copy); more
 * than any caller's window, so it never limits one.
 */
export const OUTBOX_WINDOW = 64;

/**
 * Attempts (requests) on the wire at once over `protocol`. Over HTTPS each attempt is a request of
 * its own, on any socket of the agent's pool, and the hub takes concurrent requests in the order
 * they finish arriving, not the order they were sent: one at a time is what keeps the queue's
 * order at the hub. That one request is a batch of up to OUTBOX_WINDOW messages when the link
 * batches.
 */
export function outboxWindow(protocol: Protocol): number {
  return protocol === 'https' ? 1 : OUTBOX_WINDOW;
}
const RETRY = { baseMs: 500, maxMs: 30_000, maxRetries: Infinity, jitter: 0.5 };
/** Errors that say this message can never be sent: it is dropped rather than blocking the queue. */
const UNSENDABLE = new Set(['MESSAGE_TOO_LARGE', 'CONFIG_INVALID', 'FEATURE_UNSUPPORTED']);

export type OutboxDropReason = 'full' | 'expired' | 'unsendable';

export interface OutboxDroppedEvent {
  reason: OutboxDropReason;
  messageIds: string[];
  /** For 'unsendable': what the hub or the link said. */
  error?: SwitchyardError;
}

/** What `client.outbox` shows. */
export interface OutboxView {
  /** Messages queued and not yet acknowledged by the hub. */
  readonly depth: number;
  /** Their body and property bytes. */
  readonly bytes: number;
  /** Age of the oldest of them on the client's clock, ms; 0 when empty. */
  readonly oldestAgeMs: number;
  /** Resolves when every message queued so far was acknowledged (or dropped). */
  drain(): Promise<void>;
}

export type Until = 'queued' | 'acknowledged';

export interface OutboxSendOptions {
  signal?: AbortSignal | undefined;
  timeoutMs: number;
  until: Until;
}

/** What the outbox needs from the client that owns it. */
export interface OutboxHost {
  readonly protocol: Protocol;
  readonly clock: Clock;
  readonly identity: string | undefined;
  /**
   * One attempt at one message; `done` once, without an error when the hub acknowledged it.
   * `attempt` is where the host notes when it handed the message to the link (`handedOver`,
   * `epoch`); it is the entry itself, so an attempt costs the outbox only the `done` closure.
   */
  attempt(message: DeviceMessage, done: (err?: unknown) => void, attempt: OutboxAttempt): void;
  /**
   * The deadline of one attempt, from its start (the client's operation timeout). Without it an
   * attempt waits for `done` however long it takes.
   */
  readonly attemptTimeoutMs?: number | undefined;
  /** An attempt handed to the link of `epoch` ran past attemptTimeoutMs (the host may recycle that connection). */
  attemptTimedOut?(epoch: number): void;
  /**
   * Set when the link carries several messages in one request (HTTPS): waiting messages then go
   * as batches of at most `maxBytes` (each message counting `bytesOf`), as one attempt.
   */
  readonly batch?: OutboxBatching | undefined;
  dropped(event: OutboxDroppedEvent): void;
}

export interface OutboxBatching {
  readonly maxBytes: number;
  bytesOf(message: DeviceMessage): number;
  /** One attempt at `messages` in one request; `done` once: one acknowledgement acknowledges them all. */
  attempt(messages: DeviceMessage[], done: (err?: unknown) => void): void;
}

/** What a host notes on an attempt (OutboxHost.attempt). */
export interface OutboxAttempt {
  /** Still on its way: false once it settled or its deadline passed. */
  readonly inFlight: boolean;
  /** Counts the attempts at this message; a held start that finds a later count is stale. */
  readonly attempts: number;
  /** Set by the host when it gave the message to the link: from then on the hub may have it. */
  handedOver: boolean;
  /** The link's epoch at that moment, so a timeout recycles only that connection. */
  epoch: number;
}

/**
 * A queued message; it is also its own add record for the log (seq, enqueuedAt, message), and
 * the deadline node of its attempt: a per-attempt operation object was a third of what a queued
 * message kept alive (bench/README.md, "Outbox").
 */
class Entry extends DeadlineNode implements AddRecord, OutboxAttempt {
  inFlight = false;
  attempts = 0;
  handedOver = false;
  epoch = 0;
  done = false;
  /** Sent on its own from now on: a batch it was in was refused as a whole (one of them is unsendable). */
  solo = false;
  /** Its bytes in a batch request (OutboxBatching.bytesOf); -1 until asked. */
  batchBytes = -1;
  /** Its size in the log file (RecordLog keeps it). */
  logBytes = 0;
  waiter: Waiter | undefined = undefined;
  constructor(
    readonly outbox: Outbox,
    public seq: number,
    readonly message: DeviceMessage & { messageId: string },
    readonly bytes: number,
    readonly enqueuedAt: number,
  ) {
    super();
  }

  expire(): void {
    this.outbox.attemptExpired(this);
  }
}

/** Several entries sent in one request: its outcome is each entry's. */
class Batch {
  constructor(
    readonly outbox: Outbox,
    readonly entries: Entry[],
  ) {}
  readonly settle = (err?: unknown): void => this.outbox.batchSettled(this, err);
}

/** One sendEvent or sendEventBatch call waiting for its messages, under its deadline. */
class Waiter extends DeadlineNode {
  #done = false;
  sent = false;
  constructor(
    readonly host: OutboxHost,
    readonly what: string,
    public remaining: number,
    readonly firstId: string,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly resolve: () => void,
    readonly reject: (error: unknown) => void,
  ) {
    super();
    startDeadline(this, timeoutMs, host.clock);
    signal?.addEventListener('abort', this, { once: true });
  }

  expire(): void {
    if (!this.#finish()) return;
    const details: Record<string, unknown> = { protocol: this.host.protocol, operation: this.what, timeoutMs: this.timeoutMs, delivered: this.sent ? 'unknown' : 'no', messageId: this.firstId, queued: true };
    if (this.host.identity !== undefined) details.deviceId = this.host.identity;
    this.reject(
      new SwitchyardError('TIMEOUT', `${this.host.protocol} ${this.what} was not acknowledged within ${this.timeoutMs} ms; it stays in the outbox and is still sent (de-duplicate on messageId ${this.firstId})`, { details }),
    );
  }

  handleEvent(): void {
    if (this.#finish()) this.reject(abortedError(this.signal!, this.what));
  }

  entryDone(): void {
    if (--this.remaining === 0 && this.#finish()) this.resolve();
  }

  failed(error: unknown): void {
    if (this.#finish()) this.reject(error);
  }

  #finish(): boolean {
    if (this.#done) return false;
    this.#done = true;
    clearDeadline(this);
    this.signal?.removeEventListener('abort', this);
    return true;
  }
}

export class Outbox implements OutboxView {
  #host!: OutboxHost;
  readonly #settings: OutboxSettings;
  readonly #log: RecordLog | undefined;
  /** Oldest first; entries before #head are done. */
  #entries: Entry[] = [];
  #head = 0;
  /** Where the pump looks for the next entry to send. */
  #cursor = 0;
  #inFlight = 0;
  /**
   * Acknowledged, with the ack not yet in the log. They keep their place in the window: a crash
   * sends them again after the restart, so the copies a crash can make stay within the window.
   */
  #unrecorded = 0;
  #depth = 0;
  #bytes = 0;
  #seq = 0;
  #online = false;
  /**
   * Set while the link is down and the outbox tries it after a back-off: one attempt at a time
   * then. Each attempt dials the hub (the transport connects on demand), so a full window of them
   * into a refused connection was a dial per message.
   */
  #probing = false;
  /** #pump() is running: a settlement inside an attempt must not start a second loop. */
  #pumping = false;
  #closed = false;
  #retries = 0;
  #retryTimer: TimerHandle | undefined;
  #ttlTimer: TimerHandle | undefined;
  #ttlAt = 0;
  #acks: Entry[] = [];
  #spareAcks: Entry[] = [];
  /** Acks handed to the log and not yet written. */
  #handedAcks = 0;
  #pumpQueued = false;
  #holdPump = false;
  #drains: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  readonly #newId = messageIdSource();
  readonly #flushAcksLater = (): void => this.#flushAcks();

  private constructor(settings: OutboxSettings, log: RecordLog | undefined) {
    this.#settings = settings;
    this.#log = log;
    if (log !== undefined) log.liveRecords = () => this.#liveRecords();
  }

  /** An outbox with what its directory still holds from an earlier run, queued first. */
  static async open(options: OutboxOptions): Promise<Outbox> {
    const settings = outboxSettings(options);
    if (settings.dir === undefined) return new Outbox(settings, undefined);
    const { log, entries } = await RecordLog.open(settings.dir);
    const outbox = new Outbox(settings, log);
    for (const recovered of entries) {
      const entry = new Entry(outbox, recovered.seq, recovered.message, messageBytes(recovered.message), recovered.enqueuedAt);
      entry.logBytes = recovered.size;
      outbox.#push(entry);
      outbox.#seq = recovered.seq;
    }
    return outbox;
  }

  /** Gives the outbox the client it sends through; once, before anything is sent. */
  bind(host: OutboxHost): this {
    this.#host = host;
    this.#armTtl();
    return this;
  }

  get depth(): number {
    return this.#depth;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get oldestAgeMs(): number {
    const oldest = this.#oldest();
    return oldest === undefined ? 0 : Math.max(0, this.#host.clock.now() - oldest.enqueuedAt);
  }

  /** For tests and the bench: the log's size and how often it was rewritten. */
  get file(): { bytes: number; liveBytes: number; compactions: number; writes: number } | undefined {
    const log = this.#log;
    return log === undefined ? undefined : { bytes: log.fileBytes, liveBytes: log.liveBytes, compactions: log.compactions, writes: log.writes };
  }

  drain(): Promise<void> {
    if (this.#depth === 0) return Promise.resolve();
    if (this.#closed) return Promise.reject(this.#closedError('drain'));
    return new Promise((resolve, reject) => this.#drains.push({ resolve, reject }));
  }

  /** Records `messages` and sends them; resolves as `until` says. */
  send(what: string, messages: readonly OutgoingMessage[], options: OutboxSendOptions): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError(what));
    if (options.signal?.aborted === true) return Promise.reject(abortedError(options.signal, what));
    const now = this.#host.clock.now();
    // Sized at once: grown from empty by push, it cost a reallocation per sendEvent.
    const entries = new Array<Entry>(messages.length);
    let total = 0;
    try {
      for (let i = 0; i < messages.length; i++) {
        const message = withMessageId(messages[i]!, this.#newId);
        const bytes = messageBytes(message);
        total += bytes;
        entries[i] = new Entry(this, 0, message, bytes, now);
      }
      this.#makeRoom(what, entries.length, total, entries[0]!.message.messageId);
    } catch (err) {
      return Promise.reject(err);
    }
    for (const entry of entries) {
      entry.seq = ++this.#seq;
      this.#push(entry);
    }
    let result: Promise<void>;
    if (options.until === 'queued') {
      // Written before the first attempt, and waits for the sync. A log that fails to write
      // rejects the caller; the messages are still sent from memory.
      result = this.#log?.add(entries, true) ?? Promise.resolve();
    } else {
      // Written before the first attempt too (this turn), without a promise per message: a log
      // that fails shows in every later `until: 'queued'` and in close().
      this.#log?.append(entries);
      result = new Promise<void>((resolve, reject) => {
        const waiter = new Waiter(this.#host, what, entries.length, entries[0]!.message.messageId, options.timeoutMs, options.signal, resolve, reject);
        for (const entry of entries) entry.waiter = waiter;
      });
    }
    this.#armTtl();
    // A batching link gets the sends of one turn together (sendEvent in a loop), not one by one.
    if (this.#host.batch === undefined) this.#pump();
    else if (!this.#pumpQueued) {
      this.#pumpQueued = true;
      queueMicrotask(() => {
        this.#pumpQueued = false;
        this.#pump();
      });
    }
    return result;
  }

  /** The connection is (back) up: send everything unacknowledged, oldest first. */
  resume(): void {
    if (this.#closed) return;
    this.#host.clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#retries = 0;
    this.#online = true;
    // A probe still on its way goes first: the transport sends it once the reconnect under it
    // completes, which can be after the sends made from here, so they wait for its answer.
    this.#probing = this.#probing && this.#inFlight > 0;
    this.#cursor = this.#head;
    this.#pump();
  }

  /** The connection is being re-opened: hold new attempts until resume(). */
  pause(): void {
    this.#online = false;
  }

  /**
   * Nothing re-opens the connection by itself: an attempt after a back-off asks the link to, one
   * at a time until resume().
   */
  retryLater(): void {
    this.#online = false;
    this.#probing = true;
    this.#scheduleRetry();
  }

  /**
   * Called when an attempt at `entry` ended; `attempt` is its count (OutboxAttempt.attempts), so
   * that a late answer to an earlier attempt cannot settle the one on the wire now.
   */
  settled(entry: Entry, err: unknown, attempt = entry.attempts): void {
    // An answer to an attempt whose deadline already passed (or a second answer) changes nothing:
    // taken for the attempt on the wire now, it hid that the connection carrying it was broken.
    if (!entry.inFlight || attempt !== entry.attempts) return;
    entry.inFlight = false;
    clearDeadline(entry);
    this.#inFlight--;
    if (entry.done || this.#closed) return;
    if (!err) {
      this.#retries = 0;
      if (this.#online) this.#probing = false;
      this.#finish(entry);
      this.#queueAck(entry);
      entry.waiter?.entryDone();
      this.#pump();
      return;
    }
    const error = translateError(err, this.#host.identity === undefined ? { protocol: this.#host.protocol, operation: 'sendEvent' } : { protocol: this.#host.protocol, operation: 'sendEvent', identity: this.#host.identity });
    if (UNSENDABLE.has(error.code)) {
      this.#drop([entry], 'unsendable', () => error, error);
      this.#pump();
      return;
    }
    if (this.#expired(entry, this.#host.clock.now())) {
      this.#dropExpired([entry]);
      return;
    }
    // Later entries may still be acknowledged; this one and any that fail go again, in order, once
    // the link is back.
    if (this.#online) {
      this.#online = false;
      this.#scheduleRetry();
    }
    this.#cursor = Math.min(this.#cursor, this.#head);
    this.#armTtl();
  }

  /** Called by an entry when its attempt's deadline passed first: it fails, and goes again. */
  attemptExpired(entry: Entry): void {
    const host = this.#host;
    const timeoutMs = host.attemptTimeoutMs;
    const details: Record<string, unknown> = { protocol: host.protocol, operation: 'sendEvent', timeoutMs, delivered: entry.handedOver ? 'unknown' : 'no', messageId: entry.message.messageId };
    if (host.identity !== undefined) details.deviceId = host.identity;
    const handedOver = entry.handedOver;
    this.settled(entry, new SwitchyardError('TIMEOUT', `${host.protocol} sendEvent attempt was not acknowledged within ${timeoutMs} ms; it is sent again`, { details }));
    if (handedOver) host.attemptTimedOut?.(entry.epoch);
  }

  /** Called by a batch when its attempt ended. */
  batchSettled(batch: Batch, err: unknown): void {
    if (err && !this.#closed) {
      const error = translateError(err, this.#host.identity === undefined ? { protocol: this.#host.protocol, operation: 'sendEventBatch' } : { protocol: this.#host.protocol, operation: 'sendEventBatch', identity: this.#host.identity });
      if (UNSENDABLE.has(error.code)) {
        // Refused as a whole: which one the hub cannot take is found by sending them one by one.
        for (const entry of batch.entries) {
          entry.inFlight = false;
          entry.solo = true;
          this.#inFlight--;
        }
        this.#cursor = Math.min(this.#cursor, this.#head);
        this.#pump();
        return;
      }
    }
    // One pump after all of them, or the first acknowledged would refill the window one by one.
    this.#holdPump = true;
    try {
      for (const entry of batch.entries) this.settled(entry, err);
    } finally {
      this.#holdPump = false;
    }
    this.#pump();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#online = false;
    // connect() closes an outbox it opened but never bound when no protocol connects: no timers then.
    if ((this.#host as OutboxHost | undefined) !== undefined) {
      this.#host.clock.clearTimeout(this.#retryTimer);
      this.#host.clock.clearTimeout(this.#ttlTimer);
    }
    this.#flushAcks();
    for (let i = this.#head; i < this.#entries.length; i++) {
      const entry = this.#entries[i]!;
      // An attempt's deadline must not hold the process open after close().
      clearDeadline(entry);
      entry.waiter?.failed(this.#closedError('sendEvent'));
    }
    for (const drain of this.#drains.splice(0)) drain.reject(this.#closedError('drain'));
    await this.#log?.close();
  }

  // ---- internals ---------------------------------------------------------------------------

  #closedError(what: string): SwitchyardError {
    const kept = this.#log === undefined ? 'it was in memory only and is lost' : 'it stays in the outbox directory and is sent after the next start';
    return new SwitchyardError('NOT_CONNECTED', `${what}: the client was closed before the hub acknowledged the message; ${kept}`, {
      details: { protocol: this.#host.protocol, operation: what, delivered: 'unknown', queued: this.#log !== undefined },
    });
  }

  #push(entry: Entry): void {
    this.#entries.push(entry);
    this.#depth++;
    this.#bytes += entry.bytes;
  }

  #oldest(): Entry | undefined {
    for (let i = this.#head; i < this.#entries.length; i++) if (!this.#entries[i]!.done) return this.#entries[i];
    return undefined;
  }

  #finish(entry: Entry): void {
    entry.done = true;
    this.#depth--;
    this.#bytes -= entry.bytes;
    const entries = this.#entries;
    // A done entry leaves its slot at once: kept until the next compaction, it kept its message,
    // waiter and promise alive through scavenges that the plain client's send never sees.
    while (this.#head < entries.length && entries[this.#head]!.done) (entries as Array<Entry | undefined>)[this.#head++] = undefined;
    if (this.#cursor < this.#head) this.#cursor = this.#head;
    // Drop the done prefix often (amortized, at most one element copied per entry finished), and
    // at once when nothing is left in it: done entries kept in the array keep their message, waiter
    // and promise alive. The young generation's scavenges copy whatever is alive, so a long done
    // prefix made every scavenge of a busy outbox copy about a thousand messages the plain client had
    // let go (bench/README.md); at a low rate (a gateway identity's 0.5 msg/s) it held every message
    // sent for half an hour.
    if (this.#head === entries.length) {
      this.#entries = [];
      this.#cursor = 0;
      this.#head = 0;
    } else if (this.#head >= 32 && this.#head * 2 > entries.length) {
      this.#entries = entries.slice(this.#head);
      this.#cursor = Math.max(0, this.#cursor - this.#head);
      this.#head = 0;
    }
    if (this.#depth === 0) for (const drain of this.#drains.splice(0)) drain.resolve();
  }

  // Acks of one turn go to the log as one record.
  #queueAck(entry: Entry): void {
    if (this.#log === undefined) return;
    if (this.#acks.length === 0) queueMicrotask(this.#flushAcksLater);
    this.#acks.push(entry);
    this.#unrecorded++;
  }

  #flushAcks(): void {
    if (this.#acks.length === 0) return;
    // Two arrays taking turns: the log encodes the acks at once, and an ack queued while it runs
    // (its callback can pump, and an attempt can settle at once) goes to the other one.
    const acks = this.#acks;
    this.#acks = this.#spareAcks;
    this.#spareAcks = acks;
    this.#handedAcks += acks.length;
    this.#log?.remove(acks, this.#acksWritten);
    acks.length = 0;
  }

  // Every ack handed over so far was in the write that ends with this call (a second call for
  // the same write finds none left); one callback for all turns instead of a closure per turn.
  readonly #acksWritten = (): void => {
    this.#unrecorded -= this.#handedAcks;
    this.#handedAcks = 0;
    this.#pump();
  };

  #pump(): void {
    // Re-entered from an attempt that settles synchronously: the loop below already carries on.
    if (!this.#online || this.#closed || this.#holdPump || this.#pumping) return;
    this.#pumping = true;
    try {
      this.#pumpLoop();
    } finally {
      this.#pumping = false;
    }
  }

  #pumpLoop(): void {
    // The clock is read only to judge expiry: without a ttlMs the pump (twice per message) needs no time.
    const now = this.#settings.ttlMs === undefined ? 0 : this.#host.clock.now();
    const batching = this.#host.batch;
    let expired: Entry[] | undefined;
    const window = this.#probing ? 1 : outboxWindow(this.#host.protocol);
    // Bounded: each pass moves the cursor on, and a failure that moves it back also takes the
    // outbox offline, which ends the loop (a link that fails every attempt at once cannot spin it).
    // The entries array is read afresh each pass: an acknowledgement can compact it.
    while (this.#online && !this.#closed && this.#inFlight + this.#unrecorded < window && this.#cursor < this.#entries.length) {
      const entry = this.#entries[this.#cursor++]!;
      if (entry.done || entry.inFlight) continue;
      if (this.#expired(entry, now)) {
        (expired ??= []).push(entry);
        continue;
      }
      if (batching !== undefined && !entry.solo) {
        const batch = this.#gather(entry, batching, now);
        if (batch.length > 1) {
          for (const e of batch) this.#launch(e);
          batching.attempt(
            batch.map((e) => e.message),
            new Batch(this, batch).settle,
          );
          continue;
        }
      }
      this.#launch(entry);
      entry.attempts++;
      entry.handedOver = false;
      const timeoutMs = this.#host.attemptTimeoutMs;
      if (timeoutMs !== undefined) startDeadline(entry, timeoutMs, this.#host.clock);
      const attempt = entry.attempts;
      // One closure per attempt, so its answer is known to be this attempt's.
      this.#host.attempt(entry.message, (err) => this.settled(entry, err, attempt), entry);
    }
    if (expired !== undefined) this.#dropExpired(expired);
  }

  #launch(entry: Entry): void {
    entry.inFlight = true;
    this.#inFlight++;
    if (entry.waiter !== undefined) entry.waiter.sent = true;
  }

  /**
   * `first` and the waiting entries right after it that fit in one request with it, in order; the
   * cursor moves past those taken. A gap (an entry on the wire, done or expired) ends the batch,
   * so a batch is always a run of the queue.
   */
  #gather(first: Entry, batching: OutboxBatching, now: number): Entry[] {
    const batch = [first];
    let bytes = this.#batchBytes(first, batching);
    const entries = this.#entries;
    while (this.#inFlight + batch.length < OUTBOX_WINDOW && this.#cursor < entries.length) {
      const next = entries[this.#cursor]!;
      if (next.done || next.inFlight || next.solo || this.#expired(next, now)) break;
      const size = this.#batchBytes(next, batching);
      if (bytes + size > batching.maxBytes) break;
      bytes += size;
      batch.push(next);
      this.#cursor++;
    }
    return batch;
  }

  #batchBytes(entry: Entry, batching: OutboxBatching): number {
    if (entry.batchBytes < 0) entry.batchBytes = batching.bytesOf(entry.message);
    return entry.batchBytes;
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    const wait = backoffDelay(RETRY, this.#retries++) ?? RETRY.maxMs;
    this.#retryTimer = this.#host.clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#online = true;
      this.#cursor = this.#head;
      this.#pump();
    }, wait);
  }

  #makeRoom(what: string, count: number, bytes: number, messageId: string): void {
    const { maxMessages, maxBytes } = this.#settings;
    if (this.#depth + count <= maxMessages && this.#bytes + bytes <= maxBytes) return;
    this.#makeRoomFull(what, count, bytes, messageId);
  }

  // Apart from #makeRoom: its closures would otherwise cost every send a context, full or not.
  #makeRoomFull(what: string, count: number, bytes: number, messageId: string): void {
    const { maxMessages, maxBytes, whenFull } = this.#settings;
    const full = (why: string): SwitchyardError =>
      new SwitchyardError('QUOTA_EXCEEDED', `${what}: the outbox is full (${this.#depth} of ${maxMessages} messages, ${this.#bytes} of ${maxBytes} bytes); ${why}`, {
        retryable: true,
        details: { quota: 'outbox', operation: what, depth: this.#depth, bytes: this.#bytes, maxMessages, maxBytes, whenFull, messageId, delivered: 'no' },
      });
    if (count > maxMessages || bytes > maxBytes) throw full('these messages alone are more than it holds');
    if (whenFull === 'reject-new') throw full('the message was not queued; retry once drain() or depth shows room (whenFull: reject-new)');
    // drop-oldest: entries on the wire may be acknowledged any moment, so only waiting ones go.
    const victims: Entry[] = [];
    let depth = this.#depth;
    let held = this.#bytes;
    for (let i = this.#head; i < this.#entries.length && !(depth + count <= maxMessages && held + bytes <= maxBytes); i++) {
      const entry = this.#entries[i]!;
      if (entry.done || entry.inFlight) continue;
      victims.push(entry);
      depth--;
      held -= entry.bytes;
    }
    if (!(depth + count <= maxMessages && held + bytes <= maxBytes)) throw full('every older message is being sent, so none could be dropped');
    this.#drop(victims, 'full', (entry) =>
      new SwitchyardError('QUOTA_EXCEEDED', `sendEvent: message ${entry.message.messageId} was dropped from the full outbox to make room for newer ones (whenFull: drop-oldest)`, {
        details: { quota: 'outbox', reason: 'dropped', messageId: entry.message.messageId, delivered: 'no' },
      }),
    );
  }

  #drop(entries: readonly Entry[], reason: OutboxDropReason, errorFor: (entry: Entry) => SwitchyardError, cause?: SwitchyardError): void {
    if (entries.length === 0) return;
    for (const entry of entries) {
      this.#finish(entry);
      entry.waiter?.failed(errorFor(entry));
    }
    this.#log?.remove(entries);
    this.#host.dropped(cause === undefined ? { reason, messageIds: entries.map((e) => e.message.messageId) } : { reason, messageIds: entries.map((e) => e.message.messageId), error: cause });
  }

  #expired(entry: Entry, now: number): boolean {
    return this.#settings.ttlMs !== undefined && now - entry.enqueuedAt >= this.#settings.ttlMs;
  }

  #dropExpired(entries: readonly Entry[]): void {
    const ttlMs = this.#settings.ttlMs;
    this.#drop(entries, 'expired', (entry) =>
      new SwitchyardError('TIMEOUT', `sendEvent: message ${entry.message.messageId} was not acknowledged within the outbox ttlMs (${ttlMs} ms) and was dropped`, {
        details: { reason: 'expired', messageId: entry.message.messageId, ttlMs, delivered: 'unknown' },
      }),
    );
  }

  // One timer, for the oldest entry's expiry: entries expire in the order they were queued.
  #armTtl(): void {
    const ttlMs = this.#settings.ttlMs;
    if (ttlMs === undefined || this.#closed) return;
    // One on the wire is judged when its attempt ends (settled), not by the timer.
    let oldest: Entry | undefined;
    for (let i = this.#head; i < this.#entries.length && oldest === undefined; i++) {
      const entry = this.#entries[i]!;
      if (!entry.done && !entry.inFlight) oldest = entry;
    }
    if (oldest === undefined) return;
    const at = oldest.enqueuedAt + ttlMs;
    if (this.#ttlTimer !== undefined && this.#ttlAt <= at) return;
    this.#host.clock.clearTimeout(this.#ttlTimer);
    this.#ttlAt = at;
    this.#ttlTimer = this.#host.clock.setTimeout(() => this.#sweep(), Math.max(0, at - this.#host.clock.now()));
    // Expiry alone must not keep a process alive; pending sends have their own deadlines.
    this.#ttlTimer.unref();
  }

  #sweep(): void {
    this.#ttlTimer = undefined;
    const now = this.#host.clock.now();
    const expired: Entry[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) {
      const entry = this.#entries[i]!;
      if (!this.#expired(entry, now)) break;
      // One on the wire is judged when its attempt ends: the hub may be acknowledging it now.
      if (!entry.done && !entry.inFlight) expired.push(entry);
    }
    this.#dropExpired(expired);
    this.#armTtl();
  }

  #liveRecords(): AddRecord[] {
    const out: AddRecord[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) {
      const entry = this.#entries[i]!;
      if (!entry.done) out.push(entry);
    }
    return out;
  }
}
