// Who may connect: device SAS tokens and X.509 thumbprints against the registry, service tokens
// against the hub's built-in shared access policies (policies.ts). Every refusal is logged and counted, never explained
// with a secret.
import type { Clock } from '@switchyard/time';
import type { CounterTable } from './counters.ts';
import { SERVICE_POLICY } from './iothub-limits.ts';
import { describeIdentity, identityPath, parseIdentityId, type CredentialLookup } from './identity.ts';
import { normalizeThumbprint } from './registry.ts';
import { authenticatePolicyToken, hasRight, loadPolicyKeys, type PolicyAuthResult } from './policies.ts';
import { audienceMatches, createSasToken, parseSasToken, signatureMatches } from './sas.ts';
import type { HubStore } from '../store/index.ts';
import type { AuthFailure, AuthResult, DeviceProtocol, HubLogger } from './types.ts';

export interface AuthenticatorOptions {
  hostName: string;
  /** Every name a SAS audience may use, the hub's own first. */
  hosts: readonly string[];
  /** Devices and modules: a module authenticates as its own identity, `<deviceId>/<moduleId>`. */
  registry: CredentialLookup;
  counters: CounterTable;
  store: HubStore;
  logger: HubLogger;
  clock: Clock;
  logRefusal(event: { protocol: DeviceProtocol; what: string; why: string }): void;
}

export class Authenticator {
  readonly #o: AuthenticatorOptions;
  readonly #serviceKey: string;
  readonly #policyKeys: Map<string, string>;

  constructor(options: AuthenticatorOptions) {
    this.#o = options;
    this.#policyKeys = loadPolicyKeys(options.store);
    this.#serviceKey = this.#policyKeys.get(SERVICE_POLICY)!;
  }

  /** The `iothubowner` policy's key, for service connection strings. */
  get serviceKey(): string {
    return this.#serviceKey;
  }

  /** The key of a built-in shared access policy (iothubowner, service, device, registryRead, registryReadWrite). */
  policyKey(policy: string): string | undefined {
    return this.#policyKeys.get(policy);
  }

