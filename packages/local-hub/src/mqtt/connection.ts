// One device connection to the MQTT front-end: CONNECT/auth, topic rules, C2D window, twins, methods.
// IoT Hub answers protocol misuse by dropping the connection rather than with error packets, so
// every refusal here ends in close(); nothing may throw out of a socket callback.
// One file because it is one state machine per socket (connect, session, subscriptions, in-flight
// C2D and twin requests) whose handlers share its private state; topic parsing, CONNECT checks and
// persistent subscriptions are already apart (topics.ts, connect.ts, subscriptions.ts).
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { generate, parser as createParser } from 'mqtt-packet';
import type { IConnectPacket, IPublishPacket, ISubscribePacket, IUnsubscribePacket, Packet, Parser } from 'mqtt-packet';
import { redactSecrets } from '@switchyard/errors';
import type { Clock, TimerHandle } from '@switchyard/time';
import { HubError } from '../core/errors.ts';
import type { AuthResult, DeviceProtocol, DeviceSession, HubCore, HubLogger, LockedC2DMessage } from '../core/types.ts';
import type { FaultInjector } from '../faults/injector.ts';
import { resetSocket, streamFaultTarget } from '../faults/targets.ts';
import type { PersistentSubscriptions } from './subscriptions.ts';
import { CONNACK, certificateThumbprints, checkClientId, keepAliveTimeoutMs, parseUsername } from './connect.ts';
import { identityId } from '../core/identity.ts';
import {
  c2dTopic,
  checkSubscription,
  classifyPublishTopic,
  classifySubscription,
  desiredPatchTopic,
  methodRequestTopic,
  parsePropertyBag,
  telemetryProperties,
  twinResponseTopic,
  type SubscriptionKind,
} from './topics.ts';

export interface MqttConnectionSettings {
  core: HubCore;
  logger: HubLogger;
  /** Judges SAS token expiry; the hub's clock. */
  clock: Clock;
  subscriptions: PersistentSubscriptions;
  /** A socket that has not sent CONNECT by then is dropped. */
  connectTimeoutMs: number;
  /** Unacknowledged C2D publishes allowed per connection before the core must wait. */
  maxInFlightC2D: number;
  /** Largest MQTT packet (remaining length) accepted; larger ones close the connection before buffering. */
  maxPacketBytes: number;
  /** How long a closing socket may take to finish its handshake before it is destroyed. */
  closeGraceMs: number;
  /** Fault injection (src/faults/); none by default. */
  faults?: FaultInjector;
}

// IoT Hub's documented cap. With only four device filters allowed it cannot bind today; it
// guards a future module-input filter set.
const MAX_SUBSCRIPTIONS = 5;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Stop reading from a device whose acks we cannot write fast enough. */
const WRITE_HIGH_WATER = 1 << 20;

type State = 'awaiting-connect' | 'connected' | 'closing' | 'closed';

export class MqttConnection {
  readonly id: string;
  readonly closed: Promise<void>;
  private state: State = 'awaiting-connect';
  private readonly parser: Parser;
  /** The identity id once CONNECT succeeded: the device id, or `<deviceId>/<moduleId>` for a module. */
  private deviceId: string | undefined;
  private session: DeviceSession | undefined;
  private clean = true;
  private readonly subscriptions = new Map<string, SubscriptionKind>();
  private readonly active = { c2d: false, methods: false, desired: false };
  /** packet id → C2D lock token, for the in-flight window. */
  private readonly inFlight = new Map<number, string>();
  private nextPacketId = 1;
  private silenceTimer: NodeJS.Timeout | undefined;
  private expiryTimer: TimerHandle | undefined;
  private destroyTimer: NodeJS.Timeout | undefined;
  private will: { topic: string; payload: Buffer } | undefined;
  private forgetFaultTarget: (() => void) | undefined;
  private resolveClosed!: () => void;

