// Cloud-to-device queues, one per device, with IoT Hub's rules: 50 messages deep, a lock per
// delivery (IoT Hub's 60 s unless the hub was started with another, see c2d-options.ts), TTL and delivery-count dead-lettering, all judged on the injected clock. Messages
// persist in the store; the pump pushes them to whichever sessions can take them.
import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '@switchyard/time';
import type { CounterTable } from './counters.ts';
import type { C2DOutcome, C2DSettledEvent } from './events.ts';
import { HubError } from './errors.ts';
import { LIMITS } from './iothub-limits.ts';
import type { DeviceRegistry } from './registry.ts';
import type { SessionTable } from './sessions.ts';
import type { HubTimers } from './timers.ts';
import type { HubStore } from '../store/index.ts';
import type { C2DMessage, C2DSendInput, DeviceProtocol, HubLogger, LockedC2DMessage, Settlement } from './types.ts';

interface QueueEntry {
  id: string;
  message: C2DMessage;
  lockToken?: string;
  lockedUntil?: number;
  lockTimer?: TimerHandle;
}

export interface C2DQueuesOptions {
  registry: DeviceRegistry;
  sessions: SessionTable;
  counters: CounterTable;
  store: HubStore;
  logger: HubLogger;
  clock: Clock;
  timers: HubTimers;
  /** How long a delivery stays locked; IoT Hub's LIMITS.c2dLockMs by default. */
  lockMs?: number;
  isClosed(): boolean;
  logRefusal(event: { deviceId: string; protocol: DeviceProtocol; what: string; why: string }): void;
  /** How each message left its queue, for delivery feedback (the service's `iothub-ack`). */
  settled?(event: C2DSettledEvent): void;
}

const ACKS = ['none', 'positive', 'negative', 'full'];

export class C2DQueues {
  readonly #o: C2DQueuesOptions;
  readonly #queues = new Map<string, QueueEntry[]>();
  readonly #pumping = new Set<string>();
  readonly #pumpAgain = new Set<string>();
  readonly #lockMs: number;

  constructor(options: C2DQueuesOptions) {
    this.#o = options;
    this.#lockMs = options.lockMs ?? LIMITS.c2dLockMs;
    for (const { id, message } of options.store.loadC2D()) this.#queue(message.deviceId).push({ id, message });
  }

