// One partition's retained events: contiguous sequence numbers from 0, byte offsets, and a
// retention bound (events and bytes) that drops the oldest first, so memory stays bounded however
// long the hub runs. Pure: no I/O, no timers; the caller supplies enqueue times.
import type { EventInput, StoredEvent } from './event.ts';
import { eventSize } from './event.ts';

export interface Retention {
  /** Most events a partition keeps. */
  maxEvents: number;
  /** Most bytes (body and properties) a partition keeps; the newest event is always kept. */
  maxBytes: number;
}

/** Where a reader starts, as the receiver's selector filter says. */
export type StartPosition =
  | { kind: 'earliest' }
  | { kind: 'latest' }
  | { kind: 'offset'; offset: number; inclusive: boolean }
  | { kind: 'sequence'; sequenceNumber: number; inclusive: boolean }
  | { kind: 'enqueued'; time: number; inclusive: boolean };

export interface PartitionInfo {
  /** The oldest retained sequence number; the next one to be assigned when nothing is retained. */
  beginSequenceNumber: number;
  /** -1 before the first event. */
  lastSequenceNumber: number;
  /** '-1' before the first event. */
  lastOffset: string;
  /** Epoch ms; 0 before the first event. */
  lastEnqueuedAt: number;
  isEmpty: boolean;
}

// Dropping from the front in chunks keeps eviction O(1) amortized instead of a shift per event.
const COMPACT_HEAD_AT = 1024;

export class PartitionLog {
  #events: StoredEvent[] = [];
  #head = 0;
  #bytes = 0;
  #nextSequence = 0;
  #nextOffset = 0;
  #last: StoredEvent | undefined;

  constructor(readonly retention: Retention) {
    if (!(retention.maxEvents >= 1) || !(retention.maxBytes >= 1)) throw new RangeError('retention must keep at least one event and one byte');
  }

  get size(): number {
    return this.#events.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get nextSequenceNumber(): number {
    return this.#nextSequence;
  }

  /** The oldest retained sequence number, or the next to be assigned when the log is empty. */
  get firstSequenceNumber(): number {
    return this.#events[this.#head]?.sequenceNumber ?? this.#nextSequence;
  }

  /** Appends an event, stamping sequence number, offset and enqueue time; returns what was stored. */
  append(input: EventInput, now: number): StoredEvent {
    // Enqueue times never go backwards within a partition, so time positions stay a binary search.
    const enqueuedAt = Math.max(now, this.#last?.enqueuedAt ?? 0);
    const size = eventSize(input);
    // Spelled out rather than spread: this runs once per telemetry message, and a literal of
    // known shape is several times cheaper.
    const event: StoredEvent = {
      deviceId: input.deviceId,
      authType: input.authType,
      generationId: input.generationId,
      body: input.body,
      properties: input.properties,
      systemProperties: input.systemProperties,
      sequenceNumber: this.#nextSequence,
      offset: this.#nextOffset,
      enqueuedAt,
      size,
    };
    if (input.moduleId !== undefined) event.moduleId = input.moduleId;
    this.restore(event);
    return event;
  }

  /** Puts back an event read from disk; its numbers continue the log. Older or duplicate ones are ignored. */
  restore(event: StoredEvent): boolean {
    if (event.sequenceNumber < this.#nextSequence) return false;
    this.#events.push(event);
    this.#bytes += event.size;
    this.#nextSequence = event.sequenceNumber + 1;
    this.#nextOffset = event.offset + Math.max(1, event.size);
    this.#last = event;
    this.#evict();
    return true;
  }

  #evict(): void {
    while (this.size > 1 && (this.size > this.retention.maxEvents || this.#bytes > this.retention.maxBytes)) {
      const dropped = this.#events[this.#head++]!;
      this.#bytes -= dropped.size;
    }
    if (this.#head >= COMPACT_HEAD_AT) {
      this.#events = this.#events.slice(this.#head);
      this.#head = 0;
    }
  }

  /** The retained event with this sequence number, if any. */
  get(sequenceNumber: number): StoredEvent | undefined {
    const index = this.#head + (sequenceNumber - this.firstSequenceNumber);
    if (index < this.#head || index >= this.#events.length) return undefined;
    return this.#events[index];
  }

  /** Retained events, oldest first. */
  retained(): StoredEvent[] {
    return this.#events.slice(this.#head);
  }

  /**
   * The sequence number a reader starting at `position` reads first. A position older than what
   * is retained starts at the oldest retained event, as Event Hubs does after retention expired.
   */
  startSequence(position: StartPosition): number {
    const first = this.firstSequenceNumber;
    switch (position.kind) {
      case 'earliest':
        return first;
      case 'latest':
        return this.#nextSequence;
      case 'sequence':
        return Math.max(first, position.inclusive ? position.sequenceNumber : position.sequenceNumber + 1);
      case 'offset':
        return this.#firstWhere((e) => (position.inclusive ? e.offset >= position.offset : e.offset > position.offset));
      case 'enqueued':
        return this.#firstWhere((e) => (position.inclusive ? e.enqueuedAt >= position.time : e.enqueuedAt > position.time));
    }
  }

  /** Binary search over the retained events for the first satisfying a monotone predicate. */
  #firstWhere(matches: (event: StoredEvent) => boolean): number {
    let lo = this.#head;
    let hi = this.#events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (matches(this.#events[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    return this.#events[lo]?.sequenceNumber ?? this.#nextSequence;
  }

  info(): PartitionInfo {
    const last = this.#last;
    return {
      beginSequenceNumber: this.firstSequenceNumber,
      lastSequenceNumber: last?.sequenceNumber ?? -1,
      lastOffset: last === undefined ? '-1' : String(last.offset),
      lastEnqueuedAt: last?.enqueuedAt ?? 0,
      isEmpty: this.size === 0,
    };
  }
}
