import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// IoT Hub's SharedAccessSignature format as azure-iot-common builds it: `sr` is encoded once with
// the strict variant of encodeURIComponent, and the HMAC runs over the *encoded* `sr` as sent.

export interface ParsedSas {
  /** `sr` exactly as it appeared in the token (still url-encoded): the HMAC input. */
  srRaw: string;
  /** `sr` decoded. */
  resource: string;
  signature: string;
  /** Seconds since the epoch. */
  expiry: number;
  keyName?: string;
}

const PREFIX = 'SharedAccessSignature ';

/** Returns undefined for anything that is not a well-formed token; never throws. */
export function parseSasToken(token: string): ParsedSas | undefined {
  if (typeof token !== 'string' || !token.startsWith(PREFIX)) return undefined;
  const fields = new Map<string, string>();
  for (const part of token.slice(PREFIX.length).trim().split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    const name = part.slice(0, eq);
    if (fields.has(name)) return undefined;
    fields.set(name, part.slice(eq + 1));
  }
  const srRaw = fields.get('sr');
  const sigRaw = fields.get('sig');
  const seRaw = fields.get('se');
  if (!srRaw || !sigRaw || !seRaw || !/^\d{1,12}$/.test(seRaw)) return undefined;
  let resource: string;
  let signature: string;
  let keyName: string | undefined;
  try {
    resource = decodeURIComponent(srRaw);
    signature = decodeURIComponent(sigRaw);
    const skn = fields.get('skn');
    keyName = skn === undefined ? undefined : decodeURIComponent(skn);
  } catch {
    return undefined;
  }
  return { srRaw, resource, signature, expiry: Number(seRaw), ...(keyName === undefined ? {} : { keyName }) };
}

/** HMAC check in constant time; `key` is base64 as stored in the registry. */
export function signatureMatches(parsed: ParsedSas, key: string): boolean {
  const expected = createHmac('sha256', Buffer.from(key, 'base64')).update(`${parsed.srRaw}\n${parsed.expiry}`).digest();
  const given = Buffer.from(parsed.signature, 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function encodeStrict(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Mints a token the way the Azure SDKs do (used for service tokens and in tests). */
export function createSasToken(resource: string, key: string, expirySeconds: number, keyName?: string): string {
  const sr = encodeStrict(resource);
  const sig = encodeStrict(createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${expirySeconds}`).digest('base64'));
  return `${PREFIX}sr=${sr}&sig=${sig}${keyName === undefined ? '' : `&skn=${encodeStrict(keyName)}`}&se=${expirySeconds}`;
}

/** IoT Hub's own key shape: 32 random bytes, base64. */
export function generateKey(): string {
  return randomBytes(32).toString('base64');
}

/** IoT Hub accepts keys of 16 to 64 bytes, base64-encoded. */
export function isValidKey(key: unknown): key is string {
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 !== 0) return false;
  const bytes = Buffer.from(key, 'base64').length;
  return bytes >= 16 && bytes <= 64;
}

/**
 * Whether `resource` (a decoded `sr`) names `path` under one of the hub's host names. A host may
 * carry `:port`, because the SDK copies a port in HostName into the audience verbatim.
 */
export function audienceMatches(resource: string, hosts: readonly string[], path: string): boolean {
  const lower = resource.toLowerCase();
  const wanted = path.toLowerCase();
  for (const host of hosts) {
    const h = host.toLowerCase();
    if (!lower.startsWith(h)) continue;
    let rest = lower.slice(h.length);
    const port = /^:\d{1,5}/.exec(rest);
    if (port) rest = rest.slice(port[0].length);
    if (rest === wanted) return true;
  }
  return false;
}