  send(deviceId: string, input: C2DSendInput): C2DMessage {
    this.#o.registry.require(deviceId);
    if (!Buffer.isBuffer(input.body)) throw new HubError('ArgumentInvalid', 'body must be a Buffer.');
    const properties = { ...(input.properties ?? {}) };
    for (const [k, v] of Object.entries(properties)) {
      if (typeof v !== 'string') throw new HubError('ArgumentInvalid', `properties.${k} must be a string.`);
    }
    let size = input.body.length;
    for (const [k, v] of Object.entries(properties)) size += Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > LIMITS.c2dBytes) throw new HubError('MessageTooLarge', `A C2D message of ${size} bytes exceeds IoT Hub's limit of ${LIMITS.c2dBytes} bytes.`);
    const ttl = input.ttlSeconds ?? LIMITS.c2dDefaultTtlSeconds;
    // The 1-minute floor is the hub-wide default TTL's; a message's own expiry may be any positive
    // time up to the hub's maximum, as IoT Hub accepts it.
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0 || ttl > LIMITS.c2dMaxTtlSeconds) {
      throw new HubError('ArgumentInvalid', `ttlSeconds must be more than 0 and at most ${LIMITS.c2dMaxTtlSeconds} (2 days).`);
    }
    if (input.ack !== undefined && !ACKS.includes(input.ack)) throw new HubError('ArgumentInvalid', `ack must be one of none, positive, negative, full.`);
    const queue = this.#queue(deviceId);
    this.maintain(deviceId);
    if (queue.length >= LIMITS.c2dQueueDepth) {
      this.#o.logRefusal({ deviceId, protocol: 'https', what: 'c2d send', why: `queue holds ${queue.length} messages` });
      throw new HubError('DeviceMaximumQueueDepthExceeded', `The C2D queue of device '${deviceId}' already holds ${LIMITS.c2dQueueDepth} messages; the device must receive or complete some first.`);
    }
    const now = this.#o.clock.now();
    const message: C2DMessage = {
      deviceId,
      messageId: input.messageId ?? randomUUID(),
      ...(input.correlationId === undefined ? {} : { correlationId: input.correlationId }),
      body: Buffer.from(input.body),
      properties,
      ...(input.ack === undefined ? {} : { ack: input.ack }),
      ...(typeof input.contentType === 'string' ? { contentType: input.contentType } : {}),
      ...(typeof input.contentEncoding === 'string' ? { contentEncoding: input.contentEncoding } : {}),
      to: `/devices/${deviceId}/messages/devicebound`,
      enqueuedAt: now,
      expiresAt: now + ttl * 1000,
      deliveryCount: 0,
    };
    const entry: QueueEntry = { id: randomUUID(), message };
    this.#o.store.insertC2D({ id: entry.id, message });
    queue.push(entry);
    this.#o.counters.of(deviceId).c2dSent++;
    this.pump(deviceId);
    return copyMessage(message);
  }

  poll(deviceId: string): LockedC2DMessage | undefined {
    this.#o.registry.require(deviceId);
    this.#o.counters.of(deviceId).httpsC2DPolls++;
    this.maintain(deviceId);
    const entry = this.#queue(deviceId).find((e) => e.lockToken === undefined);
    return entry && this.#lock(entry);
  }

  settle(deviceId: string, lockToken: string, how: Settlement): void {
    this.#o.registry.require(deviceId);
    this.maintain(deviceId);
    const queue = this.#queue(deviceId);
    const entry = queue.find((e) => e.lockToken !== undefined && e.lockToken === lockToken);
    if (!entry) {
      throw new HubError('DeviceMessageLockLost', `No message of device '${deviceId}' is locked with that lock token: its lock expired (${this.#lockMs / 1000} s) or it was already settled.`);
    }
    const counters = this.#o.counters.of(deviceId);
    if (how === 'complete') {
      this.#remove(deviceId, entry);
      counters.c2dCompleted++;
      this.#settled(deviceId, entry, 'completed');
    } else if (how === 'reject') {
      counters.c2dRejected++;
      this.#deadLetter(deviceId, entry, 'rejected', 'rejected');
    } else if (how === 'abandon') {
      counters.c2dAbandoned++;
      entry.message.deliveryCount++;
      this.#unlock(entry);
      if (entry.message.deliveryCount >= LIMITS.maxDeliveryCount) {
        this.#deadLetter(deviceId, entry, `abandoned ${entry.message.deliveryCount} times`, 'deliveryCountExceeded');
      } else {
        this.#o.store.updateC2DDeliveryCount(entry.id, entry.message.deliveryCount);
        this.pump(deviceId);
      }
    } else {
      throw new HubError('ArgumentInvalid', `Settlement must be complete, abandon or reject.`);
    }
  }

  /** Messages queued for the device (locked ones included), after expiring what is due. */
  depth(deviceId: string): number {
    this.maintain(deviceId);
    return this.#queues.get(deviceId)?.length ?? 0;
  }

  /** Delivers queued messages to every session that has a C2D receiver with capacity. */
  pump(deviceId: string): void {
    if (this.#o.isClosed()) return;
    // A receiver may settle synchronously inside deliver(); rerun instead of recursing.
    if (this.#pumping.has(deviceId)) {
      this.#pumpAgain.add(deviceId);
      return;
    }
    this.#pumping.add(deviceId);
    try {
      do {
        this.#pumpAgain.delete(deviceId);
        this.maintain(deviceId);
        const queue = this.#queues.get(deviceId);
        const sessions = this.#o.sessions.of(deviceId);
        if (!queue || sessions.length === 0) break;
        for (const session of sessions) {
          for (;;) {
            const receiver = session.c2d;
            if (session.closed || !receiver || !receiver.canDeliver()) break;
            const entry = queue.find((e) => e.lockToken === undefined);
            if (!entry) break;
            const locked = this.#lock(entry);
            try {
              receiver.deliver(locked);
            } catch (error) {
              this.#o.logger.warn('c2d receiver threw; the message stays locked until its lock expires', { deviceId, protocol: session.protocol, error: String(error) });
              break;
            }
          }
        }
      } while (this.#pumpAgain.has(deviceId));
    } finally {
      this.#pumping.delete(deviceId);
      this.#pumpAgain.delete(deviceId);
    }
  }

  /** Applies lock expiry (requeue, count unchanged) and TTL expiry (dead-letter) as of now. */
  maintain(deviceId: string): void {
    const queue = this.#queues.get(deviceId);
    if (!queue) return;
    const now = this.#o.clock.now();
    for (const entry of [...queue]) {
      if (entry.lockedUntil !== undefined && entry.lockedUntil <= now) this.#unlock(entry);
      if (entry.lockToken === undefined && entry.message.expiresAt <= now) this.#deadLetter(deviceId, entry, 'expired', 'expired');
    }
  }

  /** Forgets a removed device's queue (the store drops its rows with the device). */
  drop(deviceId: string): void {
    for (const entry of this.#queues.get(deviceId) ?? []) {
      this.#unlock(entry);
      this.#settled(deviceId, entry, 'purged');
    }
    this.#queues.delete(deviceId);
  }

  #lock(entry: QueueEntry): LockedC2DMessage {
    const lockToken = randomUUID();
    const lockedUntil = this.#o.clock.now() + this.#lockMs;
    entry.lockToken = lockToken;
    entry.lockedUntil = lockedUntil;
    const deviceId = entry.message.deviceId;
    // When the lock lapses on the hub's clock the message goes to whichever session can take it.
    // A system timer may fire a millisecond before Date.now() agrees, so the clock decides.
    const expire = (): void => {
      if (entry.lockToken !== lockToken) return;
      const left = lockedUntil - this.#o.clock.now();
      if (left > 0) entry.lockTimer = this.#o.timers.schedule(left, expire);
      else this.pump(deviceId);
    };
    entry.lockTimer = this.#o.timers.schedule(this.#lockMs, expire);
    return { ...copyMessage(entry.message), lockToken, lockedUntil };
  }

  #deadLetter(deviceId: string, entry: QueueEntry, why: string, outcome: C2DOutcome): void {
    this.#remove(deviceId, entry);
    this.#o.counters.of(deviceId).c2dDeadLettered++;
    this.#o.logger.info('c2d message dead-lettered', { deviceId, messageId: entry.message.messageId, why });
    this.#settled(deviceId, entry, outcome);
  }

  #settled(deviceId: string, entry: QueueEntry, outcome: C2DOutcome): void {
    if (!this.#o.settled) return;
    // Called before a removed device's record goes, so the generation is still known.
    const deviceGenerationId = this.#o.registry.peek(deviceId)?.generationId ?? '';
    try {
      this.#o.settled({ deviceId, deviceGenerationId, messageId: entry.message.messageId, ack: entry.message.ack, outcome, at: this.#o.clock.now() });
    } catch (error) {
      this.#o.logger.warn('c2d settlement listener threw', { deviceId, error: String(error) });
    }
  }

  #unlock(entry: QueueEntry): void {
    this.#o.timers.clear(entry.lockTimer);
    delete entry.lockToken;
    delete entry.lockedUntil;
    delete entry.lockTimer;
  }

  #remove(deviceId: string, entry: QueueEntry): void {
    this.#unlock(entry);
    const queue = this.#queues.get(deviceId);
    const index = queue ? queue.indexOf(entry) : -1;
    if (queue && index >= 0) queue.splice(index, 1);
    this.#o.store.deleteC2D(entry.id);
  }

  #queue(deviceId: string): QueueEntry[] {
    let queue = this.#queues.get(deviceId);
    if (!queue) {
      queue = [];
      this.#queues.set(deviceId, queue);
    }
    return queue;
  }
}

function copyMessage(message: C2DMessage): C2DMessage {
  return { ...message, body: Buffer.from(message.body), properties: { ...message.properties } };
}
