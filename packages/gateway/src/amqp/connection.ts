// One AMQP connection (TLS or WebSocket) shared by many device identities. One file because it
// is one state machine (open, CBS, sessions, loss, close) over one rhea connection; the link
// bookkeeping it shares with identities is apart, in link-tracker.ts.
//
// Layout on the wire: a control session that carries the one CBS link pair of the connection
// (every identity's put-token goes through it). An identity's links then go either
// - on a session of its own (`beginSession`, as the C# SDK does): link handles, flow control and
//   teardown of one identity stay apart from the others, and ending an identity is ending its
//   session; or
// - on the control session itself (`joinSharedSession`, as the C SDK does: one session for the
//   CBS pair and every device's links). An identity is then the set of links it opened, and
//   ending it detaches those. It saves a session per identity (rhea's Session, its delivery
//   buffers and frames: about half of an idle identity's heap) at the price of sharing the
//   session's windows: at most 2048 unsettled deliveries each way across the connection.
import { EventEmitter } from 'node:events';
import type { Agent } from 'node:https';
import { isIP } from 'node:net';
import type { AmqpError, Connection, ConnectionOptions, EventContext, Session } from 'rhea';
import WebSocket from 'ws';
// Not re-exported by the package index; the same agent the stock client uses, so the put-token
// exchange on the wire is the SDK's own.
import amqpCbs from 'azure-iot-amqp-base/dist/amqp_cbs.js';
// The Azure packages are CommonJS whose exports Node's ESM loader cannot name statically.
import azureCommon from 'azure-iot-common';
import { sdkRhea } from './sdk-rhea.ts';
import { createLinkTracker, trackLinks, type LinkTracker, type PeerDetach, type PeerDetachListener } from './link-tracker.ts';

export type AmqpTransportKind = 'tls' | 'wss';

export interface AmqpEndpoint {
  transport: AmqpTransportKind;
  /** Where to dial (may differ from the hub name, e.g. a local hub on loopback). */
  host: string;
  port: number;
  /** The IoT Hub host name: the AMQP open `hostname`, and the TLS server name when it is not an IP. */
  hubHostName: string;
  ca?: string | Buffer | Array<string | Buffer>;
  /** WebSocket only: an agent for proxies or redirects. */
  webSocketAgent?: Agent;
}

export interface SharedConnectionOptions {
  /** Sent as `com.microsoft:client-version` on every link unless the first identity brings the SDK's own. */
  userAgent: string;
  /** Bound on TCP + TLS + AMQP open + CBS attach. */
  openTimeoutMs: number;
  /** Bound on waiting for the peer to answer a session end or link detach. */
  closeTimeoutMs: number;
  /**
   * Sent as the open's idle timeout, so the hub writes at least every half of it; a connection
   * that hears nothing for this long is dropped as lost (a half-open connection).
   */
  idleTimeoutMs: number;
  /** The silence watch's clock; the system clock unless a test steps it. */
  clock?: Clock;
}

/**
 * An operation deadline shorter than this says nothing about the connection: a healthy hub may
 * take that long to answer, and an idle connection hears nothing between heartbeats anyway.
 */
export const MIN_SILENT_TIMEOUT_MS = 2_000;

// The one vocabulary (@switchyard/device's ConnectionState): a connection is `disconnected` until
// opened and again after it was lost, `connecting` while opening, `connected` while usable.
export type { ConnectionState } from '@switchyard/device/internal';
import { keepWriting, watchSilence, type ConnectionState, type SilenceWatch } from '@switchyard/device/internal';
import { systemClock, type Clock } from '@switchyard/time';

export interface SharedConnectionEvents {
  open: [];
  /** The connection went away without being asked to; every identity on it is disconnected. */
  lost: [error: Error];
}

export interface IdentitySession {
  readonly tracker: LinkTracker;
  /** Ends the session (after closing its links); resolves when the peer answered or on timeout. */
  end(): Promise<void>;
  readonly ended: boolean;
}

const { ClaimsBasedSecurityAgent } = amqpCbs;
type ClaimsBasedSecurityAgent = InstanceType<typeof ClaimsBasedSecurityAgent>;
const azureErrors = azureCommon.errors;

const WEBSOCKET_PATH = '/$iothub/websocket';

