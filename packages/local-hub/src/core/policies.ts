// IoT Hub's built-in shared access policies and the rights each grants. A service token names its
// policy (skn) and is signed with that policy's key; what it may then do is the policy's rights,
// never more. Keys are generated once per hub and kept in the store, like a real hub's.
import { audienceMatches, generateKey, parseSasToken, signatureMatches } from './sas.ts';

export type PolicyRight = 'RegistryRead' | 'RegistryWrite' | 'ServiceConnect' | 'DeviceConnect';

export type PolicyName = 'iothubowner' | 'service' | 'device' | 'registryRead' | 'registryReadWrite';

/** The five policies every IoT Hub is created with, as the Azure portal lists them. */
export const BUILT_IN_POLICIES: Readonly<Record<PolicyName, readonly PolicyRight[]>> = {
  iothubowner: ['RegistryRead', 'RegistryWrite', 'ServiceConnect', 'DeviceConnect'],
  service: ['ServiceConnect'],
  device: ['DeviceConnect'],
  registryRead: ['RegistryRead'],
  registryReadWrite: ['RegistryRead', 'RegistryWrite'],
};

export const POLICY_NAMES = Object.keys(BUILT_IN_POLICIES) as readonly PolicyName[];

function rightsOf(policy: string): readonly PolicyRight[] | undefined {
  return Object.hasOwn(BUILT_IN_POLICIES, policy) ? BUILT_IN_POLICIES[policy as PolicyName] : undefined;
}

export type PolicyAuthResult =
  | { ok: true; policy: string; rights: readonly PolicyRight[]; /** Epoch ms. */ expiresAt: number }
  | { ok: false; message: string };

/** The part of the hub's store that keeps policy keys. */
export interface PolicyKeyStore {
  getPolicyKey(policy: string): string | undefined;
  setPolicyKey(policy: string, key: string): void;
}

/** Loads each policy's key from the store, generating and persisting the ones it lacks. */
export function loadPolicyKeys(store: PolicyKeyStore): Map<string, string> {
  const keys = new Map<string, string>();
  for (const policy of POLICY_NAMES) {
    let key = store.getPolicyKey(policy);
    if (key === undefined) {
      key = generateKey();
      store.setPolicyKey(policy, key);
    }
    keys.set(policy, key);
  }
  return keys;
}

/**
 * Checks a policy token: known policy, signed with its key, not expired, and its audience (`sr`)
 * under one of the hub's names. `path` is what must follow the host: '' for service tokens (a
 * trailing path is allowed, as IoT Hub scopes tokens by prefix), `/devices/<id>` for a device
 * connecting with a DeviceConnect policy.
 */
export function authenticatePolicyToken(
  token: string,
  context: { keys: ReadonlyMap<string, string>; hosts: readonly string[]; now: number; path?: string },
): PolicyAuthResult {
  const parsed = parseSasToken(token);
  if (!parsed) return { ok: false, message: 'The credential is not a SharedAccessSignature with sr, sig, se and skn.' };
  const policy = parsed.keyName;
  const key = policy === undefined ? undefined : context.keys.get(policy);
  const rights = policy === undefined ? undefined : rightsOf(policy);
  if (policy === undefined || key === undefined || rights === undefined) {
    return { ok: false, message: `Unknown shared access policy '${policy ?? ''}'; this hub has ${POLICY_NAMES.map((p) => `'${p}'`).join(', ')}.` };
  }
  if (context.path === undefined) {
    const slash = parsed.resource.indexOf('/');
    const host = slash < 0 ? parsed.resource : parsed.resource.slice(0, slash);
    if (!audienceMatches(host, context.hosts, '')) return { ok: false, message: `The token's audience (sr) is not this hub.` };
  } else if (!audienceMatches(parsed.resource, context.hosts, context.path)) {
    return { ok: false, message: `The token's audience (sr) is not this hub's ${context.path}.` };
  }
  if (!signatureMatches(parsed, key)) return { ok: false, message: `The token's signature does not match the key of '${policy}'.` };
  const expiresAt = parsed.expiry * 1000;
  if (expiresAt <= context.now) return { ok: false, message: `The token expired at ${new Date(expiresAt).toISOString()}.` };
  return { ok: true, policy, rights, expiresAt };
}

export function hasRight(rights: readonly PolicyRight[], right: PolicyRight): boolean {
  return rights.includes(right);
}
