// Link addresses the Azure device SDK attaches to, and the rule deciding which identity an attach
// needs. IoT Hub routes purely by address, so parsing it is also the authorization boundary.

import { identityId } from '../core/identity.ts';

export type DeviceEndpoint = 'events' | 'c2d' | 'methods' | 'twin';

/**
 * `deviceId` is the identity id: the device id, or `<deviceId>/<moduleId>` for a module's links
 * (`/devices/<d>/modules/<m>/…`), so a connection files a module apart from its device.
 */
export type ParsedAddress =
  | { kind: 'cbs' }
  | { kind: 'device'; deviceId: string; endpoint: DeviceEndpoint; module?: true }
  | { kind: 'unknown'; address: string };

const SUFFIXES: Record<string, DeviceEndpoint> = {
  'messages/events': 'events',
  'messages/devicebound': 'c2d',
  'methods/devicebound': 'methods',
  twin: 'twin',
};

// The SDK builds `/devices/<id>/…` without encoding the id (azure-iot-common endpoint.devicePath);
// IoT Hub device ids cannot contain '/', so one segment is the whole id.
const DEVICE_ADDRESS = /^\/devices\/([^/]+)\/(messages\/events|messages\/devicebound|methods\/devicebound|twin)\/?$/;
// A module has no devicebound queue: the SDK points its input-message receiver at
// `…/modules/<m>/messages/events`, which the role table below refuses.
const MODULE_ADDRESS = /^\/devices\/([^/]+)\/modules\/([^/]+)\/(messages\/events|methods\/devicebound|twin)\/?$/;

export function parseAddress(address: unknown): ParsedAddress {
  if (typeof address !== 'string') return { kind: 'unknown', address: String(address) };
  if (address === '$cbs') return { kind: 'cbs' };
  const mod = MODULE_ADDRESS.exec(address);
  if (mod) {
    const endpoint = SUFFIXES[mod[3] ?? ''];
    if (mod[1] === undefined || mod[2] === undefined || endpoint === undefined) return { kind: 'unknown', address };
    return { kind: 'device', deviceId: identityId(mod[1], mod[2]), endpoint, module: true };
  }
  const m = DEVICE_ADDRESS.exec(address);
  const id = m?.[1];
  const suffix = m?.[2];
  if (id === undefined || suffix === undefined) return { kind: 'unknown', address };
  const endpoint = SUFFIXES[suffix];
  if (endpoint === undefined) return { kind: 'unknown', address };
  return { kind: 'device', deviceId: id, endpoint };
}

/** Which direction the device uses each endpoint in; anything else is not an IoT Hub link. */
const ALLOWED_ROLES: Record<DeviceEndpoint, { deviceSends: boolean; deviceReceives: boolean }> = {
  events: { deviceSends: true, deviceReceives: false },
  c2d: { deviceSends: false, deviceReceives: true },
  methods: { deviceSends: true, deviceReceives: true },
  twin: { deviceSends: true, deviceReceives: true },
};

export type AttachDecision =
  | { ok: true; kind: 'cbs' }
  | { ok: true; kind: 'device'; deviceId: string; endpoint: DeviceEndpoint }
  /** `notAllowed`: a well-formed request IoT Hub does not offer (amqp:not-allowed rather than unauthorized). */
  | { ok: false; deviceId?: string; why: string; notAllowed?: true };

/**
 * Decides an attach. `deviceSends` is true when the device attached a sender (its target is the
 * address), false when it attached a receiver (its source is the address). `isAuthorized` says
 * whether the connection holds a live credential for a device; it may authorize lazily (X.509).
 */
export function decideAttach(address: unknown, deviceSends: boolean, isAuthorized: (deviceId: string) => boolean): AttachDecision {
  const parsed = parseAddress(address);
  if (parsed.kind === 'cbs') return { ok: true, kind: 'cbs' };
  if (parsed.kind === 'unknown') return { ok: false, why: `unknown address ${parsed.address}` };
  const roles = ALLOWED_ROLES[parsed.endpoint];
  if (deviceSends ? !roles.deviceSends : !roles.deviceReceives) {
    if (parsed.module && parsed.endpoint === 'events') {
      return { ok: false, deviceId: parsed.deviceId, notAllowed: true, why: `IoT Hub sends no cloud-to-device or input messages to a module identity (input messages are IoT Edge's); cannot receive from ${String(address)}` };
    }
    return { ok: false, deviceId: parsed.deviceId, why: `a device cannot ${deviceSends ? 'send to' : 'receive from'} ${String(address)}` };
  }
  if (!isAuthorized(parsed.deviceId)) {
    return { ok: false, deviceId: parsed.deviceId, why: `no valid credential for device ${parsed.deviceId} on this connection` };
  }
  return { ok: true, kind: 'device', deviceId: parsed.deviceId, endpoint: parsed.endpoint };
}

/**
 * A D2C `to` must name the same device as the link it travels on. The SDK always sets it to the
 * link's own address; anything else is a device trying to speak for another identity.
 */
export function checkTelemetryTo(to: unknown, linkDeviceId: string): { ok: true } | { ok: false; why: string } {
  if (to === undefined || to === null) return { ok: true };
  const parsed = parseAddress(to);
  if (parsed.kind === 'device' && parsed.endpoint === 'events' && parsed.deviceId === linkDeviceId) return { ok: true };
  return { ok: false, why: `message addressed to ${String(to)} on the link of ${linkDeviceId.includes('/') ? 'module' : 'device'} ${linkDeviceId}` };
}
