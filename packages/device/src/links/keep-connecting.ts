// The first connection of a client that did not wait for it (connect()'s waitForConnection:
// false): attempts until one succeeds, one fails for a reason no retry can cure, or the client is
// closed. The waits between attempts are the SDK reconnect schedule's (boundedRetryPolicy), on
// the client's clock, so a test drives them with a ManualClock.
import { SwitchyardError } from '@switchyard/errors';
import type { Clock, TimerHandle } from '@switchyard/time';
import { translateError } from '../errors.ts';

export interface KeepConnectingOptions<T> {
  clock: Clock;
  /** One bounded connection attempt; `signal` aborts it when the client closes. */
  attempt: (signal: AbortSignal) => Promise<T>;
  /** Its nextRetryTimeout(retry, throttled) is the wait before retry `retry` (1 for the first). */
  schedule: { nextRetryTimeout(retry: number, throttled: boolean): number };
  /** Stops the attempts: the one under way is aborted, the wait is cut short. */
  signal: AbortSignal;
  /** Told of each failed attempt, with the wait before the next (undefined: no next). */
  failed?: (error: SwitchyardError, retryInMs: number | undefined, attempt: number) => void;
}

function stopped(signal: AbortSignal): SwitchyardError {
  return new SwitchyardError('ABORTED', 'the first connection was given up: the client was closed', { cause: signal.reason, details: { operation: 'connect' } });
}

/**
 * Resolves with the first attempt that succeeds; rejects with the failure of an attempt that is
 * not retryable (AUTH_FAILED, DEVICE_NOT_FOUND, a TLS verification failure), or ABORTED once
 * `signal` fires.
 */
export async function keepConnecting<T>(options: KeepConnectingOptions<T>): Promise<T> {
  const { clock, signal } = options;
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) throw stopped(signal);
    let error: SwitchyardError;
    try {
      return await options.attempt(signal);
    } catch (err) {
      error = translateError(err, { operation: 'connect' });
    }
    if (signal.aborted) throw stopped(signal);
    const wait = error.retryable ? options.schedule.nextRetryTimeout(attempt, error.code === 'THROTTLED') : -1;
    const retryInMs = wait >= 0 ? wait : undefined;
    options.failed?.(error, retryInMs, attempt);
    if (retryInMs === undefined) throw error;
    await pause(clock, retryInMs, signal);
  }
}

/** Waits `ms` on `clock`, or less when `signal` fires; never rejects. */
function pause(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clock.clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer: TimerHandle = clock.setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
