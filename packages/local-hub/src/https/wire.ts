// How IoT Hub's HTTPS device API carries messages: system properties and application properties
// travel as `iothub-*` headers (single messages, C2D) or as a property map (batches).
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import type { LockedC2DMessage, SystemProperties, TelemetryInput } from '../core/types.ts';
import { badRequest } from './respond.ts';

const APP_PREFIX = 'iothub-app-';

/** Header (or batch property) name, lower case → system property. */
const SYSTEM_NAMES: Record<string, keyof SystemProperties> = {
  'iothub-messageid': 'messageId',
  'iothub-correlationid': 'correlationId',
  'iothub-userid': 'userId',
  'iothub-contenttype': 'contentType',
  'iothub-contentencoding': 'contentEncoding',
  'iothub-expiry': 'expiryTimeUtc',
  'iothub-interface-id': 'interfaceId',
  // azure-iot-device sends `dt-subject` unprefixed, on single messages and in batches alike.
  'dt-subject': 'subject',
};

/**
 * The SDK stringifies `expiryTimeUtc` as it was set (a Date's toString, an ISO string or epoch
 * ms), so anything `Date` understands is accepted and stored as ISO.
 */
function parseExpiry(value: string, field: string): string {
  const asNumber = /^\d+$/.test(value) ? Number(value) : undefined;
  const date = new Date(asNumber ?? value);
  if (Number.isNaN(date.getTime())) throw badRequest(`${field} must be a date (ISO 8601 preferred), got ${JSON.stringify(value.slice(0, 64))}`);
  return date.toISOString();
}

function applyProperty(name: string, value: string, into: { properties: Record<string, string>; systemProperties: SystemProperties }, field: string): void {
  const lower = name.toLowerCase();
  if (lower.startsWith(APP_PREFIX)) {
    const key = name.slice(APP_PREFIX.length);
    if (key !== '') into.properties[key] = value;
    return;
  }
  const system = SYSTEM_NAMES[lower];
  if (system === 'expiryTimeUtc') into.systemProperties.expiryTimeUtc = parseExpiry(value, field);
  else if (system !== undefined) into.systemProperties[system] = value;
}

/** Single-message telemetry: the body is the payload, properties are headers. */
export function telemetryFromHeaders(headers: IncomingHttpHeaders, body: Buffer): TelemetryInput {
  const message: TelemetryInput = { body, properties: {}, systemProperties: {} };
  for (const [name, raw] of Object.entries(headers)) {
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(',') : raw;
    applyProperty(name, value, message, `header ${name}`);
  }
  return message;
}

const BATCH_CONTENT_TYPE = 'application/vnd.microsoft.iothub.json';

const batchSchema = z
  .array(
    z.object({
      body: z.string(),
      // azure-iot-device omits the flag and always sends base64, so absence means base64.
      base64Encoded: z.boolean().optional(),
      properties: z.record(z.string(), z.string()).optional(),
    }),
  )
  .min(1, 'a batch needs at least one message');

export function isBatch(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return typeof type === 'string' && type.split(';')[0]?.trim().toLowerCase() === BATCH_CONTENT_TYPE;
}

/** `application/vnd.microsoft.iothub.json`: `[{"body": "<base64>", "properties": {"iothub-app-k": "v"}}]`. */
export function telemetryFromBatch(raw: Buffer): TelemetryInput[] {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw badRequest(`the batch body is not JSON (${(err as Error).message})`);
  }
  const parsed = batchSchema.safeParse(json);
  if (!parsed.success) throw badRequest(`invalid batch: ${describeZodError(parsed.error)}`);
  return parsed.data.map((item, index) => {
    const isBase64 = item.base64Encoded !== false;
    if (isBase64 && !/^[A-Za-z0-9+/]*={0,2}$/.test(item.body)) throw badRequest(`[${index}].body must be base64 (or set base64Encoded: false)`);
    const message: TelemetryInput = {
      body: isBase64 ? Buffer.from(item.body, 'base64') : Buffer.from(item.body, 'utf8'),
      properties: {},
      systemProperties: {},
    };
    for (const [name, value] of Object.entries(item.properties ?? {})) {
      const lower = name.toLowerCase();
      // Unprefixed keys from clients other than azure-iot-device are application properties as-is.
      if (lower.startsWith(APP_PREFIX) || SYSTEM_NAMES[lower] !== undefined) applyProperty(name, value, message, `[${index}].properties.${name}`);
      else message.properties[name] = value;
    }
    return message;
  });
}

/** Header names are RFC 7230 tokens; values may not hold control characters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SAFE_VALUE = /^[\t\x20-\x7e]*$/;

/**
 * C2D headers as azure-iot-http-base `toMessage` reads them. Application properties that cannot
 * be a header are percent-encoded (values) or dropped (names) and reported, never thrown.
 */
export function c2dHeaders(message: LockedC2DMessage): { headers: Record<string, string>; dropped: string[] } {
  const headers: Record<string, string> = {
    // The SDK strips the first and last character of the ETag to get the lock token.
    ETag: `"${message.lockToken}"`,
    'Content-Type': 'application/octet-stream',
    'iothub-messageid': message.messageId,
    'iothub-to': message.to,
    'iothub-expiry': new Date(message.expiresAt).toISOString(),
    'iothub-enqueuedtime': new Date(message.enqueuedAt).toISOString(),
    'iothub-deliverycount': String(message.deliveryCount),
  };
  if (message.correlationId !== undefined) headers['iothub-correlationid'] = message.correlationId;
  if (message.ack !== undefined) headers['iothub-ack'] = message.ack;
  const dropped: string[] = [];
  for (const [key, value] of Object.entries(message.properties)) {
    if (!TOKEN.test(key)) {
      dropped.push(key);
      continue;
    }
    headers[`${APP_PREFIX}${key}`] = SAFE_VALUE.test(value) ? value : encodeURIComponent(value);
  }
  for (const name of ['iothub-messageid', 'iothub-correlationid'] as const) {
    const value = headers[name];
    if (value !== undefined && !SAFE_VALUE.test(value)) headers[name] = encodeURIComponent(value);
  }
  return { headers, dropped };
}

/** One line naming the first failing field, e.g. `body: expected string, received number`. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path.length === 0 ? '(root)' : issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.');
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}
