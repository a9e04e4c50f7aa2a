// The Event Hubs-compatible endpoint on the hub's AMQP listener, as @azure/event-hubs uses it:
// CBS put-token with an sb:// audience, receivers on `<hub>/ConsumerGroups/<group>/Partitions/<n>`
// starting where their selector filter says, owner levels (epochs), and `$management` READs.
import type { Delivery, EventContext, Message, Receiver, Sender } from 'rhea';
import type { Clock, TimerHandle } from '@switchyard/time';
import type { HubLogger } from '../core/types.ts';
import type { AmqpMessageLike, OutgoingAmqpMessage } from '../amqp/mapping.ts';
import { bodyToBuffer, messageIdToString } from '../amqp/mapping.ts';
import { settleIncoming } from '../amqp/settle.ts';
import type { AmqpConnectionRoute, AmqpRoute, AmqpRouteProtocol } from '../amqp/route.ts';
import { checkClaim, covers, parseEventHubsAudience, type ClaimRules } from './auth.ts';
import type { EventHubEndpoint } from './endpoint.ts';
import { parseStartFilter } from './filter.ts';
import { PartitionOwnership, STOLEN } from './ownership.ts';
import { eventHubReadBody, eventToAmqp, managementReply, partitionReadBody } from './wire.ts';

const UNAUTHORIZED = 'amqp:unauthorized-access';
const NOT_FOUND = 'amqp:not-found';
const NOT_ALLOWED = 'amqp:not-allowed';
const ARGUMENT_ERROR = 'com.microsoft:argument-error';
const EPOCH = 'com.microsoft:epoch';
const RUNTIME_METRIC = 'com.microsoft:enable-receiver-runtime-metric';
const TOKEN_TYPES = new Set(['servicebus.windows.net:sastoken', 'azure-devices.net:sastoken']);
// setTimeout fires at once for delays above 2^31-1 ms; long-lived tokens re-arm instead.
const MAX_TIMER_MS = 2_147_483_647;

export interface EventHubsRouteDeps {
  endpoint: EventHubEndpoint;
  rules: ClaimRules;
  logger: HubLogger;
  clock: Clock;
}

type Target =
  | { kind: 'management'; path: string }
  | { kind: 'partition'; path: string; consumerGroup: string; partitionId: string }
  | { kind: 'entity'; path: string };

