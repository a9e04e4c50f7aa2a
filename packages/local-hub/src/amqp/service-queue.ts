// A hub-wide queue of service-bound messages (delivery feedback, file upload notifications), as
// IoT Hub keeps one per endpoint: every service client that attaches a receiver competes for the
// same messages, each is locked while a receiver holds it, and it leaves the queue only when a
// receiver completes it (accepted), expires, or has been handed out too often.
import { randomUUID } from 'node:crypto';
import type { Clock } from '@switchyard/time';
import type { OutgoingAmqpMessage } from './mapping.ts';

export interface ServiceBoundLimits {
  /** How long a message waits for a receiver; IoT Hub's default retention is 1 hour. */
  ttlMs: number;
  /** Messages kept; the oldest is dropped first. */
  maxMessages: number;
  /** Deliveries before a message that keeps being abandoned is dropped (IoT Hub's 10). */
  maxDeliveryCount: number;
}

export const DEFAULT_SERVICE_BOUND_LIMITS: ServiceBoundLimits = { ttlMs: 3_600_000, maxMessages: 1000, maxDeliveryCount: 10 };

export interface ServiceBoundEntry {
  readonly id: string;
  readonly message: OutgoingAmqpMessage;
  readonly enqueuedAt: number;
  deliveryCount: number;
  /** The consumer holding it, while locked. */
  holder: ServiceBoundConsumer | undefined;
}

/** One attached receiver (our sender link). */
export interface ServiceBoundConsumer {
  canDeliver(): boolean;
  deliver(entry: ServiceBoundEntry): void;
}

export class ServiceBoundQueue {
  private readonly entries: ServiceBoundEntry[] = [];
  private readonly consumers = new Set<ServiceBoundConsumer>();
  private readonly limits: ServiceBoundLimits;
  private pumping = false;
  private pumpAgain = false;
  private next = 0;

  constructor(
    readonly name: string,
    private readonly clock: Pick<Clock, 'now'>,
    limits: Partial<ServiceBoundLimits> = {},
  ) {
    this.limits = { ...DEFAULT_SERVICE_BOUND_LIMITS, ...limits };
  }

  get size(): number {
    return this.entries.length;
  }

  enqueue(message: OutgoingAmqpMessage): ServiceBoundEntry {
    const entry: ServiceBoundEntry = { id: randomUUID(), message, enqueuedAt: this.clock.now(), deliveryCount: 0, holder: undefined };
    this.entries.push(entry);
    while (this.entries.length > this.limits.maxMessages) this.entries.shift();
    this.pump();
    return entry;
  }

  attach(consumer: ServiceBoundConsumer): void {
    this.consumers.add(consumer);
    this.pump();
  }

  /** A detached receiver's locks end at once, so another receiver gets its messages. */
  detach(consumer: ServiceBoundConsumer): void {
    this.consumers.delete(consumer);
    for (const entry of this.entries) if (entry.holder === consumer) entry.holder = undefined;
    this.pump();
  }

  complete(entry: ServiceBoundEntry): void {
    this.remove(entry);
  }

  /** Released or modified: back in the queue for the next receiver, unless delivered too often. */
  abandon(entry: ServiceBoundEntry): void {
    entry.holder = undefined;
    if (entry.deliveryCount >= this.limits.maxDeliveryCount) this.remove(entry);
    this.pump();
  }

  /** Rejected: IoT Hub dead-letters it, which for these endpoints means it is gone. */
  reject(entry: ServiceBoundEntry): void {
    this.remove(entry);
  }

  /** Hands unlocked messages to consumers with capacity, round robin, dropping expired ones. */
  pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        const now = this.clock.now();
        for (let i = this.entries.length - 1; i >= 0; i--) {
          const entry = this.entries[i];
          if (entry && entry.holder === undefined && entry.enqueuedAt + this.limits.ttlMs <= now) this.entries.splice(i, 1);
        }
        const consumers = [...this.consumers];
        if (consumers.length === 0) break;
        for (const entry of [...this.entries]) {
          if (entry.holder !== undefined) continue;
          const consumer = this.pickConsumer(consumers);
          if (!consumer) break;
          entry.holder = consumer;
          entry.deliveryCount++;
          consumer.deliver(entry);
        }
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private pickConsumer(consumers: ServiceBoundConsumer[]): ServiceBoundConsumer | undefined {
    for (let i = 0; i < consumers.length; i++) {
      const consumer = consumers[(this.next + i) % consumers.length];
      if (consumer && this.consumers.has(consumer) && consumer.canDeliver()) {
        this.next = (this.next + i + 1) % consumers.length;
        return consumer;
      }
    }
    return undefined;
  }

  private remove(entry: ServiceBoundEntry): void {
    entry.holder = undefined;
    const index = this.entries.indexOf(entry);
    if (index >= 0) this.entries.splice(index, 1);
  }
}
