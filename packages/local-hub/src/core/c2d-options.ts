// The one C2D rule a user of the local hub may change: how long a delivered message stays locked.
// IoT Hub's lock is 1 minute and cannot be changed; a test of at-least-once redelivery (a message
// delivered on a link that then dropped) would otherwise wait that minute out.
import { SwitchyardError } from '@switchyard/errors';
import { LIMITS } from './iothub-limits.ts';

export interface C2DOptions {
  /**
   * How long a delivered C2D message stays locked (IoT Hub's "Invisible" state) before it goes
   * back to the queue for the next delivery, in ms. Default 60,000, IoT Hub's fixed lock timeout;
   * from 1 to 300,000 (Service Bus's longest lock, 5 minutes).
   */
  lockTimeoutMs?: number;
}

export interface ResolvedC2DOptions {
  lockTimeoutMs: number;
}

const MAX_LOCK_MS = 300_000;

/** Fills in IoT Hub's defaults and validates; throws CONFIG_INVALID naming the field. */
export function resolveC2DOptions(options: C2DOptions = {}): ResolvedC2DOptions {
  const lockTimeoutMs = options.lockTimeoutMs ?? LIMITS.c2dLockMs;
  if (typeof lockTimeoutMs !== 'number' || !Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 1 || lockTimeoutMs > MAX_LOCK_MS) {
    throw new SwitchyardError('CONFIG_INVALID', `c2d.lockTimeoutMs must be an integer from 1 to ${MAX_LOCK_MS} (IoT Hub's is ${LIMITS.c2dLockMs}).`, { details: { field: 'c2d.lockTimeoutMs' } });
  }
  return { lockTimeoutMs };
}
