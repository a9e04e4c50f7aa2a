// The service side of one AMQP connection, as azure-iothub's Amqp transport uses it: a CBS
// put-token for a shared access policy (audience = the hub), then a sender to /messages/devicebound
// for C2D and receivers on the two service-bound queues. Each link needs the policy's
// ServiceConnect right; a connection may carry device identities beside the service one.
import type { Delivery, EventContext, Message, Receiver, Sender } from 'rhea';
import { redactSecrets } from '@switchyard/errors';
import type { Clock, TimerHandle } from '@switchyard/time';
import { HubError } from '../core/errors.ts';
import type { PolicyAuthResult, PolicyRight } from '../core/policies.ts';
import type { C2DMessage, C2DSendInput, DeviceProtocol, HubCore, HubLogger } from '../core/types.ts';
import { putTokenReply } from './cbs.ts';
import { sendCapacity } from './rhea-outgoing.ts';
import { settleIncoming } from './settle.ts';
import type { AmqpMessageLike, OutgoingAmqpMessage } from './mapping.ts';
import type { ServiceBoundConsumer, ServiceBoundEntry, ServiceBoundQueue } from './service-queue.ts';
import { C2D_SEND_ADDRESS, c2dFromServiceMessage, parseServicePutToken } from './service-mapping.ts';

/** What every connection's service side shares: the core's service calls and the hub-wide queues. */
export interface ServiceEndpoints {
  sendC2D(deviceId: string, input: C2DSendInput): C2DMessage;
  authenticateService(token: string, protocol: DeviceProtocol): PolicyAuthResult;
  feedback: ServiceBoundQueue;
  fileNotifications: ServiceBoundQueue;
  /** Token expiry is judged and timed on this clock. */
  clock: Clock;
}

type Link = Sender | Receiver;
type ServiceEndpoint = 'c2d-send' | 'feedback' | 'file-notifications';

const ADDRESSES: Record<string, ServiceEndpoint> = {
  [C2D_SEND_ADDRESS]: 'c2d-send',
  '/messages/servicebound/feedback': 'feedback',
  '/messages/servicebound/filenotifications': 'file-notifications',
};

const UNAUTHORIZED = 'amqp:unauthorized-access';
// setTimeout fires at once for delays above 2^31-1 ms; long-lived tokens re-arm instead.
const MAX_TIMER_MS = 2_147_483_647;

/** The service endpoint an address names (IoT Hub matches these case-insensitively), if any. */
export function serviceEndpointOf(address: unknown): ServiceEndpoint | undefined {
  return typeof address === 'string' ? ADDRESSES[address.toLowerCase().replace(/\/$/, '')] : undefined;
}

interface ServiceIdentity {
  policy: string;
  rights: readonly PolicyRight[];
  expiresAt: number;
  timer: TimerHandle | undefined;
}

interface Consumer extends ServiceBoundConsumer {
  queue: ServiceBoundQueue;
  sender: Sender;
  unsent: Set<Delivery>;
}

export class ServiceLinks {
  private identity: ServiceIdentity | undefined;
  private readonly links = new Map<Link, ServiceEndpoint>();
  private readonly consumers = new Map<Sender, Consumer>();
  private readonly deliveries = new WeakMap<Delivery, { consumer: Consumer; entry: ServiceBoundEntry }>();

  constructor(
    private readonly connectionId: string,
    private readonly protocol: DeviceProtocol,
    private readonly endpoints: ServiceEndpoints,
    private readonly core: Pick<HubCore, 'logRefusal'>,
    private readonly logger: HubLogger,
  ) {}

  get isAuthenticated(): boolean {
    return this.identity !== undefined;
  }

  /** The policy this connection authenticated with, for diagnostics. */
  get policy(): string | undefined {
    return this.identity?.policy;
  }

