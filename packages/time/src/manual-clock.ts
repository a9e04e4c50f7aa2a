// A clock that moves only when a test moves it. Timers fire in due order (ties in the order they
// were set), each seeing now() at its own due time, so logic that re-arms from inside a timer
// behaves as it would on the system clock.
import type { Clock, TimerHandle } from './clock.ts';

interface ManualTimer extends TimerHandle {
  readonly id: number;
  dueAt: number;
  fn: (() => void) | undefined;
  refed: boolean;
}

/** A Clock for tests: `advance(ms)` runs every timer that falls due, in order. */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 0;
  readonly #timers = new Set<ManualTimer>();

  /** @param startMs the initial `now()`, in epoch milliseconds (default 0). */
  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = {
      id: this.#nextId++,
      dueAt: this.#now + Math.max(0, Number.isFinite(ms) ? ms : 0),
      fn,
      refed: true,
      ref() {
        timer.refed = true;
        return timer;
      },
      unref() {
        timer.refed = false;
        return timer;
      },
    };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    const timer = handle as ManualTimer;
    timer.fn = undefined;
    this.#timers.delete(timer);
  }

  /** Timers pending now; with `{ refed: true }` only those that would hold a process open. */
  pending(options: { refed?: boolean } = {}): number {
    let n = 0;
    for (const t of this.#timers) if (options.refed !== true || t.refed) n++;
    return n;
  }

  /** When the next timer is due, or undefined when none is pending. */
  nextDueAt(): number | undefined {
    return this.#earliest()?.dueAt;
  }

  /**
   * Moves time forward by `ms`, running each timer that falls due at its due time. Timers set by
   * a running timer run too if they fall due within the window. Bounded: at most `maxTimers` run.
   */
  advance(ms: number, maxTimers = 100_000): void {
    const until = this.#until('advance', ms);
    for (let ran = 0; ran < maxTimers && this.#runNext(until); ran++);
    this.#now = Math.max(this.#now, until);
  }

  /**
   * As `advance`, letting promise callbacks run after each timer, so that async logic a timer
   * starts (a retry after a backoff, a re-poll) reaches its next timer before time moves on.
   */
  async advanceAsync(ms: number, maxTimers = 100_000): Promise<void> {
    const until = this.#until('advanceAsync', ms);
    await settle();
    for (let ran = 0; ran < maxTimers && this.#runNext(until); ran++) await settle();
    this.#now = Math.max(this.#now, until);
    await settle();
  }

  #until(what: string, ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.${what}: ms must be >= 0 (got ${String(ms)})`);
    return this.#now + ms;
  }

  /** Runs the earliest timer due by `until`, at its due time; false when none is. */
  #runNext(until: number): boolean {
    const next = this.#earliest();
    if (next === undefined || next.dueAt > until) return false;
    this.#timers.delete(next);
    this.#now = Math.max(this.#now, next.dueAt);
    const fn = next.fn;
    next.fn = undefined;
    fn?.();
    return true;
  }

  /** Sets `now()` without running timers (a wall-clock jump, as after an NTP correction). */
  set(nowMs: number): void {
    this.#now = nowMs;
  }

  #earliest(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.#timers) if (best === undefined || t.dueAt < best.dueAt || (t.dueAt === best.dueAt && t.id < best.id)) best = t;
    return best;
  }
}

// A macrotask turn drains every microtask queued so far, including chains of awaits.
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
