// One AMQP connection as IoT Hub sees it: a set of device identities, each proven by its own CBS
// put-token (or by the TLS client certificate), and the links each identity attached. A failure
// of one identity (bad token, expiry, kick) detaches that identity's links only.
// One file because it is one handler per connection whose link, identity and CBS tables every
// rhea event reaches; addresses, CBS parsing, message mapping, the service side and the Event Hubs
// route are already apart (address.ts, cbs.ts, mapping.ts, service-links.ts, route.ts).
import { createHash } from 'node:crypto';
import type { Delivery, EventContext, Message, Receiver, Sender } from 'rhea';
import { redactSecrets } from '@switchyard/errors';
import type { Clock, TimerHandle } from '@switchyard/time';
import { HubError } from '../core/errors.ts';
import type { DeviceSession, HubCore, HubLogger, LockedC2DMessage } from '../core/types.ts';
import type { AmqpEndpoint } from '../faults/amqp.ts';
import type { FaultInjector } from '../faults/injector.ts';
import type { DeviceEndpoint } from './address.ts';
import { checkTelemetryTo, decideAttach } from './address.ts';
import { parsePutToken, putTokenReply } from './cbs.ts';
import type { AmqpConnectionRoute, AmqpRoute } from './route.ts';
import type { AmqpMessageLike, OutgoingAmqpMessage } from './mapping.ts';
import { sendCapacity } from './rhea-outgoing.ts';
import { settleIncoming } from './settle.ts';
import { ServiceLinks, type ServiceEndpoints } from './service-links.ts';
import {
  BATCH_MESSAGE_FORMAT,
  MAX_BATCH_BYTES,
  c2dToAmqp,
  decodeBatch,
  desiredPatchMessage,
  messageIdToString,
  methodRequestMessage,
  parseMethodResponse,
  parseTwinRequest,
  telemetryFromAmqp,
  twinGetBody,
  twinReply,
} from './mapping.ts';

export type AmqpProtocol = 'amqp' | 'amqp-ws';

type Link = Sender | Receiver;

interface LinkRole {
  deviceId: string;
  endpoint: DeviceEndpoint;
  /** `com.microsoft:channel-correlation-id`, pairing a twin/method sender with its receiver. */
  channel: string | undefined;
}

interface Identity {
  deviceId: string;
  session: DeviceSession;
  expiresAt: number | undefined;
  timer: TimerHandle | undefined;
  links: Set<Link>;
  c2dSender: Sender | undefined;
  methodSender: Sender | undefined;
  /** The SDK echoes uuid-looking ids as AMQP uuids, which read back lower-case. */
  methodRequestIds: Map<string, string>;
  twinSenders: Sender[];
  desiredSender: Sender | undefined;
}

interface CbsPair {
  receiver: Receiver | undefined;
  sender: Sender | undefined;
}

const UNAUTHORIZED = 'amqp:unauthorized-access';
const NOT_ALLOWED = 'amqp:not-allowed';
const MAX_PENDING_METHOD_IDS = 1000;
// setTimeout fires immediately for delays above 2^31-1 ms; long-lived tokens re-arm instead.
const MAX_TIMER_MS = 2_147_483_647;

export interface ConnectionDeps {
  core: HubCore;
  logger: HubLogger;
  /** The hub's clock: token expiry is judged against the same clock that validated the token, and runs on it. */
  clock: Clock;
  /** Fault injection (src/faults/); none by default. */
  faults?: FaultInjector | undefined;
  /** An endpoint sharing this listener (the Event Hubs-compatible one); it sees links, tokens and messages first. */
  route?: AmqpRoute | undefined;
  /** The service endpoints (C2D send, feedback, file notifications); without them, devices only. */
  service?: ServiceEndpoints | undefined;
}

