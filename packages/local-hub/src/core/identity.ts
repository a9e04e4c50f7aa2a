import { HubError } from './errors.ts';
import type { DeviceAuthentication } from './types.ts';

// IoT Hub has two kinds of identity: a device, and a module identity on a device. The core and the
// front-ends name either by one string, the identity id: the device id alone, or
// `<deviceId>/<moduleId>`. IoT Hub ids cannot contain '/', so the split is unambiguous, and the
// string is exactly the MQTT client id the Azure SDK sends for a module.

export interface IdentityRef {
  deviceId: string;
  /** Absent for the device identity itself. */
  moduleId?: string;
}

// IoT Hub's alphabet for device and module ids (the same as the registry's device-id rule).
const ID = /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/;

export function identityId(deviceId: string, moduleId?: string): string {
  return moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`;
}

/** Splits an identity id; undefined when it has more than one '/' or an empty part. */
export function parseIdentityId(id: string): IdentityRef | undefined {
  if (typeof id !== 'string' || id === '') return undefined;
  const slash = id.indexOf('/');
  if (slash < 0) return { deviceId: id };
  const deviceId = id.slice(0, slash);
  const moduleId = id.slice(slash + 1);
  if (deviceId === '' || moduleId === '' || moduleId.includes('/')) return undefined;
  return { deviceId, moduleId };
}

export function isModuleIdentity(id: string): boolean {
  return typeof id === 'string' && id.includes('/');
}

/** `/devices/<d>` or `/devices/<d>/modules/<m>`: the SAS audience path and the AMQP address base. */
export function identityPath(ref: IdentityRef): string {
  return ref.moduleId === undefined ? `/devices/${ref.deviceId}` : `/devices/${ref.deviceId}/modules/${ref.moduleId}`;
}

/** What is wrong with a module id, or undefined when IoT Hub would accept it. */
export function moduleIdProblem(moduleId: unknown): string | undefined {
  if (typeof moduleId !== 'string' || !ID.test(moduleId)) {
    return `Module id '${String(moduleId)}' is invalid: use 1-128 characters from A-Z a-z 0-9 - . % _ * ? ! ( ) , : = @ $ '.`;
  }
  // `$edgeAgent` and `$edgeHub` are IoT Edge's own modules, which the registry creates itself.
  if (moduleId.startsWith('$')) return `Module id '${moduleId}' is reserved: ids starting with '$' belong to IoT Edge's system modules.`;
  return undefined;
}

/** A readable name for logs and errors: `device 'd'` or `module 'm' of device 'd'` (capitalized to start a sentence). */
export function describeIdentity(id: string, startOfSentence = false): string {
  const ref = parseIdentityId(id);
  const text = ref?.moduleId === undefined ? `device '${id}'` : `module '${ref.moduleId}' of device '${ref.deviceId}'`;
  return startOfSentence ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

/** What the per-identity tables ask of the registry. */
export interface IdentityLookup {
  /** Throws DeviceNotFound / ModuleNotFound (or Forbidden once the hub closed). */
  require(id: string): unknown;
  ids(): Iterable<string>;
  has(id: string): boolean;
}

/** What authentication needs of an identity: its credential, and whether it may connect. */
export interface IdentityCredentials {
  authentication: DeviceAuthentication;
  /** A module may connect while its device is enabled; IoT Hub modules have no status of their own. */
  status: 'enabled' | 'disabled';
}

/** What authentication asks of the registry (identities.ts implements both). */
export interface CredentialLookup {
  peek(id: string): IdentityCredentials | undefined;
  has(id: string): boolean;
}

/** Splits an identity id for what the hub reports (events, stats, records): `deviceId` plus `moduleId` for a module. */
export function reportedIdentity(id: string): { deviceId: string; moduleId?: string } {
  const ref = parseIdentityId(id);
  return ref?.moduleId === undefined ? { deviceId: id } : { deviceId: ref.deviceId, moduleId: ref.moduleId };
}

/** A service call that names a module in the device-only APIs (C2D) is refused with why. */
export function refuseModuleC2D(id: string): void {
  const ref = parseIdentityId(id);
  if (ref?.moduleId === undefined) return;
  throw new HubError('ArgumentInvalid', `'${id}' names module '${ref.moduleId}' of device '${ref.deviceId}': IoT Hub has no cloud-to-device messages for module identities.`);
}
