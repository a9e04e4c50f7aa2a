// The narrow interface a DeviceCore drives. A link knows one way of talking to IoT Hub (an Azure
// SDK Client over any of the five protocols, or an identity's links on a gateway's shared AMQP
// session) and nothing about deadlines, states, queues of readers or handlers: those are the
// core's, once, for every link.
import type { Protocol } from '@switchyard/profile';
import type { C2DMessageData, DeviceMessage, OutgoingMessage } from '../message.ts';
import type { PollOutcome } from '../poll-scheduler.ts';
import type { MethodRequest, MethodResult, TwinDocument } from '../types.ts';

export type Settlement = 'complete' | 'abandon' | 'reject';

/** A received C2D message and how to settle it on the link that delivered it. */
export interface LinkMessage {
  data: C2DMessageData;
  settle(how: Settlement): Promise<void>;
}

export interface LinkDown {
  /** What the link knows about why; undefined for an orderly end. */
  error?: unknown;
  /** True when the link (or its owner) is re-opening by itself. */
  willRetry: boolean;
  reason?: string;
}

/** What a link tells its core. One object per core, so a link holds no closures of its own for it. */
export interface LinkListener {
  /** The connection of attempt `epoch` is up (first open or a re-open). */
  linkUp(epoch: number): void;
  linkDown(epoch: number, down: LinkDown): void;
  linkMessage(message: LinkMessage): void;
  /** A desired-properties patch, `$version` included, as the SDK gives it. */
  linkDesired(patch: Record<string, unknown>): void;
  /** A direct method call; `respond` sends the result back on the link that received it. */
  linkMethod(request: MethodRequest, respond: (result: MethodResult) => Promise<void>): void;
  /** A background failure (a feature re-enable after a reconnect, a failed poll). */
  linkFault(error: unknown, operation: string): void;
}

/** A link that sends several telemetry messages in one request, each keeping its message id. */
export interface LinkBatching {
  /** Bytes one request may carry, counted with bytesOf. */
  readonly maxBytes: number;
  bytesOf(message: DeviceMessage): number;
  /** One request; `done` once, without an error when the hub took all of them. */
  send(messages: readonly DeviceMessage[], done: (err?: unknown) => void): void;
}

export interface DeviceLink {
  readonly protocol: Protocol;
  readonly deviceId: string;
  /** The connection attempt in force; bumped by every re-open. */
  readonly epoch: number;
  /**
   * Whether operations issued while the link is re-opening should wait in the core for it to come
   * back (true), or go to the link at once because it queues and retries them itself (the SDK).
   */
  readonly holdsDuringReconnect: boolean;
  /** Push (MQTT, AMQP: messages arrive by themselves) or poll (HTTPS: the core's scheduler asks). */
  readonly c2dMode: 'push' | 'poll';
  bind(listener: LinkListener): void;
  /** The hot path: converts and sends one message; `done` is called once, with the link's own error. */
  send(message: OutgoingMessage, done: (err?: unknown) => void): void;
  /**
   * One attempt, with no retry below it, for a caller that retries by itself (the outbox). The
   * SDK's client retries a send on its own schedule, out of the outbox's sight: through an outage
   * each such send dialled the hub on its own, and one that landed after the reconnect arrived
   * behind the messages queued after it. Links without it retry nothing below send().
   */
  sendOnce?(message: OutgoingMessage, done: (err?: unknown) => void): void;
  sendBatch(messages: readonly OutgoingMessage[], signal?: AbortSignal): Promise<void>;
  /** Set when the link can send a batch that keeps each message's id (HTTPS); the outbox uses it. */
  readonly batching?: LinkBatching | undefined;
  /** Starts delivering C2D through linkMessage (push links); idempotent. */
  enableC2D(): void;
  /** Poll links: one C2D GET; messages it returns arrive through linkMessage first. */
  pollOnce?(): Promise<PollOutcome>;
  getTwin(): Promise<TwinDocument>;
  updateReported(patch: Record<string, unknown>): Promise<void>;
  /** Starts delivering desired patches through linkDesired; idempotent. */
  enableDesired(): Promise<void>;
  /** Routes calls of `methodName` to linkMethod; kept across re-opens. */
  enableMethod(methodName: string): void;
  uploadToBlob(blobName: string, stream: NodeJS.ReadableStream, size: number): Promise<void>;
  /**
   * An operation of `epoch` ran out of its `timeoutMs` deadline, so it reached the link at most
   * that long ago (a wedged AMQP link is replaced on this; a shared connection only if nothing
   * came in on it for `timeoutMs`).
   */
  operationTimedOut(operation: string, epoch: number, timeoutMs: number): void;
  close(): Promise<void>;
}
