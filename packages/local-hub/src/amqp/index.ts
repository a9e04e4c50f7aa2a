// The AMQP front-end: takes sockets hub.ts has already accepted (TLS, or WebSocket upgraded with
// subprotocol AMQPWSB10) and speaks IoT Hub's AMQP device protocol on them through one rhea
// container. All hub semantics are the core's; this module maps links and messages to core calls.
import { randomUUID } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import rhea from 'rhea';
import type { Connection, ConnectionOptions, Container, EventContext } from 'rhea';
import type { WebSocket } from 'ws';
import type { FrontEnd, HubCore, HubLogger } from '../core/types.ts';
import { amqpFaultTarget } from '../faults/amqp.ts';
import type { FaultInjector } from '../faults/injector.ts';
import { systemClock, type Clock } from '@switchyard/time';
import type { AmqpProtocol } from './connection.ts';
import { AmqpConnectionHandler, describe } from './connection.ts';
import { dropStrayFrames } from './stray-frames.ts';
import { AmqpFrameGuard, type FrameGuardLimits, type GuardViolation } from './frame-guard.ts';
import { guardedSocket, tlsTransport, wsTransport, type RawTransport } from './guarded-transport.ts';
import { DEFAULT_LIMITS } from '../limits.ts';
import type { AmqpRoute } from './route.ts';
import type { ServiceEndpoints } from './service-links.ts';

export type { AmqpRoute, AmqpConnectionRoute } from './route.ts';
export { parseAddress, decideAttach, checkTelemetryTo } from './address.ts';
export { parsePutToken, putTokenReply } from './cbs.ts';
export { telemetryFromAmqp, c2dToAmqp, decodeBatch, BATCH_MESSAGE_FORMAT } from './mapping.ts';

export interface AmqpFrontEndDeps {
  core: HubCore;
  logger: HubLogger;
  /** The hub's clock (the core's), against which token expiry is judged and timed; the system clock by default. */
  clock?: Clock;
  /** How long a new transport may stay silent before its AMQP open; default 30 s. */
  openTimeoutMs?: number;
  /** Fault injection (src/faults/); none by default. */
  faults?: FaultInjector;
  /** How long a connection may go without an authorized identity (CBS or X.509); default: no limit. */
  preAuthTimeoutMs?: number;
  /** Frame, message and decoding limits checked before rhea reads a byte; defaults as in limits.ts. */
  frameLimits?: Partial<FrameGuardLimits>;
  /** An endpoint sharing the listener, such as the Event Hubs-compatible one (see route.ts). */
  route?: AmqpRoute;
  /** IoT Hub's service endpoints (azure-iothub's Amqp transport); without them the front-end serves devices only. */
  service?: ServiceEndpoints;
}

export interface AmqpFrontEnd extends FrontEnd {
  handleTlsSocket(socket: TLSSocket): void;
  /** `socket` is the TLS socket under the WebSocket, for network faults. */
  handleWebSocket(ws: WebSocket, socket?: Socket): void;
  /** Open AMQP connections and the identities each has authorized (for diagnostics and tests). */
  connections(): Array<{ connectionId: string; protocol: AmqpProtocol; deviceIds: string[] }>;
}

const DEFAULT_OPEN_TIMEOUT_MS = 30_000;
// A refused peer gets the hub's close frame; one that does not answer it is cut after this.
const REFUSAL_GRACE_MS = 1_000;
// IoT Hub's advertised idle timeout; rhea sends heartbeats at half the peer's value and closes a
// connection that stays silent for twice ours.
const IDLE_TIMEOUT_MS = 240_000;

/**
 * rhea 3 has no typed way to serve an already-accepted TLS socket: `container.listen` does exactly
 * `new Connection(options, container).accept(socket)`, and `Connection.accept` is present at runtime
 * but missing from the typings. This is the one place that relies on it.
 */
function acceptSocket(container: Container, options: ConnectionOptions, socket: Socket): Connection {
  const connection = container.create_connection(options) as Connection & { accept(socket: Socket): Connection };
  return connection.accept(socket);
}

