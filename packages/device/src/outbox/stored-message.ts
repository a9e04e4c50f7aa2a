// A message as the outbox holds it: with a message id that stays the same on every attempt and
// after a restart, and the bytes it counts against maxBytes. Its bytes on disk: log-format.ts.
import type { DeviceMessage, OutgoingMessage } from '../message.ts';

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
