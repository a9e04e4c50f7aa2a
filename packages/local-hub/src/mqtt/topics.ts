// IoT Hub's MQTT topic grammar: the handful of topics and filters a device may use, and the
// url-encoded property bags that carry message properties inside topic names.
import { parseIdentityId } from '../core/identity.ts';
import type { LockedC2DMessage, SystemProperties } from '../core/types.ts';

/** One decoded `k=v` pair of a property bag, in wire order (duplicates kept; last one wins later). */
export type BagEntry = readonly [key: string, value: string];

/**
 * Decodes `a=1&%24.mid=x&flag`. A key without `=` gets an empty value, as IoT Hub does.
 * Returns undefined for malformed percent-encoding so the caller can refuse the publish.
 */
export function parsePropertyBag(bag: string): BagEntry[] | undefined {
  const entries: BagEntry[] = [];
  if (bag === '') return entries;
  for (const part of bag.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    try {
      entries.push([decodeURIComponent(rawKey), decodeURIComponent(rawValue)]);
    } catch {
      return undefined;
    }
  }
  return entries;
}

export function formatPropertyBag(entries: Iterable<BagEntry>): string {
  const parts: string[] = [];
  for (const [key, value] of entries) parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  return parts.join('&');
}

const TELEMETRY_SYSTEM_KEYS: Record<string, keyof SystemProperties> = {
  '$.mid': 'messageId',
  '$.cid': 'correlationId',
  '$.uid': 'userId',
  '$.ct': 'contentType',
  '$.ce': 'contentEncoding',
  '$.exp': 'expiryTimeUtc',
  '$.sub': 'subject',
  '$.ifid': 'interfaceId',
};

/** Splits a telemetry bag into IoT Hub system properties and application properties. */
export function telemetryProperties(entries: readonly BagEntry[]): { properties: Record<string, string>; systemProperties: SystemProperties } {
  const properties: Record<string, string> = {};
  const systemProperties: SystemProperties = {};
  for (const [key, value] of entries) {
    const system = TELEMETRY_SYSTEM_KEYS[key];
    if (system !== undefined) systemProperties[system] = value;
    // `$.to` is the SDK echoing the destination; IoT Hub sets it itself, so it is not a user property.
    else if (key !== '$.to') properties[key] = value;
  }
  return { properties, systemProperties };
}

/** What a device PUBLISH is, judged only by its topic; anything not its own is `forbidden`. */
export type PublishTarget =
  | { kind: 'telemetry'; bag: string }
  | { kind: 'twin-get'; rid: string }
  | { kind: 'twin-patch-reported'; rid: string }
  | { kind: 'method-response'; status: number; rid: string }
  | { kind: 'forbidden'; why: string };

function queryOf(rest: string): Map<string, string> | undefined {
  // Twin and method topics end in `/?$rid=…`; tolerate a missing `/` the way url.parse does in the SDK.
  const q = rest.startsWith('/?') ? rest.slice(2) : rest.startsWith('?') ? rest.slice(1) : rest === '' || rest === '/' ? '' : undefined;
  if (q === undefined) return undefined;
  const entries = parsePropertyBag(q);
  return entries === undefined ? undefined : new Map(entries);
}

function withRid(rest: string, build: (rid: string) => PublishTarget): PublishTarget {
  const query = queryOf(rest);
  const rid = query?.get('$rid');
  if (rid === undefined || rid === '') return { kind: 'forbidden', why: 'request topic without a $rid' };
  return build(rid);
}

/** `devices/<d>/messages/events`, or `devices/<d>/modules/<m>/messages/events` for a module identity. */
export function telemetryTopic(identity: string): string {
  const ref = parseIdentityId(identity);
  return ref?.moduleId === undefined ? `devices/${identity}/messages/events` : `devices/${ref.deviceId}/modules/${ref.moduleId}/messages/events`;
}

