// adaptAzureClient(): a DeviceClient over an azure-iot-device Client that was built and opened
// elsewhere: the same core as connect()'s, over the same Azure client link.
import { SwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';
import type { Decision } from '@switchyard/selector';
import type { Clock } from '@switchyard/time';
import { DeviceCore, type DeviceCoreOptions } from './core/device-core.ts';
import { AzureClientLink, type AzureClientLike, type PollOnce, type RetryPolicyLike } from './links/azure-client-link.ts';
import type { DeviceClient } from './types.ts';

export interface AdaptOptions {
  protocol: Protocol;
  decision?: Decision;
  /** The transport instance the Azure client was built with; its 'disconnect' events drive 'disconnected'. */
  transport?: unknown;
  deviceId?: string;
  /** Deadline for operations the SDK can leave pending, in ms (default 30 000). */
  operationTimeoutMs?: number;
  /** The SDK retry policy in force (so its shouldRetry decides `willRetry`). */
  retryPolicy?: RetryPolicyLike;
  /** HTTPS: the manual poll hook; without it C2D over HTTPS is unavailable. */
  pollOnce?: PollOnce;
  poll?: DeviceCoreOptions['poll'];
  pollStateDir?: string;
  clock?: Clock;
  random?: () => number;
}

/**
 * Wraps an azure-iot-device Client built elsewhere in the DeviceClient interface. The client
 * should already be open.
 */
export function adaptAzureClient(azureClient: unknown, options: AdaptOptions): DeviceClient {
  if (typeof azureClient !== 'object' || azureClient === null || typeof (azureClient as AzureClientLike).sendEvent !== 'function') {
    throw new SwitchyardError('CONFIG_INVALID', 'adaptAzureClient needs an azure-iot-device Client', { details: { field: 'azureClient' } });
  }
  const link = new AzureClientLink({
    azure: azureClient as AzureClientLike,
    protocol: options.protocol,
    deviceId: options.deviceId ?? '',
    ...(options.transport === undefined ? {} : { transport: options.transport }),
    ...(options.retryPolicy === undefined ? {} : { retryPolicy: options.retryPolicy }),
    ...(options.pollOnce === undefined ? {} : { pollOnce: options.pollOnce }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  return new DeviceCore({
    link,
    initialState: 'connected',
    ...(options.decision === undefined ? {} : { decision: options.decision }),
    ...(options.operationTimeoutMs === undefined ? {} : { operationTimeoutMs: options.operationTimeoutMs }),
    ...(options.poll === undefined ? {} : { poll: options.poll }),
    ...(options.pollStateDir === undefined ? {} : { pollStateDir: options.pollStateDir }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.random === undefined ? {} : { random: options.random }),
  });
}
