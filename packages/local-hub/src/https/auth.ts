import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { redactSecrets } from '@switchyard/errors';
import type { PolicyRight } from '../core/policies.ts';
import type { AuthResult, HubCore } from '../core/types.ts';
import { unauthorized } from './respond.ts';

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return typeof socket === 'object' && socket !== null && typeof (socket as Partial<TLSSocket>).getPeerCertificate === 'function';
}

/** DER of the client certificate, when the TLS handshake carried one. */
function peerCertificateDer(req: IncomingMessage): Buffer | undefined {
  if (!isTlsSocket(req.socket)) return undefined;
  const cert = req.socket.getPeerCertificate(true);
  return cert && Buffer.isBuffer(cert.raw) && cert.raw.length > 0 ? cert.raw : undefined;
}

/**
 * IoT Hub registers self-signed devices by SHA-1 (40 hex) or SHA-256 (64 hex) thumbprints, and the
 * primary and secondary may differ in kind. The core takes one thumbprint, so the digest of the
 * kind that is registered goes to it: a wrong guess would count as an authentication failure.
 */
function thumbprintFor(core: HubCore, deviceId: string, der: Buffer): string {
  const sha1 = createHash('sha1').update(der).digest('hex').toUpperCase();
  const sha256 = createHash('sha256').update(der).digest('hex').toUpperCase();
  const device = core.getDevice(deviceId);
  if (device?.authentication.type !== 'x509-thumbprint') return sha1;
  const registered = [device.authentication.primaryThumbprint, device.authentication.secondaryThumbprint ?? ''].map((t) => t.toUpperCase());
  if (registered.includes(sha256)) return sha256;
  if (registered.includes(sha1)) return sha1;
  return registered[0]?.length === 64 ? sha256 : sha1;
}

/**
 * A device request carries either `Authorization: SharedAccessSignature …` (checked against the
 * device id in the path, so a token for A on B's path fails) or a client certificate.
 */
export function authenticateDevice(core: HubCore, req: IncomingMessage, deviceId: string): AuthResult {
  const header = req.headers.authorization;
  if (typeof header === 'string' && header !== '') return core.authenticateSas(deviceId, header);
  const der = peerCertificateDer(req);
  if (der) return core.authenticateX509(deviceId, thumbprintFor(core, deviceId, der));
  return { ok: false, reason: 'malformed', message: 'no SharedAccessSignature Authorization header and no client certificate' };
}

/** Refusals are audited through the core and answered with IoT Hub's 401 body. */
export function refuseDevice(core: HubCore, result: Extract<AuthResult, { ok: false }>, context: { deviceId: string; connectionId: string; what: string }): never {
  const why = redactSecrets(`${result.reason}: ${result.message}`);
  core.logRefusal({ deviceId: context.deviceId, protocol: 'https', connectionId: context.connectionId, what: context.what, why });
  throw unauthorized(why);
}

/** Authenticates a service request and checks that its policy holds one of `rights`. */
export function authenticateServiceRequest(core: HubCore, req: IncomingMessage, context: { connectionId: string; what: string; rights: readonly PolicyRight[] }): void {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || header === '') {
    const why = 'missing Authorization header with a service SharedAccessSignature';
    core.logRefusal({ protocol: 'https', connectionId: context.connectionId, what: `service API ${context.what}`, why });
    throw unauthorized(why);
  }
  // The core audits its own service refusals, so they are not logged twice here.
  const result = core.authenticateService(header);
  if (!result.ok) throw unauthorized(redactSecrets(result.message));
  if (!context.rights.some((right) => result.rights.includes(right))) {
    const why = `IotHubUnauthorizedAccess: the shared access policy '${result.policy}' grants none of ${context.rights.join(', ')}`;
    core.logRefusal({ protocol: 'https', connectionId: context.connectionId, what: `service API ${context.what}`, why });
    throw unauthorized(why);
  }
}