/**
 * rhea 3.0.5 re-arms its idle timer (twice the advertised idle timeout: 8 minutes here) while it
 * reads a peer's final close frame, after the close has been dispatched, and clears it only if the
 * socket's close event comes later. When it came first, that timer keeps the process alive long
 * after hub.close(). Once rhea has finished with the frame, the timers of a closed connection
 * have nothing left to guard.
 */
function releaseIdleTimers(connection: Connection | undefined): void {
  if (connection === undefined) return;
  const timers = connection as unknown as { heartbeat_in?: ReturnType<typeof setTimeout>; heartbeat_out?: ReturnType<typeof setTimeout> };
  setImmediate(() => {
    if (timers.heartbeat_in !== undefined) clearTimeout(timers.heartbeat_in);
    if (timers.heartbeat_out !== undefined) clearTimeout(timers.heartbeat_out);
    timers.heartbeat_in = undefined;
    timers.heartbeat_out = undefined;
  });
}

/** DER of the TLS client certificate, when the peer presented one. */
function peerCertificateOf(socket: Socket | undefined): Buffer | undefined {
  const tls = socket as Partial<TLSSocket> | undefined;
  if (typeof tls?.getPeerCertificate !== 'function') return undefined;
  const peer = tls.getPeerCertificate();
  return peer && Buffer.isBuffer(peer.raw) && peer.raw.length > 0 ? peer.raw : undefined;
}

