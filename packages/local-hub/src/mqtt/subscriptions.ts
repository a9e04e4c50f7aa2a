// MQTT persistent sessions (clean=0): the subscriptions a device holds survive reconnects and hub
// restarts, because the Azure MQTT client does not re-subscribe twin topics after either. This is
// MQTT's own notion, so it lives with the MQTT front-end; the store keeps it with the device, and
// drops it when the device is removed.
import { HubError } from '../core/errors.ts';
import type { HubCore } from '../core/types.ts';
import type { HubStore } from '../store/index.ts';

export class PersistentSubscriptions {
  constructor(
    private readonly store: Pick<HubStore, 'getSubscriptions' | 'setSubscriptions'>,
    private readonly core: Pick<HubCore, 'hasIdentity'>,
  ) {}

  // `deviceId` is the identity id: a module's persistent session is its own.
  get(deviceId: string): string[] {
    return this.core.hasIdentity(deviceId) ? this.store.getSubscriptions(deviceId) : [];
  }

  set(deviceId: string, topicFilters: readonly string[]): void {
    if (!this.core.hasIdentity(deviceId)) throw new HubError('DeviceNotFound', `Identity '${deviceId}' is not registered.`);
    this.store.setSubscriptions(deviceId, [...new Set(topicFilters)]);
  }

  clear(deviceId: string): void {
    if (this.core.hasIdentity(deviceId)) this.store.setSubscriptions(deviceId, []);
  }
}
