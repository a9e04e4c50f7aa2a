// Bounded waits for the backend's steps: a service call that never answers, or an event that never
// comes, must end the step with an error naming it, never hold the program open.

export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Calls `attempt` until it returns a value, while `again(error)` says the failure is one that
 * passes by itself (a device not yet listening, a query index not yet updated), pausing between
 * attempts and giving up when `ms` have passed.
 */
export async function retrying<T>(what: string, ms: number, attempt: () => Promise<T | undefined>, again: (error: unknown) => boolean = () => false): Promise<T> {
  const deadline = Date.now() + ms;
  let pauseMs = 100;
  let last: unknown;
  for (;;) {
    try {
      const value = await within(attempt(), Math.max(1, deadline - Date.now()), what);
      if (value !== undefined) return value;
      last = undefined;
    } catch (error) {
      if (!again(error)) throw error;
      last = error;
    }
    if (Date.now() + pauseMs > deadline) {
      const reason = last instanceof Error ? `: last ${last.name}: ${last.message}` : '';
      throw new Error(`${what}: not done within ${ms} ms${reason}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    pauseMs = Math.min(pauseMs * 2, 2000);
  }
}

/** Closes everything given, each within `ms`, ignoring failures: shutdown must finish. */
export async function closeAll(closers: Array<() => Promise<unknown>>, ms: number): Promise<void> {
  for (const close of closers.reverse()) await within(close(), ms, 'close').catch(() => undefined);
}
