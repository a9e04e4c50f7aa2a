// Delivery feedback: how each C2D message ended, reported to the service as IoT Hub does, in
// batches (one message holds the records of a short window) on /messages/servicebound/feedback.
// A message's `iothub-ack` decides whether it is reported: positive for completions, negative for
// expiry, dead-lettering and rejection, full for both, none (the default) never.
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import type { Clock, TimerHandle } from '@switchyard/time';
import type { C2DOutcome, C2DSettledEvent } from '../core/events.ts';
import type { OutgoingAmqpMessage } from './mapping.ts';
import type { ServiceBoundQueue } from './service-queue.ts';

export const FEEDBACK_CONTENT_TYPE = 'application/vnd.microsoft.iothub.feedback.json';
export const FEEDBACK_ADDRESS = '/messages/servicebound/feedback';

export type FeedbackStatus = 'Success' | 'Expired' | 'DeliveryCountExceeded' | 'Rejected' | 'Purged';

export interface FeedbackRecord {
  originalMessageId: string;
  description: FeedbackStatus;
  deviceGenerationId: string;
  deviceId: string;
  /** ISO time of the outcome. */
  enqueuedTimeUtc: string;
  statusCode: FeedbackStatus;
}

export interface FeedbackOptions {
  /** How long records gather before they are sent as one message; default 1000 ms. */
  batchWindowMs?: number;
  /** Records per message at most; a full batch is sent at once. Default 100. */
  maxRecordsPerMessage?: number;
}

const STATUS: Record<C2DOutcome, FeedbackStatus> = {
  completed: 'Success',
  expired: 'Expired',
  deliveryCountExceeded: 'DeliveryCountExceeded',
  rejected: 'Rejected',
  purged: 'Purged',
};

/** Whether a message with this ack asks for feedback on this outcome. */
export function wantsFeedback(ack: C2DSettledEvent['ack'], outcome: C2DOutcome): boolean {
  if (ack === 'full') return true;
  if (ack === 'positive') return outcome === 'completed';
  if (ack === 'negative') return outcome !== 'completed';
  return false;
}

export function feedbackRecord(event: C2DSettledEvent): FeedbackRecord {
  const status = STATUS[event.outcome];
  return {
    originalMessageId: event.messageId,
    description: status,
    deviceGenerationId: event.deviceGenerationId,
    deviceId: event.deviceId,
    enqueuedTimeUtc: new Date(event.at).toISOString(),
    statusCode: status,
  };
}

export function feedbackMessage(records: readonly FeedbackRecord[], hostName: string, now: number): OutgoingAmqpMessage {
  return {
    message_id: randomUUID(),
    to: FEEDBACK_ADDRESS,
    user_id: Buffer.from(hostName.split('.')[0] ?? hostName),
    content_type: FEEDBACK_CONTENT_TYPE,
    content_encoding: 'utf-8',
    message_annotations: { 'iothub-enqueuedtime': new Date(now) },
    body: rhea.message.data_section(Buffer.from(JSON.stringify(records))),
  };
}

/** Collects feedback records and enqueues one message per window on the injected clock. */
export class FeedbackBatcher {
  private records: FeedbackRecord[] = [];
  private timer: TimerHandle | undefined;
  private readonly windowMs: number;
  private readonly maxRecords: number;

  constructor(
    private readonly queue: ServiceBoundQueue,
    private readonly clock: Clock,
    private readonly hostName: string,
    options: FeedbackOptions = {},
  ) {
    this.windowMs = Math.max(0, options.batchWindowMs ?? 1000);
    this.maxRecords = Math.max(1, options.maxRecordsPerMessage ?? 100);
  }

  onSettled(event: C2DSettledEvent): void {
    if (!wantsFeedback(event.ack, event.outcome)) return;
    this.records.push(feedbackRecord(event));
    if (this.records.length >= this.maxRecords) {
      this.flush();
      return;
    }
    if (this.timer === undefined) {
      this.timer = this.clock.setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.windowMs);
      // A pending batch must not keep a process alive that has nothing else to do.
      this.timer.unref();
    }
  }

  flush(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    while (this.records.length > 0) {
      const batch = this.records.splice(0, this.maxRecords);
      this.queue.enqueue(feedbackMessage(batch, this.hostName, this.clock.now()));
    }
  }

  close(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.records = [];
  }
}