export class SharedAmqpConnection extends EventEmitter<SharedConnectionEvents> {
  private connection: Connection | undefined;
  private cbs: ClaimsBasedSecurityAgent | undefined;
  /** The session of the CBS pair, which `joinSharedSession` identities share; set while open. */
  private control: Session | undefined;
  private opening: Promise<void> | undefined;
  private stateValue: ConnectionState = 'disconnected';
  /** Bumped on every open and loss, so late events of an old connection are ignored. */
  private epoch = 0;
  private readonly sessionWatchers = new Set<ManagedSession>();
  /** Identities to tell when the connection drops: a set rather than one 'lost' listener closure each. */
  private readonly lossWatchers = new Set<{ connectionLost(error: Error): void }>();
  /** Waits for the peer (detaches, session ends, the close) that end when the connection goes. */
  private readonly goneWaiters = new Set<() => void>();
  /** WebSocket only: the socket under rhea's wrapper, which has no destroy of its own. */
  private webSocket: WebSocket | undefined;
  /** How long the open connection has read nothing; undefined while none is open. */
  private silence: SilenceWatch | undefined;

  constructor(
    readonly id: string,
    readonly endpoint: AmqpEndpoint,
    private readonly options: SharedConnectionOptions,
  ) {
    super();
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /**
   * Opens the connection, or joins the attempt under way. Rejects with an Azure SDK error.
   * `userAgent` is the SDK's client-version string of the identity asking; the first one wins.
   */
  open(userAgent?: string): Promise<void> {
    if (this.stateValue === 'connected') return Promise.resolve();
    if (this.stateValue === 'closing' || this.stateValue === 'closed') {
      return Promise.reject(new azureErrors.NotConnectedError(`connection ${this.id} is closed`));
    }
    this.opening ??= this.doOpen(userAgent ?? this.options.userAgent).finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private doOpen(userAgent: string): Promise<void> {
    const epoch = ++this.epoch;
    this.stateValue = 'connecting';
    const container = sdkRhea.create_container({ id: `switchyard-gateway-${this.id}` });
    // What azure-iot-amqp-base sets on its container: the client version on every link, no rhea
    // reconnect (the Azure client owns retries), and manual settlement of C2D deliveries.
    const linkDefaults = { properties: { 'com.microsoft:client-version': userAgent }, reconnect: false };
    container.options.sender_options = { ...linkDefaults };
    container.options.receiver_options = { ...linkDefaults, autoaccept: false };
    // The Azure link classes report a peer detach with an error here; the per-session trackers
    // already handle it per identity, so it must not escalate to the connection.
    container.on('azure-iot-amqp-base:error-indicated', () => undefined);
    // rhea raises unhandled link errors on the container; without a listener that would throw.
    container.on('error', () => undefined);

    const connection = container.connect(this.connectionOptions(container));
    this.connection = connection;

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(new azureErrors.TimeoutError(`AMQP connection ${this.id} did not open within ${this.options.openTimeoutMs} ms`)), this.options.openTimeoutMs);
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.epoch === epoch) {
          this.connection = undefined;
          this.silence = undefined;
          this.cbs = undefined;
          this.control = undefined;
          this.stateValue = 'disconnected';
        }
        destroy(connection);
        reject(error);
      };
      const succeed = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.stateValue = 'connected';
        this.emit('open');
        resolve();
      };

      const onGone = (context: EventContext, what: string): void => {
        const error = connectionError(context, what);
        if (!settled) return fail(error);
        this.handleLoss(epoch, error);
      };
      connection.on('disconnected', (context: EventContext) => onGone(context, 'disconnected'));
      connection.on('connection_close', (context: EventContext) => onGone(context, 'closed by the hub'));
      connection.on('connection_error', () => undefined);
      connection.on('error', (context: EventContext) => onGone(context, 'failed'));

      connection.on('connection_open', () => {
        // rhea re-arms a heartbeat Timeout on every frame it writes, every identity's message
        // included; one timer per connection writes the hub's heartbeats instead (amqp-heartbeats.ts).
        keepWriting(connection as never, systemClock);
        // Without an idle timeout of its own, a black-holed connection looked alive for good: its
        // sends timed out and went again into the same dead socket (bench/README.md, soak).
        const silence = watchSilence(connection as never, this.options.idleTimeoutMs, this.options.clock ?? systemClock);
        if (this.epoch === epoch) this.silence = silence;
        const control = connection.create_session();
        // The connection outlives its control session in rhea: left as it was, it stayed open (a
        // socket and rhea's heartbeat timer) after the gateway dialled a new one, and kept the
        // process alive after close() (KillAmqpSession). Dropped as a CBS link cut is.
        control.on('session_close', (context: EventContext) => {
          const error = connectionError(context, 'control session ended by the hub');
          if (!settled) fail(error);
          else if (this.epoch === epoch) this.dropConnection(epoch, error);
          else destroy(connection);
        });
        control.on('session_error', () => undefined);
        control.on('session_open', () => {
          // The CBS pair is connection-wide state: if the hub detaches it, no identity can renew.
          const tracker = trackLinks(control, (detach: PeerDetach) => {
            const error = new azureErrors.NotConnectedError(`the hub detached the CBS link${describe(detach.error)}`);
            if (!settled) fail(error);
            else this.dropConnection(epoch, error);
          });
          const cbs = new ClaimsBasedSecurityAgent(tracker.session);
          cbs.attach((err?: Error) => {
            if (err) return fail(err);
            this.cbs = cbs;
            this.control = control;
            succeed();
          });
        });
        control.begin();
      });
    });
  }

  private connectionOptions(container: ReturnType<typeof sdkRhea.create_container>): ConnectionOptions {
    const { endpoint } = this;
    // An IP gets no SNI (Node warns on IP server names) and is checked against the IP SANs.
    const servername = isIP(endpoint.host) === 0 ? endpoint.host : '';
    const base = { hostname: endpoint.hubHostName, reconnect: false, idle_time_out: this.options.idleTimeoutMs } as ConnectionOptions;
    if (endpoint.transport === 'tls') {
      return { ...base, transport: 'tls', host: endpoint.host, port: endpoint.port, servername, ca: endpoint.ca } as ConnectionOptions;
    }
    const url = `wss://${endpoint.host}:${endpoint.port}${WEBSOCKET_PATH}`;
    const wsOptions: Record<string, unknown> = { ca: endpoint.ca, servername };
    if (endpoint.webSocketAgent) wsOptions.agent = endpoint.webSocketAgent;
    // rhea's wrapper can only close() a WebSocket, a handshake a dead peer never answers; the
    // socket itself is kept so that abandon() can terminate it.
    const track = (ws: WebSocket): void => {
      this.webSocket = ws;
    };
    class TrackedWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        track(this);
      }
    }
    const factory = container.websocket_connect(TrackedWebSocket as never);
    return { ...base, connection_details: factory(url, 'AMQPWSB10', wsOptions) } as unknown as ConnectionOptions;
  }

  /** Sends one identity's token through the connection's CBS link. Rejects with an Azure SDK error. */
  putToken(audience: string, token: string, callback: (err?: Error) => void): void {
    if (this.stateValue !== 'connected' || !this.cbs) {
      callback(new azureErrors.NotConnectedError(`connection ${this.id} is not open`));
      return;
    }
    this.cbs.putToken(audience, token, callback);
  }

  /** AMQP sessions rhea holds on the live connection, the control session included. */
  get sessionCount(): number {
    const channels = (this.connection as unknown as { local_channel_map?: Record<string, unknown> } | undefined)?.local_channel_map;
    return channels ? Object.keys(channels).length : 0;
  }

  get cbsReady(): boolean {
    return this.stateValue === 'connected' && this.cbs !== undefined;
  }

  /**
   * Begins a session for one identity. `listener` hears about every link of that session the hub
   * detaches and about the hub ending the session; one listener object may serve many sessions.
   */
  beginSession(listener: SessionListener): Promise<IdentitySession> {
    const connection = this.connection;
    if (this.stateValue !== 'connected' || !connection) {
      return Promise.reject(new azureErrors.NotConnectedError(`connection ${this.id} is not open`));
    }
    const managed = new ManagedSession(this, connection, connection.create_session(), listener);
    this.sessionWatchers.add(managed);
    return managed.begin(this.options.openTimeoutMs);
  }

  /**
   * Places an identity on the control session (see the top of this file). Its links are watched
   * like those of its own session; the session cannot end for one identity alone, since the hub
   * ending it would end the CBS pair too, which drops the whole connection.
   */
  joinSharedSession(listener: SessionListener): Promise<IdentitySession> {
    const connection = this.connection;
    const control = this.control;
    if (this.stateValue !== 'connected' || !connection || !control) {
      return Promise.reject(new azureErrors.NotConnectedError(`connection ${this.id} is not open`));
    }
    return Promise.resolve(new SharedSessionMember(this, connection, control, listener));
  }

  /** `watcher.connectionLost` is called once, when the connection next drops. */
  watchLoss(watcher: { connectionLost(error: Error): void }): void {
    this.lossWatchers.add(watcher);
  }

  unwatchLoss(watcher: { connectionLost(error: Error): void }): void {
    this.lossWatchers.delete(watcher);
  }

  /** For ManagedSession: whether `connection` is still this connection's live one. */
  isLive(connection: Connection): boolean {
    return this.connection === connection && this.stateValue === 'connected';
  }

  /** For ManagedSession: stop telling it about the connection failing. */
  forgetSession(session: ManagedSession): void {
    this.sessionWatchers.delete(session);
  }

  get closeTimeoutMs(): number {
    return this.options.closeTimeoutMs;
  }

  /**
   * Runs `fn` once when the live connection goes away (lost, closed, abandoned); returns what
   * cancels that. Without a live connection `fn` runs on the next microtask.
   */
  whenGone(fn: () => void): () => void {
    if (this.connection === undefined) {
      queueMicrotask(fn);
      return () => undefined;
    }
    this.goneWaiters.add(fn);
    return () => this.goneWaiters.delete(fn);
  }

  private gone(): void {
    const waiters = [...this.goneWaiters];
    this.goneWaiters.clear();
    for (const fn of waiters) fn();
  }

  /** Closes the connection for everyone. */
  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    if (this.opening) await this.opening.catch(() => undefined);
    const connection = this.connection;
    this.markClosed();
    if (!connection) return;
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.destroySocket(connection);
        resolve();
      };
      const timer = setTimeout(finish, this.options.closeTimeoutMs);
      connection.on('connection_close', finish);
      connection.on('disconnected', finish);
      if (connection.is_open()) connection.close();
      else finish();
    });
  }

  /**
   * Ends the connection without the peer: its socket is destroyed (a WebSocket terminated) and
   * every wait for the peer ends now. For a close over a network that does not answer.
   */
  abandon(): void {
    const connection = this.connection;
    if (this.stateValue !== 'closed') this.markClosed();
    if (connection) this.destroySocket(connection);
    this.gone();
  }

  /**
   * An identity's operation on this connection went unanswered for its whole `timeoutMs`. If nothing
   * at all came in for that long, the hub is answering no identity: the connection is half-open (a
   * black hole, a NAT or cell change), and every attempt made on it would go into the same dead
   * socket until the silence watch's 2 × keepAliveSeconds. So it is dropped now, as a device client
   * replaces its own connection on a timeout. One identity's slow answer on a connection that
   * others' frames keep arriving on drops nothing, nor does a deadline under MIN_SILENT_TIMEOUT_MS.
   * Returns whether it dropped the connection.
   */
  operationTimedOut(timeoutMs: number): boolean {
    const silentMs = this.silence?.silentMs();
    if (this.stateValue !== 'connected' || silentMs === undefined || timeoutMs < MIN_SILENT_TIMEOUT_MS || silentMs < timeoutMs) return false;
    this.dropConnection(this.epoch, new azureErrors.NotConnectedError(`connection ${this.id} read nothing for ${silentMs} ms while an operation waited ${timeoutMs} ms for its answer; it is replaced`));
    return true;
  }

  private markClosed(): void {
    this.stateValue = 'closed';
    this.epoch++;
    this.silence = undefined;
    this.connection = undefined;
    this.cbs?.forceDetach();
    this.cbs = undefined;
    this.control = undefined;
    this.failSessions(new azureErrors.NotConnectedError(`connection ${this.id} was closed`));
  }

  private destroySocket(connection: Connection): void {
    if (this.endpoint.transport === 'wss') {
      this.webSocket?.terminate();
      this.webSocket = undefined;
    }
    destroy(connection);
    this.gone();
  }

  /** Tears the connection down as if the network had dropped it (used when the CBS link dies). */
  private dropConnection(epoch: number, error: Error): void {
    const connection = this.connection;
    this.handleLoss(epoch, error);
    if (connection) this.destroySocket(connection);
  }

  private handleLoss(epoch: number, error: Error): void {
    if (this.epoch !== epoch || this.stateValue !== 'connected') return;
    this.epoch++;
    this.stateValue = 'disconnected';
    this.silence = undefined;
    this.connection = undefined;
    this.cbs?.forceDetach();
    this.cbs = undefined;
    this.control = undefined;
    this.failSessions(error);
    this.gone();
    this.emit('lost', error);
    const watchers = [...this.lossWatchers];
    this.lossWatchers.clear();
    for (const watcher of watchers) watcher.connectionLost(error);
  }

  private failSessions(error: Error): void {
    const watchers = [...this.sessionWatchers];
    this.sessionWatchers.clear();
    for (const watcher of watchers) watcher.connectionFailed(error);
  }
}