  /** Answers a put-token for the hub's own audience; undefined when the request is a device's. */
  onPutToken(message: AmqpMessageLike): OutgoingAmqpMessage | undefined {
    const parsed = parseServicePutToken(message);
    if (parsed === undefined) return undefined;
    if (!parsed.ok) {
      this.core.logRefusal({ protocol: this.protocol, connectionId: this.connectionId, what: 'cbs put-token', why: parsed.why });
      return putTokenReply(parsed.messageId, parsed.status, parsed.why);
    }
    const result = this.endpoints.authenticateService(parsed.token, this.protocol);
    // A failed renewal leaves an earlier, still valid token in force; only expiry ends it.
    if (!result.ok) return putTokenReply(parsed.messageId, 401, redactSecrets(result.message));
    const renewal = this.identity !== undefined;
    if (this.identity && this.identity.policy !== result.policy) this.revoke('the connection authenticated with another policy');
    if (this.identity) {
      this.identity.expiresAt = result.expiresAt;
      this.identity.rights = result.rights;
    } else {
      this.identity = { policy: result.policy, rights: result.rights, expiresAt: result.expiresAt, timer: undefined };
    }
    this.armExpiry();
    this.logger.info('amqp service put-token accepted', { connectionId: this.connectionId, policy: result.policy, renewal });
    return putTokenReply(parsed.messageId, 200, 'OK');
  }

  claims(address: unknown): boolean {
    return serviceEndpointOf(address) !== undefined;
  }

  owns(link: Link): boolean {
    return this.links.has(link);
  }

  /** The service attached a sender (our receiver): only /messages/devicebound takes messages. */
  onReceiverOpen(receiver: Receiver, address: unknown): void {
    // Credentials first: a connection without the right learns nothing about the address.
    if (!this.authorize(receiver, address)) return;
    const endpoint = serviceEndpointOf(address);
    if (endpoint !== 'c2d-send') return this.refuse(receiver, address, `a service cannot send to ${String(address)}`, 'amqp:not-allowed');
    this.links.set(receiver, endpoint);
  }

  /** The service attached a receiver (our sender) on one of the service-bound queues. */
  onSenderOpen(sender: Sender, address: unknown): void {
    if (!this.authorize(sender, address)) return;
    const endpoint = serviceEndpointOf(address);
    if (endpoint === undefined || endpoint === 'c2d-send') return this.refuse(sender, address, `a service cannot receive from ${String(address)}`, 'amqp:not-allowed');
    this.links.set(sender, endpoint);
    const queue = endpoint === 'feedback' ? this.endpoints.feedback : this.endpoints.fileNotifications;
    const consumer: Consumer = {
      queue,
      sender,
      unsent: new Set(),
      canDeliver: () => sender.is_open() && sendCapacity(sender, consumer.unsent) > 0,
      deliver: (entry) => {
        const delivery = sender.send(entry.message as unknown as Message);
        consumer.unsent.add(delivery);
        this.deliveries.set(delivery, { consumer, entry });
      },
    };
    this.consumers.set(sender, consumer);
    queue.attach(consumer);
  }

  onMessage(ctx: EventContext, receiver: Receiver): void {
    const delivery = ctx.delivery;
    const message = ctx.message as AmqpMessageLike | Buffer | undefined;
    if (this.links.get(receiver) !== 'c2d-send' || !this.identity) {
      settleIncoming(delivery, { condition: UNAUTHORIZED, description: 'link is not authorized' });
      return;
    }
    if (message === undefined || Buffer.isBuffer(message)) {
      settleIncoming(delivery, { condition: 'com.microsoft:argument-error', description: 'a C2D message must be a single AMQP message' });
      return;
    }
    const parsed = c2dFromServiceMessage(message, this.endpoints.clock.now());
    if (!parsed.ok) {
      this.core.logRefusal({ protocol: this.protocol, connectionId: this.connectionId, what: 'service c2d send', why: parsed.why });
      settleIncoming(delivery, { condition: 'com.microsoft:argument-error', description: parsed.why });
      return;
    }
    try {
      this.endpoints.sendC2D(parsed.deviceId, parsed.input);
      settleIncoming(delivery);
    } catch (e) {
      if (e instanceof HubError) {
        this.core.logRefusal({ deviceId: parsed.deviceId, protocol: this.protocol, connectionId: this.connectionId, what: 'service c2d send', why: e.message });
        settleIncoming(delivery, { condition: e.amqpCondition, description: redactSecrets(`${e.kind} (${e.errorCode}): ${e.message}`) });
      } else {
        this.logger.warn('amqp service c2d send failed', { connectionId: this.connectionId, error: redactSecrets(String(e)) });
        settleIncoming(delivery, { condition: 'amqp:internal-error', description: 'internal error' });
      }
    }
  }

