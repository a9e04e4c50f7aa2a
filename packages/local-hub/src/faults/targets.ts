// What the fault injector needs from a live device connection, whichever front-end holds it, and
// the socket-level faults (black hole, delay, reset) that work the same under every protocol.
import type { Socket } from 'node:net';
import type { DeviceProtocol } from '../core/types.ts';
import type { KillFault } from './vocabulary.ts';

export interface FaultTarget {
  readonly connectionId: string;
  readonly protocol: DeviceProtocol;
  /** The identities this connection carries (several on one AMQP connection). */
  deviceIds(): readonly string[];
  /** The TCP (TLS) socket under the connection, for network faults; undefined when unknown. */
  readonly socket: Socket | undefined;
  /**
   * Applies an IoT Hub kill fault on behalf of `deviceId`. Returns what was cut, for the fault
   * event, or undefined when the fault does not apply to this transport (KillAmqpD2CLink on MQTT).
   */
  kill(type: KillFault, deviceId: string, reason: string): string | undefined;
}

/** An ungraceful end: an RST where the socket allows it, as a dropped network would look. */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    // TLSSocket inherits resetAndDestroy but its handle is not a TCP handle; fall back to destroy.
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/**
 * Stops reading from and writing to a socket without closing it: the peer's bytes wait in the
 * kernel and ours in the socket's buffer, as behind a link that drops every packet. Returns the
 * function that lets the traffic flow again.
 */
export function blackHole(socket: Socket): () => void {
  socket.pause();
  socket.cork();
  let restored = false;
  return () => {
    if (restored || socket.destroyed) return;
    restored = true;
    socket.uncork();
    socket.resume();
  };
}

interface Held {
  chunk: unknown;
  encoding: unknown;
  callback: unknown;
  due: number;
}

/**
 * Holds every write to the device for `ms` while active (so each round trip takes `ms` longer);
 * order is kept, including for writes made while the held ones drain after the window ends.
 * Returns the function that ends the window.
 */
export function delayWrites(socket: Socket, ms: number): () => void {
  const original = socket.write;
  const held: Held[] = [];
  let active = true;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    const now = Date.now();
    while (held.length > 0 && held[0]!.due <= now) {
      const next = held.shift()!;
      if (!socket.destroyed) (original as (...args: unknown[]) => boolean).call(socket, next.chunk, next.encoding, next.callback);
    }
    if (held.length > 0) timer = setTimeout(flush, Math.max(1, held[0]!.due - now));
    else if (!active) restore();
  };
  const restore = (): void => {
    if ((socket as { write: unknown }).write !== original) delete (socket as { write?: unknown }).write;
  };
  // An own property shadows Socket.prototype.write; deleting it restores the original.
  (socket as { write: unknown }).write = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    held.push({ chunk, encoding, callback, due: active ? Date.now() + ms : Date.now() });
    timer ??= setTimeout(flush, active ? ms : 0);
    return true;
  };
  socket.once('close', () => {
    if (timer !== undefined) clearTimeout(timer);
    held.length = 0;
  });
  return () => {
    active = false;
    if (held.length === 0) restore();
  };
}

export interface StreamFaultHost {
  readonly connectionId: string;
  readonly protocol: DeviceProtocol;
  readonly socket: Socket | undefined;
  deviceIds(): readonly string[];
  /** Ends the connection without a goodbye. */
  destroy(): void;
  /** Ends it the way the protocol says goodbye (MQTT: flush, then FIN). */
  shutdown?(): void;
}

/** MQTT and HTTPS connections: KillTcp everywhere, ShutDownMqtt on MQTT; the AMQP faults do not apply. */
export function streamFaultTarget(host: StreamFaultHost): FaultTarget {
  const mqtt = host.protocol === 'mqtt' || host.protocol === 'mqtt-ws';
  return {
    connectionId: host.connectionId,
    protocol: host.protocol,
    socket: host.socket,
    deviceIds: () => host.deviceIds(),
    kill(type) {
      if (type === 'KillTcp') {
        host.destroy();
        return 'transport destroyed';
      }
      if (type === 'ShutDownMqtt' && mqtt && host.shutdown) {
        host.shutdown();
        return 'connection shut down cleanly';
      }
      return undefined;
    },
  };
}