/** What an identity's session reports; told which session, so one object can serve many. */
export interface SessionListener {
  peerDetached(session: IdentitySession, detach: PeerDetach): void;
  /** The hub ended the session. */
  sessionLost(session: IdentitySession, error: Error): void;
}

// The gateway keeps one session per identity, so its bookkeeping is a class whose rhea event
// handlers are shared functions that find their session here, rather than closures per session.
const managedSessions = new WeakMap<Session, ManagedSession>();

function ignore(): void {}

function onSessionOpen(context: EventContext): void {
  if (context.session) managedSessions.get(context.session)?.opened();
}

function onSessionClose(context: EventContext): void {
  if (context.session) managedSessions.get(context.session)?.peerClosed(context);
}

function onOpenTimeout(session: ManagedSession, timeoutMs: number): void {
  session.openTimedOut(timeoutMs);
}

class ManagedSession implements IdentitySession, PeerDetachListener {
  readonly tracker: LinkTracker;
  private endedValue = false;
  private ending: Promise<void> | undefined;
  private endWaiter: (() => void) | undefined;
  private peerEnded = false;
  private isOpen = false;
  private openTimer: ReturnType<typeof setTimeout> | undefined;
  private pendingOpen: { resolve(session: IdentitySession): void; reject(error: Error): void } | undefined;