  /** accepted → complete, released/modified → abandon, rejected → reject; false when not ours. */
  onOutcome(delivery: Delivery | undefined, how: 'complete' | 'abandon' | 'reject'): boolean {
    if (!delivery) return false;
    const held = this.deliveries.get(delivery);
    if (!held) return false;
    this.deliveries.delete(delivery);
    // A receiver that detached lost its locks; its late disposition must not settle the message
    // another receiver now holds.
    if (held.entry.holder !== held.consumer) return true;
    const { queue } = held.consumer;
    if (how === 'complete') queue.complete(held.entry);
    else if (how === 'abandon') queue.abandon(held.entry);
    else queue.reject(held.entry);
    return true;
  }

  onSendable(sender: Sender): void {
    this.consumers.get(sender)?.queue.pump();
  }

  onLinkClosed(link: Link): void {
    this.links.delete(link);
    const consumer = this.consumers.get(link as Sender);
    if (consumer) {
      this.consumers.delete(link as Sender);
      consumer.queue.detach(consumer);
    }
  }

  end(): void {
    if (this.identity?.timer !== undefined) this.endpoints.clock.clearTimeout(this.identity.timer);
    this.identity = undefined;
    for (const consumer of this.consumers.values()) consumer.queue.detach(consumer);
    this.consumers.clear();
    this.links.clear();
  }

  private authorize(link: Link, address: unknown): boolean {
    if (!this.identity) {
      this.refuse(link, address, 'no valid service credential on this connection (put-token for the hub first)', UNAUTHORIZED);
      return false;
    }
    if (!this.identity.rights.includes('ServiceConnect')) {
      this.refuse(link, address, `IotHubUnauthorizedAccess: the shared access policy '${this.identity.policy}' does not grant ServiceConnect`, UNAUTHORIZED);
      return false;
    }
    return true;
  }

  private refuse(link: Link, address: unknown, why: string, condition: string): void {
    this.core.logRefusal({ protocol: this.protocol, connectionId: this.connectionId, what: `attach ${String(address)}`, why });
    link.close({ condition, description: why });
  }

  private armExpiry(): void {
    const identity = this.identity;
    if (!identity) return;
    const { clock } = this.endpoints;
    if (identity.timer !== undefined) clock.clearTimeout(identity.timer);
    const delay = Math.max(0, identity.expiresAt - clock.now());
    // On firing, the clock decides again, so a token renewed meanwhile is honoured.
    identity.timer = clock.setTimeout(() => {
      identity.timer = undefined;
      if (this.identity !== identity) return;
      if (identity.expiresAt > clock.now()) return this.armExpiry();
      this.revoke('SAS token expired');
    }, Math.min(delay, MAX_TIMER_MS));
    identity.timer.unref();
  }

  /** Ends the service identity: its links are detached, device identities on the connection live on. */
  private revoke(why: string): void {
    const identity = this.identity;
    if (!identity) return;
    if (identity.timer !== undefined) this.endpoints.clock.clearTimeout(identity.timer);
    this.identity = undefined;
    for (const link of [...this.links.keys()]) {
      this.onLinkClosed(link);
      if (!link.is_closed()) link.close({ condition: UNAUTHORIZED, description: why });
    }
    this.logger.info('amqp service identity ended', { connectionId: this.connectionId, policy: identity.policy, reason: why });
  }
}