  constructor(
    private readonly stream: Duplex,
    private readonly protocol: Extract<DeviceProtocol, 'mqtt' | 'mqtt-ws'>,
    private readonly tlsSocket: TLSSocket | undefined,
    private readonly settings: MqttConnectionSettings,
  ) {
    this.id = `${protocol}-${randomUUID()}`;
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    this.parser = createParser({ protocolVersion: 4 });
    this.parser.on('packet', (packet: Packet) => this.guard('packet', () => this.onPacket(packet)));
    this.parser.on('error', (err: unknown) => this.refuse('packet', `malformed: ${messageOf(err)}`));
    stream.on('data', (chunk: Buffer) => this.guard('data', () => this.onData(chunk)));
    stream.on('end', () => this.close('peer ended the connection'));
    stream.on('error', (err: Error) => {
      this.log('info', 'mqtt socket error', { error: messageOf(err) });
      stream.destroy();
    });
    stream.on('close', () => this.guard('close', () => this.finish()));
    this.armSilenceTimer(settings.connectTimeoutMs);
    this.guard('open', () => settings.core.connectionOpened(protocol, this.id));
  }

  /** Ends the connection; the device sees a TCP/TLS close, as with IoT Hub. */
  close(reason: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    this.clearTimers();
    this.log('info', 'mqtt connection closing', { reason });
    if (this.stream.destroyed) {
      this.finish();
      return;
    }
    // end() flushes a pending CONNACK first; the timer covers peers that never close their side.
    this.stream.end();
    this.destroyTimer = setTimeout(() => this.stream.destroy(), this.settings.closeGraceMs);
    this.destroyTimer.unref();
  }

  private isOpen(): boolean {
    return this.state === 'awaiting-connect' || this.state === 'connected';
  }

  private onData(chunk: Buffer): void {
    if (!this.isOpen()) return;
    if (this.state === 'connected') this.silenceTimer?.refresh();
    // Acks produced by one chunk leave in one TLS record.
    this.stream.cork();
    process.nextTick(() => this.stream.uncork());
    const buffered = this.parser.parse(chunk);
    // Packet handlers run inside parse() and may have closed the connection.
    if (!this.isOpen()) return;
    // mqtt-packet buffers a packet until it is complete; refuse as soon as the declared length is
    // known so a hostile length prefix cannot make us hold megabytes.
    const declared = (this.parser as unknown as { packet?: { length?: number } }).packet?.length ?? -1;
    if (declared > this.settings.maxPacketBytes || buffered > this.settings.maxPacketBytes + 5) {
      this.refuse('packet', `declared packet length ${Math.max(declared, buffered)} exceeds ${this.settings.maxPacketBytes} bytes`);
      return;
    }
    if (this.stream.writableLength > WRITE_HIGH_WATER && !this.stream.isPaused()) {
      this.stream.pause();
      this.stream.once('drain', () => this.stream.resume());
    }
  }