  constructor(
    private readonly owner: SharedAmqpConnection,
    private readonly rheaConnection: Connection,
    private readonly rheaSession: Session,
    private readonly listener: SessionListener,
  ) {
    this.tracker = createLinkTracker(rheaSession, this);
  }

  get ended(): boolean {
    return this.endedValue;
  }

  begin(openTimeoutMs: number): Promise<IdentitySession> {
    return new Promise<IdentitySession>((resolve, reject) => {
      this.pendingOpen = { resolve, reject };
      this.openTimer = setTimeout(onOpenTimeout, openTimeoutMs, this, openTimeoutMs);
      managedSessions.set(this.rheaSession, this);
      this.rheaSession.on('session_error', ignore);
      this.rheaSession.on('session_open', onSessionOpen);
      this.rheaSession.on('session_close', onSessionClose);
      this.rheaSession.begin();
    });
  }

  linkDetachedByPeer(detach: PeerDetach): void {
    this.listener.peerDetached(this, detach);
  }

  opened(): void {
    this.isOpen = true;
    this.settleOpen();
  }

  openTimedOut(timeoutMs: number): void {
    if (this.isOpen) return;
    this.owner.forgetSession(this);
    this.settleOpen(new azureErrors.TimeoutError(`the hub did not begin a session within ${timeoutMs} ms`));
  }

