// HTTPS keep-alive sockets that went silent, found without a timer per request. The SDK sets no
// timeout on its requests, so a request caught on a reused socket whose network went silent (a
// NAT or cell change, the hub's blackhole fault) would hold that socket until close(). An
// https.Agent `timeout` bounds it, but Node then tears down and re-creates the socket's timer and
// adds and removes a 'timeout' listener on every request (listenSocketTimeout, responseKeepAlive,
// keepSocketAlive): a Timeout object, a bound function and a timer-list insert per message that
// the raw client never pays (bench/README.md, "Where the CPU went"). Here one timer per client
// wakes a few times per period and compares each socket's byte counters with the last look.
import type { Duplex } from 'node:stream';
import { systemClock, type Clock, type TimerHandle } from '@switchyard/time';

/** What a net.Socket (and so a TLSSocket) counts; a socket without them is never called silent. */
interface Counted {
  bytesRead?: number;
  bytesWritten?: number;
}

interface Seen {
  bytes: number;
  /** When the counters last moved (or the socket was added). */
  since: number;
}

/** Looks per period: a silent socket is destroyed between `silentMs` and 1.25 × `silentMs` after its last byte. */
const LOOKS_PER_PERIOD = 4;

function bytesOf(socket: Counted): number {
  return (socket.bytesRead ?? 0) + (socket.bytesWritten ?? 0);
}

export class SilentSocketWatch {
  readonly #sockets = new Map<Duplex, Seen>();
  readonly #step: number;
  #timer: TimerHandle | undefined;

  /**
   * @param silentMs how long a socket may pass no byte either way, in use or idle in the pool
   * @param reason the error a silent socket is destroyed with, so its request fails as a network failure
   */
  constructor(
    readonly silentMs: number,
    readonly reason: (ms: number) => Error,
    readonly clock: Clock = systemClock,
  ) {
    this.#step = Math.max(1, Math.ceil(silentMs / LOOKS_PER_PERIOD));
  }

  add(socket: Duplex): void {
    this.#sockets.set(socket, { bytes: bytesOf(socket as Counted), since: this.clock.now() });
    socket.once('close', () => this.#sockets.delete(socket));
    if (this.#timer === undefined) this.#arm();
  }

  get size(): number {
    return this.#sockets.size;
  }

  #arm(): void {
    // Like a socket's own timeout, it must not keep the process alive by itself.
    this.#timer = this.clock.setTimeout(this.#look, this.#step);
    this.#timer.unref();
  }

  readonly #look = (): void => {
    this.#timer = undefined;
    const now = this.clock.now();
    for (const [socket, seen] of this.#sockets) {
      const bytes = bytesOf(socket as Counted);
      if (bytes !== seen.bytes) {
        seen.bytes = bytes;
        seen.since = now;
      } else if (now - seen.since >= this.silentMs) {
        this.#sockets.delete(socket);
        socket.destroy(this.reason(this.silentMs));
      }
    }
    if (this.#sockets.size > 0) this.#arm();
  };
}