/** `identity` is a device id or `<deviceId>/<moduleId>` (the MQTT client id). */
export function classifyPublishTopic(identity: string, topic: string): PublishTarget {
  const events = telemetryTopic(identity);
  if (topic === events) return { kind: 'telemetry', bag: '' };
  if (topic.startsWith(`${events}/`)) {
    let bag = topic.slice(events.length + 1);
    // Module output events append a trailing `/`; harmless for devices too.
    if (bag.endsWith('/')) bag = bag.slice(0, -1);
    return { kind: 'telemetry', bag };
  }
  if (topic.startsWith('$iothub/twin/GET')) return withRid(topic.slice('$iothub/twin/GET'.length), (rid) => ({ kind: 'twin-get', rid }));
  const reported = '$iothub/twin/PATCH/properties/reported';
  if (topic.startsWith(reported)) return withRid(topic.slice(reported.length), (rid) => ({ kind: 'twin-patch-reported', rid }));
  const methodRes = /^\$iothub\/methods\/res\/(\d{1,3})(.*)$/.exec(topic);
  if (methodRes) {
    const status = Number(methodRes[1]);
    return withRid(methodRes[2] ?? '', (rid) => ({ kind: 'method-response', status, rid }));
  }
  return { kind: 'forbidden', why: 'not one of the device\'s own publish topics' };
}

export type SubscriptionKind = 'c2d' | 'methods' | 'twin-responses' | 'twin-desired';

export type SubscriptionCheck = { ok: true; kind: SubscriptionKind } | { ok: false; why: string };

/**
 * IoT Hub accepts exactly these filters (no other wildcards), and only for the identity's own id.
 * A module has twin and method topics but no cloud-to-device queue; its input topic belongs to IoT
 * Edge, which routes messages between modules, and IoT Hub itself never publishes there.
 */
export function checkSubscription(identity: string, filter: string): SubscriptionCheck {
  if (filter === '$iothub/methods/POST/#') return { ok: true, kind: 'methods' };
  if (filter === '$iothub/twin/res/#') return { ok: true, kind: 'twin-responses' };
  if (filter === '$iothub/twin/PATCH/properties/desired/#') return { ok: true, kind: 'twin-desired' };
  const ref = parseIdentityId(identity);
  if (ref?.moduleId === undefined) {
    if (filter === `devices/${identity}/messages/devicebound/#`) return { ok: true, kind: 'c2d' };
    return { ok: false, why: 'not one of the device\'s own topic filters' };
  }
  if (filter === `devices/${ref.deviceId}/modules/${ref.moduleId}/inputs/#`) {
    return { ok: false, why: 'module input messages are routed by IoT Edge; IoT Hub sends no cloud-to-device or input messages to a module identity' };
  }
  if (filter === `devices/${ref.deviceId}/messages/devicebound/#`) {
    return { ok: false, why: 'cloud-to-device messages are for devices; IoT Hub has no cloud-to-device queue for a module identity' };
  }
  return { ok: false, why: 'not one of the module\'s own topic filters' };
}

export function classifySubscription(identity: string, filter: string): SubscriptionKind | undefined {
  const check = checkSubscription(identity, filter);
  return check.ok ? check.kind : undefined;
}

/** C2D system fields the core contract does not model (yet); emitted when a core supplies them. */
interface C2DExtras { contentType?: string; contentEncoding?: string; userId?: string }

export function c2dTopic(message: LockedC2DMessage & C2DExtras): string {
  const bag: BagEntry[] = [['$.mid', message.messageId], ['$.to', message.to]];
  if (message.correlationId !== undefined) bag.push(['$.cid', message.correlationId]);
  if (message.userId !== undefined) bag.push(['$.uid', message.userId]);
  bag.push(['$.exp', new Date(message.expiresAt).toISOString()]);
  if (message.contentType !== undefined) bag.push(['$.ct', message.contentType]);
  if (message.contentEncoding !== undefined) bag.push(['$.ce', message.contentEncoding]);
  for (const [key, value] of Object.entries(message.properties)) bag.push([key, value]);
  // The SDK's dispatcher regex requires the `/` after `devicebound` even when the bag is empty.
  return `devices/${message.deviceId}/messages/devicebound/${formatPropertyBag(bag)}`;
}

export function twinResponseTopic(status: number, rid: string, version?: number): string {
  const bag: BagEntry[] = [['$rid', rid]];
  if (version !== undefined) bag.push(['$version', String(version)]);
  return `$iothub/twin/res/${status}/?${formatRequestQuery(bag)}`;
}

export function desiredPatchTopic(version: number): string {
  return `$iothub/twin/PATCH/properties/desired/?$version=${version}`;
}

export function methodRequestTopic(methodName: string, rid: string): string {
  // The SDK takes the name verbatim from the topic segment, so it is not encoded.
  return `$iothub/methods/POST/${methodName}/?${formatRequestQuery([['$rid', rid]])}`;
}

// `$rid`/`$version` keys stay literal as IoT Hub sends them; only values are encoded.
function formatRequestQuery(entries: readonly BagEntry[]): string {
  return entries.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
}
