// Messages in both directions, normalized so callers never see the per-transport shapes
// (azure-sdk-transports.md §8 item 7): MQTT and AMQP give Buffers, HTTP a UTF-8 string; expiry
// comes as a string, a number or an ISO text; HTTP keeps an `iothub-app-` prefix on properties.
import azureDevice from 'azure-iot-device';
import type { Message as AzureMessage } from 'azure-iot-device';
import { SwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';

/** What sendEvent accepts: raw bytes or text, or a message with properties. */
export type OutgoingMessage = Buffer | Uint8Array | string | DeviceMessage;

export interface DeviceMessage {
  /** Bytes as given; a string is UTF-8; any other value is sent as JSON with contentType application/json. */
  body: Buffer | Uint8Array | string | Record<string, unknown> | unknown[];
  properties?: Record<string, string>;
  messageId?: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  expiresAt?: Date;
}

/** A cloud-to-device message, the same whichever protocol carried it. */
export interface C2DMessageData {
  body: Buffer;
  /** Application properties, without HTTP's `iothub-app-` prefix. */
  properties: Record<string, string>;
  messageId?: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  expiresAt?: Date;
  to?: string;
  /** Which protocol delivered it. */
  protocol: Protocol;
}

function isDeviceMessage(value: OutgoingMessage): value is DeviceMessage {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && 'body' in value;
}

// Over HTTPS each property becomes an `iothub-app-<key>` header. Node refuses a header name that is
// not an HTTP token, or a value with control characters, by throwing inside the SDK's request
// code, where nothing catches it and the process dies; refuse it here instead.
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HTTP_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function checkHttpProperty(key: string, value: string): void {
  if (!HTTP_TOKEN.test(key)) {
    throw new SwitchyardError('CONFIG_INVALID', `message property name ${JSON.stringify(key)} cannot travel over HTTPS, where properties are HTTP headers: use letters, digits and - . _ ~ only (no spaces)`, { details: { field: `properties.${key}` } });
  }
  if (!HTTP_VALUE.test(value)) {
    throw new SwitchyardError('CONFIG_INVALID', `message property ${JSON.stringify(key)} has a value with control characters or characters beyond Latin-1, which cannot travel over HTTPS as a header: encode it (e.g. with encodeURIComponent)`, { details: { field: `properties.${key}` } });
  }
}

/** A view, not a copy: the Azure Message keeps the caller's buffer too. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The SDK's Message with a short JSON form. azure-iot-device-mqtt builds a debug line with
 * `JSON.stringify(message)` on every send, logging on or off: the body Buffer's toJSON turns each
 * byte into an array element, about 14 us of CPU per 100-byte message (a fifth of an MQTT send at
 * 16 in flight), for a string that is dropped. Nothing in the SDK serializes a message with JSON
 * for the wire; with DEBUG on, the line names the message instead of dumping its bytes.
 */
class OutgoingAzureMessage extends azureDevice.Message {
  toJSON(): { messageId: unknown; bytes: number | undefined } {
    const data = this.data as { length?: number } | undefined;
    return { messageId: this.messageId, bytes: data?.length };
  }
}

/** Builds the SDK Message, with the expiry in the form each transport can encode. */
export function toAzureMessage(input: OutgoingMessage, protocol: Protocol): AzureMessage {
  if (!isDeviceMessage(input)) return new OutgoingAzureMessage(typeof input === 'string' ? Buffer.from(input, 'utf8') : asBuffer(input));
  const { body } = input;
  let data: Buffer;
  let json = false;
  if (typeof body === 'string') data = Buffer.from(body, 'utf8');
  else if (body instanceof Uint8Array) data = asBuffer(body);
  else {
    data = Buffer.from(JSON.stringify(body), 'utf8');
    json = true;
  }
  const message = new OutgoingAzureMessage(data);
  for (const [key, value] of Object.entries(input.properties ?? {})) {
    if (typeof value !== 'string') {
      throw new SwitchyardError('CONFIG_INVALID', `message property ${JSON.stringify(key)} must be a string, got ${typeof value}`, { details: { field: `properties.${key}` } });
    }
    if (protocol === 'https') checkHttpProperty(key, value);
    message.properties.add(key, value);
  }
  if (input.messageId !== undefined) message.messageId = input.messageId;
  if (input.correlationId !== undefined) message.correlationId = input.correlationId;
  if (input.contentType !== undefined) message.contentType = input.contentType as never;
  else if (json) message.contentType = 'application/json' as never;
  if (input.contentEncoding !== undefined) message.contentEncoding = input.contentEncoding as never;
  else if (json) message.contentEncoding = 'utf-8' as never;
  if (input.expiresAt !== undefined) {
    // AMQP: rhea 1.x cannot encode a Date and the send hangs, so a number; HTTP copies the value
    // into a header verbatim, so ISO text; MQTT turns a Date into ISO itself.
    message.expiryTimeUtc = protocol === 'amqp' || protocol === 'amqp-ws' ? input.expiresAt.getTime() : protocol === 'https' ? input.expiresAt.toISOString() : input.expiresAt;
  }
  return message;
}

interface AzureIncoming {
  data?: unknown;
  properties?: { propertyList?: Array<{ key: string; value: unknown }> };
  messageId?: unknown;
  correlationId?: unknown;
  contentType?: unknown;
  contentEncoding?: unknown;
  expiryTimeUtc?: unknown;
  to?: unknown;
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return String(value);
}

function toDate(value: unknown): Date | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const date = value instanceof Date ? value : typeof value === 'number' ? new Date(value) : /^\d+$/.test(String(value)) ? new Date(Number(value)) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

const HTTP_APP_PREFIX = 'iothub-app-';

/** Normalizes a received SDK Message. */
export function fromAzureMessage(msg: AzureIncoming, protocol: Protocol): C2DMessageData {
  const data = msg.data;
  // HTTP hands over the body as a UTF-8 string (binary payloads do not survive that transport).
  const body = Buffer.isBuffer(data) ? data : data instanceof Uint8Array ? Buffer.from(data) : typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.alloc(0);
  const properties: Record<string, string> = {};
  for (const { key, value } of msg.properties?.propertyList ?? []) {
    const name = protocol === 'https' && key.toLowerCase().startsWith(HTTP_APP_PREFIX) ? key.slice(HTTP_APP_PREFIX.length) : key;
    properties[name] = String(value);
  }
  const out: C2DMessageData = { body, properties, protocol };
  const messageId = text(msg.messageId);
  if (messageId !== undefined) out.messageId = messageId;
  const correlationId = text(msg.correlationId);
  if (correlationId !== undefined) out.correlationId = correlationId;
  const contentType = text(msg.contentType);
  if (contentType !== undefined) out.contentType = contentType;
  const contentEncoding = text(msg.contentEncoding);
  if (contentEncoding !== undefined) out.contentEncoding = contentEncoding;
  const expiresAt = toDate(msg.expiryTimeUtc);
  if (expiresAt !== undefined) out.expiresAt = expiresAt;
  const to = text(msg.to);
  if (to !== undefined) out.to = to;
  return out;
}
