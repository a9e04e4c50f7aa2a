// Claims-based security: how an AMQP connection proves, one put-token per identity, which devices
// it speaks for. Parsing is kept pure so the request rules are testable without sockets.
import { identityId } from '../core/identity.ts';
import type { AmqpMessageLike, OutgoingAmqpMessage } from './mapping.ts';
import { bodyToBuffer, messageIdToString } from './mapping.ts';

// Event Hubs' name is what the Azure SDKs send; IoT Hub also documents its own.
const TOKEN_TYPES = new Set(['servicebus.windows.net:sastoken', 'azure-devices.net:sastoken']);

/** `deviceId` is the identity id: `<deviceId>/<moduleId>` when the audience names a module. */
export type PutTokenParse =
  | { ok: true; messageId: string | undefined; deviceId: string; audience: string; token: string }
  | { ok: false; messageId: string | undefined; status: number; why: string };

function props(msg: AmqpMessageLike): Record<string, unknown> {
  const p = msg.application_properties;
  return typeof p === 'object' && p !== null ? (p as Record<string, unknown>) : {};
}

/**
 * The audience (`name`) is the url-encoded `<host>/devices/<id>` or `<host>/devices/<id>/modules/<m>`;
 * the identity is taken from it and the core then checks the token's own `sr` against that
 * identity, so a token for one device (or module) cannot be filed under another.
 */
export function parsePutToken(msg: AmqpMessageLike): PutTokenParse {
  const messageId = messageIdToString(msg.message_id);
  const p = props(msg);
  if (p.operation !== 'put-token') return { ok: false, messageId, status: 400, why: `unsupported CBS operation ${String(p.operation)}` };
  if (typeof p.type !== 'string' || !TOKEN_TYPES.has(p.type)) return { ok: false, messageId, status: 400, why: `unsupported token type ${String(p.type)}` };
  if (typeof p.name !== 'string' || p.name.length === 0) return { ok: false, messageId, status: 400, why: 'put-token without a name (audience)' };
  let audience: string;
  try {
    audience = decodeURIComponent(p.name);
  } catch {
    return { ok: false, messageId, status: 400, why: 'put-token name is not url-encoded' };
  }
  const m = /\/devices\/([^/]+)(?:\/modules\/([^/]+))?\/?$/i.exec(audience);
  const device = m?.[1];
  if (device === undefined) return { ok: false, messageId, status: 400, why: 'put-token audience does not name a device' };
  const deviceId = identityId(device, m?.[2]);
  const body = msg.body;
  const token = typeof body === 'string' ? body : bodyToBuffer(body).toString('utf8');
  if (!token.startsWith('SharedAccessSignature ')) return { ok: false, messageId, status: 400, why: 'put-token body is not a SharedAccessSignature' };
  return { ok: true, messageId, deviceId, audience, token };
}

/** The SDK compares `status-code` with `!== 200`, so it must be a number, never the string. */
export function putTokenReply(messageId: string | undefined, status: number, description: string): OutgoingAmqpMessage {
  const out: OutgoingAmqpMessage = {
    application_properties: { 'status-code': status, 'status-description': description },
  };
  if (messageId !== undefined) out.correlation_id = messageId;
  return out;
}
