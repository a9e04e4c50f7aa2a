// Live device sessions: one per device and protocol family, as IoT Hub allows, each carrying the
// push receivers (C2D, methods, desired properties) its front-end set. The table knows nothing of
// queues or methods; it tells the core, through the hooks, when a receiver appears.
import type { CounterTable } from './counters.ts';
import type { IdentityLookup } from './identity.ts';
import type { SessionInfo } from './events.ts';
import type { C2DReceiver, DesiredReceiver, DeviceProtocol, DeviceSession, HubLogger, HubStats, MethodReceiver } from './types.ts';

const isMqtt = (p: DeviceProtocol): boolean => p === 'mqtt' || p === 'mqtt-ws';
const isAmqp = (p: DeviceProtocol): boolean => p === 'amqp' || p === 'amqp-ws';
/** HTTPS holds no connection to replace; MQTT and AMQP each keep one per device. */
const sameFamily = (a: DeviceProtocol, b: DeviceProtocol): boolean => (isMqtt(a) && isMqtt(b)) || (isAmqp(a) && isAmqp(b));

export interface SessionHooks {
  /** The device's C2D receivers may take messages now. */
  pump(deviceId: string): void;
  /** A method receiver appeared: invocations waiting for the device to connect may proceed. */
  methodReceiverReady(deviceId: string): void;
  connected(info: SessionInfo): void;
  disconnected(info: SessionInfo & { reason: string }): void;
}

export class Session implements DeviceSession {
  closed = false;
  c2d: C2DReceiver | undefined;
  method: MethodReceiver | undefined;
  desired: DesiredReceiver | undefined;
  readonly #kickListeners: Array<(reason: string) => void> = [];

  constructor(
    private readonly table: SessionTable,
    readonly deviceId: string,
    readonly protocol: DeviceProtocol,
    readonly connectionId: string,
  ) {}

  onKicked(listener: (reason: string) => void): void {
    this.#kickListeners.push(listener);
  }

  kicked(reason: string, logger: HubLogger): void {
    for (const listener of this.#kickListeners.splice(0)) {
      try {
        listener(reason);
      } catch (error) {
        logger.warn('session kick listener threw', { deviceId: this.deviceId, protocol: this.protocol, error: String(error) });
      }
    }
  }

  close(): void {
    this.table.end(this, 'closed');
  }

  setC2DReceiver(receiver: C2DReceiver | undefined): void {
    if (this.closed) return;
    this.c2d = receiver;
    if (receiver) this.table.hooks.pump(this.deviceId);
  }

  pumpC2D(): void {
    if (!this.closed) this.table.hooks.pump(this.deviceId);
  }

  setMethodReceiver(receiver: MethodReceiver | undefined): void {
    if (this.closed) return;
    this.method = receiver;
    if (receiver) this.table.hooks.methodReceiverReady(this.deviceId);
  }

  setDesiredReceiver(receiver: DesiredReceiver | undefined): void {
    if (!this.closed) this.desired = receiver;
  }
}

export class SessionTable {
  readonly #sessions = new Map<string, Set<Session>>();
  readonly #connections = new Map<string, DeviceProtocol>();
  #closing = false;

  constructor(
    readonly hooks: SessionHooks,
    /** Devices and modules: each module identity has its own sessions, beside its device's. */
    private readonly registry: IdentityLookup,
    private readonly counters: CounterTable,
    private readonly logger: HubLogger,
  ) {}

  /** From now on, sessions that end are reported as 'hub closing'. */
  beginClose(): void {
    this.#closing = true;
  }

  /** The device's sessions, oldest first. */
  of(deviceId: string): Session[] {
    return [...(this.#sessions.get(deviceId) ?? [])];
  }

  open(deviceId: string, protocol: DeviceProtocol, connectionId: string): Session {
    this.registry.require(deviceId);
    for (const older of this.of(deviceId)) {
      // IoT Hub keeps one connection per device and protocol family (400027
      // ConnectionForcefullyClosedOnNewConnection): a new MQTT connection closes the older one, and
      // a new AMQP connection detaches the identity from the older one (which, on a gateway's
      // shared connection, leaves the other identities there alone). One identity twice on one
      // AMQP connection is a re-attach, so the older one goes too.
      if (sameFamily(protocol, older.protocol) || older.connectionId === connectionId) this.kick(older, 'a newer connection for this device was opened');
    }
    const session = new Session(this, deviceId, protocol, connectionId);
    // Looked up after the kicks: ending the last older session deletes the device's set.
    const sessions = this.#sessions.get(deviceId) ?? new Set<Session>();
    this.#sessions.set(deviceId, sessions);
    sessions.add(session);
    this.counters.of(deviceId);
    this.logger.info('device connected', { deviceId, protocol, connectionId });
    this.hooks.connected({ deviceId, protocol, connectionId });
    return session;
  }

  /** Ends a session from the hub's side and tells its front-end why. */
  kick(session: Session, reason: string): void {
    if (session.closed) return;
    this.end(session, reason);
    session.kicked(reason, this.logger);
  }

  kickDevice(deviceId: string, reason: string): void {
    for (const session of this.of(deviceId)) this.kick(session, reason);
  }

  kickAll(reason: string): void {
    for (const sessions of [...this.#sessions.values()]) for (const session of [...sessions]) this.kick(session, reason);
  }

  end(session: Session, reason: string): void {
    if (session.closed) return;
    if (this.#closing) reason = 'hub closing';
    session.closed = true;
    session.c2d = undefined;
    session.method = undefined;
    session.desired = undefined;
    const sessions = this.#sessions.get(session.deviceId);
    sessions?.delete(session);
    if (sessions?.size === 0) this.#sessions.delete(session.deviceId);
    const info = { deviceId: session.deviceId, protocol: session.protocol, connectionId: session.connectionId };
    this.logger.info('device disconnected', { ...info, reason });
    this.hooks.disconnected({ ...info, reason });
  }

  connectionOpened(protocol: DeviceProtocol, connectionId: string): void {
    this.#connections.set(connectionId, protocol);
  }

  connectionClosed(connectionId: string): void {
    this.#connections.delete(connectionId);
    // A front-end that forgets a session on a dead connection must not leave a ghost identity.
    for (const sessions of [...this.#sessions.values()]) {
      for (const session of [...sessions]) if (session.connectionId === connectionId) this.end(session, 'connection closed');
    }
  }

  stats(): Pick<HubStats, 'connections' | 'connectedIdentities'> {
    const connections: HubStats['connections'] = { mqtt: 0, 'mqtt-ws': 0, amqp: 0, 'amqp-ws': 0, https: 0 };
    for (const protocol of this.#connections.values()) connections[protocol]++;
    const connectedIdentities: HubStats['connectedIdentities'] = [];
    for (const sessions of this.#sessions.values()) {
      for (const s of sessions) connectedIdentities.push({ deviceId: s.deviceId, protocol: s.protocol, connectionId: s.connectionId });
    }
    return { connections, connectedIdentities };
  }
}
