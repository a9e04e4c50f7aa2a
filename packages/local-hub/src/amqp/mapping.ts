// Translation between rhea's decoded messages and the core's types. rhea does the AMQP encoding;
// this module only decides which AMQP field carries which IoT Hub property, as the Azure SDK
// (azure-iot-device-amqp AmqpMessage) expects on the other side.
import rhea from 'rhea';
import type { LockedC2DMessage, SystemProperties, TelemetryInput, TwinDocument } from '../core/types.ts';
import { DEFAULT_LIMITS } from '../limits.ts';
import { assertDecodableMessage } from './encoding-scan.ts';

/** The parts of a rhea message this front-end reads; rhea types every field as `any`. */
export interface AmqpMessageLike {
  body?: unknown;
  message_id?: unknown;
  correlation_id?: unknown;
  to?: unknown;
  user_id?: unknown;
  content_type?: unknown;
  content_encoding?: unknown;
  absolute_expiry_time?: unknown;
  message_annotations?: unknown;
  application_properties?: unknown;
}

/** What rhea accepts for `Sender.send`. */
export type OutgoingAmqpMessage = Record<string, unknown>;

/** IoT Hub's batched D2C format: the body is a sequence of data sections, each an encoded message. */
export const BATCH_MESSAGE_FORMAT = 0x80013700;
/** IoT Hub caps a whole batch like one message. */
export const MAX_BATCH_BYTES = 256 * 1024;

const DATA_SECTION = 0x75;
const SEQUENCE_SECTION = 0x76;

interface RheaSection {
  typecode: number;
  content: unknown;
  multiple?: boolean;
}

function isSection(value: unknown): value is RheaSection {
  return typeof value === 'object' && value !== null && 'typecode' in value && 'content' in value && typeof (value as { typecode: unknown }).typecode === 'number';
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) ? (value as Record<string, unknown>) : {};
}

/** Body bytes of a decoded message: data section(s) as sent, a string or binary value as is. */
export function bodyToBuffer(body: unknown): Buffer {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (isSection(body)) {
    if (body.typecode === DATA_SECTION) {
      const parts = body.multiple && Array.isArray(body.content) ? body.content : [body.content];
      return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(String(p)))));
    }
    if (body.typecode === SEQUENCE_SECTION) return Buffer.from(JSON.stringify(body.content));
  }
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(JSON.stringify(body));
}

/**
 * message-id / correlation-id may be string, ulong, binary or uuid. rhea decodes a uuid to a
 * 16-byte Buffer; the Azure SDK sends ids that look like uuids as that type, so 16 bytes read as
 * a uuid string is what the device meant.
 */
export function messageIdToString(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (Buffer.isBuffer(value)) return value.length === 16 ? rhea.uuid_to_string(value) : value.toString('utf8');
  return undefined;
}

/** An application property as the text IoT Hub carries: strings as they are, other values rendered. */
export function stringProperty(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value);
}

function expiryToIso(value: unknown): string | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  if (typeof value === 'number' && Number.isFinite(value)) return new Date(value).toISOString();
  return undefined;
}

/** A device's D2C message as the core takes it. */
export function telemetryFromAmqp(msg: AmqpMessageLike): TelemetryInput {
  const systemProperties: SystemProperties = {};
  const messageId = messageIdToString(msg.message_id);
  if (messageId !== undefined) systemProperties.messageId = messageId;
  const correlationId = messageIdToString(msg.correlation_id);
  if (correlationId !== undefined) systemProperties.correlationId = correlationId;
  const userId = stringProperty(msg.user_id);
  if (userId !== undefined) systemProperties.userId = userId;
  const contentType = stringProperty(msg.content_type);
  if (contentType !== undefined) systemProperties.contentType = contentType;
  const contentEncoding = stringProperty(msg.content_encoding);
  if (contentEncoding !== undefined) systemProperties.contentEncoding = contentEncoding;
  const expiry = expiryToIso(msg.absolute_expiry_time);
  if (expiry !== undefined) systemProperties.expiryTimeUtc = expiry;
  const annotations = asRecord(msg.message_annotations);
  const subject = stringProperty(annotations['dt-subject']);
  if (subject !== undefined) systemProperties.subject = subject;
  const interfaceId = stringProperty(annotations['iothub-interface-id']);
  if (interfaceId !== undefined) systemProperties.interfaceId = interfaceId;

  const properties: Record<string, string> = {};
  for (const [key, value] of Object.entries(asRecord(msg.application_properties))) {
    const text = stringProperty(value);
    if (text !== undefined) properties[key] = text;
  }
  return { body: bodyToBuffer(msg.body), properties, systemProperties };
}

/**
 * Splits a batched D2C payload (message format 0x80013700) into its messages. Throws on anything
 * that is not a sequence of data sections holding encoded messages; the caller rejects the delivery.
 */
export function decodeBatch(payload: Buffer, maxArrayElements = DEFAULT_LIMITS.maxArrayElements): AmqpMessageLike[] {
  // The frame guard checked the outer message; the inner ones are opaque binary to it.
  assertDecodableMessage(payload, maxArrayElements);
  const outer = rhea.message.decode(payload) as AmqpMessageLike;
  const body = outer.body;
  if (!isSection(body) || body.typecode !== DATA_SECTION) throw new Error('batched message body is not data sections');
  const parts = body.multiple && Array.isArray(body.content) ? body.content : [body.content];
  return parts.map((part, i) => {
    if (!Buffer.isBuffer(part)) throw new Error(`batch section ${i} is not binary`);
    assertDecodableMessage(part, maxArrayElements);
    return rhea.message.decode(part) as AmqpMessageLike;
  });
}

