// Telemetry over AMQP handed straight to the attached D2C sender link, on the instance we own.
//
// In azure-iot-device-amqp (1.14.x) every sendEvent passes three layers before rhea sees it: the
// client's RetryOperation (two debug strings with formatted timestamps, three closures), the
// transport's state machine, and the sender link's own state machine. Each machina `handle` copies
// its arguments twice, walks the state hierarchy with lodash, builds an event payload and emits
// two events to nobody; with the debug strings around them that was a sixth of the raw client's
// profiled CPU per message at 16 in flight, and a quarter of its instructions (bench/README.md,
// "The SDK's state machines per send"); its garbage also grew V8's young generation early and set
// off major collections. When nothing can be in their way (the transport authenticated, its D2C link attached,
// nothing queued on it, credit to send), this does what those layers end in: the same
// `AmqpMessage.fromMessage`, the same `to`, rhea's `send`, and the entry in the link's table of
// deliveries in flight, so the link's disposition and detach handling answer it exactly as they
// answer the SDK's own sends. Otherwise it declines and the caller takes the SDK's path.
import { createRequire } from 'node:module';

type Callback = (err?: Error | null, result?: unknown) => void;

/** The parts of azure-iot-amqp-base this relies on: the transport's own instance of it. */
interface AmqpBaseModule {
  AmqpMessage: { fromMessage(message: unknown): { to?: string } };
  translateError(message: string, err: unknown): Error;
}

interface RheaSenderLike {
  sendable(): boolean;
  send(message: unknown): { id: number; settled?: boolean };
}

interface SenderLinkLike {
  _fsm?: { state?: string };
  _unsentMessageQueue?: unknown[];
  _rheaSender?: RheaSenderLike | null;
  _pendingMessageDictionary?: Record<number, { message: unknown; callback?: Callback }>;
}

interface AmqpTransportLike {
  _fsm?: { state?: string };
  _d2cLink?: SenderLinkLike | null;
  _d2cEndpoint?: string;
}

/** What the caller does with a failure the client's retry policy would retry (the SDK's path). */
export type RetryThroughSdk = (azureMessage: unknown, err: Error, done: Callback) => void;

/** Sends `azureMessage` and returns true, or returns false without doing anything. */
export type DirectSend = (azureMessage: unknown, done: Callback, retry?: RetryThroughSdk) => boolean;

const SEND_FAILED = 'AMQP Transport: Could not send';

/**
 * One delivery in flight, as the link's table holds its own: the link calls `callback` as a method
 * of the entry, so no closure is made per send.
 */
class InFlight {
  constructor(
    readonly message: unknown,
    readonly azureMessage: unknown,
    readonly done: Callback,
    readonly retry: RetryThroughSdk | undefined,
    readonly base: AmqpBaseModule,
  ) {}

  callback(err?: unknown, result?: unknown): void {
    if (err === undefined || err === null) {
      this.done(null, result);
      return;
    }
    // The transport translates the link's error before anyone sees it (its handleResult).
    const translated = this.base.translateError(SEND_FAILED, err);
    if (this.retry !== undefined) this.retry(this.azureMessage, translated, this.done);
    else this.done(translated);
  }
}

let cachedBase: AmqpBaseModule | null | undefined;

/** azure-iot-amqp-base as azure-iot-device-amqp resolves it, or null when it cannot be found. */
function amqpBase(): AmqpBaseModule | null {
  if (cachedBase !== undefined) return cachedBase;
  try {
    const requireHere = createRequire(import.meta.url);
    const base = createRequire(requireHere.resolve('azure-iot-device-amqp'))('azure-iot-amqp-base') as Partial<AmqpBaseModule>;
    cachedBase = typeof base.AmqpMessage?.fromMessage === 'function' && typeof base.translateError === 'function' ? (base as AmqpBaseModule) : null;
  } catch {
    cachedBase = null;
  }
  return cachedBase;
}

/**
 * The direct path for one AMQP transport, or undefined when the transport or the base package
 * does not have the shape it relies on (then every send takes the SDK's path, as before).
 */
export function directD2CSend(transport: unknown): DirectSend | undefined {
  const t = transport as AmqpTransportLike | undefined;
  if (t === undefined || typeof t !== 'object' || t === null || typeof t._fsm !== 'object') return undefined;
  const base = amqpBase();
  if (base === null) return undefined;
  return (azureMessage, done, retry) => {
    const link = t._d2cLink;
    const to = t._d2cEndpoint;
    if (link === undefined || link === null || t._fsm?.state !== 'authenticated' || typeof to !== 'string') return false;
    // Anything queued on the link goes first, in its order: then so does this.
    if (link._fsm?.state !== 'attached' || link._unsentMessageQueue?.length !== 0) return false;
    const sender = link._rheaSender;
    const pending = link._pendingMessageDictionary;
    if (sender === undefined || sender === null || pending === undefined || !sender.sendable()) return false;
    const message = base.AmqpMessage.fromMessage(azureMessage);
    message.to = to;
    const entry = new InFlight(message, azureMessage, done, retry, base);
    const delivery = sender.send(message);
    // IoT Hub's D2C link is unsettled, so this is the rare case; answered later, as the SDK
    // would be by the disposition, so no caller is called back before its send returned.
    if (delivery.settled === true) queueMicrotask(() => entry.callback(null));
    else pending[delivery.id] = entry;
    return true;
  };
}
