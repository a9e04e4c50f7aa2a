// Paces the re-dials of an MQTT transport whose connections keep dropping right after they open.
//
// azure-iot-device dials again the moment an MQTT connection drops: its disconnect handler
// re-enables methods and desired-property updates (internal_client.js `_disconnectHandler`),
// whose first attempt goes out at once, and any operation on a disconnected transport dials
// (azure-iot-device-mqtt's `disconnected` state: sendEvent, the twin, the outbox's next attempt).
// The retry policy's delays come only between attempts that *fail*; a dial that succeeds is never
// delayed. While IoT Hub throttles or refuses a device it accepts the connection and drops it on
// the next publish, so the client reconnected about ten times a second for the whole window: ~350
// reconnects in the 4-minute soak, 3 900 in the 30-minute one, where the policy's carried back-off
// changed nothing. Every one of those paths ends in the MQTT base client's connect(), so the pace
// is kept there: after a connection that lasted less than `settledMs`, the next dial waits,
// doubling from `baseMs` to `maxMs` with each such connection in a row; one that lasted longer
// starts the count over.
import { backoffDelay, type Clock, type TimerHandle } from '@switchyard/time';
import azureCommon from 'azure-iot-common';

type Callback = (err?: Error | null, result?: unknown) => void;

/** The part of azure-iot-mqtt-base's MqttBase (the transport's `_mqtt`) the gate wraps. */
interface MqttBaseLike {
  connect(config: unknown, done: Callback): void;
  disconnect(done: Callback): void;
  on(event: 'error', listener: (err: unknown) => void): unknown;
}

export interface RedialGateOptions {
  clock: Clock;
  /** The wait after the first connection in a row that did not last. Default 100 ms. */
  baseMs?: number;
  /** The longest wait. Default 5 s, the retry policy's cap. */
  maxMs?: number;
  /** A connection that lasted this long was a recovery: the next drop re-dials at once. Default 10 s. */
  settledMs?: number;
}

const DEFAULTS = { baseMs: 100, maxMs: 5_000, settledMs: 10_000 };
/** Enough to reach any cap; keeps the exponent finite. */
const MAX_STREAK = 30;

/**
 * Puts the gate on an azure-iot-device-mqtt transport (Mqtt or MqttWs); anything else, or a
 * transport without the base client it wraps, is left as it is.
 */
export function gateMqttRedials(transport: unknown, options: RedialGateOptions): void {
  const base = (transport as { _mqtt?: Partial<MqttBaseLike> } | undefined)?._mqtt;
  if (typeof base?.connect !== 'function' || typeof base.disconnect !== 'function' || typeof base.on !== 'function') return;
  const { clock } = options;
  const baseMs = options.baseMs ?? DEFAULTS.baseMs;
  const maxMs = options.maxMs ?? DEFAULTS.maxMs;
  const settledMs = options.settledMs ?? DEFAULTS.settledMs;
  const connect = base.connect.bind(base);
  const disconnect = base.disconnect.bind(base);

  let connectedAt: number | undefined;
  let droppedAt = Number.NEGATIVE_INFINITY;
  let streak = 0;
  let waiting: { timer: TimerHandle; done: Callback } | undefined;

  // MqttBase reports a dropped connection as 'error' (the transport listens for the same).
  base.on('error', () => {
    if (connectedAt === undefined) return;
    const now = clock.now();
    streak = now - connectedAt < settledMs ? Math.min(streak + 1, MAX_STREAK) : 0;
    connectedAt = undefined;
    droppedAt = now;
  });

  const dial = (config: unknown, done: Callback): void =>
    connect(config, (err, result) => {
      if (!err) connectedAt = clock.now();
      done(err, result);
    });

  base.connect = (config: unknown, done: Callback): void => {
    const pause = streak === 0 ? 0 : backoffDelay({ baseMs, maxMs, maxRetries: Infinity, jitter: 0 }, streak - 1)! - (clock.now() - droppedAt);
    if (pause <= 0 || waiting !== undefined) return dial(config, done);
    const timer = clock.setTimeout(() => {
      waiting = undefined;
      dial(config, done);
    }, pause);
    waiting = { timer, done };
  };

  // The transport disconnects while a dial waits when the client closes: the wait ends there and
  // the dial fails, as a connect the base client was still making would.
  base.disconnect = (done: Callback): void => {
    const held = waiting;
    if (held === undefined) return disconnect(done);
    waiting = undefined;
    clock.clearTimeout(held.timer);
    disconnect((err, result) => {
      done(err, result);
      held.done(new azureCommon.errors.NotConnectedError('the client disconnected before its next MQTT connection was dialled'));
    });
  };
}
