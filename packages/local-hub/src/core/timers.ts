// The core's timers, all on the injected clock, so a test's ManualClock decides when a lock
// expires or a method times out. Tracked, so closing the hub cancels every one.
import type { Clock, TimerHandle } from '@switchyard/time';

export class HubTimers {
  readonly #clock: Clock;
  readonly #pending = new Set<TimerHandle>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** Runs `fn` after `ms` of the clock's time; never holds the process open. */
  schedule(ms: number, fn: () => void): TimerHandle {
    const handle = this.#clock.setTimeout(() => {
      this.#pending.delete(handle);
      fn();
    }, ms);
    handle.unref();
    this.#pending.add(handle);
    return handle;
  }

  clear(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    this.#clock.clearTimeout(handle);
    this.#pending.delete(handle);
  }

  clearAll(): void {
    for (const handle of this.#pending) this.#clock.clearTimeout(handle);
    this.#pending.clear();
  }
}
