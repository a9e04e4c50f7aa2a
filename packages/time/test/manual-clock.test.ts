import { describe, expect, it } from 'vitest';
import { ManualClock, backoffDelay, delay, systemClock } from '../src/index.ts';

describe('ManualClock', () => {
  it('runs due timers in due order, ties in the order they were set, each at its own now()', () => {
    const clock = new ManualClock(1000);
    const seen: string[] = [];
    clock.setTimeout(() => seen.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => seen.push(`c@${clock.now()}`), 20);
    clock.advance(15);
    expect(seen).toEqual(['a@1010']);
    expect(clock.now()).toBe(1015);
    clock.advance(5);
    expect(seen).toEqual(['a@1010', 'b@1020', 'c@1020']);
  });

  it('runs a timer set by a timer when it falls inside the same advance', () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 5);
    }, 5);
    clock.advance(10);
    expect(seen).toEqual([5, 10]);
  });

  it('does not run a cleared timer and counts only refed timers when asked', () => {
    const clock = new ManualClock();
    let ran = false;
    const t = clock.setTimeout(() => (ran = true), 1);
    const u = clock.setTimeout(() => undefined, 1);
    u.unref();
    expect(clock.pending()).toBe(2);
    expect(clock.pending({ refed: true })).toBe(1);
    clock.clearTimeout(t);
    clock.advance(5);
    expect(ran).toBe(false);
    expect(clock.pending()).toBe(0);
  });

  it('lets async work started by a timer reach its next timer in advanceAsync', async () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    void (async () => {
      await delay(clock, 100);
      seen.push(clock.now());
      await Promise.resolve();
      await delay(clock, 100);
      seen.push(clock.now());
    })();
    await clock.advanceAsync(250);
    expect(seen).toEqual([100, 200]);
  });

  it('refuses a negative advance', () => {
    expect(() => new ManualClock().advance(-1)).toThrow(RangeError);
  });
});

describe('delay', () => {
  it('rejects with the abort reason and clears its timer', async () => {
    const clock = new ManualClock();
    const ac = new AbortController();
    const p = delay(clock, 1000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
    expect(clock.pending()).toBe(0);
  });

  it('waits on the system clock too', async () => {
    await expect(delay(systemClock, 1)).resolves.toBeUndefined();
  });
});

describe('backoffDelay', () => {
  const policy = { baseMs: 100, maxMs: 1000, maxRetries: 6, jitter: 0 };
  it('doubles from the base up to the cap, then stops after maxRetries', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(policy, n))).toEqual([100, 200, 400, 800, 1000, 1000, undefined]);
  });
  it('draws full jitter from the injected random source', () => {
    expect(backoffDelay({ ...policy, jitter: 1 }, 2, () => 0.5)).toBe(200);
    expect(backoffDelay({ ...policy, jitter: 1 }, 2, () => 0)).toBe(0);
  });
  it('has no retry for a policy of none', () => {
    expect(backoffDelay({ ...policy, maxRetries: 0 }, 0)).toBeUndefined();
  });
});
