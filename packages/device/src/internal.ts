// @switchyard/device/internal: the building blocks the gateway, the CLI and this repository's
// tests share with the device client. Not part of the public API: it changes without notice.
export * from './index.ts';
export { boundedRetryPolicy } from './client.ts';
export { translateError, classifyFailure, featureUnsupported, type ErrorContext, type FailureKind } from './errors.ts';
export { TRANSPORTS, loadTransport, type TransportSpec, type TransportConstructor, type ModuleImporter } from './transport-factory.ts';
export { RedirectAgent, type Endpoint } from './endpoint.ts';
export { parseConnectOptions, parseConnectionString, connectOptionsSchema, type ConnectOptionsInput } from './options.ts';
export {
  INITIAL_POLL_STATE,
  pollStarted,
  pollFinished,
  mayDrain,
  throttleBackoffMs,
  readPollState,
  writePollState,
  pollStatePath,
  systemClock,
  PollRunner,
} from './poll-scheduler.ts';
export { MessageQueue, queueIterator } from './message-queue.ts';
export { toAzureMessage, fromAzureMessage } from './message.ts';
