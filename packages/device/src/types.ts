// The public interface of a connected device, and the capability typing: with a literal profile
// the client's type offers only what the profile's `features` declare.
import type { SwitchyardError } from '@switchyard/errors';
import type { Feature, Protocol } from '@switchyard/profile';
import type { Decision } from '@switchyard/selector';
import type { C2DMessageData, OutgoingMessage } from './message.ts';
import type { PollEvent } from './poll-scheduler.ts';
import type { ConnectionState, StateChange } from './core/state.ts';
import type { OutboxDroppedEvent, OutboxView } from './outbox/outbox.ts';

export type { ConnectionState, StateChange } from './core/state.ts';

export interface OperationOptions {
  signal?: AbortSignal;
  /** Overrides the client's operationTimeoutMs for this call. */
  timeoutMs?: number;
}

export interface SendOptions extends OperationOptions {
  /**
   * With an outbox, 'queued' resolves once the message is recorded (fsynced when `outbox.dir` is
   * set) and the outbox then sends it by itself; the default, 'acknowledged', waits for the hub.
   * Without an outbox both wait for the hub.
   */
  until?: 'queued' | 'acknowledged';
}

export interface C2DBase extends C2DMessageData {
  /** Removes the message from the device queue. A no-op over MQTT, which acknowledged it on receipt. */
  complete(options?: OperationOptions): Promise<void>;
}

export interface C2DSettleMore {
  /** Puts the message back in the queue for redelivery (AMQP, HTTPS). */
  abandon(options?: OperationOptions): Promise<void>;
  /** Dead-letters the message (AMQP, HTTPS). */
  reject(options?: OperationOptions): Promise<void>;
}

/** A received message; abandon/reject exist in the type when the profile declares c2d-reject-abandon. */
export type C2DMessage<CanRejectAbandon extends boolean = true> = CanRejectAbandon extends true ? C2DBase & C2DSettleMore : C2DBase;

export interface TwinDocument {
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

export interface MethodRequest {
  methodName: string;
  requestId: string;
  payload: unknown;
}

export interface MethodResult {
  status: number;
  payload?: unknown;
}

export type MethodHandler = (request: MethodRequest) => Promise<MethodResult> | MethodResult;

export interface DisconnectedEvent {
  reason: string;
  /** True while the connection is being re-opened (state `reconnecting`); false when nothing re-opens it. */
  willRetry: boolean;
  error?: SwitchyardError;
}

export interface FallbackEvent {
  from: Protocol;
  to: Protocol;
  reason: string;
}

export interface ClientEvents<M> {
  /** Every transition of the connection state machine, with its reason and epoch. */
  state: [StateChange];
  connected: [];
  disconnected: [DisconnectedEvent];
  fallback: [FallbackEvent];
  poll: [PollEvent];
  message: [M];
  /** A desired-properties patch (includes `$version`). */
  desired: [Record<string, unknown>];
  warning: [string];
  error: [SwitchyardError];
  /** Messages that left the outbox unsent: it was full (drop-oldest), their TTL passed, or the hub can never take them. */
  'outbox-dropped': [OutboxDroppedEvent];
}

export interface BaseClient<M> {
  readonly protocol: Protocol;
  readonly decision: Decision | undefined;
  readonly deviceId: string;
  readonly state: ConnectionState;
  /** The outbox (the `outbox` option of connect() or the gateway); undefined when it is off. */
  readonly outbox: OutboxView | undefined;
  sendEvent(message: OutgoingMessage, options?: SendOptions): Promise<void>;
  /**
   * Sends several messages: one request over HTTPS, pipelined on the one link over AMQP (the
   * SDK has no AMQP batch), one after another over MQTT.
   */
  sendEventBatch(messages: readonly OutgoingMessage[], options?: SendOptions): Promise<void>;
  /** Received messages until close() or the signal aborts; enables C2D on first use. */
  messages(options?: { signal?: AbortSignal }): AsyncIterableIterator<M>;
  on<E extends keyof ClientEvents<M>>(event: E, listener: (...args: ClientEvents<M>[E]) => void): this;
  once<E extends keyof ClientEvents<M>>(event: E, listener: (...args: ClientEvents<M>[E]) => void): this;
  off<E extends keyof ClientEvents<M>>(event: E, listener: (...args: ClientEvents<M>[E]) => void): this;
  close(options?: OperationOptions): Promise<void>;
}

export interface TwinApi {
  getTwin(options?: OperationOptions): Promise<TwinDocument>;
  updateReported(patch: Record<string, unknown>, options?: OperationOptions): Promise<void>;
}

export interface MethodsApi {
  /** Serves a direct method; the handler's result is the response. */
  onMethod(methodName: string, handler: MethodHandler): void;
}

export interface FileUploadApi {
  /** IoT Hub file upload. The blob PUT trusts only the system CA store (NODE_EXTRA_CA_CERTS). */
  uploadToBlob(blobName: string, data: Buffer | NodeJS.ReadableStream, length?: number, options?: OperationOptions): Promise<void>;
}

/** The client for a set of features `F` (a union of profile features). */
export type ClientFor<F extends Feature> = BaseClient<C2DMessage<'c2d-reject-abandon' extends F ? true : false>> &
  ('twin' extends F ? TwinApi : unknown) &
  ('methods' extends F ? MethodsApi : unknown) &
  ('file-upload' extends F ? FileUploadApi : unknown);

/** The general client: everything, with FEATURE_UNSUPPORTED at run time where the protocol cannot serve it. */
export type DeviceClient = ClientFor<Feature>;

/**
 * The features a literal profile declares. A path, no profile, or a profile typed only as
 * `ProfileDefinition` / `CapabilityProfile` gives every feature; a literal without `features`
 * gets the schema's default, telemetry.
 */
export type FeaturesOf<P> = P extends string | undefined
  ? Feature
  : string extends keyof P
    ? Feature
    : 'features' extends keyof P
      ? P extends { features?: readonly (infer F)[] | undefined }
        ? F extends Feature
          ? F
          : never
        : never
      : 'telemetry';
