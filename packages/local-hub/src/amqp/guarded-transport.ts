// What rhea is handed instead of the raw transport: a minimal socket (the shape rhea's own
// WebSocket wrapper has) whose 'data' comes through the frame guard. The TLS port and
// AMQP-over-WebSocket go through the same object, so both are guarded alike.
import type { TLSSocket } from 'node:tls';
import type { WebSocket } from 'ws';
import type { AmqpFrameGuard, GuardViolation } from './frame-guard.ts';

/** The transport under the guard: a TLS socket or a WebSocket, reduced to what rhea needs. */
export interface RawTransport {
  onData(fn: (chunk: Buffer) => void): void;
  /** The peer ended, or the transport closed for any reason; called at most once. */
  onGone(fn: () => void): void;
  onError(fn: (error: Error) => void): void;
  write(data: Buffer): void;
  end(): void;
  destroy(): void;
  readonly id: string;
}

type Handler = (arg?: unknown) => void;

/** The socket rhea sees: on/write/end/destroy, as in rhea's lib/ws.js wrapper. */
export interface RheaSocket {
  on(event: string, handler: Handler): void;
  write(data: Buffer): void;
  end(): void;
  destroy(): void;
  removeAllListeners(event: string): void;
  get_id_string(): string;
}

export function tlsTransport(socket: TLSSocket): RawTransport {
  return {
    id: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`,
    onData: (fn) => socket.on('data', fn),
    onGone: (fn) => {
      let called = false;
      const once = (): void => {
        if (called) return;
        called = true;
        fn();
      };
      socket.once('end', once);
      // A destroyed socket emits 'close' without 'end'; rhea must hear of it either way.
      socket.once('close', once);
    },
    onError: (fn) => socket.on('error', fn),
    write: (data) => {
      if (!socket.destroyed) socket.write(data);
    },
    end: () => socket.end(),
    destroy: () => socket.destroy(),
  };
}

function toBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data as Buffer[]);
  if (data instanceof ArrayBuffer) return Buffer.from(new Uint8Array(data));
  return Buffer.from(String(data));
}

export function wsTransport(ws: WebSocket, id: string): RawTransport {
  return {
    id,
    onData: (fn) => ws.on('message', (data: unknown) => fn(toBuffer(data))),
    onGone: (fn) => ws.once('close', () => fn()),
    onError: (fn) => ws.on('error', fn),
    write: (data) => {
      if (ws.readyState === ws.OPEN) ws.send(data, { binary: true });
    },
    end: () => ws.close(),
    destroy: () => ws.terminate(),
  };
}

export interface GuardedSocketHooks {
  /** The guard refused the stream; nothing more reaches rhea. */
  refused(violation: GuardViolation): void;
}

/**
 * Feeds rhea only whole units the guard let through. While a SASL outcome is pending the guard
 * may ask to wait: rhea writes that outcome in a microtask, so one turn of the event loop is
 * enough, and a second ask is answered as rhea itself would read the bytes.
 */
export function guardedSocket(raw: RawTransport, guard: AmqpFrameGuard, hooks: GuardedSocketHooks): RheaSocket {
  const handlers = new Map<string, Handler[]>();
  const emit = (event: string, arg?: unknown): void => {
    for (const handler of handlers.get(event) ?? []) handler(arg);
  };
  let stopped = false;
  let waiting = false;
  let ended = false;

  const drain = (mayWait: boolean): void => {
    if (stopped) return;
    const units: Buffer[] = [];
    let bytes = 0;
    for (;;) {
      const step = guard.next(mayWait);
      if (step.kind === 'unit') {
        units.push(step.bytes);
        bytes += step.bytes.length;
        mayWait = true;
        continue;
      }
      if (units.length > 0) emit('data', units.length === 1 ? units[0] : Buffer.concat(units, bytes));
      if (stopped) return;
      if (step.kind === 'refuse') {
        stopped = true;
        hooks.refused(step.violation);
      } else if (step.kind === 'wait') {
        waiting = true;
        setImmediate(() => {
          waiting = false;
          drain(false);
        });
      }
      return;
    }
  };

  raw.onData((chunk) => {
    if (stopped) return;
    guard.push(chunk);
    if (!waiting) drain(true);
  });
  // rhea treats 'error' and 'end' alike (both end the connection); it must hear only one.
  raw.onError((error) => {
    stopped = true;
    if (ended) return;
    ended = true;
    emit('error', error);
  });
  raw.onGone(() => {
    stopped = true;
    if (ended) return;
    ended = true;
    emit('end');
  });

  return {
    on(event, handler) {
      const list = handlers.get(event) ?? [];
      list.push(handler);
      handlers.set(event, list);
    },
    write(data) {
      guard.observeOutbound(data);
      raw.write(data);
    },
    end: () => raw.end(),
    destroy: () => raw.destroy(),
    removeAllListeners(event) {
      handlers.delete(event);
    },
    get_id_string: () => raw.id,
  };
}
