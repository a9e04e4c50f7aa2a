import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  INITIAL_POLL_STATE,
  PRODUCTION_POLL_FLOOR_MS,
  PollRunner,
  mayDrain,
  nextPollAt,
  pollFinished,
  pollUnreached,
  UNREACHED_RETRY_MS,
  pollPolicy,
  pollStarted,
  pollStatePath,
  readPollState,
  type PollEvent,
  type PollOutcome,
  type PollState,
} from '../src/internal.ts';
import { VirtualClock } from './virtual-clock.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sy-poll-'));
  dirs.push(d);
  return d;
}

describe('poll timing (pure)', () => {
  const production = pollPolicy({ development: false });

  it('clamps production to the 1500 s floor whatever is asked, and lets development go faster', () => {
    expect(pollPolicy({ development: false, pollIntervalSeconds: 5 }).intervalMs).toBe(PRODUCTION_POLL_FLOOR_MS);
    expect(pollPolicy({ development: false, pollIntervalSeconds: 3600 }).intervalMs).toBe(3_600_000);
    expect(pollPolicy({ development: true, pollIntervalSeconds: 5 }).intervalMs).toBe(5_000);
  });

  it('polls at once when it never polled, then measures from the start of the last poll', () => {
    expect(nextPollAt(INITIAL_POLL_STATE, production, T0)).toBe(T0);
    const s = pollStarted(INITIAL_POLL_STATE, production, T0, 0);
    // A poll that took 10 minutes does not push the next one later: the floor counts from the start.
    expect(nextPollAt(pollFinished(s, 'empty'), production, T0 + 600_000)).toBe(T0 + PRODUCTION_POLL_FLOOR_MS);
  });

  it('jitter only ever lengthens the interval, and so does a clock that jumps back', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: -HOUR, max: 3 * HOUR }), (ratio, random, offset) => {
        const policy = pollPolicy({ development: false, jitterRatio: ratio });
        const s = pollStarted(INITIAL_POLL_STATE, policy, T0, random);
        const now = T0 + offset;
        const next = nextPollAt(s, policy, now);
        // Time since the recorded start is unknowable after a backwards jump: wait a full gap from now.
        if (offset < 0) expect(next - now).toBeGreaterThanOrEqual(PRODUCTION_POLL_FLOOR_MS);
        else expect(next - T0).toBeGreaterThanOrEqual(PRODUCTION_POLL_FLOOR_MS);
      }),
    );
  });

  it('backs off exponentially on consecutive 429s and resets after a good poll', () => {
    const policy = pollPolicy({ development: false, jitterRatio: 0, backoffBaseMs: 60_000, backoffMaxMs: 8 * 60_000 });
    let s = pollStarted(INITIAL_POLL_STATE, policy, T0, 0);
    const gaps: number[] = [];
    let t = T0;
    for (let i = 0; i < 6; i++) {
      s = pollFinished(s, 'throttled');
      const next = nextPollAt(s, policy, t);
      gaps.push(next - t);
      t = next;
      s = pollStarted(s, policy, t, 0);
    }
    expect(gaps).toEqual([1, 2, 4, 8, 8, 8].map((m) => PRODUCTION_POLL_FLOOR_MS + m * 60_000));
    s = pollFinished(s, 'empty');
    expect(nextPollAt(s, policy, t) - t).toBe(PRODUCTION_POLL_FLOOR_MS);
  });

  it('an attempt that never reached the hub is not a poll: retried after a doubling wait, the floor kept', () => {
    const policy = pollPolicy({ development: false, jitterRatio: 0 });
    const polled = pollFinished(pollStarted(INITIAL_POLL_STATE, policy, T0, 0), 'empty');
    // The next poll is due at the floor; it finds the network down.
    const due = nextPollAt(polled, policy, T0);
    expect(due).toBe(T0 + PRODUCTION_POLL_FLOOR_MS);
    const once = pollUnreached(polled, policy, due);
    expect(once.lastPollStartedAt).toBe(T0);
    expect(nextPollAt(once, policy, due)).toBe(due + UNREACHED_RETRY_MS);
    const twice = pollUnreached(once, policy, due + UNREACHED_RETRY_MS);
    expect(nextPollAt(twice, policy, due)).toBe(due + 3 * UNREACHED_RETRY_MS);
    // Never earlier than the floor after the last real poll, whatever the back-off says.
    const early = pollUnreached(INITIAL_POLL_STATE, policy, T0);
    expect(nextPollAt({ ...early, lastPollStartedAt: T0 }, policy, T0)).toBe(T0 + PRODUCTION_POLL_FLOOR_MS);
    // A poll that reaches the hub clears the back-off.
    expect(pollFinished(twice, 'empty')).not.toHaveProperty('retryAt');
  });

  it('drains only after a message, at most drainMax times', () => {
    const policy = pollPolicy({ development: false, drainMax: 3 });
    expect(mayDrain('message', 0, policy)).toBe(true);
    expect(mayDrain('message', 3, policy)).toBe(false);
    expect(mayDrain('empty', 0, policy)).toBe(false);
    expect(mayDrain('throttled', 0, policy)).toBe(false);
  });

  it('over 24 virtual hours of random outcomes, production polls that reach the hub never start < 1500 s apart', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom<PollOutcome>('message', 'empty', 'throttled', 'failed', 'unreached'), { minLength: 100, maxLength: 100 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 100, maxLength: 100 }), (outcomes, randoms) => {
        const policy = pollPolicy({ development: false });
        let s: PollState = { ...INITIAL_POLL_STATE };
        let t = T0;
        const starts: number[] = [];
        for (let i = 0; t < T0 + 24 * HOUR && i < outcomes.length; i++) {
          t = nextPollAt(s, policy, t);
          const outcome = outcomes[i]!;
          if (outcome === 'unreached') {
            s = pollUnreached(s, policy, t);
            continue;
          }
          starts.push(t);
          s = pollFinished(pollStarted(s, policy, t, randoms[i]!), outcome);
        }
        for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(PRODUCTION_POLL_FLOOR_MS);
      }),
    );
  });
});

