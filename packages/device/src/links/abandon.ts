// Ending an Azure client's connection without the SDK's cooperation. Over a network that drops
// every packet the SDK's own teardown waits for replies that cannot come: azure-iot-amqp-base
// defers a disconnect until a connect that never finishes (forever), mqtt.js waits for the
// peer's FIN after its DISCONNECT. What bounds connect() and close() is destroying the sockets
// under the client, with an error, so every layer above hears that the connection is gone and
// settles its own callbacks and timers.
import type { Agent } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Protocol } from '@switchyard/profile';
import type { Clock } from '@switchyard/time';
import { SilentSocketWatch } from './silent-sockets.ts';

/** The sockets one Azure client opened through agents (WebSockets, HTTPS). */
export class SocketSet {
  readonly #sockets = new Set<Duplex>();

  /** Records every connection `agent` creates from now on. */
  watch(agent: Agent): void {
    const original = (agent as unknown as { createConnection: (...args: unknown[]) => Duplex }).createConnection;
    (agent as unknown as { createConnection: (...args: unknown[]) => Duplex }).createConnection = (...args: unknown[]) => {
      const socket = original.apply(agent, args);
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      return socket;
    };
  }

  /**
   * Destroys, with `reason(ms)`, every socket of `agent` (from now on) that passes no byte for
   * `silentMs`, in use or idle in the pool (silent-sockets.ts: no timer per request).
   */
  destroyWhenSilent(agent: Agent, silentMs: number, reason: (ms: number) => Error, clock?: Clock): void {
    if (!(silentMs > 0)) return;
    const watch = new SilentSocketWatch(silentMs, reason, clock);
    const original = (agent as unknown as { createConnection: (...args: unknown[]) => Duplex }).createConnection;
    (agent as unknown as { createConnection: (...args: unknown[]) => Duplex }).createConnection = (...args: unknown[]) => {
      const socket = original.apply(agent, args);
      watch.add(socket);
      return socket;
    };
  }

  get size(): number {
    return this.#sockets.size;
  }

  destroyAll(reason: Error): void {
    for (const socket of this.#sockets) socket.destroy(reason);
    this.#sockets.clear();
  }
}

type Destroyable = { destroy?: unknown; destroyed?: unknown };

function destroy(socket: Destroyable | undefined, reason: Error): boolean {
  if (socket === undefined || typeof socket.destroy !== 'function' || socket.destroyed === true) return false;
  (socket.destroy as (err: Error) => void).call(socket, reason);
  return true;
}

/**
 * Destroys the TCP-level socket the transport dials itself (MQTT: mqtt.js's stream; AMQP: rhea's
 * socket; over WebSockets rhea holds a wrapper without destroy, so those go through the agent's
 * SocketSet). A transport without these private fields is left as it is; the tests of
 * test/bounded-*.test.ts fail if an SDK upgrade moves them.
 */
export function destroyTransportSocket(protocol: Protocol, transport: unknown, reason: Error): boolean {
  const t = transport as { _mqtt?: { _mqttClient?: { stream?: Destroyable } }; _amqp?: { _rheaConnection?: { socket?: Destroyable } } } | undefined;
  if (protocol === 'mqtt' || protocol === 'mqtt-ws') return destroy(t?._mqtt?._mqttClient?.stream, reason);
  if (protocol === 'amqp' || protocol === 'amqp-ws') return destroy(t?._amqp?._rheaConnection?.socket, reason);
  return false;
}

/** The error the abandoned sockets are destroyed with; the SDK reports it as a network failure. */
export function abandonedError(protocol: Protocol, why: string): Error {
  return Object.assign(new Error(`${protocol} connection abandoned: ${why}`), { code: 'ECONNABORTED' });
}

/**
 * rhea hands an error to its container when the connection it came from has no listener left,
 * and a container without an 'error' listener throws it, crashing the process. azure-iot-amqp-base
 * stops listening to a connection once it gave it up; a connection rhea dropped as idle still
 * reads what the network delivers late (a detach the hub sent before the silence ends), and
 * "Detach already received" from there brought the process down. Those errors are about a
 * connection nobody uses any more.
 */
export function swallowUnheardRheaErrors(transport: unknown): void {
  const container = (transport as { _amqp?: { _rheaContainer?: { on?: unknown } } } | undefined)?._amqp?._rheaContainer;
  if (typeof container?.on !== 'function') return;
  (container as { on(event: string, fn: () => void): void }).on('error', () => undefined);
}
