// The Event Hubs-compatible endpoint's state: partitions (a device always lands on the same one),
// consumer groups, retention, and who to wake when a partition grows. Protocol-free; the AMQP
// route (amqp-route.ts) reads from it and hub.ts feeds it the core's telemetry.
import { SwitchyardError } from '@switchyard/errors';
import type { HubLogger } from '../core/types.ts';
import { EndpointDisk, type EndpointMeta } from './disk.ts';
import type { EventInput, StoredEvent } from './event.ts';
import { PartitionLog, type PartitionInfo, type Retention } from './partition-log.ts';

export const DEFAULT_CONSUMER_GROUP = '$Default';
export const DEFAULT_PARTITION_COUNT = 4;
export const DEFAULT_RETENTION: Retention = { maxEvents: 10_000, maxBytes: 16 * 1024 * 1024 };
/** IoT Hub allows 2 to 128 partitions on the built-in endpoint; 1 is allowed here for tests. */
const MAX_PARTITIONS = 128;
const MAX_CONSUMER_GROUPS = 20;
// Event Hubs' rule for consumer group names.
const CONSUMER_GROUP_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$/;

export interface EndpointOptions {
  /** The event hub's name (EntityPath); IoT Hub uses the hub's name. */
  name: string;
  partitionCount?: number;
  retention?: Partial<Retention>;
  /** Consumer groups to have besides `$Default`. */
  consumerGroups?: string[];
  /** Where events and consumer groups are kept across restarts; in memory without it. */
  dir?: string;
  logger: HubLogger;
  now: () => number;
}

/**
 * The partition a device's telemetry lands on, as IoT Hub hashes the device id: stable across
 * restarts and hubs. FNV-1a over the id's UTF-16 code units; cheap enough for every message.
 */
export function partitionOfDevice(deviceId: string, partitionCount: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    hash ^= deviceId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitionCount;
}

function positiveInteger(value: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new SwitchyardError('CONFIG_INVALID', `${field} must be an integer from 1 to ${max}.`, { details: { field } });
  }
  return value;
}

export function validConsumerGroupName(name: string): boolean {
  return name.toLowerCase() === DEFAULT_CONSUMER_GROUP.toLowerCase() || CONSUMER_GROUP_NAME.test(name);
}

export class EventHubEndpoint {
  readonly name: string;
  readonly partitionIds: string[];
  readonly createdAt: number;
  readonly retention: Retention;
  readonly #partitions: PartitionLog[];
  readonly #listeners: Array<Set<() => void>>;
  readonly #groups = new Map<string, string>();
  readonly #disk: EndpointDisk | undefined;
  readonly #logger: HubLogger;
  readonly #now: () => number;

  constructor(options: EndpointOptions) {
    this.name = options.name;
    this.#logger = options.logger;
    this.#now = options.now;
    const partitionCount = positiveInteger(options.partitionCount ?? DEFAULT_PARTITION_COUNT, 'eventHubs.partitionCount', MAX_PARTITIONS);
    this.retention = {
      maxEvents: positiveInteger(options.retention?.maxEvents ?? DEFAULT_RETENTION.maxEvents, 'eventHubs.retention.maxEvents'),
      maxBytes: positiveInteger(options.retention?.maxBytes ?? DEFAULT_RETENTION.maxBytes, 'eventHubs.retention.maxBytes'),
    };
    for (const group of options.consumerGroups ?? []) this.#checkGroupName(group);
    const wanted: EndpointMeta = { partitionCount, createdAt: this.#now(), consumerGroups: [] };
    let restored: StoredEvent[][] = [];
    let meta = wanted;
    if (options.dir !== undefined) {
      const opened = EndpointDisk.open(options.dir, wanted, options.logger);
      this.#disk = opened.disk;
      meta = opened.meta;
      restored = opened.events;
    }
    this.createdAt = meta.createdAt;
    this.partitionIds = Array.from({ length: partitionCount }, (_, i) => String(i));
    this.#partitions = this.partitionIds.map((_, i) => {
      const log = new PartitionLog(this.retention);
      for (const event of restored[i] ?? []) log.restore(event);
      return log;
    });
    this.#listeners = this.partitionIds.map(() => new Set());
    this.#groups.set(DEFAULT_CONSUMER_GROUP.toLowerCase(), DEFAULT_CONSUMER_GROUP);
    for (const group of meta.consumerGroups) if (validConsumerGroupName(group)) this.#groups.set(group.toLowerCase(), group);
    const before = this.#groups.size;
    for (const group of options.consumerGroups ?? []) this.#groups.set(group.toLowerCase(), group);
    if (this.#groups.size !== before) this.#saveMeta();
  }

