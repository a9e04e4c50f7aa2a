export { connect, type ConnectOptions, type ConnectResult } from './connect.ts';
export { adaptAzureClient, boundedRetryPolicy, type AdaptOptions, type RetryPolicyLike } from './client.ts';
export { translateError, classifyFailure, featureUnsupported, type ErrorContext, type FailureKind } from './errors.ts';
export { TRANSPORTS, loadTransport, type TransportSpec, type TransportConstructor, type ModuleImporter } from './transport-factory.ts';
export { RedirectAgent, type Endpoint } from './endpoint.ts';
export { parseConnectOptions, parseConnectionString, connectOptionsSchema, type ConnectOptionsInput } from './options.ts';
export {
  PRODUCTION_POLL_FLOOR_MS,
  INITIAL_POLL_STATE,
  pollPolicy,
  nextPollAt,
  pollStarted,
  pollFinished,
  mayDrain,
  throttleBackoffMs,
  readPollState,
  writePollState,
  pollStatePath,
  systemClock,
  PollRunner,
  type Clock,
  type PollEvent,
  type PollOutcome,
  type PollPolicy,
  type PollPolicyInput,
  type PollState,
} from './poll-scheduler.ts';
export { MessageQueue, queueIterator } from './message-queue.ts';
// The SDK Message conversions, for packages that drive Azure transports themselves (the gateway).
export { toAzureMessage, fromAzureMessage, type OutgoingMessage, type DeviceMessage, type C2DMessageData } from './message.ts';
export type {
  DeviceClient,
  ClientFor,
  FeaturesOf,
  BaseClient,
  TwinApi,
  MethodsApi,
  FileUploadApi,
  C2DMessage,
  ClientEvents,
  ConnectionState,
  DisconnectedEvent,
  FallbackEvent,
  MethodHandler,
  MethodRequest,
  MethodResult,
  OperationOptions,
  TwinDocument,
} from './types.ts';
