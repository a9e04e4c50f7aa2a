// One retry schedule for every reconnect and retried operation: exponential, capped, with full
// jitter (AWS's "full jitter": a uniform wait in [0, min(cap, base·2^n)]), so a fleet of devices
// dropped by one hub restart does not come back in lockstep.

export interface BackoffPolicy {
  /** Wait before the first retry's upper bound, ms. */
  baseMs: number;
  /** Upper bound of any single wait, ms. */
  maxMs: number;
  /** Retries after the first attempt; 0 means none. `Infinity` retries for ever. */
  maxRetries: number;
  /** Fraction of the wait drawn at random: 1 is full jitter, 0 none. Default 1. */
  jitter?: number;
}

/**
 * The wait before retry number `retry` (0 for the first retry), or undefined when the policy has
 * no more retries. `random` is injected so tests are deterministic.
 */
export function backoffDelay(policy: BackoffPolicy, retry: number, random: () => number = Math.random): number | undefined {
  if (!(retry >= 0) || retry >= policy.maxRetries) return undefined;
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(retry, 30));
  const jitter = Math.min(1, Math.max(0, policy.jitter ?? 1));
  return Math.round(ceiling * (1 - jitter) + ceiling * jitter * random());
}