export class AmqpConnectionHandler {
  private readonly identities = new Map<string, Identity>();
  private readonly roles = new Map<Link, LinkRole>();
  private readonly c2dDeliveries = new WeakMap<Delivery, { deviceId: string; lockToken: string }>();
  private readonly c2dUnsent = new WeakMap<Sender, Set<Delivery>>();
  private readonly cbsPairs: CbsPair[] = [];
  private ended = false;
  private readonly thumbprints: string[] | undefined;
  private readonly route: AmqpConnectionRoute | undefined;
  /** The service client's side of this connection, when the hub serves one. */
  private readonly service: ServiceLinks | undefined;

  constructor(
    readonly id: string,
    readonly protocol: AmqpProtocol,
    private readonly deps: ConnectionDeps,
    /** DER of the TLS client certificate, when the device presented one. */
    peerCertificate: Buffer | undefined,
    /** Ends the transport when the AMQP layer cannot (hub closing, peer not answering). */
    readonly destroyTransport: () => void,
  ) {
    this.thumbprints = peerCertificate === undefined
      ? undefined
      : [createHash('sha1').update(peerCertificate).digest('hex').toUpperCase(), createHash('sha256').update(peerCertificate).digest('hex').toUpperCase()];
    this.route = deps.route?.open(id, protocol);
    this.service = deps.service ? new ServiceLinks(id, protocol, deps.service, deps.core, deps.logger) : undefined;
    deps.core.connectionOpened(protocol, id);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  authorizedDevices(): string[] {
    return [...this.identities.keys()];
  }

  /** A device identity, a service policy or a claim of the route is in force: the connection has authenticated. */
  isAuthenticated(): boolean {
    return this.identities.size > 0 || this.service?.isAuthenticated === true || this.route?.authenticated === true;
  }

  /** The device's links and the connection's `$cbs` links, for fault injection. */
  linksOf(deviceId: string): Array<{ endpoint: AmqpEndpoint; link: Link }> {
    const out: Array<{ endpoint: AmqpEndpoint; link: Link }> = [];
    for (const pair of this.cbsPairs) for (const link of [pair.receiver, pair.sender]) if (link) out.push({ endpoint: 'cbs', link });
    for (const link of this.identities.get(deviceId)?.links ?? []) {
      const role = this.roles.get(link);
      if (role) out.push({ endpoint: role.endpoint, link });
    }
    return out;
  }

  /** False when an injected fault refuses the device's new connections: the transport is cut. */
  private admitted(deviceId: string): boolean {
    if (this.identities.has(deviceId) || this.deps.faults?.admitConnection(deviceId, this.protocol, this.id) !== false) return true;
    this.destroyTransport();
    return false;
  }

  // ---- link lifecycle -------------------------------------------------------------------------

  onSenderOpen(sender: Sender): void {
    if (this.route?.senderOpened(sender)) return;
    // Our sender answers a device receiver, whose *source* names the address. The answering attach
    // mirrors the device's termini (rhea exposes the remote ones as `source`/`target`).
    if (sender.source) sender.set_source(sender.source);
    if (sender.target) sender.set_target(sender.target);
    const properties: unknown = sender.properties;
    const address = (sender.source as { address?: unknown } | undefined)?.address;
    if (this.service?.claims(address)) return this.service.onSenderOpen(sender, address);
    const decision = decideAttach(address, false, (id) => this.ensureAuthorized(id));
    if (!decision.ok) return this.refuseLink(sender, address, decision.deviceId, decision.why, decision.notAllowed ? NOT_ALLOWED : UNAUTHORIZED);
    if (decision.kind === 'cbs') {
      const pair = this.cbsPairs.find((p) => p.sender === undefined);
      if (pair) pair.sender = sender;
      else this.cbsPairs.push({ receiver: undefined, sender });
      return;
    }
    const identity = this.identities.get(decision.deviceId);
    if (!identity) return this.refuseLink(sender, address, decision.deviceId, 'identity vanished during attach');
    this.roles.set(sender, { deviceId: decision.deviceId, endpoint: decision.endpoint, channel: channelOf(properties) });
    identity.links.add(sender);
    switch (decision.endpoint) {
      case 'c2d':
        identity.c2dSender = sender;
        identity.session.setC2DReceiver({
          canDeliver: () => sender.is_open() && this.c2dCapacity(sender) > 0,
          deliver: (message) => this.deliverC2D(identity, sender, message),
        });
        identity.session.pumpC2D();
        break;
      case 'methods':
        identity.methodSender = sender;
        identity.session.setMethodReceiver({
          invoke: (request) => {
            identity.methodRequestIds.set(request.requestId.toLowerCase(), request.requestId);
            // Calls a device never answers time out in the core; forget the oldest ids here.
            if (identity.methodRequestIds.size > MAX_PENDING_METHOD_IDS) {
              const oldest = identity.methodRequestIds.keys().next().value;
              if (oldest !== undefined) identity.methodRequestIds.delete(oldest);
            }
            this.guarded(() => sendMessage(sender, methodRequestMessage(request)), 'method request');
          },
        });
        break;
      case 'twin':
        identity.twinSenders.push(sender);
        break;
      case 'events':
        break;
    }
  }

  onReceiverOpen(receiver: Receiver): void {
    if (this.route?.receiverOpened(receiver)) return;
    // Our receiver answers a device sender, whose *target* names the address.
    if (receiver.source) receiver.set_source(receiver.source);
    if (receiver.target) receiver.set_target(receiver.target);
    const properties: unknown = receiver.properties;
    const address = (receiver.target as { address?: unknown } | undefined)?.address;
    if (this.service?.claims(address)) return this.service.onReceiverOpen(receiver, address);
    const decision = decideAttach(address, true, (id) => this.ensureAuthorized(id));
    if (!decision.ok) return this.refuseLink(receiver, address, decision.deviceId, decision.why);
    if (decision.kind === 'cbs') {
      const pair = this.cbsPairs.find((p) => p.receiver === undefined);
      if (pair) pair.receiver = receiver;
      else this.cbsPairs.push({ receiver, sender: undefined });
      return;
    }
    const identity = this.identities.get(decision.deviceId);
    if (!identity) return this.refuseLink(receiver, address, decision.deviceId, 'identity vanished during attach');
    this.roles.set(receiver, { deviceId: decision.deviceId, endpoint: decision.endpoint, channel: channelOf(properties) });
    identity.links.add(receiver);
  }

  /** The device detached a link (or the link was refused and the detach came back). */
  onLinkClosed(link: Link): void {
    this.route?.linkClosed(link);
    this.service?.onLinkClosed(link);
    for (const pair of this.cbsPairs) {
      if (pair.receiver === link) pair.receiver = undefined;
      if (pair.sender === link) pair.sender = undefined;
    }
    for (let i = this.cbsPairs.length - 1; i >= 0; i--) {
      const pair = this.cbsPairs[i];
      if (pair && pair.receiver === undefined && pair.sender === undefined) this.cbsPairs.splice(i, 1);
    }
    const role = this.roles.get(link);
    if (!role) return;
    this.roles.delete(link);
    const identity = this.identities.get(role.deviceId);
    if (identity) this.forgetLink(identity, link);
  }

  private forgetLink(identity: Identity, link: Link): void {
    identity.links.delete(link);
    // Unsettled C2D deliveries stay locked in the core until their lock expires, as in IoT Hub.
    if (identity.c2dSender === link) {
      identity.c2dSender = undefined;
      identity.session.setC2DReceiver(undefined);
    }
    if (identity.methodSender === link) {
      identity.methodSender = undefined;
      identity.session.setMethodReceiver(undefined);
    }
    identity.twinSenders = identity.twinSenders.filter((s) => s !== link);
    if (identity.desiredSender === link) {
      identity.desiredSender = undefined;
      identity.session.setDesiredReceiver(undefined);
    }
  }

  private refuseLink(link: Link, address: unknown, deviceId: string | undefined, why: string, condition = UNAUTHORIZED): void {
    const event: Parameters<HubCore['logRefusal']>[0] = { protocol: this.protocol, connectionId: this.id, what: `attach ${String(address)}`, why };
    if (deviceId !== undefined) event.deviceId = deviceId;
    this.deps.core.logRefusal(event);
    link.close({ condition, description: why });
  }

  // ---- identities -----------------------------------------------------------------------------

  /** X.509 devices attach without CBS; their certificate authorizes the device named in the address. */
  private ensureAuthorized(deviceId: string): boolean {
    if (this.identities.has(deviceId)) return true;
    if (this.thumbprints === undefined || !this.admitted(deviceId)) return false;
    let lastFailure = '';
    for (const thumbprint of this.thumbprints) {
      const result = this.deps.core.authenticateX509(deviceId, thumbprint);
      if (result.ok) {
        this.addIdentity(deviceId, undefined);
        return true;
      }
      lastFailure = result.message;
      // Only a thumbprint mismatch is worth a second try with the other hash.
      if (result.reason !== 'bad-signature' && result.reason !== 'malformed') break;
    }
    this.deps.logger.info('amqp x509 authentication refused', { connectionId: this.id, deviceId, why: lastFailure });
    return false;
  }

  private addIdentity(deviceId: string, expiresAt: number | undefined): Identity {
    const existing = this.identities.get(deviceId);
    if (existing) {
      existing.expiresAt = expiresAt;
      this.armExpiry(existing);
      return existing;
    }
    const session = this.deps.core.openSession(deviceId, this.protocol, this.id);
    const identity: Identity = {
      deviceId,
      session,
      expiresAt,
      timer: undefined,
      links: new Set(),
      c2dSender: undefined,
      methodSender: undefined,
      methodRequestIds: new Map(),
      twinSenders: [],
      desiredSender: undefined,
    };
    this.identities.set(deviceId, identity);
    session.onKicked((reason) => {
      this.guarded(() => this.revokeIdentity(deviceId, 'amqp:link:detach-forced', reason), 'kick');
    });
    this.armExpiry(identity);
    return identity;
  }

  private armExpiry(identity: Identity): void {
    const { clock } = this.deps;
    clock.clearTimeout(identity.timer);
    identity.timer = undefined;
    if (identity.expiresAt === undefined) return;
    const delay = Math.max(0, identity.expiresAt - clock.now());
    // A token may outlive one timer's range; on firing, the clock decides again.
    identity.timer = clock.setTimeout(() => {
      identity.timer = undefined;
      this.guarded(() => {
        if (identity.expiresAt !== undefined && identity.expiresAt > clock.now()) return this.armExpiry(identity);
        this.revokeIdentity(identity.deviceId, UNAUTHORIZED, 'SAS token expired');
      }, 'token expiry');
    }, Math.min(delay, MAX_TIMER_MS));
  }

  /** Ends one identity: its links are detached with `condition`, the rest of the connection lives on. */
  private revokeIdentity(deviceId: string, condition: string, description: string): void {
    const identity = this.identities.get(deviceId);
    if (!identity) return;
    this.identities.delete(deviceId);
    this.deps.clock.clearTimeout(identity.timer);
    for (const link of [...identity.links]) {
      this.forgetLink(identity, link);
      this.roles.delete(link);
      if (!link.is_closed()) link.close({ condition, description });
    }
    identity.session.close();
    this.deps.logger.info('amqp identity ended', { connectionId: this.id, deviceId, reason: description });
  }

  // ---- incoming messages ----------------------------------------------------------------------

  onMessage(ctx: EventContext, receiver: Receiver): void {
    const delivery = ctx.delivery;
    const message = ctx.message as AmqpMessageLike | Buffer | undefined;
    const format = (ctx as { format?: number }).format;
    if (this.cbsPairs.some((p) => p.receiver === receiver)) return this.onCbsRequest(receiver, delivery, message);
    if (this.route?.message(receiver, ctx)) return;
    if (this.service?.owns(receiver)) return this.service.onMessage(ctx, receiver);
    const role = this.roles.get(receiver);
    const identity = role ? this.identities.get(role.deviceId) : undefined;
    if (!role || !identity) {
      settleIncoming(delivery, { condition: UNAUTHORIZED, description: 'link is not authorized' });
      return;
    }
    switch (role.endpoint) {
      case 'events':
        // The hub ended this session (a kill fault, the identity ended): a transfer still on its
        // way is not taken, as IoT Hub's closed link takes nothing. Accepted, it would be settled
        // on a channel the peer has already seen end, so the peer never hears of it and sends a copy.
        if (!receiver.session.is_open()) return;
        return this.onTelemetry(role.deviceId, delivery, message, format);
      case 'twin':
        return this.onTwinRequest(identity, role, delivery, message);
      case 'methods':
        return this.onMethodResponse(identity, delivery, message);
      case 'c2d':
        settleIncoming(delivery, { condition: 'amqp:not-allowed', description: 'devices cannot send on the devicebound link' });
        return;
    }
  }

  private onCbsRequest(receiver: Receiver, delivery: Delivery | undefined, message: AmqpMessageLike | Buffer | undefined): void {
    settleIncoming(delivery);
    if (message === undefined || Buffer.isBuffer(message)) return;
    const routed = this.route?.putToken(message);
    if (routed) {
      const replyTo = this.cbsReplySender(receiver);
      if (replyTo) sendMessage(replyTo, putTokenReply(messageIdToString(message.message_id), routed.status, routed.description));
      return;
    }
    const serviceReply = this.service?.onPutToken(message);
    if (serviceReply !== undefined) {
      const replyTo = this.cbsReplySender(receiver);
      if (replyTo) sendMessage(replyTo, serviceReply);
      else this.deps.logger.warn('amqp put-token without a $cbs receiver to answer on', { connectionId: this.id });
      return;
    }
    const parsed = parsePutToken(message);
    let status: number;
    let description: string;
    if (!parsed.ok) {
      status = parsed.status;
      description = parsed.why;
      this.deps.core.logRefusal({ protocol: this.protocol, connectionId: this.id, what: 'cbs put-token', why: parsed.why });
    } else {
      if (!this.admitted(parsed.deviceId)) return;
      const result = this.deps.core.authenticateSas(parsed.deviceId, parsed.token);
      if (result.ok) {
        const renewal = this.identities.has(parsed.deviceId);
        this.addIdentity(parsed.deviceId, result.expiresAt);
        this.deps.logger.info('amqp put-token accepted', { connectionId: this.id, deviceId: parsed.deviceId, renewal });
        status = 200;
        description = 'OK';
      } else {
        // A failed renewal leaves an earlier, still valid token in force; only expiry ends it.
        status = 401;
        description = redactSecrets(result.message);
        this.deps.core.logRefusal({ deviceId: parsed.deviceId, protocol: this.protocol, connectionId: this.id, what: 'cbs put-token', why: `${result.reason}: ${description}` });
      }
    }
    const replyTo = this.cbsReplySender(receiver);
    if (!replyTo) {
      this.deps.logger.warn('amqp put-token without a $cbs receiver to answer on', { connectionId: this.id });
      return;
    }
    sendMessage(replyTo, putTokenReply(parsed.messageId, status, description));
  }

  /** The reply goes on the pair the request came from; each SDK CBS agent only reads its own link. */
  private cbsReplySender(receiver: Receiver): Sender | undefined {
    const own = this.cbsPairs.find((p) => p.receiver === receiver)?.sender;
    if (own && own.is_open()) return own;
    for (let i = this.cbsPairs.length - 1; i >= 0; i--) {
      const s = this.cbsPairs[i]?.sender;
      if (s && s.is_open()) return s;
    }
    return undefined;
  }

  private onTelemetry(deviceId: string, delivery: Delivery | undefined, message: AmqpMessageLike | Buffer | undefined, format: number | undefined): void {
    let messages: AmqpMessageLike[];
    try {
      if (Buffer.isBuffer(message)) {
        if (format !== BATCH_MESSAGE_FORMAT) throw new HubError('ArgumentInvalid', `unsupported message format ${String(format)}`);
        if (message.length > MAX_BATCH_BYTES) throw new HubError('MessageTooLarge', `batch of ${message.length} bytes exceeds ${MAX_BATCH_BYTES}`);
        try {
          messages = decodeBatch(message);
        } catch (e) {
          throw new HubError('ArgumentInvalid', `malformed batch: ${e instanceof Error ? e.message : String(e)}`);
        }
      } else if (message !== undefined) {
        messages = [message];
      } else {
        messages = [];
      }
      for (const m of messages) {
        const to = checkTelemetryTo(m.to, deviceId);
        if (!to.ok) {
          this.deps.core.logRefusal({ deviceId, protocol: this.protocol, connectionId: this.id, what: 'telemetry', why: to.why });
          settleIncoming(delivery, { condition: UNAUTHORIZED, description: to.why });
          return;
        }
      }
      for (const m of messages) this.deps.core.acceptTelemetry(deviceId, this.protocol, telemetryFromAmqp(m));
      settleIncoming(delivery);
    } catch (e) {
      settleIncoming(delivery, errorCondition(e));
      if (!(e instanceof HubError)) this.deps.logger.warn('amqp telemetry failed', { connectionId: this.id, deviceId, error: describe(e) });
    }
  }

  private onTwinRequest(identity: Identity, role: LinkRole, delivery: Delivery | undefined, message: AmqpMessageLike | Buffer | undefined): void {
    settleIncoming(delivery);
    if (message === undefined || Buffer.isBuffer(message)) return;
    const replyTo = identity.twinSenders.find((s) => role.channel !== undefined && this.roles.get(s)?.channel === role.channel) ?? identity.twinSenders.at(-1);
    const parsed = parseTwinRequest(message);
    const reply = (m: OutgoingAmqpMessage): void => {
      if (replyTo && replyTo.is_open()) sendMessage(replyTo, m);
      else this.deps.logger.warn('amqp twin request without a twin receiver to answer on', { connectionId: this.id, deviceId: identity.deviceId });
    };
    if (!parsed.ok) {
      if (parsed.correlationId !== undefined) reply(twinReply(parsed.correlationId, parsed.status, { errorCode: 400004, message: parsed.why }));
      return;
    }
    const { request } = parsed;
    const { core } = this.deps;
    try {
      switch (request.operation) {
        case 'GET':
          reply(twinReply(request.correlationId, 200, twinGetBody(core.getTwin(identity.deviceId))));
          return;
        case 'PATCH': {
          const version = core.patchReported(identity.deviceId, request.patch);
          reply(twinReply(request.correlationId, 204, undefined, version));
          return;
        }
        case 'PUT': {
          const sender = replyTo;
          if (sender) {
            identity.desiredSender = sender;
            identity.session.setDesiredReceiver({
              desiredChanged: (patch) => this.guarded(() => {
                if (sender.is_open()) sendMessage(sender, desiredPatchMessage(patch));
              }, 'desired patch'),
            });
          }
          reply(twinReply(request.correlationId, 200, undefined));
          return;
        }
        case 'DELETE':
          identity.desiredSender = undefined;
          identity.session.setDesiredReceiver(undefined);
          reply(twinReply(request.correlationId, 200, undefined));
          return;
      }
    } catch (e) {
      if (e instanceof HubError) reply(twinReply(request.correlationId, e.httpStatus, e.toBody()));
      else {
        this.deps.logger.warn('amqp twin request failed', { connectionId: this.id, deviceId: identity.deviceId, error: describe(e) });
        reply(twinReply(request.correlationId, 500, { errorCode: 500001, message: 'internal error' }));
      }
    }
  }

  private onMethodResponse(identity: Identity, delivery: Delivery | undefined, message: AmqpMessageLike | Buffer | undefined): void {
    if (message === undefined || Buffer.isBuffer(message)) {
      settleIncoming(delivery, { condition: 'com.microsoft:argument-error', description: 'method response is not a message' });
      return;
    }
    const parsed = parseMethodResponse(message);
    if (!parsed.ok) {
      settleIncoming(delivery, { condition: 'com.microsoft:argument-error', description: parsed.why });
      return;
    }
    const requestId = identity.methodRequestIds.get(parsed.requestId.toLowerCase()) ?? parsed.requestId;
    identity.methodRequestIds.delete(parsed.requestId.toLowerCase());
    try {
      this.deps.core.methodResponse(identity.deviceId, requestId, { status: parsed.status, payload: parsed.payload });
      settleIncoming(delivery);
    } catch (e) {
      settleIncoming(delivery, errorCondition(e));
    }
  }

  // ---- C2D --------------------------------------------------------------------------------------

  private deliverC2D(identity: Identity, sender: Sender, message: LockedC2DMessage): void {
    const delivery = sendMessage(sender, c2dToAmqp(message));
    this.c2dDeliveries.set(delivery, { deviceId: identity.deviceId, lockToken: message.lockToken });
    let unsent = this.c2dUnsent.get(sender);
    if (!unsent) this.c2dUnsent.set(sender, (unsent = new Set()));
    unsent.add(delivery);
  }

  /** Credit alone would let the core lock the whole queue at once (see rhea-outgoing.ts). */
  private c2dCapacity(sender: Sender): number {
    let unsent = this.c2dUnsent.get(sender);
    if (!unsent) this.c2dUnsent.set(sender, (unsent = new Set()));
    return sendCapacity(sender, unsent);
  }

  /** accepted → complete, released/modified → abandon, rejected → reject (dead-letter). */
  onC2DOutcome(delivery: Delivery | undefined, how: 'complete' | 'abandon' | 'reject'): void {
    if (!delivery || this.service?.onOutcome(delivery, how)) return;
    const entry = this.c2dDeliveries.get(delivery);
    if (!entry) return;
    this.c2dDeliveries.delete(delivery);
    try {
      this.deps.core.settleC2D(entry.deviceId, entry.lockToken, how);
    } catch (e) {
      // The lock may have expired; the SDK does not wait for an answer to its disposition anyway.
      this.deps.logger.info('amqp c2d settlement refused', { connectionId: this.id, deviceId: entry.deviceId, how, error: describe(e) });
    }
  }

  onSendable(sender: Sender): void {
    if (this.route?.sendable(sender)) return;
    this.service?.onSendable(sender);
    const role = this.roles.get(sender);
    if (role?.endpoint !== 'c2d') return;
    this.identities.get(role.deviceId)?.session.pumpC2D();
  }

  // ---- teardown ---------------------------------------------------------------------------------

  /** The transport is gone: every identity's session ends and the core hears the connection closed. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.service?.end();
    for (const identity of this.identities.values()) {
      this.deps.clock.clearTimeout(identity.timer);
      identity.session.setC2DReceiver(undefined);
      identity.session.setMethodReceiver(undefined);
      identity.session.setDesiredReceiver(undefined);
      identity.session.close();
    }
    this.identities.clear();
    this.roles.clear();
    this.cbsPairs.length = 0;
    this.route?.end();
    this.deps.core.connectionClosed(this.protocol, this.id);
  }

  /** Runs `fn`, turning a throw into a log line: nothing may escape into rhea's event dispatch. */
  guarded(fn: () => void, what: string): void {
    try {
      fn();
    } catch (e) {
      this.deps.logger.warn(`amqp ${what} failed`, { connectionId: this.id, error: describe(e) });
    }
  }
}

/** rhea's Message type describes decoded messages (toJSON, toString); send() encodes plain objects. */
function sendMessage(sender: Sender, message: OutgoingAmqpMessage): Delivery {
  return sender.send(message as unknown as Message);
}

function channelOf(properties: unknown): string | undefined {
  if (typeof properties !== 'object' || properties === null) return undefined;
  const v = (properties as Record<string, unknown>)['com.microsoft:channel-correlation-id'];
  return typeof v === 'string' ? v : messageIdToString(v);
}

function errorCondition(e: unknown): { condition: string; description: string } {
  if (e instanceof HubError) return { condition: e.amqpCondition, description: redactSecrets(e.message) };
  return { condition: 'amqp:internal-error', description: 'internal error' };
}

export function describe(e: unknown): string {
  return redactSecrets(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
}
