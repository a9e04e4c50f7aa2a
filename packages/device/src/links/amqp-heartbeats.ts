// Half-open AMQP connections noticed without a timer per frame. The SDK asks for no heartbeats at
// all, so a connection whose peer went silent (a NAT or cell change) is never dropped. With
// `idle_time_out` in rhea's open frame the hub writes at least every half of it; but rhea then
// also watches for silence itself by clearing and re-arming a Node timer (and binding a function)
// on every chunk it reads, which the raw client never pays: a Timeout object, a timer-list
// insert and removal and a native re-schedule per message at one in flight (bench/README.md,
// "Where the CPU went", stop 10). So once the open frame is out, rhea's own watch is switched off:
// a read only notes the time, and one timer per connection wakes when the silence would reach the
// idle timeout.
//
// The same holds for the other direction, in the raw client too: the hub advertises an idle timeout
// (IoT Hub: 240 s), so rhea clears and re-arms `heartbeat_out` (a bound function and a Timeout) on
// every write to send an empty frame after half of it in silence; at one frame per message that was
// about 4k of the 145k instructions of an AMQP send, in node's timer lists (bench/README.md, "Timers
// per frame"). After the open, one timer per connection writes that empty frame instead.
import { systemClock, type Clock } from '@switchyard/time';

/** The parts of rhea's Connection this relies on (rhea 1.x); without them rhea's own watch stays. */
interface RheaConnectionLike {
  local?: { open?: { idle_time_out?: number } };
  remote?: { open?: { idle_time_out?: number } };
  heartbeat_in?: ReturnType<typeof setTimeout>;
  heartbeat_out?: ReturnType<typeof setTimeout>;
  amqp_transport?: { read?: (buffer: Buffer, connection: unknown) => number; write?: (socket: unknown) => void; pending?: unknown };
  _write_frame?: () => void;
  is_open?: () => boolean;
  socket?: unknown;
  socket_ready?: boolean;
  idle?: () => void;
}

type AmqpBaseLike = { connect?: unknown; _rheaConnection?: unknown };
type Done = (err?: unknown, result?: unknown) => void;

/**
 * Makes the AMQP transport ask for heartbeats (`idle_time_out` = `idleTimeoutMs` in rhea's open
 * frame, on real time like every protocol timer; the SDK has no option for it, its base connect merges `policyOverride` into rhea's
 * options) and drops a connection from which nothing was read for `idleTimeoutMs`, the way rhea
 * does (`idle()`: close with amqp:resource-limit-exceeded, socket aborted 1 s later).
 */
export function requestAmqpHeartbeats(transport: unknown, idleTimeoutMs: number, clock: Clock = systemClock): void {
  const amqp = (transport as { _amqp?: AmqpBaseLike } | undefined)?._amqp;
  if (amqp === undefined || typeof amqp.connect !== 'function') return;
  const original = amqp.connect as (config: Record<string, unknown>, done: Done) => void;
  amqp.connect = (config: Record<string, unknown>, done: Done) => {
    const policyOverride = { ...(config.policyOverride as Record<string, unknown> | undefined), idle_time_out: idleTimeoutMs };
    original.call(amqp, { ...config, policyOverride }, (err?: unknown, result?: unknown) => {
      if (err === undefined || err === null) {
        const connection = amqp._rheaConnection as RheaConnectionLike | undefined;
        watchSilence(connection, idleTimeoutMs, clock);
        keepWriting(connection, clock);
      }
      done(err, result);
    });
  };
}

/** How long a watched connection has read nothing. */
export interface SilenceWatch {
  /** Milliseconds on the watch's clock since the last bytes were read. */
  silentMs(): number;
}

/**
 * Replaces rhea's per-read idle timer on an open `connection` by one timer that wakes when the
 * silence would reach the timeout. Returns the watch, or undefined when rhea is not the shape
 * this knows (rhea's own watch then stays).
 */
