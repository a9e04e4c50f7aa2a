// Limits on what an unauthenticated peer can hold at the TCP and TLS layers, applied to all three
// listeners: a cap on open connections per source address, and an absolute deadline for the TLS
// handshake. Node's own handshakeTimeout is an inactivity timer (a peer trickling a byte at a time
// resets it), and when it fires Node only reports 'tlsClientError': with a listener attached the
// socket stays open, so idle handshakes used to pile up until file descriptors ran out.
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { HubLogger } from '../core/types.ts';

export interface AcceptLimits {
  tlsHandshakeTimeoutMs: number;
  maxConnectionsPerSource: number;
}

/** IPv4-mapped IPv6 and plain IPv4 name the same source. */
export function sourceOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export class AcceptGuard {
  readonly #perSource = new Map<string, number>();
  /** Raw sockets still in their handshake, by "address:port" (a TLS socket reports the same). */
  readonly #handshaking = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>();
  #refusedTotal = 0;
  #timedOutTotal = 0;

  constructor(private readonly limits: AcceptLimits, private readonly logger: HubLogger) {}

  /** Open connections from `address` right now. */
  connectionsFrom(address: string): number {
    return this.#perSource.get(sourceOf(address) ?? address) ?? 0;
  }

  get stats(): { refusedOverCap: number; handshakeTimeouts: number; handshaking: number } {
    return { refusedOverCap: this.#refusedTotal, handshakeTimeouts: this.#timedOutTotal, handshaking: this.#handshaking.size };
  }

  /** Applies the limits to `server`, whose raw connections are still to complete TLS. */
  attach(server: NetServer, listener: string): void {
    server.on('connection', (socket: Socket) => this.#onConnection(socket, listener));
    server.on('secureConnection', (socket: TLSSocket) => this.#handshakeDone(socket));
    // Timeouts, resets and garbage all land here; the peer is gone either way, so the socket goes too.
    server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      this.logger.info('tls handshake failed', { listener, error: error.message });
      this.#handshakeDone(socket);
      socket.destroy();
    });
  }

  #onConnection(socket: Socket, listener: string): void {
    const source = sourceOf(socket.remoteAddress);
    if (source === undefined) {
      socket.destroy();
      return;
    }
    const open = this.#perSource.get(source) ?? 0;
    if (open >= this.limits.maxConnectionsPerSource) {
      this.#refusedTotal++;
      // Logged once per burst rather than per socket, so a flood cannot flood the log as well.
      if (this.#refusedTotal === 1 || this.#refusedTotal % 1000 === 0) {
        this.logger.warn('connection refused: too many from one source', { listener, source, open, limit: this.limits.maxConnectionsPerSource, refusedSoFar: this.#refusedTotal });
      }
      socket.destroy();
      return;
    }
    this.#perSource.set(source, open + 1);
    const key = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`;
    const timer = setTimeout(() => {
      this.#timedOutTotal++;
      this.#handshaking.delete(key);
      this.logger.info('tls handshake not finished in time; connection closed', { listener, source, timeoutMs: this.limits.tlsHandshakeTimeoutMs });
      socket.destroy();
    }, this.limits.tlsHandshakeTimeoutMs);
    timer.unref();
    this.#handshaking.set(key, { socket, timer });
    socket.once('close', () => {
      const entry = this.#handshaking.get(key);
      if (entry?.socket === socket) {
        clearTimeout(entry.timer);
        this.#handshaking.delete(key);
      }
      const left = (this.#perSource.get(source) ?? 1) - 1;
      if (left <= 0) this.#perSource.delete(source);
      else this.#perSource.set(source, left);
    });
  }

  #handshakeDone(socket: TLSSocket): void {
    const key = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`;
    const entry = this.#handshaking.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.#handshaking.delete(key);
  }

  /** Clears every pending handshake timer (the hub is closing). */
  close(): void {
    for (const { timer } of this.#handshaking.values()) clearTimeout(timer);
    this.#handshaking.clear();
  }
}