  /** The connection failed or was closed: a session still beginning fails with it. */
  connectionFailed(error: Error): void {
    if (!this.isOpen) this.settleOpen(error);
    else this.clearOpenTimer();
  }

  peerClosed(context: EventContext): void {
    this.peerEnded = true;
    if (this.endWaiter) return this.endWaiter();
    this.owner.forgetSession(this);
    if (this.endedValue) return;
    this.endedValue = true;
    const error = new azureErrors.NotConnectedError(`the hub ended the session${describe(context.session?.error as AmqpError | undefined)}`);
    if (!this.isOpen) this.settleOpen(error);
    else this.listener.sessionLost(this, error);
  }

  // Every caller waits for the same ending, so nobody force-detaches links whose detach is still
  // in flight (rhea throws on a detach for a handle it has forgotten).
  end(): Promise<void> {
    if (this.ending) return this.ending;
    if (this.endedValue) return Promise.resolve();
    this.endedValue = true;
    this.owner.forgetSession(this);
    this.ending = this.doEnd();
    return this.ending;
  }

  private async doEnd(): Promise<void> {
    const timeoutMs = this.owner.closeTimeoutMs;
    if (this.peerEnded || !this.owner.isLive(this.rheaConnection)) return;
    await this.tracker.closeAll(timeoutMs, (fn) => this.owner.whenGone(fn));
    if (this.peerEnded || !this.owner.isLive(this.rheaConnection)) return;
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        unwatch();
        this.endWaiter = undefined;
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      const unwatch = this.owner.whenGone(finish);
      this.endWaiter = finish;
      this.rheaSession.close();
    });
  }

  private clearOpenTimer(): void {
    if (this.openTimer !== undefined) clearTimeout(this.openTimer);
    this.openTimer = undefined;
  }

  private settleOpen(error?: Error): void {
    this.clearOpenTimer();
    const pending = this.pendingOpen;
    this.pendingOpen = undefined;
    if (!pending) return;
    if (error) pending.reject(error);
    else pending.resolve(this);
  }
}