  partitionOf(deviceId: string): number {
    return partitionOfDevice(deviceId, this.#partitions.length);
  }

  /**
   * Enqueues one telemetry message on its device's partition and wakes that partition's readers.
   * `enqueuedAt` is when the hub accepted it (the telemetry record's time), so both views agree.
   */
  append(input: EventInput, enqueuedAt = this.#now()): StoredEvent {
    const partition = this.partitionOf(input.deviceId);
    const log = this.#partitions[partition]!;
    const event = log.append(input, enqueuedAt);
    try {
      this.#disk?.append(partition, event, () => log.retained());
    } catch (error) {
      this.#logger.warn('event hubs endpoint: writing an event to disk failed', { partition, error: error instanceof Error ? error.message : String(error) });
    }
    for (const listener of this.#listeners[partition]!) {
      try {
        listener();
      } catch (error) {
        this.#logger.warn('event hubs endpoint: a reader failed', { partition, error: error instanceof Error ? error.message : String(error) });
      }
    }
    return event;
  }

  /** The partition with this id ('0'…), or undefined. */
  partition(partitionId: string): PartitionLog | undefined {
    // Only the canonical spelling: '01' is not partition '1'.
    if (!/^(0|[1-9]\d{0,2})$/.test(partitionId)) return undefined;
    return this.#partitions[Number(partitionId)];
  }

  partitionInfo(partitionId: string): PartitionInfo | undefined {
    return this.partition(partitionId)?.info();
  }

  /** Calls `listener` after each event appended to the partition; returns the unsubscribe. */
  subscribe(partitionId: string, listener: () => void): () => void {
    const listeners = this.#listeners[Number(partitionId)];
    if (!listeners) return () => undefined;
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  consumerGroups(): string[] {
    return [...this.#groups.values()];
  }

  /** The consumer group's name as created, matched case-insensitively as Event Hubs does. */
  consumerGroup(name: string): string | undefined {
    return this.#groups.get(name.toLowerCase());
  }

  createConsumerGroup(name: string): string {
    this.#checkGroupName(name);
    const existing = this.#groups.get(name.toLowerCase());
    if (existing !== undefined) return existing;
    if (this.#groups.size >= MAX_CONSUMER_GROUPS) {
      throw new SwitchyardError('CONFIG_INVALID', `The endpoint already has ${MAX_CONSUMER_GROUPS} consumer groups, IoT Hub's limit for the built-in endpoint.`, { details: { field: 'consumerGroup' } });
    }
    this.#groups.set(name.toLowerCase(), name);
    this.#saveMeta();
    return name;
  }

  deleteConsumerGroup(name: string): boolean {
    if (name.toLowerCase() === DEFAULT_CONSUMER_GROUP.toLowerCase()) {
      throw new SwitchyardError('CONFIG_INVALID', `${DEFAULT_CONSUMER_GROUP} cannot be deleted.`, { details: { field: 'consumerGroup' } });
    }
    const deleted = this.#groups.delete(name.toLowerCase());
    if (deleted) this.#saveMeta();
    return deleted;
  }

  #checkGroupName(name: string): void {
    if (typeof name !== 'string' || !validConsumerGroupName(name)) {
      throw new SwitchyardError('CONFIG_INVALID', `Consumer group name '${String(name).slice(0, 60)}' is invalid: 1 to 50 letters, digits, '.', '-' or '_', starting and ending with a letter or digit.`, { details: { field: 'consumerGroup' } });
    }
  }

  #saveMeta(): void {
    if (!this.#disk) return;
    const consumerGroups = this.consumerGroups().filter((g) => g.toLowerCase() !== DEFAULT_CONSUMER_GROUP.toLowerCase());
    try {
      this.#disk.saveMeta({ partitionCount: this.#partitions.length, createdAt: this.createdAt, consumerGroups });
    } catch (error) {
      this.#logger.warn('event hubs endpoint: saving consumer groups failed', { error: error instanceof Error ? error.message : String(error) });
    }
  }

  close(): void {
    for (const listeners of this.#listeners) listeners.clear();
    this.#disk?.close();
  }
}
