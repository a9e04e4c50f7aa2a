// The TLS sockets a process dials, seen where every client makes them (tls.connect: the https
// agents of the HTTPS and WebSocket transports, ws, rhea and mqtt.js over TLS), for tests that
// must show a client destroyed a socket rather than leaving it to the peer.
import tls, { type ConnectionOptions, type TLSSocket } from 'node:tls';

export interface TlsSocketWatch {
  /** Sockets dialled to `port` since the watch began, oldest first. */
  readonly sockets: TLSSocket[];
  /** Those not destroyed yet. */
  open(): TLSSocket[];
  stop(): void;
}

/** Records every TLS socket dialled to `port` until stop(). One watch at a time per process. */
export function watchTlsSockets(port: () => number): TlsSocketWatch {
  const original = tls.connect;
  const sockets: TLSSocket[] = [];
  (tls as { connect: typeof tls.connect }).connect = ((...args: unknown[]) => {
    const socket = (original as (...a: unknown[]) => TLSSocket).apply(tls, args);
    const options = args.find((a): a is ConnectionOptions => typeof a === 'object' && a !== null);
    const dialled = options?.port ?? (typeof args[0] === 'number' ? args[0] : undefined);
    if (Number(dialled) === port()) sockets.push(socket);
    return socket;
  }) as typeof tls.connect;
  return {
    sockets,
    open: () => sockets.filter((s) => !s.destroyed),
    stop: () => {
      (tls as { connect: typeof tls.connect }).connect = original;
    },
  };
}