/** One identity's share of the control session: the links it opened there, and nothing else. */
class SharedSessionMember implements IdentitySession, PeerDetachListener {
  readonly tracker: LinkTracker;
  private ending: Promise<void> | undefined;

  constructor(
    private readonly owner: SharedAmqpConnection,
    private readonly rheaConnection: Connection,
    session: Session,
    private readonly listener: SessionListener,
  ) {
    this.tracker = createLinkTracker(session, this);
  }

  get ended(): boolean {
    return this.ending !== undefined;
  }

  linkDetachedByPeer(detach: PeerDetach): void {
    this.listener.peerDetached(this, detach);
  }

  /** Detaches the identity's links; the session stays for the others. */
  end(): Promise<void> {
    this.ending ??= this.owner.isLive(this.rheaConnection) ? this.tracker.closeAll(this.owner.closeTimeoutMs, (fn) => this.owner.whenGone(fn)) : Promise.resolve();
    return this.ending;
  }
}

function describe(error: AmqpError | undefined): string {
  if (!error) return '';
  return `: ${String(error.condition ?? 'error')}${error.description ? ` (${String(error.description)})` : ''}`;
}

/**
 * The error a connection-level failure is reported with. It must be an Azure SDK error class so
 * the Azure client's retry filter treats it as the stock transport would: a dropped connection
 * is a retryable NotConnectedError.
 */
function connectionError(context: EventContext, what: string): Error {
  const amqpError = (context.connection as unknown as { error?: AmqpError } | undefined)?.error;
  const socketError = (context as { error?: unknown }).error;
  const reason = amqpError ? describe(amqpError) : socketError instanceof Error ? `: ${socketError.message}` : '';
  const error = new azureErrors.NotConnectedError(`AMQP connection ${what}${reason}`);
  if (socketError instanceof Error) (error as Error & { innerError?: Error }).innerError = socketError;
  return error;
}

function destroy(connection: Connection): void {
  const raw = connection as unknown as RheaConnectionInternals;
  const socket = raw.socket;
  try {
    // With an error: rhea hears a socket's 'end' and 'error' only, not its 'close'. Destroyed
    // silently, the connection stayed open in rhea's eyes, and its heartbeat timer (half the
    // hub's idle timeout, re-armed by every heartbeat written into the dead socket) kept the
    // process alive for ever after the gateway dropped a connection (a CBS link cut) and closed.
    // The gateway's 'error' and 'disconnected' handlers are bound to the epoch it has left.
    if (socket?.destroy) {
      if (socket.destroyed !== true) socket.destroy(Object.assign(new Error('AMQP connection dropped by the gateway'), { code: 'ECONNABORTED' }));
    } else socket?.end?.();
  } catch {
    // Already gone; nothing left to release.
  }
  // rhea learns that its socket ended only from 'end', which a destroyed socket never emits: its
  // heartbeat timers stayed armed (the hub's 4-minute idle timeout makes a 2-minute one), and a
  // gateway whose identities had method links kept the process alive for minutes after close().
  // Nothing is written on this connection any more, so nothing may re-arm them either.
  raw.socket_ready = false;
  clearTimeout(raw.heartbeat_out);
  clearTimeout(raw.heartbeat_in);
  raw.heartbeat_out = undefined;
  raw.heartbeat_in = undefined;
}

/** The fields of rhea 1.x's Connection that its output() and heartbeats use. */
interface RheaConnectionInternals {
  socket?: { destroy?: (error?: Error) => void; end?: () => void; destroyed?: boolean };
  socket_ready?: boolean;
  heartbeat_out?: NodeJS.Timeout;
  heartbeat_in?: NodeJS.Timeout;
}
