// A message as the outbox keeps it on disk: JSON, bodies of bytes as base64, so that a replay
// after a restart hands the link the same message (same id, body, properties) as the first send.
import type { DeviceMessage, OutgoingMessage } from '../message.ts';

export interface StoredMessage {
  /** Body as base64 (bytes), text (s) or a JSON value (j); exactly one is set. */
  b?: string;
  s?: string;
  j?: unknown;
  p?: Record<string, string>;
  id: string;
  c?: string;
  ct?: string;
  ce?: string;
  /** expiresAt, ms since the epoch. */
  x?: number;
}

function isDeviceMessage(value: OutgoingMessage): value is DeviceMessage {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && 'body' in value;
}

/** The message with a message id: the caller's, or `newId` when it has none. Never mutates the input. */
export function withMessageId(message: OutgoingMessage, newId: () => string): DeviceMessage & { messageId: string } {
  if (!isDeviceMessage(message)) return { body: message, messageId: newId() };
  if (typeof message.messageId === 'string' && message.messageId !== '') return message as DeviceMessage & { messageId: string };
  return { ...message, messageId: newId() };
}

/** Bytes the message occupies against maxBytes: its body and properties, as sent. */
export function messageBytes(message: DeviceMessage): number {
  const { body } = message;
  let bytes = typeof body === 'string' ? Buffer.byteLength(body) : body instanceof Uint8Array ? body.byteLength : Buffer.byteLength(JSON.stringify(body));
  if (message.properties !== undefined) for (const key in message.properties) bytes += key.length + (message.properties[key]?.length ?? 0);
  return bytes;
}

export function storeMessage(message: DeviceMessage & { messageId: string }): StoredMessage {
  const { body } = message;
  const out: StoredMessage = { id: message.messageId };
  if (typeof body === 'string') out.s = body;
  else if (body instanceof Uint8Array) out.b = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64');
  else out.j = body;
  if (message.properties !== undefined) out.p = message.properties;
  if (message.correlationId !== undefined) out.c = message.correlationId;
  if (message.contentType !== undefined) out.ct = message.contentType;
  if (message.contentEncoding !== undefined) out.ce = message.contentEncoding;
  if (message.expiresAt !== undefined) out.x = message.expiresAt.getTime();
  return out;
}

export function loadMessage(stored: StoredMessage): DeviceMessage & { messageId: string } {
  const body = stored.b !== undefined ? Buffer.from(stored.b, 'base64') : stored.s !== undefined ? stored.s : (stored.j as DeviceMessage['body']);
  const out: DeviceMessage & { messageId: string } = { body, messageId: stored.id };
  if (stored.p !== undefined) out.properties = stored.p;
  if (stored.c !== undefined) out.correlationId = stored.c;
  if (stored.ct !== undefined) out.contentType = stored.ct;
  if (stored.ce !== undefined) out.contentEncoding = stored.ce;
  if (stored.x !== undefined) out.expiresAt = new Date(stored.x);
  return out;
}