interface Reader {
  sender: Sender;
  scope: string;
  path: string;
  partitionId: string;
  next: number;
  runtimeMetric: boolean;
  unsent: Set<Delivery>;
  unsubscribe: () => void;
  owner: EventHubsConnection;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function addressOf(terminus: unknown): string | undefined {
  const address = record(terminus).address;
  return typeof address === 'string' ? address : undefined;
}

/** rhea decodes a long as a number, or leaves a typed wrapper when the peer used one. */
function epochOf(properties: unknown): number | undefined {
  let v = record(properties)[EPOCH];
  if (typeof v === 'object' && v !== null && 'value' in v) v = (v as { value: unknown }).value;
  if (typeof v === 'bigint') v = Number(v);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function capabilities(value: unknown): string[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return list.map((c) => String(typeof c === 'object' && c !== null && 'value' in c ? (c as { value: unknown }).value : c));
}

export function createEventHubsRoute(deps: EventHubsRouteDeps): AmqpRoute {
  // Owner levels span connections: a reader on one connection can take a partition from another.
  const ownership = new PartitionOwnership<Sender>();
  const readers = new Map<Sender, Reader>();
  return {
    open: (connectionId, protocol) => new EventHubsConnection(connectionId, protocol, deps, ownership, readers),
  };
}

class EventHubsConnection implements AmqpConnectionRoute {
  readonly #claims = new Map<string, number>();
  readonly #links = new Map<Sender | Receiver, string>();
  readonly #managementReceivers = new Set<Receiver>();
  readonly #managementSenders = new Set<Sender>();
  readonly #entity: string;
  #timer: TimerHandle | undefined;
  #ended = false;

  constructor(
    readonly id: string,
    readonly protocol: AmqpRouteProtocol,
    private readonly deps: EventHubsRouteDeps,
    private readonly ownership: PartitionOwnership<Sender>,
    private readonly readers: Map<Sender, Reader>,
  ) {
    this.#entity = deps.endpoint.name.toLowerCase();
  }

  get authenticated(): boolean {
    const now = this.deps.clock.now();
    for (const expiresAt of this.#claims.values()) if (expiresAt > now) return true;
    return false;
  }

  // ---- addresses and claims ---------------------------------------------------------------------

  /** What an address names on this endpoint, or undefined when it is not the endpoint's. */
  #target(address: string | undefined): Target | undefined {
    if (address === undefined) return undefined;
    const path = address.replace(/^\/+|\/+$/g, '');
    const lower = path.toLowerCase();
    if (lower === '$management' || lower === `${this.#entity}/$management`) return { kind: 'management', path: `${this.#entity}/$management` };
    const segments = path.split('/');
    if (segments[0]?.toLowerCase() !== this.#entity) return undefined;
    const m = /^[^/]+\/consumergroups\/([^/]+)\/partitions\/([^/]+)$/i.exec(path);
    if (m) return { kind: 'partition', path: lower, consumerGroup: m[1]!, partitionId: m[2]! };
    return { kind: 'entity', path: lower };
  }

  #covered(path: string): boolean {
    const now = this.deps.clock.now();
    for (const [scope, expiresAt] of this.#claims) if (expiresAt > now && covers(scope, path)) return true;
    return false;
  }

  putToken(message: AmqpMessageLike): { status: number; description: string } | undefined {
    const p = record(message.application_properties);
    if (p.operation !== 'put-token' || typeof p.name !== 'string' || parseEventHubsAudience(p.name) === undefined) return undefined;
    if (typeof p.type !== 'string' || !TOKEN_TYPES.has(p.type)) return { status: 400, description: `unsupported token type ${String(p.type)}` };
    const body = message.body;
    const token = typeof body === 'string' ? body : bodyToBuffer(body).toString('utf8');
    const result = checkClaim(this.deps.rules, p.name, token, this.deps.clock.now());
    if (!result.ok) {
      this.deps.logger.info('event hubs put-token refused', { connectionId: this.id, why: result.why });
      return { status: result.status, description: result.why };
    }
    this.#claims.set(result.path, Math.max(this.#claims.get(result.path) ?? 0, result.expiresAt));
    this.#armExpiry();
    return { status: 200, description: 'OK' };
  }

  #armExpiry(): void {
    const { clock } = this.deps;
    clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#ended || this.#claims.size === 0) return;
    const soonest = Math.min(...this.#claims.values());
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#guarded(() => this.#expire(), 'token expiry');
    }, Math.min(Math.max(0, soonest - clock.now()), MAX_TIMER_MS));
    this.#timer.unref();
  }

  /** Drops expired claims and detaches the links no claim covers any more, as Event Hubs does. */
  #expire(): void {
    const now = this.deps.clock.now();
    for (const [scope, expiresAt] of this.#claims) if (expiresAt <= now) this.#claims.delete(scope);
    for (const [link, path] of [...this.#links]) {
      if (this.#covered(path)) continue;
      this.#forget(link);
      if (!link.is_closed()) link.close({ condition: UNAUTHORIZED, description: 'The token authorizing this link expired.' });
    }
    this.#armExpiry();
  }

  // ---- links ------------------------------------------------------------------------------------

  senderOpened(sender: Sender): boolean {
    const address = addressOf(sender.source);
    const target = this.#target(address);
    if (!target) return false;
    // The answering attach mirrors the peer's termini, filter included, so it knows it applied.
    if (sender.source) sender.set_source(sender.source);
    if (sender.target) sender.set_target(sender.target);
    if (!this.#covered(target.path)) return this.#refuse(sender, address, UNAUTHORIZED, 'no valid token (CBS put-token) covers this address');
    if (target.kind === 'management') {
      this.#managementSenders.add(sender);
      this.#links.set(sender, target.path);
      return true;
    }
    if (target.kind === 'entity') return this.#refuse(sender, address, NOT_FOUND, `The messaging entity '${String(address)}' could not be found.`);
    const { endpoint } = this.deps;
    const group = endpoint.consumerGroup(target.consumerGroup);
    // Event Hubs' own wording: the SDK recognises it and reports MessagingEntityNotFoundError.
    if (group === undefined) return this.#refuse(sender, address, NOT_FOUND, `The messaging entity '${String(address)}' could not be found: consumer group '${target.consumerGroup}' does not exist on event hub '${endpoint.name}'.`);
    const log = endpoint.partition(target.partitionId);
    if (!log) return this.#refuse(sender, address, NOT_FOUND, `The messaging entity '${String(address)}' could not be found: the partitions are ${endpoint.partitionIds.join(', ')}.`);
    const filter = parseStartFilter(record(sender.source).filter);
    if (!filter.ok) return this.#refuse(sender, address, ARGUMENT_ERROR, filter.why);
    const scope = `${group.toLowerCase()}/${target.partitionId}`;
    const claim = this.ownership.claim(scope, sender, epochOf(sender.properties));
    if (!claim.ok) return this.#refuse(sender, address, claim.condition, claim.description);
    for (const { link, description } of claim.evicted) {
      const other = this.readers.get(link);
      other?.owner.linkClosed(link);
      if (!link.is_closed()) this.#guarded(() => link.close({ condition: STOLEN, description }), 'evict reader');
    }
    const reader: Reader = {
      sender,
      scope,
      path: target.path,
      partitionId: target.partitionId,
      next: log.startSequence(filter.position),
      runtimeMetric: capabilities((sender as unknown as { remote?: { attach?: { desired_capabilities?: unknown } } }).remote?.attach?.desired_capabilities).includes(RUNTIME_METRIC),
      unsent: new Set(),
      unsubscribe: () => undefined,
      owner: this,
    };
    reader.unsubscribe = endpoint.subscribe(target.partitionId, () => this.#pump(reader));
    this.readers.set(sender, reader);
    this.#links.set(sender, target.path);
    this.deps.logger.info('event hubs reader attached', { connectionId: this.id, consumerGroup: group, partitionId: target.partitionId, startsAt: reader.next });
    this.#pump(reader);
    return true;
  }

  receiverOpened(receiver: Receiver): boolean {
    const address = addressOf(receiver.target);
    const target = this.#target(address);
    if (!target) return false;
    if (receiver.source) receiver.set_source(receiver.source);
    if (receiver.target) receiver.set_target(receiver.target);
    if (!this.#covered(target.path)) return this.#refuse(receiver, address, UNAUTHORIZED, 'no valid token (CBS put-token) covers this address');
    if (target.kind !== 'management') {
      // IoT Hub's built-in endpoint is read-only: devices send telemetry, backends only read.
      return this.#refuse(receiver, address, NOT_ALLOWED, 'the built-in endpoint of IoT Hub cannot be sent to; devices send telemetry');
    }
    this.#managementReceivers.add(receiver);
    this.#links.set(receiver, target.path);
    return true;
  }

  #refuse(link: Sender | Receiver, address: string | undefined, condition: string, description: string): true {
    this.deps.logger.info('event hubs attach refused', { connectionId: this.id, address, condition, why: description });
    link.close({ condition, description });
    return true;
  }

  linkClosed(link: Sender | Receiver): void {
    this.#forget(link);
  }

  #forget(link: Sender | Receiver): void {
    this.#links.delete(link);
    this.#managementReceivers.delete(link as Receiver);
    this.#managementSenders.delete(link as Sender);
    const reader = this.readers.get(link as Sender);
    if (reader && reader.owner === this) {
      this.readers.delete(reader.sender);
      reader.unsubscribe();
      this.ownership.release(reader.scope, reader.sender);
    }
  }

  // ---- delivery ---------------------------------------------------------------------------------

  sendable(sender: Sender): boolean {
    const reader = this.readers.get(sender);
    if (reader && reader.owner === this) {
      this.#pump(reader);
      return true;
    }
    return this.#managementSenders.has(sender);
  }

  /**
   * Sends from the reader's position while it has credit. rhea spends credit only when it writes
   * a transfer (it has no per-delivery "sent" flag), so deliveries queued but not yet written
   * count against the credit here.
   */
  #pump(reader: Reader): void {
    if (this.#ended || !reader.sender.is_open()) return;
    const log = this.deps.endpoint.partition(reader.partitionId);
    if (!log) return;
    // rhea writes a session's deliveries in id order; those below next_pending_delivery are out.
    const outgoing = (reader.sender as unknown as { session?: { outgoing?: { available(): number; next_pending_delivery: number } } }).session?.outgoing;
    const written = outgoing?.next_pending_delivery ?? Number.POSITIVE_INFINITY;
    for (const d of reader.unsent) if ((d as unknown as { id: number }).id < written) reader.unsent.delete(d);
    const credit = (reader.sender as unknown as { credit?: number }).credit ?? 0;
    let capacity = credit - reader.unsent.size;
    // Events the reader had not reached before retention dropped them are gone, as in Event Hubs.
    if (reader.next < log.firstSequenceNumber) reader.next = log.firstSequenceNumber;
    // The session's window of unsettled deliveries is finite too (rhea throws past it); rhea says
    // 'sendable' again once the peer's dispositions free it.
    while (capacity > 0 && (outgoing === undefined || outgoing.available() > 0)) {
      const event = log.get(reader.next);
      if (!event) break;
      const message = eventToAmqp(event, reader.runtimeMetric ? { info: log.info(), now: this.deps.clock.now() } : undefined);
      reader.unsent.add(reader.sender.send(message as unknown as Message));
      reader.next++;
      capacity--;
    }
  }

  // ---- management -------------------------------------------------------------------------------

  message(receiver: Receiver, ctx: EventContext): boolean {
    if (!this.#managementReceivers.has(receiver)) return false;
    const delivery = ctx.delivery;
    settleIncoming(delivery);
    const request = ctx.message as AmqpMessageLike & { reply_to?: unknown } | undefined;
    if (!request || Buffer.isBuffer(request)) return true;
    const reply = this.#answer(request);
    const replyTo = typeof request.reply_to === 'string' ? request.reply_to : undefined;
    const senders = [...this.#managementSenders].filter((s) => s.is_open());
    const sender = senders.find((s) => addressOf(s.target) === replyTo) ?? senders.at(-1);
    if (!sender) {
      this.deps.logger.warn('event hubs management request without a reply link', { connectionId: this.id });
      return true;
    }
    sender.send(reply as unknown as Message);
    return true;
  }

  #answer(request: AmqpMessageLike): OutgoingAmqpMessage {
    const id = request.message_id;
    const p = record(request.application_properties);
    const { endpoint } = this.deps;
    if (p.operation !== 'READ') return managementReply(id, 400, `unsupported operation ${String(p.operation)}`);
    if (typeof p.name !== 'string' || p.name.toLowerCase() !== this.#entity) return managementReply(id, 404, `no event hub named ${String(p.name)}`);
    if (p.type === 'com.microsoft:eventhub') {
      return managementReply(id, 200, 'OK', eventHubReadBody(endpoint.name, endpoint.createdAt, endpoint.partitionIds));
    }
    if (p.type === 'com.microsoft:partition') {
      const partitionId = typeof p.partition === 'string' ? p.partition : messageIdToString(p.partition);
      const info = partitionId === undefined ? undefined : endpoint.partitionInfo(partitionId);
      if (partitionId === undefined || !info) return managementReply(id, 404, `no partition ${String(p.partition)}; the partitions are ${endpoint.partitionIds.join(', ')}`);
      return managementReply(id, 200, 'OK', partitionReadBody(endpoint.name, partitionId, info));
    }
    return managementReply(id, 400, `unsupported type ${String(p.type)}`);
  }

  // ---- teardown ---------------------------------------------------------------------------------

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const link of [...this.#links.keys()]) this.#forget(link);
    this.#claims.clear();
  }

  #guarded(fn: () => void, what: string): void {
    try {
      fn();
    } catch (error) {
      this.deps.logger.warn(`event hubs ${what} failed`, { connectionId: this.id, error: error instanceof Error ? error.message : String(error) });
    }
  }
}
