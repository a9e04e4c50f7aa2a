// @switchyard/device/internal: the building blocks the gateway, the CLI and this repository's
// tests share with the device client. Not part of the public API: it changes without notice.
export * from './index.ts';
export { DeviceCore, DEFAULT_OPERATION_TIMEOUT_MS, type DeviceCoreOptions, type CoreObserver } from './core/device-core.ts';
export { ConnectionStateMachine, canTransition } from './core/state.ts';
export { guard, type GuardOptions } from './core/guard.ts';
export { Operation, abortedError, type OperationHost } from './core/operation.ts';
export { DeadlineNode, startDeadline, clearDeadline } from './core/deadlines.ts';
export type { DeviceLink, LinkListener, LinkMessage, LinkDown, Settlement } from './links/link.ts';
export { AzureClientLink, boundedRetryPolicy, CLOSE_GRACE_MS, CLOSE_SETTLE_MS, type AzureClientLike, type AzureClientLinkOptions, type AzureGeneration, type PollOnce } from './links/azure-client-link.ts';
export { guardTwinClient, guardTransportTwin } from './links/amqp-twin-guard.ts';
export { keepWriting, watchSilence, type SilenceWatch } from './links/amqp-heartbeats.ts';
export { translateError, classifyFailure, featureUnsupported, isRetryable, neverReachedHub, type ErrorContext, type FailureKind } from './errors.ts';
export { TRANSPORTS, loadTransport, type TransportSpec, type TransportConstructor, type ModuleImporter } from './transport-factory.ts';
export { RedirectAgent, type Endpoint } from './endpoint.ts';
export { parseConnectOptions, parseConnectionString, parseOutboxOptions, connectOptionsSchema, type ConnectOptionsInput } from './options.ts';
export {
  INITIAL_POLL_STATE,
  pollStarted,
  pollFinished,
  pollUnreached,
  UNREACHED_RETRY_MS,
  mayDrain,
  throttleBackoffMs,
  readPollState,
  writePollState,
  pollStatePath,
  PollRunner,
} from './poll-scheduler.ts';
export { MessageQueue, queueIterator } from './message-queue.ts';
export { toAzureMessage, fromAzureMessage } from './message.ts';
export { Outbox, OUTBOX_WINDOW, outboxWindow, type OutboxHost } from './outbox/outbox.ts';
export { RecordLog, shouldCompact, truncateLogFile, LOG_FILE, DEFAULT_COMPACTION } from './outbox/record-log.ts';
export { decodeLog, encodeFrame, fileHeader, liveEntries, FrameWriter, LOG_VERSION, type AddRecord, type LogRecord } from './outbox/log-format.ts';
export { lockDir, LOCK_FILE } from './outbox/dir-lock.ts';
export { outboxSettings, OUTBOX_DEFAULTS } from './outbox/options.ts';
