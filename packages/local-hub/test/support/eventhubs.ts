// @azure/event-hubs against the local hub's built-in endpoint, unchanged: over WebSockets with
// the hub's CA as the `ws` option `ca` (TLS verification on), through `customEndpointAddress`
// pointing at the HTTPS listener; and a log watch to wait for the hub to attach a reader.
import { WebSocket } from 'ws';
import { EventHubConsumerClient, type EventPosition, type LastEnqueuedEventProperties, type ReceivedEventData, type Subscription, type SubscribeOptions, type WebSocketImpl } from '@azure/event-hubs';
import type { HubLogger, LocalHub } from '../../src/index.ts';
import { waitFor } from './azure-clients.ts';

export function consumer(hub: LocalHub, consumerGroup = '$Default'): EventHubConsumerClient {
  return new EventHubConsumerClient(consumerGroup, hub.eventHubConnectionString, {
    webSocketOptions: { webSocket: WebSocket as unknown as WebSocketImpl, webSocketConstructorOptions: { ca: hub.ca } },
    customEndpointAddress: hub.eventHubs.webSocketEndpoint,
    retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10_000 },
  });
}

export interface Reading {
  events: ReceivedEventData[];
  errors: Error[];
  /** What the partition context said last (with `trackLastEnqueuedEventProperties`). */
  lastEnqueued: () => LastEnqueuedEventProperties | undefined;
  subscription: Subscription;
  /** Resolves once `n` events arrived. */
  atLeast(n: number, ms?: number): Promise<ReceivedEventData[]>;
  /** Resolves with the first error reported. */
  firstError(ms?: number): Promise<Error & { code?: string }>;
}

export function read(client: EventHubConsumerClient, partitionId: string, startPosition: EventPosition, options: Omit<SubscribeOptions, 'startPosition'> = {}): Reading {
  const events: ReceivedEventData[] = [];
  const errors: Error[] = [];
  let lastEnqueued: LastEnqueuedEventProperties | undefined;
  const subscription = client.subscribe(partitionId, {
    processEvents: async (batch, context) => {
      events.push(...batch);
      if (batch.length > 0) lastEnqueued = { ...context.lastEnqueuedEventProperties };
    },
    processError: async (error) => {
      errors.push(error);
    },
  }, { maxWaitTimeInSeconds: 1, ...options, startPosition });
  return {
    events,
    errors,
    lastEnqueued: () => lastEnqueued,
    subscription,
    atLeast: (n, ms = 15_000) => waitFor(() => (events.length >= n ? events : undefined), ms, `${n} events`),
    firstError: (ms = 15_000) => waitFor(() => errors[0] as (Error & { code?: string }) | undefined, ms, 'an error'),
  };
}

/** A hub logger that remembers what it was told, so a test can wait for a line. */
export class LogWatch implements HubLogger {
  readonly lines: Array<{ message: string; fields: Record<string, unknown> }> = [];
  info(message: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ message, fields });
    if (this.lines.length > 5000) this.lines.splice(0, 1000);
  }
  warn(message: string, fields: Record<string, unknown> = {}): void {
    this.info(message, fields);
  }
  count(message: string, match: Record<string, unknown> = {}): number {
    return this.lines.filter((l) => l.message === message && Object.entries(match).every(([k, v]) => l.fields[k] === v)).length;
  }
  /** Waits until `message` (with fields matching) has been logged more than `after` times. */
  async next(message: string, match: Record<string, unknown>, after: number, ms = 15_000): Promise<void> {
    await waitFor(() => (this.count(message, match) > after ? true : undefined), ms, message);
  }
}

/** Device ids whose telemetry lands on distinct partitions. */
export function devicesOnDistinctPartitions(hub: LocalHub, prefix: string, count: number): string[] {
  const byPartition = new Map<string, string>();
  for (let i = 0; byPartition.size < count && i < 1000; i++) {
    const id = `${prefix}-${i}`;
    const p = hub.eventHubs.partitionOf(id);
    if (!byPartition.has(p)) byPartition.set(p, id);
  }
  return [...byPartition.values()];
}
