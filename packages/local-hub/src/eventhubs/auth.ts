// Claims for the Event Hubs-compatible endpoint: a CBS put-token whose audience is an `sb://`
// URI naming this event hub, signed with a shared access policy key of the hub (as IoT Hub's
// built-in endpoint accepts `iothubowner` and `service`). Pure: the caller passes the time.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { parseSasToken, type ParsedSas } from '../core/sas.ts';

export interface SharedAccessPolicy {
  name: string;
  key: string;
}

export interface AudienceParse {
  host: string;
  /** Lower-case path below the host, without leading or trailing slashes: `<hub>/consumergroups/...`. */
  path: string;
}

/** `sb://host[:port]/path`; undefined for anything else (device audiences, garbage). */
export function parseEventHubsAudience(audience: string): AudienceParse | undefined {
  let text = audience;
  if (!/^sb:\/\//i.test(text)) {
    try {
      text = decodeURIComponent(audience);
    } catch {
      return undefined;
    }
  }
  const m = /^sb:\/\/([^/:]+)(?::\d{1,5})?(\/.*)?$/i.exec(text);
  if (!m) return undefined;
  return { host: m[1]!.toLowerCase(), path: (m[2] ?? '').replace(/^\/+|\/+$/g, '').toLowerCase() };
}

/**
 * Service Bus, and so Event Hubs and @azure/core-amqp, signs with the key's text as the HMAC key,
 * where IoT Hub base64-decodes it first; the built-in endpoint follows Service Bus.
 */
export function serviceBusSignatureMatches(parsed: ParsedSas, key: string): boolean {
  const expected = createHmac('sha256', Buffer.from(key, 'utf8')).update(`${parsed.srRaw}\n${parsed.expiry}`).digest();
  const given = Buffer.from(parsed.signature, 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Whether `scope` is `path` or a parent of it, by whole segments. */
export function covers(scope: string, path: string): boolean {
  return scope === '' || path === scope || path.startsWith(`${scope}/`);
}

export type ClaimCheck =
  | { ok: true; path: string; expiresAt: number; policy: string }
  | { ok: false; status: number; why: string };

export interface ClaimRules {
  /** The event hub's name (the entity path), compared case-insensitively. */
  entity: string;
  /** Host names the endpoint answers to. */
  hosts: readonly string[];
  policies: readonly SharedAccessPolicy[];
}

/** Checks one put-token: audience on this endpoint, token signed by a policy, covering the audience, not expired. */
export function checkClaim(rules: ClaimRules, audience: string, token: string, now: number): ClaimCheck {
  const target = parseEventHubsAudience(audience);
  if (!target) return { ok: false, status: 400, why: 'the audience is not an sb:// URI' };
  const entity = rules.entity.toLowerCase();
  if (!covers(entity, target.path) || target.path === '') return { ok: false, status: 404, why: `the audience does not name event hub '${rules.entity}'` };
  const parsed = parseSasToken(token);
  if (!parsed) return { ok: false, status: 401, why: 'the token is not a SharedAccessSignature with sr, sig, se and skn' };
  const policy = rules.policies.find((p) => p.name.toLowerCase() === parsed.keyName?.toLowerCase());
  if (!policy) return { ok: false, status: 401, why: `unknown shared access policy '${parsed.keyName ?? ''}'` };
  const resource = parseEventHubsAudience(parsed.resource);
  const hosts = rules.hosts.map((h) => h.toLowerCase());
  if (!resource || !hosts.includes(resource.host) || !hosts.includes(target.host)) return { ok: false, status: 401, why: 'the token is for another host' };
  // A namespace-wide token (sr ending at the host) covers every entity, as in Event Hubs.
  if (!covers(resource.path, target.path)) {
    return { ok: false, status: 401, why: 'the token does not cover the audience' };
  }
  if (!serviceBusSignatureMatches(parsed, policy.key)) return { ok: false, status: 401, why: `the signature does not match the key of '${policy.name}'` };
  const expiresAt = parsed.expiry * 1000;
  if (expiresAt <= now) return { ok: false, status: 401, why: `the token expired at ${new Date(expiresAt).toISOString()}` };
  return { ok: true, path: target.path, expiresAt, policy: policy.name };
}