  private onPacket(packet: Packet): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if ((packet.length ?? 0) > this.settings.maxPacketBytes) {
      this.refuse(packet.cmd, `packet of ${packet.length} bytes exceeds ${this.settings.maxPacketBytes}`);
      return;
    }
    if (this.state === 'awaiting-connect') {
      if (packet.cmd !== 'connect') this.refuse(packet.cmd, 'the first packet must be CONNECT');
      else this.onConnect(packet);
      return;
    }
    switch (packet.cmd) {
      case 'publish': this.onPublish(packet); return;
      case 'puback': this.onPuback(packet.messageId); return;
      case 'subscribe': this.onSubscribe(packet); return;
      case 'unsubscribe': this.onUnsubscribe(packet); return;
      case 'pingreq': this.write({ cmd: 'pingresp' }); return;
      case 'disconnect':
        this.will = undefined;
        this.close('device sent DISCONNECT');
        return;
      case 'connect': this.refuse('CONNECT', 'a second CONNECT on one connection'); return;
      case 'pubrec': case 'pubrel': case 'pubcomp':
        this.refuse(packet.cmd, 'QoS 2 is not supported by IoT Hub');
        return;
      default: this.refuse(packet.cmd, 'not a packet a device sends');
    }
  }

  private onConnect(packet: IConnectPacket): void {
    const { core } = this.settings;
    if (packet.protocolVersion !== 4 || packet.protocolId !== 'MQTT') {
      this.refuseConnect(CONNACK.unacceptableProtocol, `protocol ${packet.protocolId ?? '?'} level ${packet.protocolVersion ?? '?'}; IoT Hub speaks MQTT 3.1.1`);
      return;
    }
    const client = checkClientId(packet.clientId);
    if (!client.ok) {
      this.refuseConnect(client.returnCode, client.why, packet.clientId);
      return;
    }
    // A module connects as its own identity, `<deviceId>/<moduleId>`, beside (not instead of) its device.
    const deviceId = identityId(client.deviceId, client.moduleId);
    if (this.settings.faults?.admitConnection(deviceId, this.protocol, this.id) === false) {
      this.stream.destroy();
      return;
    }
    const username = parseUsername(packet.username);
    if (username === undefined || username.deviceId !== client.deviceId || username.moduleId !== client.moduleId) {
      this.refuseConnect(CONNACK.notAuthorized, 'username must be <host>/<clientId>/?api-version=…', deviceId);
      return;
    }
    let auth: AuthResult;
    try {
      auth = this.authenticate(deviceId, packet.password);
    } catch (err) {
      const code = err instanceof HubError && (err.kind === 'Unauthorized' || err.kind === 'DeviceNotFound') ? CONNACK.notAuthorized : CONNACK.serverUnavailable;
      this.refuseConnect(code, `authentication failed: ${messageOf(err)}`, deviceId);
      return;
    }
    if (!auth.ok) {
      this.refuseConnect(CONNACK.notAuthorized, `${auth.reason}: ${auth.message}`, deviceId);
      return;
    }

    // openSession kicks any older MQTT connection of this device (IoT Hub allows one).
    const session = core.openSession(deviceId, this.protocol, this.id);
    this.deviceId = deviceId;
    this.session = session;
    this.state = 'connected';
    session.onKicked((reason) => this.close(`session ended by the hub: ${reason}`));
    this.forgetFaultTarget = this.settings.faults?.register(streamFaultTarget({
      connectionId: this.id,
      protocol: this.protocol,
      socket: this.tlsSocket,
      deviceIds: () => [deviceId],
      destroy: () => (this.tlsSocket ? resetSocket(this.tlsSocket) : this.stream.destroy()),
      shutdown: () => this.close('shut down by an injected fault'),
    }));

    this.clean = packet.clean !== false;
    let sessionPresent = false;
    if (this.clean) {
      this.settings.subscriptions.clear(deviceId);
    } else {
      for (const filter of this.settings.subscriptions.get(deviceId)) {
        const kind = classifySubscription(deviceId, filter);
        if (kind !== undefined) this.subscriptions.set(filter, kind);
      }
      sessionPresent = this.subscriptions.size > 0;
    }
    if (packet.will !== undefined) this.acceptWill(packet.will.topic, packet.will.payload);

    this.write({ cmd: 'connack', returnCode: CONNACK.accepted, sessionPresent });
    this.armSilenceTimer(keepAliveTimeoutMs(packet.keepalive ?? 0));
    if (auth.expiresAt !== undefined) this.armExpiryTimer(auth.expiresAt);
    this.log('info', 'mqtt device connected', { deviceId, clean: this.clean, sessionPresent, keepalive: packet.keepalive });
    // Restored subscriptions go live only after CONNACK so a queued C2D never precedes it.
    this.syncReceivers();
  }

  private authenticate(deviceId: string, password: Buffer | undefined): AuthResult {
    const { core } = this.settings;
    if (password !== undefined && password.length > 0) return core.authenticateSas(deviceId, password.toString('utf8'));
    const der = this.tlsSocket?.getPeerCertificate()?.raw;
    if (der === undefined || der.length === 0) {
      return { ok: false, reason: 'wrong-credential-type', message: 'neither a SAS token (password) nor a client certificate was presented' };
    }
    const { sha1, sha256 } = certificateThumbprints(der);
    // Ask the core with the digest the registry holds (40 or 64 hex digits), so a device
    // registered by SHA-256 does not first count as an authentication failure under SHA-1.
    const auth = core.getDevice(deviceId)?.authentication;
    const registered = auth?.type === 'x509-thumbprint' ? [auth.primaryThumbprint, auth.secondaryThumbprint ?? ''].map((t) => t.replace(/:/g, '').trim().length) : [];
    const order = registered[0] === 64 ? [sha256, sha1] : [sha1, sha256];
    const first = core.authenticateX509(deviceId, order[0] ?? sha1);
    const otherLength = order[1]?.length;
    return first.ok || !registered.includes(otherLength ?? -1) ? first : core.authenticateX509(deviceId, order[1] ?? sha256);
  }

  private acceptWill(topic: string, payload: Buffer | string): void {
    const deviceId = this.deviceId ?? '';
    if (classifyPublishTopic(deviceId, topic).kind === 'telemetry') {
      this.will = { topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload) };
    } else {
      this.settings.core.logRefusal({ deviceId, protocol: this.protocol, connectionId: this.id, what: `will on ${topic}`, why: 'IoT Hub forwards wills only from the device telemetry topic' });
    }
  }

  private onPublish(packet: IPublishPacket): void {
    const deviceId = this.requireDevice();
    const { core } = this.settings;
    if (packet.qos === 2) {
      this.refuse(`PUBLISH ${packet.topic}`, 'QoS 2 is not supported by IoT Hub');
      return;
    }
    const body = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const target = classifyPublishTopic(deviceId, packet.topic);
    switch (target.kind) {
      case 'forbidden':
        this.refuse(`PUBLISH ${packet.topic}`, target.why);
        return;
      case 'telemetry': {
        if (!this.acceptTelemetry(deviceId, target.bag, body, packet.retain, packet.topic)) return;
        break;
      }
      case 'twin-get': {
        let status = 200;
        let response: unknown;
        try {
          const twin = core.getTwin(deviceId);
          response = { desired: twin.desired, reported: twin.reported };
        } catch (err) {
          ({ status, response } = errorResponse(err));
        }
        this.sendTwinResponse(twinResponseTopic(status, target.rid), Buffer.from(JSON.stringify(response)));
        break;
      }
      case 'twin-patch-reported': {
        const patch = parseJsonObject(body);
        if (patch === undefined) {
          const topic = twinResponseTopic(400, target.rid);
          this.sendTwinResponse(topic, Buffer.from(JSON.stringify({ errorCode: 400004, message: 'reported properties patch must be a JSON object' })));
          break;
        }
        try {
          const version = core.patchReported(deviceId, patch);
          this.sendTwinResponse(twinResponseTopic(204, target.rid, version), Buffer.alloc(0));
        } catch (err) {
          const { status, response } = errorResponse(err);
          this.sendTwinResponse(twinResponseTopic(status, target.rid), Buffer.from(JSON.stringify(response)));
        }
        break;
      }
      case 'method-response': {
        const text = body.toString('utf8');
        let payload: unknown = null;
        if (text.trim() !== '') {
          try { payload = JSON.parse(text); } catch { payload = text; }
        }
        try {
          core.methodResponse(deviceId, target.rid, { status: target.status, payload });
        } catch (err) {
          // A late answer after the service gave up is normal; IoT Hub drops it too.
          this.log('info', 'mqtt method response not accepted', { deviceId, rid: target.rid, error: messageOf(err) });
        }
        break;
      }
    }
    if (packet.qos === 1 && this.state === 'connected') this.write({ cmd: 'puback', messageId: packet.messageId });
  }

  private acceptTelemetry(deviceId: string, bag: string, body: Buffer, retain: boolean, topic: string): boolean {
    const entries = parsePropertyBag(bag);
    if (entries === undefined) {
      this.refuse(`PUBLISH ${topic}`, 'property bag is not valid url-encoding');
      return false;
    }
    const { properties, systemProperties } = telemetryProperties(entries);
    if (retain) properties['mqtt-retain'] = 'true';
    try {
      this.settings.core.acceptTelemetry(deviceId, this.protocol, { body, properties, systemProperties });
      return true;
    } catch (err) {
      // MQTT has no negative PUBACK; IoT Hub drops the connection (e.g. payload over 256 KB).
      this.refuse(`PUBLISH ${topic}`, messageOf(err));
      return false;
    }
  }

  private sendTwinResponse(topic: string, payload: Buffer): void {
    if (![...this.subscriptions.values()].includes('twin-responses')) {
      this.log('info', 'mqtt twin response dropped: device is not subscribed to $iothub/twin/res/#', { deviceId: this.deviceId, topic });
      return;
    }
    this.write({ cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false });
  }

  private onSubscribe(packet: ISubscribePacket): void {
    const deviceId = this.requireDevice();
    const granted: number[] = [];
    for (const { topic, qos } of packet.subscriptions) {
      const check = checkSubscription(deviceId, topic);
      const kind = check.ok ? check.kind : undefined;
      if (!check.ok || kind === undefined) {
        granted.push(0x80);
        this.settings.core.logRefusal({ deviceId, protocol: this.protocol, connectionId: this.id, what: `SUBSCRIBE ${topic}`, why: check.ok ? 'unknown filter' : check.why });
      } else if (!this.subscriptions.has(topic) && this.subscriptions.size >= MAX_SUBSCRIPTIONS) {
        granted.push(0x80);
        this.settings.core.logRefusal({ deviceId, protocol: this.protocol, connectionId: this.id, what: `SUBSCRIBE ${topic}`, why: `at most ${MAX_SUBSCRIPTIONS} subscriptions per device` });
      } else {
        this.subscriptions.set(topic, kind);
        granted.push(Math.min(qos, 1));
      }
    }
    this.write({ cmd: 'suback', messageId: packet.messageId, granted });
    this.persistSubscriptions();
    this.syncReceivers();
  }

  private onUnsubscribe(packet: IUnsubscribePacket): void {
    this.requireDevice();
    for (const topic of packet.unsubscriptions) this.subscriptions.delete(topic);
    this.write({ cmd: 'unsuback', messageId: packet.messageId, granted: [] });
    this.persistSubscriptions();
    this.syncReceivers();
  }

  private persistSubscriptions(): void {
    if (this.clean || this.deviceId === undefined) return;
    this.settings.subscriptions.set(this.deviceId, [...this.subscriptions.keys()]);
  }

  /** Makes the session's push receivers match the current subscriptions. */
  private syncReceivers(): void {
    const session = this.session;
    if (session === undefined || this.state !== 'connected') return;
    const kinds = new Set(this.subscriptions.values());
    if (kinds.has('c2d') !== this.active.c2d) {
      this.active.c2d = kinds.has('c2d');
      session.setC2DReceiver(this.active.c2d ? {
        canDeliver: () => this.state === 'connected' && this.inFlight.size < this.settings.maxInFlightC2D,
        deliver: (message) => this.guard('c2d deliver', () => this.deliverC2D(message)),
      } : undefined);
    }
    if (kinds.has('methods') !== this.active.methods) {
      this.active.methods = kinds.has('methods');
      session.setMethodReceiver(this.active.methods ? {
        invoke: ({ requestId, methodName, payload }) => this.guard('method invoke', () => this.write({
          cmd: 'publish', topic: methodRequestTopic(methodName, requestId), qos: 0, dup: false, retain: false,
          payload: Buffer.from(JSON.stringify(payload === undefined ? null : payload)),
        })),
      } : undefined);
    }
    if (kinds.has('twin-desired') !== this.active.desired) {
      this.active.desired = kinds.has('twin-desired');
      session.setDesiredReceiver(this.active.desired ? {
        desiredChanged: (patch) => this.guard('desired patch', () => this.write({
          cmd: 'publish', topic: desiredPatchTopic(patch.$version), qos: 0, dup: false, retain: false,
          payload: Buffer.from(JSON.stringify(patch)),
        })),
      } : undefined);
    }
  }

  private deliverC2D(message: LockedC2DMessage): void {
    if (this.state !== 'connected') return;
    let messageId = this.nextPacketId;
    while (this.inFlight.has(messageId)) messageId = (messageId % 65535) + 1;
    this.nextPacketId = (messageId % 65535) + 1;
    this.inFlight.set(messageId, message.lockToken);
    this.write({ cmd: 'publish', topic: c2dTopic(message), payload: message.body, qos: 1, messageId, dup: false, retain: false });
  }

  private onPuback(messageId: number | undefined): void {
    const deviceId = this.requireDevice();
    const lockToken = messageId === undefined ? undefined : this.inFlight.get(messageId);
    if (lockToken === undefined || messageId === undefined) {
      this.log('info', 'mqtt PUBACK for an unknown packet id ignored', { deviceId, messageId });
      return;
    }
    this.inFlight.delete(messageId);
    try {
      // Over MQTT the PUBACK is the only settlement there is, so it completes the message.
      this.settings.core.settleC2D(deviceId, lockToken, 'complete');
    } catch (err) {
      this.log('info', 'mqtt C2D completion refused', { deviceId, error: messageOf(err) });
    }
    this.session?.pumpC2D();
  }

  private refuseConnect(returnCode: number, why: string, deviceId?: string): void {
    this.settings.core.logRefusal({ deviceId, protocol: this.protocol, connectionId: this.id, what: 'CONNECT', why: `CONNACK ${returnCode}: ${why}` });
    this.write({ cmd: 'connack', returnCode, sessionPresent: false });
    this.close(`CONNECT refused (${returnCode}): ${why}`);
  }

  /** IoT Hub's answer to a forbidden operation: record it, then drop the connection. */
  private refuse(what: string, why: string): void {
    this.settings.core.logRefusal({ deviceId: this.deviceId, protocol: this.protocol, connectionId: this.id, what, why });
    this.close(`${what} refused: ${why}`);
  }

  private requireDevice(): string {
    if (this.deviceId === undefined) throw new Error('packet handled before CONNECT');
    return this.deviceId;
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearTimers();
    this.forgetFaultTarget?.();
    if (this.destroyTimer !== undefined) clearTimeout(this.destroyTimer);
    if (!this.stream.destroyed) this.stream.destroy();
    const { core } = this.settings;
    const deviceId = this.deviceId;
    if (this.session !== undefined && deviceId !== undefined) {
      this.session.close();
      // A persistent MQTT session redelivers unacknowledged messages on reconnect; giving the
      // locks back now does that instead of making the device wait out the 60 s lock.
      for (const lockToken of this.inFlight.values()) {
        this.guard('abandon', () => core.settleC2D(deviceId, lockToken, 'abandon'));
      }
      this.inFlight.clear();
      // DISCONNECT clears the will, so one still set means the device went away ungracefully.
      if (this.will !== undefined) {
        const { topic, payload } = this.will;
        const target = classifyPublishTopic(deviceId, topic);
        if (target.kind === 'telemetry') {
          const entries = parsePropertyBag(target.bag) ?? [];
          const { properties, systemProperties } = telemetryProperties(entries);
          properties['iothub-MessageType'] = 'Will';
          this.guard('will', () => core.acceptTelemetry(deviceId, this.protocol, { body: payload, properties, systemProperties }));
        }
      }
    }
    this.guard('closed', () => core.connectionClosed(this.protocol, this.id));
    this.resolveClosed();
  }

  private armSilenceTimer(ms: number): void {
    if (this.silenceTimer !== undefined) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => this.close(this.state === 'awaiting-connect' ? 'no CONNECT in time' : 'keep-alive expired'), Math.min(ms, MAX_TIMER_MS));
    this.silenceTimer.unref();
  }

  private armExpiryTimer(expiresAt: number): void {
    const { clock } = this.settings;
    clock.clearTimeout(this.expiryTimer);
    const remaining = expiresAt - clock.now();
    // Token expiry is the hub's rule, so it runs on the hub's clock (keep-alive stays real time).
    this.expiryTimer = clock.setTimeout(() => {
      // Long expiries exceed one timer's range; re-arm until the token really has expired.
      if (clock.now() < expiresAt) this.armExpiryTimer(expiresAt);
      else this.close('SAS token expired');
    }, Math.max(0, Math.min(remaining, MAX_TIMER_MS)));
    this.expiryTimer.unref();
  }

  private clearTimers(): void {
    if (this.silenceTimer !== undefined) clearTimeout(this.silenceTimer);
    this.settings.clock.clearTimeout(this.expiryTimer);
  }

  private write(packet: Packet): void {
    if (this.stream.destroyed || this.stream.writableEnded) return;
    this.stream.write(generate(packet));
  }

  /** Socket callbacks must never throw: an unexpected failure ends this connection only. */
  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log('warn', 'mqtt connection error', { where, error: messageOf(err) });
      if (this.state !== 'closed') this.close(`internal error in ${where}`);
    }
  }

  private log(level: 'info' | 'warn', message: string, fields: Record<string, unknown>): void {
    try {
      this.settings.logger[level](message, { connectionId: this.id, protocol: this.protocol, ...fields });
    } catch {
      // A broken log sink must not take the connection down.
    }
  }
}

function messageOf(err: unknown): string {
  return redactSecrets(err instanceof Error ? err.message : String(err));
}

function errorResponse(err: unknown): { status: number; response: { errorCode: number; message: string } } {
  if (err instanceof HubError) return { status: err.httpStatus, response: { errorCode: err.errorCode, message: messageOf(err) } };
  return { status: 500, response: { errorCode: 500001, message: messageOf(err) } };
}

function parseJsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