export function createAmqpFrontEnd(deps: AmqpFrontEndDeps): AmqpFrontEnd {
  const { core, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const openTimeoutMs = deps.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
  const frameLimits: FrameGuardLimits = {
    maxFrameBytes: deps.frameLimits?.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes,
    maxMessageBytes: deps.frameLimits?.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes,
    maxArrayElements: deps.frameLimits?.maxArrayElements ?? DEFAULT_LIMITS.maxArrayElements,
  };
  // autoaccept off: telemetry is accepted only after the core took it, so HubErrors become rejections.
  const container = rhea.create_container({ id: `local-hub-${randomUUID()}`, autoaccept: false });
  const handlers = new Map<string, AmqpConnectionHandler>();
  /** Per connection: its rhea Connection once open, and how to forget its fault target. */
  const faultState = new Map<string, { connection: Connection | undefined; forget: () => void }>();
  let closing = false;

  const handlerOf = (ctx: EventContext): AmqpConnectionHandler | undefined => {
    const id = ctx.connection?.options?.id;
    return typeof id === 'string' ? handlers.get(id) : undefined;
  };

  /** Every rhea event runs here: a throw closes that one connection and never reaches rhea. */
  const on = (event: string, fn: (h: AmqpConnectionHandler, ctx: EventContext) => void): void => {
    container.on(event, (ctx: EventContext) => {
      const handler = handlerOf(ctx);
      if (!handler || handler.isEnded) return;
      try {
        fn(handler, ctx);
        if (preAuthTimers.has(handler.id) && handler.isAuthenticated()) clearPreAuth(handler.id);
      } catch (e) {
        logger.warn('amqp event handler failed; closing the connection', { connectionId: handler.id, event, error: describe(e) });
        try {
          ctx.connection.close({ condition: 'amqp:internal-error', description: 'internal error' });
        } catch {
          handler.destroyTransport();
        }
      }
    });
  };

  on('connection_open', (h, ctx) => {
    const state = faultState.get(h.id);
    if (state) state.connection = ctx.connection;
    const timer = openTimers.get(h.id);
    if (timer) clearTimeout(timer);
    openTimers.delete(h.id);
  });
  on('sender_open', (h, ctx) => ctx.sender && h.onSenderOpen(ctx.sender));
  on('receiver_open', (h, ctx) => ctx.receiver && h.onReceiverOpen(ctx.receiver));
  on('sender_close', (h, ctx) => ctx.sender && h.onLinkClosed(ctx.sender));
  on('receiver_close', (h, ctx) => ctx.receiver && h.onLinkClosed(ctx.receiver));
  on('message', (h, ctx) => ctx.receiver && h.onMessage(ctx, ctx.receiver));
  on('sendable', (h, ctx) => ctx.sender && h.onSendable(ctx.sender));
  on('accepted', (h, ctx) => h.onC2DOutcome(ctx.delivery, 'complete'));
  // rhea reports `modified` as `released` (treat_modified_as_released), which IoT Hub treats as abandon.
  on('released', (h, ctx) => h.onC2DOutcome(ctx.delivery, 'abandon'));
  on('rejected', (h, ctx) => h.onC2DOutcome(ctx.delivery, 'reject'));
  // Errors carried by detach/end/close frames are the peer's business; listening keeps rhea from
  // escalating them to an unhandled 'error' event.
  for (const event of ['sender_error', 'receiver_error', 'session_error', 'connection_error']) {
    container.on(event, (ctx: EventContext) => {
      const handler = handlerOf(ctx);
      logger.info(`amqp peer reported ${event}`, { connectionId: handler?.id, error: describe(ctx.error ?? ctx.sender?.error ?? ctx.receiver?.error ?? ctx.session?.error) });
    });
  }
  const openTimers = new Map<string, ReturnType<typeof setTimeout>>();
  const preAuthTimers = new Map<string, ReturnType<typeof setTimeout>>();
  const clearPreAuth = (id: string): void => {
    const timer = preAuthTimers.get(id);
    if (timer) clearTimeout(timer);
    preAuthTimers.delete(id);
  };
  const teardown = (handler: AmqpConnectionHandler | undefined): void => {
    if (!handler) return;
    clearPreAuth(handler.id);
    const openTimer = openTimers.get(handler.id);
    if (openTimer) clearTimeout(openTimer);
    openTimers.delete(handler.id);
    handlers.delete(handler.id);
    faultState.get(handler.id)?.forget();
    faultState.delete(handler.id);
    try {
      handler.end();
    } catch (e) {
      logger.warn('amqp connection teardown failed', { connectionId: handler.id, error: describe(e) });
    }
  };
  // rhea reports 'disconnected' only for transports that drop without a close handshake; a clean
  // close (the SDK's client.close(), or the peer answering ours) shows up as 'connection_close'.
  container.on('connection_close', (ctx: EventContext) => {
    teardown(handlerOf(ctx));
    releaseIdleTimers(ctx.connection);
  });
  container.on('disconnected', (ctx: EventContext) => {
    teardown(handlerOf(ctx));
    releaseIdleTimers(ctx.connection);
  });
  // Malformed input: rhea ends that socket itself after dispatching these; without a listener an
  // EventEmitter 'error' would throw and take the whole hub down.
  container.on('protocol_error', (err: unknown) => logger.warn('amqp protocol error; connection closed', { error: describe(err) }));
  container.on('error', (err: unknown) => logger.warn('amqp error', { error: describe(err) }));

  const register = (protocol: AmqpProtocol, peerCertificate: Buffer | undefined, destroy: () => void, socket: Socket | undefined): { id: string; options: ConnectionOptions } => {
    const id = `${protocol}-${randomUUID()}`;
    const handler = new AmqpConnectionHandler(id, protocol, { core, logger, clock, faults: deps.faults, route: deps.route, service: deps.service }, peerCertificate, destroy);
    handlers.set(id, handler);
    if (deps.faults) {
      const state: { connection: Connection | undefined; forget: () => void } = { connection: undefined, forget: () => undefined };
      state.forget = deps.faults.register(amqpFaultTarget({
        connectionId: id,
        protocol,
        socket,
        deviceIds: () => handler.authorizedDevices(),
        links: (deviceId) => handler.linksOf(deviceId),
        connection: () => state.connection,
        destroyTransport: () => handler.destroyTransport(),
      }));
      faultState.set(id, state);
    }
    // rhea hears only 'end' and 'error'; a socket destroyed on this side (a fault, a reset) emits
    // neither, and its identities would linger as ghosts that swallow method calls.
    socket?.once('close', () => teardown(handlers.get(id)));
    // A socket that never opens AMQP (port scanners, stuck clients) would otherwise live forever:
    // rhea's idle timeout only starts once the AMQP header has arrived.
    const openTimer = setTimeout(() => {
      logger.info('amqp connection closed: no AMQP open in time', { connectionId: id });
      handler.destroyTransport();
      teardown(handler);
    }, openTimeoutMs);
    openTimer.unref();
    openTimers.set(id, openTimer);
    if (deps.preAuthTimeoutMs !== undefined) {
      const preAuthTimer = setTimeout(() => {
        logger.info('amqp connection closed: not authenticated in time', { connectionId: id });
        handler.destroyTransport();
        teardown(handler);
      }, deps.preAuthTimeoutMs);
      preAuthTimer.unref();
      preAuthTimers.set(id, preAuthTimer);
    }
    return { id, options: { id, idle_time_out: IDLE_TIMEOUT_MS, max_frame_size: frameLimits.maxFrameBytes } as ConnectionOptions };
  };

  /** Hands rhea a guarded view of `raw`; a refusal closes the connection with the guard's condition. */
  const acceptGuarded = (raw: RawTransport, id: string, options: ConnectionOptions): void => {
    const accepted: { connection?: Connection } = {};
    const refused = (violation: GuardViolation): void => {
      logger.warn('amqp input refused; connection closed', { connectionId: id, condition: violation.condition, why: violation.description });
      const timer = setTimeout(() => raw.destroy(), REFUSAL_GRACE_MS);
      timer.unref();
      // Once rhea has answered the peer's open it can say why in a close frame; before that the
      // only honest answer is to drop the transport.
      const connection = accepted.connection;
      if (connection?.is_open() && connection.is_remote_open()) {
        try {
          connection.close({ condition: violation.condition, description: violation.description });
          setImmediate(() => raw.end());
          return;
        } catch {
          // fall through to destroy
        }
      }
      raw.destroy();
    };
    const connection = acceptSocket(container, options, guardedSocket(raw, new AmqpFrameGuard(frameLimits), { refused }) as unknown as Socket);
    accepted.connection = connection;
    // Logged once per connection: a peer tearing down sends a few; a hostile one, any number.
    let reported = false;
    dropStrayFrames(connection, (frame) => {
      if (reported) return;
      reported = true;
      logger.info(`amqp ${frame.performative} for a ${frame.gone} that is gone dropped`, { connectionId: id, channel: frame.channel, ...(frame.handle === undefined ? {} : { handle: frame.handle }) });
    });
  };

  return {
    handleTlsSocket(socket: TLSSocket): void {
      if (closing) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      const { id, options } = register('amqp', peerCertificateOf(socket), () => socket.destroy(), socket);
      try {
        acceptGuarded(tlsTransport(socket), id, options);
      } catch (e) {
        logger.warn('amqp accept failed', { connectionId: id, error: describe(e) });
        socket.destroy();
        teardown(handlers.get(id));
      }
    },

    handleWebSocket(ws: WebSocket, socket?: Socket): void {
      if (closing) {
        ws.terminate();
        return;
      }
      // The WebSocket rides on the HTTPS listener's TLS socket, which asked for a client certificate:
      // an X.509 device proves itself there exactly as on the AMQP port.
      const { id, options } = register('amqp-ws', peerCertificateOf(socket), () => ws.terminate(), socket);
      try {
        acceptGuarded(wsTransport(ws, id), id, options);
      } catch (e) {
        logger.warn('amqp websocket accept failed', { connectionId: id, error: describe(e) });
        ws.terminate();
        teardown(handlers.get(id));
      }
    },

    connections() {
      return [...handlers.values()].map((h) => ({ connectionId: h.id, protocol: h.protocol, deviceIds: h.authorizedDevices() }));
    },

    async close(): Promise<void> {
      closing = true;
      // Cut every transport rather than sending close frames: to a device this looks like a hub
      // that died or a network that dropped, which the Azure SDK recovers from at once. A graceful
      // close (forced detach or connection close) leaves azure-iot-amqp-base 2.5 wedged in its
      // 'disconnecting' state for about 45 s before it reconnects.
      for (const handler of [...handlers.values()]) {
        handler.destroyTransport();
        teardown(handler);
      }
    },
  };
}