/** A locked C2D message as azure-iot-device-amqp's AmqpMessage.toMessage reads it. */
export function c2dToAmqp(message: LockedC2DMessage): OutgoingAmqpMessage {
  const applicationProperties: Record<string, string> = { ...message.properties };
  if (message.ack !== undefined) applicationProperties['iothub-ack'] = message.ack;
  const out: OutgoingAmqpMessage = {
    message_id: message.messageId,
    to: message.to,
    // A Date here breaks the SDK's bundled rhea 1.x decoder path; IoT Hub sends epoch ms.
    absolute_expiry_time: message.expiresAt,
    // The header's delivery-count is how AMQP tells a receiver about earlier attempts.
    delivery_count: message.deliveryCount,
    application_properties: applicationProperties,
    body: rhea.message.data_section(message.body),
  };
  if (message.correlationId !== undefined) out.correlation_id = message.correlationId;
  // The SDK reads these into Message.contentType / contentEncoding.
  if (message.contentType !== undefined) out.content_type = message.contentType;
  if (message.contentEncoding !== undefined) out.content_encoding = message.contentEncoding;
  return out;
}

export type TwinRequest =
  | { operation: 'GET'; correlationId: string }
  | { operation: 'PATCH'; correlationId: string; patch: Record<string, unknown> }
  | { operation: 'PUT' | 'DELETE'; correlationId: string };

export type TwinRequestParse = { ok: true; request: TwinRequest } | { ok: false; correlationId?: string; status: number; why: string };

const DESIRED_NOTIFICATIONS = '/notifications/twin/properties/desired';

export function parseTwinRequest(msg: AmqpMessageLike): TwinRequestParse {
  const correlationId = messageIdToString(msg.correlation_id);
  if (correlationId === undefined) return { ok: false, status: 400, why: 'twin request without correlation_id' };
  const annotations = asRecord(msg.message_annotations);
  const operation = annotations.operation;
  const resource = annotations.resource;
  switch (operation) {
    case 'GET':
      return { ok: true, request: { operation, correlationId } };
    case 'PATCH': {
      if (resource !== '/properties/reported') return { ok: false, correlationId, status: 400, why: `cannot PATCH ${String(resource)}` };
      let patch: unknown;
      try {
        patch = JSON.parse(bodyToBuffer(msg.body).toString('utf8'));
      } catch {
        return { ok: false, correlationId, status: 400, why: 'reported patch is not JSON' };
      }
      if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return { ok: false, correlationId, status: 400, why: 'reported patch is not a JSON object' };
      return { ok: true, request: { operation, correlationId, patch: patch as Record<string, unknown> } };
    }
    case 'PUT':
    case 'DELETE':
      if (resource !== DESIRED_NOTIFICATIONS) return { ok: false, correlationId, status: 400, why: `cannot ${operation} ${String(resource)}` };
      return { ok: true, request: { operation, correlationId } };
    default:
      return { ok: false, correlationId, status: 400, why: `unknown twin operation ${String(operation)}` };
  }
}

/** The SDK reads `body.content` unguarded, so every twin reply carries a data section. */
export function twinReply(correlationId: string, status: number, body: unknown, version?: number): OutgoingAmqpMessage {
  const annotations: Record<string, number> = { status };
  if (version !== undefined) annotations.version = version;
  const bytes = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
  return { correlation_id: correlationId, message_annotations: annotations, body: rhea.message.data_section(bytes) };
}

export function twinGetBody(twin: TwinDocument): { desired: TwinDocument['desired']; reported: TwinDocument['reported'] } {
  return { desired: twin.desired, reported: twin.reported };
}

/** A desired-properties notification is a twin-link message without correlation_id. */
export function desiredPatchMessage(patch: Record<string, unknown> & { $version: number }): OutgoingAmqpMessage {
  return { message_annotations: { version: patch.$version }, body: rhea.message.data_section(Buffer.from(JSON.stringify(patch))) };
}

export function methodRequestMessage(request: { requestId: string; methodName: string; payload: unknown }): OutgoingAmqpMessage {
  const json = JSON.stringify(request.payload === undefined ? null : request.payload);
  return {
    correlation_id: request.requestId,
    application_properties: { 'IoThub-methodname': request.methodName },
    body: rhea.message.data_section(Buffer.from(json)),
  };
}

export type MethodResponseParse = { ok: true; requestId: string; status: number; payload: unknown } | { ok: false; why: string };

export function parseMethodResponse(msg: AmqpMessageLike): MethodResponseParse {
  const requestId = messageIdToString(msg.correlation_id);
  if (requestId === undefined) return { ok: false, why: 'method response without correlation_id' };
  const status = asRecord(msg.application_properties)['IoThub-status'];
  if (typeof status !== 'number' || !Number.isInteger(status)) return { ok: false, why: 'method response without a numeric IoThub-status' };
  const text = bodyToBuffer(msg.body).toString('utf8');
  let payload: unknown = null;
  if (text.length > 0) {
    try {
      payload = JSON.parse(text);
    } catch {
      // IoT Hub requires JSON; a device that sends text still gets its answer through as a string.
      payload = text;
    }
  }
  return { ok: true, requestId, status, payload };
}
