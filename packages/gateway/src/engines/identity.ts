// A gateway identity: its DeviceCore (the same client as a single device's), where it is carried,
// and the gateway's re-open bookkeeping. Its state is the core's, so an identity and a device
// speak one vocabulary.
import { EventEmitter } from 'node:events';
import type { Client } from 'azure-iot-device';
import type { DeviceClient, DeviceCore } from '@switchyard/device/internal';
import type { TimerHandle } from '@switchyard/time';
import type { GatewayIdentity, IdentityEvents, IdentityState } from '../types.ts';

export class IdentityHandle extends EventEmitter<IdentityEvents> implements GatewayIdentity {
  /** The pending re-open back-off timer, cleared when the identity is removed. */
  reopenTimer: TimerHandle | undefined = undefined;
  reopenAttempt = 0;

  constructor(
    readonly core: DeviceCore,
    /** Where the identity is carried: its channel's connection, or its own. */
    private readonly where: { readonly connectionId: string },
    readonly client: Client | undefined = undefined,
  ) {
    super();
  }

  get deviceId(): string {
    return this.core.deviceId;
  }

  get state(): IdentityState {
    return this.core.state;
  }

  get device(): DeviceClient {
    return this.core;
  }

  get connectionId(): string {
    return this.where.connectionId;
  }
}
