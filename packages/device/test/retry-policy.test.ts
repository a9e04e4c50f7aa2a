// The retry policy the client hands the SDK, on a ManualClock: no sockets. The SDK asks it for the
// wait before each retry, counting from 1 after every drop; the policy remembers drops that come
// soon after each other, so a connection the hub drops right after every reconnect (MQTT under
// InvokeThrottling: a dropped connection per publish) backs off instead of reconnecting every 100 ms.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import { boundedRetryPolicy } from '../src/internal.ts';

describe('boundedRetryPolicy', () => {
  it('doubles within one drop, from 100 ms to 5 s, and gives up after maxAttempts', () => {
    const policy = boundedRetryPolicy(10, 100, 5_000, new ManualClock(0));
    expect([1, 2, 3, 4, 5, 6, 7, 10].map((n) => policy.nextRetryTimeout(n, false))).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
    expect(policy.nextRetryTimeout(11, false)).toBe(-1);
  });

  it('continues the back-off across connections that drop right after they came back', () => {
    const clock = new ManualClock(0);
    const policy = boundedRetryPolicy(10, 100, 5_000, clock);
    const waits: number[] = [];
    // Each drop's first retry comes the wait plus a moment of connected time after the last one.
    for (let drop = 0; drop < 8; drop++) {
      const wait = policy.nextRetryTimeout(1, false);
      waits.push(wait);
      clock.advance(wait + 30);
    }
    // Before: 100 ms every time, a reconnect storm.
    expect(waits).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
  });

  it('counts every operation failing at once as one drop, and starts over after a connection that lasted', () => {
    const clock = new ManualClock(0);
    const policy = boundedRetryPolicy(10, 100, 5_000, clock);
    // Sixteen sends in flight fail together: each gets the first step.
    expect(Array.from({ length: 16 }, () => policy.nextRetryTimeout(1, false))).toEqual(Array(16).fill(100));
    clock.advance(200);
    expect(policy.nextRetryTimeout(1, false)).toBe(200);
    // Up for longer than 10 s: a real recovery, the next drop starts at 100 ms again.
    clock.advance(10_000);
    expect(policy.nextRetryTimeout(1, false)).toBe(100);
  });

  it('backs off from 5 s up to 60 s when throttled', () => {
    const policy = boundedRetryPolicy(10, 100, 5_000, new ManualClock(0));
    expect([1, 2, 3, 4, 5].map((n) => policy.nextRetryTimeout(n, true))).toEqual([5_000, 10_000, 20_000, 40_000, 60_000]);
  });
});
