export { systemClock, delay, type Clock, type TimerHandle } from './clock.ts';
export { ManualClock } from './manual-clock.ts';
export { backoffDelay, type BackoffPolicy } from './backoff.ts';