  serviceToken(ttlSeconds = 3600): string {
    return createSasToken(this.#o.hostName, this.#serviceKey, Math.floor(this.#o.clock.now() / 1000) + ttlSeconds, SERVICE_POLICY);
  }

  sas(deviceId: string, token: string): AuthResult {
    const { hostName } = this.#o;
    const parsed = parseSasToken(token);
    if (!parsed) return this.#failed(deviceId, 'malformed', 'The credential is not a SharedAccessSignature with sr, sig and se.');
    const ref = parseIdentityId(deviceId);
    const who = describeIdentity(deviceId);
    const device = this.#o.registry.peek(deviceId);
    if (!ref || !device) return this.#failed(deviceId, 'unknown-device', `${describeIdentity(deviceId, true)} is not registered.`);
    if (device.status === 'disabled') return this.#failed(deviceId, 'disabled', ref.moduleId === undefined ? `Device '${deviceId}' is disabled.` : `Device '${ref.deviceId}' of module '${ref.moduleId}' is disabled.`);
    if (device.authentication.type !== 'sas') return this.#failed(deviceId, 'wrong-credential-type', `${describeIdentity(deviceId, true)} authenticates with an X.509 certificate, not a SAS token.`);
    if (parsed.keyName !== undefined) return this.#byPolicy(deviceId, token, identityPath(ref));
    const path = identityPath(ref);
    if (!audienceMatches(parsed.resource, this.#o.hosts, path)) {
      return this.#failed(deviceId, 'wrong-audience', `The token's audience (sr) is not ${hostName}${path}${audienceHint(parsed.resource, ref.deviceId, ref.moduleId)}.`);
    }
    const { primaryKey, secondaryKey } = device.authentication;
    if (!signatureMatches(parsed, primaryKey) && !signatureMatches(parsed, secondaryKey)) {
      return this.#failed(deviceId, 'bad-signature', `The token's signature does not match either key of ${who}.`);
    }
    const expiresAt = parsed.expiry * 1000;
    if (expiresAt <= this.#o.clock.now()) return this.#failed(deviceId, 'expired', `The token expired at ${new Date(expiresAt).toISOString()}.`);
    return { ok: true, deviceId, expiresAt };
  }

  x509(deviceId: string, thumbprint: string | readonly string[]): AuthResult {
    const who = describeIdentity(deviceId);
    const device = this.#o.registry.peek(deviceId);
    if (!device) return this.#failed(deviceId, 'unknown-device', `${describeIdentity(deviceId, true)} is not registered.`);
    if (device.status === 'disabled') return this.#failed(deviceId, 'disabled', `${describeIdentity(deviceId, true)} is disabled.`);
    if (device.authentication.type !== 'x509-thumbprint') return this.#failed(deviceId, 'wrong-credential-type', `${describeIdentity(deviceId, true)} authenticates with SAS keys, not a certificate.`);
    const given = (typeof thumbprint === 'string' ? [thumbprint] : thumbprint).map(normalizeThumbprint);
    if (given.length === 0 || given.some((t) => t === '')) return this.#failed(deviceId, 'malformed', 'No client certificate was presented.');
    const known = [device.authentication.primaryThumbprint, device.authentication.secondaryThumbprint]
      .filter((t): t is string => typeof t === 'string' && t !== '')
      .map(normalizeThumbprint);
    if (!given.some((t) => known.includes(t))) return this.#failed(deviceId, 'bad-signature', `The client certificate's thumbprint is not registered for ${who}.`);
    return { ok: true, deviceId };
  }

  /** A token of one of the built-in policies; the result carries the policy's rights and the token's expiry. */
  service(token: string, protocol: DeviceProtocol = 'https'): PolicyAuthResult {
    const result = authenticatePolicyToken(token, { keys: this.#policyKeys, hosts: this.#o.hosts, now: this.#o.clock.now() });
    if (!result.ok) this.#o.logRefusal({ protocol, what: 'service request', why: result.message });
    return result;
  }

  /** A device may also connect with a token of a policy that grants DeviceConnect (IoT Hub's `device` policy). */
  #byPolicy(deviceId: string, token: string, path: string): AuthResult {
    const result = authenticatePolicyToken(token, { keys: this.#policyKeys, hosts: this.#o.hosts, now: this.#o.clock.now(), path });
    if (!result.ok) return this.#failed(deviceId, result.message.startsWith('The token expired') ? 'expired' : 'bad-signature', result.message);
    if (!hasRight(result.rights, 'DeviceConnect')) {
      return this.#failed(deviceId, 'wrong-credential-type', `The shared access policy '${result.policy}' does not grant DeviceConnect.`);
    }
    return { ok: true, deviceId, expiresAt: result.expiresAt };
  }

  #failed(deviceId: string, reason: AuthFailure, message: string): AuthResult {
    const { counters, registry } = this.#o;
    const deviceCounters = counters.peek(deviceId) ?? (registry.has(deviceId) ? counters.of(deviceId) : undefined);
    if (deviceCounters) deviceCounters.authFailures++;
    this.#o.logger.warn('authentication refused', { deviceId, reason, detail: message });
    return { ok: false, reason, message };
  }
}


/**
 * A device and its modules are separate identities, so a token for one never opens the other;
 * the common mix-up (a module's token on the device's path, as the SDK's Http transport sends
 * it, or the reverse) is named in the refusal.
 */
function audienceHint(resource: string, deviceId: string, moduleId: string | undefined): string {
  const lower = resource.toLowerCase();
  const m = /\/devices\/([^/]+)\/modules\/([^/]+)\/?$/i.exec(resource);
  if (moduleId === undefined && m?.[1]?.toLowerCase() === deviceId.toLowerCase()) {
    return `: it names module '${m[2] ?? ''}' of that device, a separate identity (IoT Hub's HTTPS device API serves devices, not modules)`;
  }
  if (moduleId !== undefined && m === null && lower.replace(/\/$/, '').endsWith(`/devices/${deviceId.toLowerCase()}`)) {
    return ': it names the device itself, a separate identity from its modules';
  }
  return '';
}
