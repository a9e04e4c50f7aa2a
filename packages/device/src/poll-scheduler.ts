// HTTPS C2D polling. IoT Hub asks a device to poll at most once every 25 minutes; the SDK's own
// poller defaults to once a second. The timing below is a pure function of (state, policy, now)
// so it can be tested over virtual days, and the state is persisted so restarts and crash loops
// cannot poll early.
import { mkdir, readFile, rename, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { SwitchyardError } from '@switchyard/errors';
import { PRODUCTION_POLL_FLOOR_SECONDS } from '@switchyard/profile';
import { backoffDelay, type Clock, type TimerHandle } from '@switchyard/time';

export const PRODUCTION_POLL_FLOOR_MS = PRODUCTION_POLL_FLOOR_SECONDS * 1000;

export interface PollPolicy {
  /** Minimum time between the starts of two polls, in ms. */
  intervalMs: number;
  /** Extra random delay as a fraction of intervalMs (0..1); only ever added. */
  jitterRatio: number;
  /** After a poll that returned a message, at most this many immediate follow-up GETs. */
  drainMax: number;
  /** First throttle back-off, in ms; doubles per consecutive 429. */
  backoffBaseMs: number;
  /** Cap on the throttle back-off, in ms. */
  backoffMaxMs: number;
  /** True when the profile's environment is development (the floor does not apply). */
  development: boolean;
}

export interface PollState {
  /** Epoch ms at which the last poll *started*; undefined when none is known. */
  lastPollStartedAt?: number;
  /** Jitter drawn for the interval following the last poll, in ms (>= 0). */
  jitterMs: number;
  /** Consecutive throttled (429) polls. */
  throttles: number;
  /** Consecutive attempts that never reached the hub (see `pollUnreached`). */
  unreached?: number;
  /** When to try again after such an attempt; never earlier than the floor after the last real poll. */
  retryAt?: number;
}

export const INITIAL_POLL_STATE: PollState = { jitterMs: 0, throttles: 0 };

export interface PollPolicyInput {
  development: boolean;
  /** From the decision or profile; production never goes below the floor whatever is asked. */
  pollIntervalSeconds?: number;
  jitterRatio?: number;
  drainMax?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

/** Builds the policy; production clamps the interval to the 25-minute floor. */
export function pollPolicy(input: PollPolicyInput): PollPolicy {
  const requested = (input.pollIntervalSeconds ?? PRODUCTION_POLL_FLOOR_SECONDS) * 1000;
  return {
    intervalMs: input.development ? requested : Math.max(requested, PRODUCTION_POLL_FLOOR_MS),
    jitterRatio: Math.min(Math.max(input.jitterRatio ?? 0.1, 0), 1),
    drainMax: Math.max(0, Math.floor(input.drainMax ?? 10)),
    backoffBaseMs: input.backoffBaseMs ?? 60_000,
    backoffMaxMs: input.backoffMaxMs ?? 4 * 60 * 60 * 1000,
    development: input.development,
  };
}

/** Extra delay after `throttles` consecutive 429s: base·2^(n−1), capped. */
export function throttleBackoffMs(throttles: number, policy: PollPolicy): number {
  if (throttles <= 0) return 0;
  // Never jittered: the poll's own jitter is drawn separately, and only ever added.
  return backoffDelay({ baseMs: policy.backoffBaseMs, maxMs: policy.backoffMaxMs, maxRetries: Infinity, jitter: 0 }, throttles - 1)!;
}

/**
 * When the next poll may start: never earlier than interval + jitter + throttle back-off after
 * the start of the last poll. With no previous poll at all, right away.
 */
export function nextPollAt(state: PollState, policy: PollPolicy, now: number): number {
  const floor = floorAfterLastPoll(state, policy, now);
  return state.retryAt === undefined ? floor : Math.max(floor, state.retryAt);
}

function floorAfterLastPoll(state: PollState, policy: PollPolicy, now: number): number {
  if (state.lastPollStartedAt === undefined) return now;
  const gap = policy.intervalMs + Math.max(0, state.jitterMs) + throttleBackoffMs(state.throttles, policy);
  // A clock that jumped backwards must not bring the next poll closer than a full gap from now.
  if (state.lastPollStartedAt > now) return now + gap;
  return state.lastPollStartedAt + gap;
}

/** First wait after an attempt that never reached the hub; doubles per attempt, capped at the interval. */
export const UNREACHED_RETRY_MS = 30_000;

/**
 * The state after an attempt that never reached the hub (connection refused, no route, name not
 * found, TLS failed): IoT Hub saw no poll, so the attempt does not count as one. `before` is the
 * state the attempt started from; the next try waits a back-off, and never comes before the
 * floor after the last poll that did reach the hub.
 */
export function pollUnreached(before: PollState, policy: PollPolicy, startedAt: number): PollState {
  const unreached = (before.unreached ?? 0) + 1;
  const wait = backoffDelay({ baseMs: Math.min(UNREACHED_RETRY_MS, policy.intervalMs), maxMs: policy.intervalMs, maxRetries: Infinity, jitter: 0 }, unreached - 1)!;
  return { ...before, unreached, retryAt: startedAt + wait };
}

/** The state once a poll starts at `now`; `random` in [0, 1) draws the next jitter. */
export function pollStarted(state: PollState, policy: PollPolicy, now: number, random: number): PollState {
  return { ...state, lastPollStartedAt: now, jitterMs: Math.floor(Math.min(Math.max(random, 0), 1) * policy.jitterRatio * policy.intervalMs) };
}

/**
 * How one GET ended. 'failed': it may have reached the hub (a timeout, a 5xx), so it counts as a
 * poll. 'unreached': it surely did not (see pollUnreached), so it does not.
 */
export type PollOutcome = 'message' | 'empty' | 'throttled' | 'failed' | 'unreached';

/** The state once a poll that reached the hub ended with `outcome`. */
export function pollFinished(state: PollState, outcome: Exclude<PollOutcome, 'unreached'>): PollState {
  const { unreached: _u, retryAt: _r, ...rest } = state;
  return { ...rest, throttles: outcome === 'throttled' ? state.throttles + 1 : outcome === 'failed' ? state.throttles : 0 };
}

/** Whether a follow-up GET may be issued right away: only after a message, at most drainMax. */
export function mayDrain(outcome: PollOutcome, drainedSoFar: number, policy: PollPolicy): boolean {
  return outcome === 'message' && drainedSoFar < policy.drainMax;
}

// ---- persistence -------------------------------------------------------------------------

interface PollStateFile {
  version: 1;
  deviceId: string;
  lastPollStartedAt?: number;
  jitterMs: number;
  throttles: number;
  unreached?: number;
  retryAt?: number;
}

export function pollStatePath(dir: string, deviceId: string): string {
  return join(dir, `${encodeURIComponent(deviceId)}.poll.json`);
}

/**
 * Reads the poll record. `known` is false when the record is corrupt: the device cannot know
 * when it last polled, and the caller must then count "now" as the last poll.
 */
export async function readPollState(dir: string, deviceId: string): Promise<PollState & { known: boolean }> {
  let text: string;
  try {
    text = await readFile(pollStatePath(dir, deviceId), 'utf8');
  } catch (cause) {
    // Every poll is recorded before it starts, so no record means this device never polled here.
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { ...INITIAL_POLL_STATE, known: true };
    throw new SwitchyardError('STATE_FAILED', `cannot read the poll record in ${dir}: ${(cause as Error).message}`, { cause, details: { field: 'pollStateDir', dir } });
  }
  try {
    const parsed = JSON.parse(text) as Partial<PollStateFile>;
    const state: PollState & { known: boolean } = {
      known: true,
      jitterMs: typeof parsed.jitterMs === 'number' && parsed.jitterMs >= 0 ? parsed.jitterMs : 0,
      throttles: typeof parsed.throttles === 'number' && parsed.throttles >= 0 ? parsed.throttles : 0,
    };
    if (typeof parsed.lastPollStartedAt === 'number' && Number.isFinite(parsed.lastPollStartedAt)) state.lastPollStartedAt = parsed.lastPollStartedAt;
    if (typeof parsed.unreached === 'number' && parsed.unreached > 0) state.unreached = parsed.unreached;
    if (typeof parsed.retryAt === 'number' && Number.isFinite(parsed.retryAt)) state.retryAt = parsed.retryAt;
    return state;
  } catch {
    return { ...INITIAL_POLL_STATE, known: false };
  }
}

/** Writes the poll record atomically (temp file, fsync, rename), so a crash leaves old or new, never half. */
export async function writePollState(dir: string, deviceId: string, state: PollState): Promise<void> {
  const path = pollStatePath(dir, deviceId);
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const record: PollStateFile = { version: 1, deviceId, jitterMs: state.jitterMs, throttles: state.throttles };
  if (state.lastPollStartedAt !== undefined) record.lastPollStartedAt = state.lastPollStartedAt;
  if (state.unreached !== undefined) record.unreached = state.unreached;
  if (state.retryAt !== undefined) record.retryAt = state.retryAt;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(temp, JSON.stringify(record));
    const handle = await open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (cause) {
    throw new SwitchyardError('STATE_FAILED', `cannot write the poll record in ${dir}: ${(cause as Error).message}; the device will not poll until it can record the poll`, {
      cause,
      details: { field: 'pollStateDir', dir },
    });
  }
}

// ---- the runner --------------------------------------------------------------------------

export interface PollEvent {
  startedAt: Date;
  /** Messages received by this poll, including the bounded drain. */
  received: number;
  /** Follow-up GETs issued after the first one. */
  drained: number;
  outcome: PollOutcome;
  nextPollAt: Date;
}

export interface PollRunnerOptions {
  deviceId: string;
  policy: PollPolicy;
  clock: Clock;
  /** Directory of the persisted record; without it the record lives in memory only. */
  stateDir?: string;
  random?: () => number;
  /** Issues one GET; resolves with its outcome. */
  pollOnce: () => Promise<PollOutcome>;
  onPoll: (event: PollEvent) => void;
  onError: (err: unknown) => void;
}

/**
 * Drives polls by chaining one timer at a time (never setInterval), so a slow poll can never
 * overlap the next, and the next start is always computed from the recorded last start.
 */
export class PollRunner {
  #state: PollState = { ...INITIAL_POLL_STATE };
  #timer: TimerHandle | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  readonly #o: PollRunnerOptions;

  constructor(options: PollRunnerOptions) {
    this.#o = options;
  }

  get state(): PollState {
    return this.#state;
  }

  /** Loads the record and schedules the first poll; resolves with its time. */
  async start(): Promise<number> {
    let known = false;
    if (this.#o.stateDir !== undefined) {
      const { known: k, ...state } = await readPollState(this.#o.stateDir, this.#o.deviceId);
      this.#state = state;
      known = k;
    }
    // Without a trustworthy record a restart may follow a poll by seconds, so count "now" as the
    // last poll and wait a full interval.
    if (!known) this.#state = { ...this.#state, lastPollStartedAt: this.#o.clock.now() };
    return this.#schedule();
  }

  #schedule(): number {
    const now = this.#o.clock.now();
    const at = nextPollAt(this.#state, this.#o.policy, now);
    if (this.#stopped) return at;
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#cycle().finally(() => {
        this.#running = undefined;
      });
    }, Math.max(0, at - now));
    // The runner exists only while someone listens for C2D. Over MQTT or AMQP the open socket
    // keeps such a process alive; over HTTPS the wait for the next poll is all there is, so it
    // must hold the process too (until stop()), or a listening device exits by itself.
    this.#timer.ref();
    return at;
  }

  async #cycle(): Promise<void> {
    if (this.#stopped) return;
    const startedAt = this.#o.clock.now();
    // Timers may fire early (clock adjustments, coarse injected clocks): re-check the floor.
    if (startedAt < nextPollAt(this.#state, this.#o.policy, startedAt)) {
      this.#schedule();
      return;
    }
    const started = pollStarted(this.#state, this.#o.policy, startedAt, (this.#o.random ?? Math.random)());
    try {
      // Record before polling: if the process dies mid-poll, the next one still waits.
      if (this.#o.stateDir !== undefined) await writePollState(this.#o.stateDir, this.#o.deviceId, started);
    } catch (err) {
      this.#o.onError(err);
      this.#state = { ...this.#state, lastPollStartedAt: startedAt };
      this.#schedule();
      return;
    }
    const before = this.#state;
    this.#state = started;
    let received = 0;
    let drained = 0;
    let outcome: PollOutcome;
    let last: PollOutcome;
    try {
      last = await this.#o.pollOnce();
      outcome = last;
      if (last === 'message') received++;
      while (!this.#stopped && mayDrain(last, drained, this.#o.policy)) {
        drained++;
        last = await this.#o.pollOnce();
        if (last === 'message') received++;
        if (last === 'throttled') outcome = 'throttled';
      }
    } catch (err) {
      this.#o.onError(err);
      outcome = 'failed';
    }
    // Only the first GET can be unreached: a drain follows an answer from the hub.
    this.#state = outcome === 'unreached' ? pollUnreached(before, this.#o.policy, startedAt) : pollFinished(this.#state, outcome);
    if (this.#o.stateDir !== undefined && !this.#stopped) {
      await writePollState(this.#o.stateDir, this.#o.deviceId, this.#state).catch((err: unknown) => this.#o.onError(err));
    }
    const next = this.#schedule();
    this.#o.onPoll({ startedAt: new Date(startedAt), received, drained, outcome, nextPollAt: new Date(next) });
  }

  /** Stops scheduling and waits for a poll in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }
}
