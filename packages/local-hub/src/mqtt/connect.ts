// CONNECT identity rules of IoT Hub's MQTT endpoint, kept free of sockets so they can be tested alone.
import { createHash } from 'node:crypto';

/** MQTT 3.1.1 CONNACK return codes. */
export const CONNACK = {
  accepted: 0,
  unacceptableProtocol: 1,
  identifierRejected: 2,
  serverUnavailable: 3,
  badUsernameOrPassword: 4,
  notAuthorized: 5,
} as const;

export interface ParsedUsername {
  host: string;
  deviceId: string;
  moduleId?: string;
  /** Query parameters such as `api-version`, `DeviceClientType`, `model-id` (decoded). */
  query: Record<string, string>;
}

/**
 * `<host>/<deviceId>/?api-version=…` or, for modules, `<host>/<deviceId>/<moduleId>/?…`.
 * The host may carry a port when the SDK was given `HostName=h:port`.
 */
export function parseUsername(username: string | undefined): ParsedUsername | undefined {
  if (username === undefined || username === '') return undefined;
  const q = username.indexOf('?');
  const path = q === -1 ? username : username.slice(0, q);
  const segments = path.split('/');
  if (segments.at(-1) === '') segments.pop();
  const [host, deviceId, moduleId, ...extra] = segments;
  if (host === undefined || host === '' || deviceId === undefined || deviceId === '' || extra.length > 0) return undefined;
  const query: Record<string, string> = {};
  if (q !== -1) {
    for (const part of username.slice(q + 1).split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      try {
        query[decodeURIComponent(eq === -1 ? part : part.slice(0, eq))] = decodeURIComponent(eq === -1 ? '' : part.slice(eq + 1));
      } catch {
        return undefined;
      }
    }
  }
  return moduleId === undefined || moduleId === '' ? { host, deviceId, query } : { host, deviceId, moduleId, query };
}

// IoT Hub's device id alphabet: ASCII letters, digits and `-.%_*?!(),:=@$'+;#`, at most 128 characters.
const DEVICE_ID = /^[A-Za-z0-9\-.%_*?!(),:=@$'+;#]{1,128}$/;

export type ClientIdCheck =
  | { ok: true; deviceId: string; moduleId?: string }
  | { ok: false; returnCode: number; why: string };

/** `<deviceId>` for a device, `<deviceId>/<moduleId>` for a module identity, as the Azure SDK sends them. */
export function checkClientId(clientId: string): ClientIdCheck {
  const parts = clientId.split('/');
  if (parts.length > 2) {
    return { ok: false, returnCode: CONNACK.identifierRejected, why: 'client id must be <deviceId> or <deviceId>/<moduleId>' };
  }
  const [deviceId = '', moduleId] = parts;
  if (!DEVICE_ID.test(deviceId)) {
    return { ok: false, returnCode: CONNACK.identifierRejected, why: 'client id is not a valid IoT Hub device id' };
  }
  if (moduleId === undefined) return { ok: true, deviceId };
  if (!DEVICE_ID.test(moduleId)) {
    return { ok: false, returnCode: CONNACK.identifierRejected, why: 'client id does not end in a valid IoT Hub module id' };
  }
  return { ok: true, deviceId, moduleId };
}

/** Both thumbprint flavours IoT Hub accepts for self-signed device certificates. */
export function certificateThumbprints(der: Buffer): { sha1: string; sha256: string } {
  return {
    sha1: createHash('sha1').update(der).digest('hex').toUpperCase(),
    sha256: createHash('sha256').update(der).digest('hex').toUpperCase(),
  };
}

/**
 * IoT Hub drops a connection silent for 1.5 × keep-alive, capped at 1767 s; keep-alive 0
 * (no pings) gets the cap too, so an abandoned socket cannot linger forever.
 */
export function keepAliveTimeoutMs(keepaliveSeconds: number): number {
  const capSeconds = 1767;
  const seconds = keepaliveSeconds > 0 ? Math.min(keepaliveSeconds * 1.5, capSeconds) : capSeconds;
  return Math.round(seconds * 1000);
}
