// Assembles IoT Hub's service-facing AMQP endpoints for one hub: the hub-wide feedback and file
// notification queues, the feedback batcher fed by the core's C2D outcomes, and what each AMQP
// connection's service side calls.
import type { Clock } from '@switchyard/time';
import type { C2DSettledEvent } from '../core/events.ts';
import type { PolicyAuthResult } from '../core/policies.ts';
import type { C2DMessage, C2DSendInput, DeviceProtocol } from '../core/types.ts';
import { FeedbackBatcher, type FeedbackOptions } from './feedback.ts';
import { fileNotificationMessage, type CompletedUpload } from './file-notifications.ts';
import type { ServiceEndpoints } from './service-links.ts';
import { ServiceBoundQueue, type ServiceBoundLimits } from './service-queue.ts';

export interface ServiceSideOptions {
  feedback?: FeedbackOptions;
  /** Retention of the feedback and file notification queues. */
  queues?: Partial<ServiceBoundLimits>;
}

/** What the service side needs of the core: C2D, policy tokens, and how each C2D message ended. */
export interface ServiceCore {
  sendC2D(deviceId: string, input: C2DSendInput): C2DMessage;
  authenticateService(token: string, protocol: DeviceProtocol): PolicyAuthResult;
  on(event: 'c2dSettled', listener: (event: C2DSettledEvent) => void): unknown;
  off(event: 'c2dSettled', listener: (event: C2DSettledEvent) => void): unknown;
}

export interface ServiceSide {
  endpoints: ServiceEndpoints;
  fileUploaded(upload: CompletedUpload): void;
  close(): void;
}

export function serviceSide(deps: { core: ServiceCore; clock: Clock; hostName: string; options?: ServiceSideOptions }): ServiceSide {
  const { clock } = deps;
  const feedback = new ServiceBoundQueue('feedback', clock, deps.options?.queues);
  const fileNotifications = new ServiceBoundQueue('file-notifications', clock, deps.options?.queues);
  const batcher = new FeedbackBatcher(feedback, clock, deps.hostName, deps.options?.feedback);
  const onSettled = (event: C2DSettledEvent): void => batcher.onSettled(event);
  deps.core.on('c2dSettled', onSettled);
  return {
    endpoints: {
      sendC2D: (deviceId, input) => deps.core.sendC2D(deviceId, input),
      authenticateService: (token, protocol) => deps.core.authenticateService(token, protocol),
      feedback,
      fileNotifications,
      clock,
    },
    fileUploaded: (upload) => {
      fileNotifications.enqueue(fileNotificationMessage(upload, clock.now()));
    },
    close: () => {
      deps.core.off('c2dSettled', onSettled);
      batcher.close();
    },
  };
}
