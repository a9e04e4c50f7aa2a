// Every identity that can connect, device or module, looked up by identity id. Sessions, twins,
// methods, telemetry and authentication work per identity and take this directory; the C2D
// queues take the device registry alone, which is how modules come to have no C2D.
import { parseIdentityId, type CredentialLookup, type IdentityCredentials, type IdentityLookup } from './identity.ts';
import type { ModuleRegistry } from './module-registry.ts';
import type { DeviceRegistry } from './registry.ts';

export class IdentityDirectory implements IdentityLookup, CredentialLookup {
  constructor(
    private readonly devices: DeviceRegistry,
    private readonly modules: ModuleRegistry,
  ) {}

  require(id: string): unknown {
    const ref = parseIdentityId(id);
    if (ref?.moduleId === undefined) return this.devices.require(id);
    return this.modules.require(ref.deviceId, ref.moduleId);
  }

  has(id: string): boolean {
    const ref = parseIdentityId(id);
    if (ref?.moduleId === undefined) return this.devices.has(id);
    return this.modules.peek(ref.deviceId, ref.moduleId) !== undefined;
  }

  *ids(): IterableIterator<string> {
    yield* this.devices.ids();
    yield* this.modules.ids();
  }

  /** The identity's credential, or undefined when no such identity is registered. */
  peek(id: string): IdentityCredentials | undefined {
    const ref = parseIdentityId(id);
    if (ref?.moduleId === undefined) return this.devices.peek(id);
    const module = this.modules.peek(ref.deviceId, ref.moduleId);
    const device = this.devices.peek(ref.deviceId);
    return module && device && { authentication: module.authentication, status: device.status };
  }
}
