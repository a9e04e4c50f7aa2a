// What a service client (azure-iothub's Amqp transport) sends, read as core calls: CBS put-token
// for a shared access policy, and C2D messages on /messages/devicebound. Pure, so the rules are
// testable without sockets.
import type { C2DSendInput } from '../core/types.ts';
import type { AmqpMessageLike } from './mapping.ts';
import { bodyToBuffer, messageIdToString, stringProperty } from './mapping.ts';

export const C2D_SEND_ADDRESS = '/messages/devicebound';

export type ServicePutToken =
  | { ok: true; messageId: string | undefined; audience: string; token: string }
  | { ok: false; messageId: string | undefined; status: number; why: string };

const TOKEN_TYPES = new Set(['servicebus.windows.net:sastoken', 'azure-devices.net:sastoken']);

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) ? (value as Record<string, unknown>) : {};
}

/**
 * A put-token whose audience is the hub itself (no `/devices/…`) is a service credential; anything
 * else is not ours (undefined) and goes to the device rules.
 */
export function parseServicePutToken(msg: AmqpMessageLike): ServicePutToken | undefined {
  const p = record(msg.application_properties);
  if (p.operation !== 'put-token' || typeof p.name !== 'string' || p.name === '') return undefined;
  let audience: string;
  try {
    audience = decodeURIComponent(p.name);
  } catch {
    return undefined;
  }
  if (/\/devices\//i.test(audience)) return undefined;
  const messageId = messageIdToString(msg.message_id);
  if (typeof p.type !== 'string' || !TOKEN_TYPES.has(p.type)) return { ok: false, messageId, status: 400, why: `unsupported token type ${String(p.type)}` };
  const body = msg.body;
  const token = typeof body === 'string' ? body : bodyToBuffer(body).toString('utf8');
  if (!token.startsWith('SharedAccessSignature ')) return { ok: false, messageId, status: 400, why: 'put-token body is not a SharedAccessSignature' };
  return { ok: true, messageId, audience, token };
}

export type C2DSendParse = { ok: true; deviceId: string; input: C2DSendInput } | { ok: false; why: string };

const DEVICEBOUND_TO = /^\/devices\/([^/]+)\/messages\/devicebound\/?$/;
const ACKS = new Set(['none', 'positive', 'negative', 'full']);

function epochMs(value: unknown): number | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.getTime();
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string') {
    const t = Date.parse(value);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

/**
 * A message on the service's devicebound link. `to` names the device (the SDK url-encodes the id);
 * absolute-expiry-time becomes the message's TTL as of `now`.
 */
export function c2dFromServiceMessage(msg: AmqpMessageLike, now: number): C2DSendParse {
  const to = typeof msg.to === 'string' ? msg.to : undefined;
  const m = to === undefined ? null : DEVICEBOUND_TO.exec(to);
  if (!m?.[1]) return { ok: false, why: `the message's to (${String(msg.to)}) is not /devices/{deviceId}/messages/devicebound` };
  let deviceId: string;
  try {
    deviceId = decodeURIComponent(m[1]);
  } catch {
    return { ok: false, why: 'the device id in to is not url-encoded' };
  }
  const input: C2DSendInput = { body: bodyToBuffer(msg.body) };
  const properties: Record<string, string> = {};
  for (const [key, value] of Object.entries(record(msg.application_properties))) {
    const v = stringProperty(value);
    if (v === undefined) continue;
    if (key === 'iothub-ack') {
      if (!ACKS.has(v)) return { ok: false, why: `iothub-ack must be none, positive, negative or full, not ${v}` };
      input.ack = v as NonNullable<C2DSendInput['ack']>;
    } else {
      properties[key] = v;
    }
  }
  if (Object.keys(properties).length > 0) input.properties = properties;
  const messageId = messageIdToString(msg.message_id);
  if (messageId !== undefined) input.messageId = messageId;
  const correlationId = messageIdToString(msg.correlation_id);
  if (correlationId !== undefined) input.correlationId = correlationId;
  const contentType = stringProperty(msg.content_type);
  if (contentType !== undefined) input.contentType = contentType;
  const contentEncoding = stringProperty(msg.content_encoding);
  if (contentEncoding !== undefined) input.contentEncoding = contentEncoding;
  if (msg.absolute_expiry_time !== undefined && msg.absolute_expiry_time !== null) {
    const expiry = epochMs(msg.absolute_expiry_time);
    if (expiry === undefined) return { ok: false, why: 'absolute-expiry-time is not a time' };
    input.ttlSeconds = (expiry - now) / 1000;
  }
  return { ok: true, deviceId, input };
}