export function watchSilence(connection: RheaConnectionLike | undefined, idleTimeoutMs: number, clock: Clock): SilenceWatch | undefined {
  const transport = connection?.amqp_transport;
  const open = connection?.local?.open;
  if (connection === undefined || transport === undefined || typeof transport.read !== 'function' || open === undefined || typeof connection.idle !== 'function') return undefined;
  const read = transport.read;
  const socket = connection.socket;
  let lastReadAt = clock.now();
  // An own property in front of rhea's prototype method: reading the clock is all a read costs now.
  transport.read = function timedRead(this: unknown, buffer: Buffer, c: unknown): number {
    lastReadAt = clock.now();
    return read.call(this, buffer, c);
  };
  // The open frame carrying idle_time_out is sent and the hub has answered; from here rhea would
  // only use it to re-arm heartbeat_in on every read.
  open.idle_time_out = undefined;
  if (connection.heartbeat_in !== undefined) {
    clearTimeout(connection.heartbeat_in);
    connection.heartbeat_in = undefined;
  }
  // Wakes when the idle timeout would run out if nothing more arrived; the hub writes at least every
  // half of it, so this fires about twice per idle period, and drops the connection on time.
  const check = (): void => {
    // The connection is gone (the SDK dials a new one, which gets its own watch).
    if (connection.socket !== socket || connection.socket_ready !== true) return;
    const silentMs = clock.now() - lastReadAt;
    if (silentMs >= idleTimeoutMs) {
      connection.idle!();
      return;
    }
    // Like the socket's own timers, it must not keep a process alive by itself.
    clock.setTimeout(check, idleTimeoutMs - silentMs).unref();
  };
  clock.setTimeout(check, idleTimeoutMs).unref();
  return { silentMs: () => clock.now() - lastReadAt };
}

/**
 * Replaces rhea's per-write heartbeat timer on an open `connection` by one timer per connection:
 * every quarter of the hub's advertised idle timeout it looks whether anything was written since the
 * last look, and writes an empty frame if not. So at most half the timeout passes without a frame,
 * as with rhea's own timer.
 */
export function keepWriting(connection: RheaConnectionLike | undefined, clock: Clock): void {
  const transport = connection?.amqp_transport;
  const remote = connection?.remote?.open;
  if (connection === undefined || transport === undefined || remote === undefined || typeof transport.write !== 'function' || !Array.isArray(transport.pending) || typeof connection._write_frame !== 'function') return;
  const peerIdleMs = remote.idle_time_out;
  if (typeof peerIdleMs !== 'number' || !(peerIdleMs > 0)) return;
  const write = transport.write;
  const socket = connection.socket;
  let wrote = false;
  transport.write = function flaggedWrite(this: { pending: unknown[] }, s: unknown): void {
    if (this.pending.length > 0) wrote = true;
    write.call(this, s);
  };
  // rhea re-arms heartbeat_out only while the peer's open frame carries an idle timeout: an own
  // property in front of the frame's accessor hides it from rhea alone.
  Object.defineProperty(remote, 'idle_time_out', { value: undefined, writable: true, configurable: true, enumerable: true });
  if (connection.heartbeat_out !== undefined) {
    clearTimeout(connection.heartbeat_out);
    connection.heartbeat_out = undefined;
  }
  const periodMs = peerIdleMs / 4;
  const check = (): void => {
    // Gone, or closed in order: rhea keeps socket_ready after a clean close, and its own timer
    // is armed only while the connection is open.
    if (connection.socket !== socket || connection.socket_ready !== true || connection.is_open?.() === false) return;
    // The empty frame goes through the write above and counts as one: the next comes half the
    // timeout after it, as rhea's would.
    if (wrote) wrote = false;
    else connection._write_frame!();
    clock.setTimeout(check, periodMs).unref();
  };
  clock.setTimeout(check, periodMs).unref();
}
