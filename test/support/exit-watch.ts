// For child processes that must exit by themselves after close(): prints steps as lines, prints an
// uncaught exception instead of dying (so the parent sees it), and records where every timer was
// set, because Node 20 lists a pending timer as 'Timeout' without saying whose. Import it first.

export const say = (line: string): void => void process.stdout.write(`${line}\n`);
process.on('uncaughtException', (err: Error) => say(`uncaught ${String(err.stack ?? err).replace(/\s*\n\s*/g, ' | ')}`));

const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
const timers = new Map<NodeJS.Timeout, string>();
globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const where = (new Error().stack ?? '').split('\n').slice(2, 10).map((l) => l.trim()).join(' < ');
  const timer = realSetTimeout(() => {
    timers.delete(timer);
    fn(...args);
  }, ms);
  timers.set(timer, `${ms ?? 0} ms at ${where}`);
  return timer;
}) as typeof setTimeout;
globalThis.clearTimeout = ((timer?: NodeJS.Timeout | string | number) => {
  if (typeof timer === 'object') timers.delete(timer);
  realClearTimeout(timer);
}) as typeof clearTimeout;

/**
 * After close(): if the process is still alive `ms` later, prints what holds it (the handles, and
 * the referenced timers with where they were set) and exits 3. Its own timer holds nothing.
 */
export function exitIfHeldAfter(ms: number): void {
  realSetTimeout(() => {
    const held = [...timers].filter(([t]) => t.hasRef()).map(([, where]) => where);
    say(`held ${JSON.stringify(process.getActiveResourcesInfo())} ${JSON.stringify(held)}`);
    process.exit(3);
  }, ms).unref();
}
