// A clock whose time moves only when the test says so, with timers owned by a simulated process
// generation so that a crash can drop them (@switchyard/time's ManualClock has no owners). Timers fire in time order; after each one
// the test waits (bounded) for the async work it started to schedule its successor.
import type { Clock, TimerHandle } from '@switchyard/time';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
  owner: string;
}

export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  timers: Timer[] = [];
  owner = 'default';

  constructor(start: number) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { id: ++this.#seq, at: this.#now + Math.max(0, ms), fn, owner: this.owner };
    this.timers.push(timer);
    return { id: timer.id, ref: () => undefined, unref: () => undefined } as TimerHandle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    const id = (handle as { id?: number } | undefined)?.id;
    this.timers = this.timers.filter((t) => t.id !== id);
  }

  /** Drops every timer of `owner`, as a crash would. */
  crash(owner: string): void {
    this.timers = this.timers.filter((t) => t.owner !== owner);
  }

  advance(ms: number): void {
    this.#now += ms;
  }

  /** Fires the earliest timer at or before `until`; false when none is due. */
  async step(until: number): Promise<boolean> {
    this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
    const next = this.timers[0];
    if (next === undefined || next.at > until) {
      this.#now = Math.max(this.#now, until);
      return false;
    }
    this.timers.shift();
    this.#now = Math.max(this.#now, next.at);
    const before = this.#seq;
    next.fn();
    // Bounded wait for the fired work (fs writes included) to schedule its next timer.
    for (let i = 0; i < 2000 && this.#seq === before; i++) await new Promise((r) => setTimeout(r, 1));
    return true;
  }
}
