// The one notion of time in Switchyard. Every piece of logic whose outcome depends on time (poll
// floors, operation deadlines, reconnect waits, C2D lock expiry and TTL in the local hub, fault
// durations) takes a Clock, so a test drives it with a ManualClock instead of sleeping against a
// wall-clock window, and production code gets the system clock by default.

/**
 * A pending timer. `unref()` lets the process exit while it is pending (Node's `Timeout.unref`);
 * `ref()` undoes that. Both return nothing useful: call them for their effect.
 */
export interface TimerHandle {
  ref(): unknown;
  unref(): unknown;
}

/** Wall-clock time in epoch milliseconds, and timers that fire against it. */
export interface Clock {
  /** Epoch milliseconds, as `Date.now()`. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds of this clock's time. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer of this clock; a timer that already fired or was cancelled is ignored. */
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** Node's own clock and timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => {
    if (handle !== undefined) clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

/**
 * Waits `ms` of `clock`'s time; rejects with the signal's reason when aborted. The timer holds the
 * process open, as a pending operation should.
 */
export function delay(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
