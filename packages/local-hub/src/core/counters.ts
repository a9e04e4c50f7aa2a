// Per-device counters of what the hub did, for tests and `hub.stats()`.
import type { HubCounters } from './types.ts';

function zeroCounters(): HubCounters {
  return {
    telemetryReceived: 0, c2dSent: 0, c2dCompleted: 0, c2dAbandoned: 0, c2dRejected: 0, c2dDeadLettered: 0,
    httpsC2DPolls: 0, twinReads: 0, twinReportedUpdates: 0, methodCalls: 0, authFailures: 0,
  };
}

export class CounterTable {
  readonly #byDevice = new Map<string, HubCounters>();

  /** The device's live counters, created at zero on first use; callers increment them in place. */
  of(deviceId: string): HubCounters {
    let counters = this.#byDevice.get(deviceId);
    if (!counters) {
      counters = zeroCounters();
      this.#byDevice.set(deviceId, counters);
    }
    return counters;
  }

  /** The counters if the device has any yet, without creating them. */
  peek(deviceId: string): HubCounters | undefined {
    return this.#byDevice.get(deviceId);
  }

  delete(deviceId: string): void {
    this.#byDevice.delete(deviceId);
  }
}