describe('PollRunner over 24 virtual hours with restarts (state file round trip)', () => {
  it('never starts two polls within 1500 s across crashes and restarts', async () => {
    const dir = await tempDir();
    const clock = new VirtualClock(T0);
    const starts: number[] = [];
    const events: PollEvent[] = [];
    let generation = 0;
    let runner: PollRunner | undefined;
    const boot = async (hangPoll = false): Promise<void> => {
      generation++;
      clock.owner = `gen${generation}`;
      runner = new PollRunner({
        deviceId: 'dev/1',
        policy: pollPolicy({ development: false, jitterRatio: 0.2 }),
        clock,
        stateDir: dir,
        random: () => 0.5,
        pollOnce: () => {
          starts.push(clock.now());
          // A crash mid-poll: the poll never ends, the process dies.
          return hangPoll ? new Promise<PollOutcome>(() => undefined) : Promise.resolve(starts.length % 3 === 0 ? 'message' : 'empty');
        },
        onPoll: (e) => events.push(e),
        onError: (err) => {
          throw err;
        },
      });
      await runner.start();
    };
    await boot();
    const end = T0 + 24 * HOUR;
    let crashes = 0;
    // Crash every ~7 minutes for the first 3 hours (a crash loop), then every ~2 hours.
    let nextCrash = T0 + 7 * 60_000;
    while (clock.now() < end) {
      const fired = await clock.step(Math.min(nextCrash, end));
      if (!fired && clock.now() >= nextCrash) {
        clock.crash(clock.owner);
        crashes++;
        await boot();
        nextCrash = clock.now() + (clock.now() < T0 + 3 * HOUR ? 7 * 60_000 : 2 * HOUR);
      }
    }
    expect(crashes).toBeGreaterThan(30);
    expect(starts.length).toBeGreaterThan(30);
    expect(starts[0]).toBe(T0); // a fresh state directory: first poll at once
    const cycles = events.map((e) => e.startedAt.getTime());
    for (let i = 1; i < cycles.length; i++) expect(cycles[i]! - cycles[i - 1]!).toBeGreaterThanOrEqual(PRODUCTION_POLL_FLOOR_MS);
    // Every GET belongs to a counted cycle: the first one plus its bounded drain.
    expect(starts.length).toBe(events.reduce((n, e) => n + 1 + e.drained, 0));
    // Drains were bounded and counted: one follow-up after each message (the follow-up was empty).
    expect(events.some((e) => e.drained > 0)).toBe(true);
    expect(events.every((e) => e.drained <= 10)).toBe(true);
    await runner?.stop();
  }, 120_000);

  it('a crash in the middle of a poll still leaves the start recorded', async () => {
    const dir = await tempDir();
    const clock = new VirtualClock(T0);
    const starts: number[] = [];
    const make = (hang: boolean): PollRunner =>
      new PollRunner({
        deviceId: 'd2',
        policy: pollPolicy({ development: false, jitterRatio: 0 }),
        clock,
        stateDir: dir,
        pollOnce: () => {
          starts.push(clock.now());
          return hang ? new Promise<PollOutcome>(() => undefined) : Promise.resolve('empty');
        },
        onPoll: () => undefined,
        onError: () => undefined,
      });
    clock.owner = 'a';
    const a = make(true);
    await a.start();
    await clock.step(T0); // starts the poll, which hangs
    for (let i = 0; i < 200 && starts.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(starts).toEqual([T0]);
    clock.crash('a');
    clock.advance(60_000);
    clock.owner = 'b';
    const b = make(false);
    const next = await b.start();
    expect(next).toBe(T0 + PRODUCTION_POLL_FLOOR_MS);
    expect((await readPollState(dir, 'd2')).lastPollStartedAt).toBe(T0);
    await b.stop();
  });

  it('records an attempt that never reached the hub as no poll, and tries again after the back-off', async () => {
    const dir = await tempDir();
    const clock = new VirtualClock(T0);
    const outcomes: PollOutcome[] = ['unreached', 'empty'];
    const events: PollEvent[] = [];
    const runner = new PollRunner({
      deviceId: 'd-unreached',
      policy: pollPolicy({ development: false, jitterRatio: 0 }),
      clock,
      stateDir: dir,
      pollOnce: () => Promise.resolve(outcomes.shift() ?? 'empty'),
      onPoll: (e) => events.push(e),
      onError: () => undefined,
    });
    expect(await runner.start()).toBe(T0);
    await clock.step(T0);
    for (let i = 0; i < 200 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(events[0]).toMatchObject({ outcome: 'unreached', nextPollAt: new Date(T0 + UNREACHED_RETRY_MS) });
    // On disk: no poll yet, so a restart would not wait the 1500 s floor for one that never happened.
    const record = await readPollState(dir, 'd-unreached');
    expect(record.lastPollStartedAt).toBeUndefined();
    expect(record.retryAt).toBe(T0 + UNREACHED_RETRY_MS);
    await clock.step(T0 + UNREACHED_RETRY_MS);
    for (let i = 0; i < 200 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(events[1]).toMatchObject({ outcome: 'empty', startedAt: new Date(T0 + UNREACHED_RETRY_MS) });
    expect((await readPollState(dir, 'd-unreached')).lastPollStartedAt).toBe(T0 + UNREACHED_RETRY_MS);
    await runner.stop();
  });

  it('a corrupt state file counts as "just polled" and waits a full interval', async () => {
    const dir = await tempDir();
    await writeFile(pollStatePath(dir, 'd3'), '{"version":1,"lastPoll');
    const clock = new VirtualClock(T0);
    const runner = new PollRunner({
      deviceId: 'd3',
      policy: pollPolicy({ development: false, jitterRatio: 0 }),
      clock,
      stateDir: dir,
      pollOnce: () => Promise.resolve('empty'),
      onPoll: () => undefined,
      onError: () => undefined,
    });
    expect(await runner.start()).toBe(T0 + PRODUCTION_POLL_FLOOR_MS);
    await runner.stop();
  });

  it('bounds the drain and counts it in the poll event', async () => {
    const clock = new VirtualClock(T0);
    const events: PollEvent[] = [];
    let calls = 0;
    const runner = new PollRunner({
      deviceId: 'd4',
      policy: pollPolicy({ development: true, pollIntervalSeconds: 10, drainMax: 4 }),
      clock,
      pollOnce: () => {
        calls++;
        return Promise.resolve('message');
      },
      onPoll: (e) => events.push(e),
      onError: () => undefined,
    });
    await runner.start();
    await clock.step(T0 + 10_000);
    expect(calls).toBe(5);
    expect(events[0]).toMatchObject({ received: 5, drained: 4, outcome: 'message' });
    expect(events[0]!.nextPollAt.getTime() - events[0]!.startedAt.getTime()).toBeGreaterThanOrEqual(10_000);
    await runner.stop();
  });

  it('development mode polls at its own interval', async () => {
    const clock = new VirtualClock(T0);
    const starts: number[] = [];
    const runner = new PollRunner({
      deviceId: 'd5',
      policy: pollPolicy({ development: true, pollIntervalSeconds: 5, jitterRatio: 0 }),
      clock,
      pollOnce: () => {
        starts.push(clock.now());
        return Promise.resolve('empty');
      },
      onPoll: () => undefined,
      onError: () => undefined,
    });
    await runner.start();
    while (clock.now() < T0 + 60_000) await clock.step(T0 + 60_000);
    await runner.stop();
    // Without a state directory the first poll waits a full interval.
    expect(starts[0]).toBe(T0 + 5_000);
    expect(starts.length).toBe(12);
  });
});
