// The public surface of @switchyard/device: what an application needs to connect a device and
// program against it. Pieces other Switchyard packages build on are in ./internal.ts
// (`@switchyard/device/internal`), which carries no compatibility promise.
export { connect, type ConnectOptions, type ConnectResult } from './connect.ts';
export type { ConnectOptionsInput } from './options.ts';
export { adaptAzureClient, type AdaptOptions } from './adapt.ts';
export type { RetryPolicyLike } from './links/azure-client-link.ts';
export { CONNECTION_STATES } from './core/state.ts';
export type { Delivered } from './core/operation.ts';
export type { Clock, TimerHandle } from '@switchyard/time';
export {
  PRODUCTION_POLL_FLOOR_MS,
  pollPolicy,
  nextPollAt,
  type PollEvent,
  type PollOutcome,
  type PollPolicy,
  type PollPolicyInput,
  type PollState,
} from './poll-scheduler.ts';
export type { OutgoingMessage, DeviceMessage, C2DMessageData } from './message.ts';
export type {
  DeviceClient,
  ClientFor,
  FeaturesOf,
  BaseClient,
  TwinApi,
  MethodsApi,
  FileUploadApi,
  C2DMessage,
  C2DBase,
  C2DSettleMore,
  ClientEvents,
  ConnectionState,
  StateChange,
  DisconnectedEvent,
  FallbackEvent,
  MethodHandler,
  MethodRequest,
  MethodResult,
  OperationOptions,
  SendOptions,
  TwinDocument,
} from './types.ts';
export type { OutboxOptions, WhenFull } from './outbox/options.ts';
export type { OutboxView, OutboxDroppedEvent, OutboxDropReason } from './outbox/outbox.ts';
