// The `outbox` option of connect() and of the gateway (per identity). Its schema is in
// ../options.ts with the other connect() options; these are its types and defaults.

export type WhenFull = 'reject-new' | 'drop-oldest';

export interface OutboxOptions {
  /** Directory for the durable log (outbox.log); without it the outbox is in memory only. */
  dir?: string;
  /** Messages the outbox holds at most. Default 10 000. */
  maxMessages?: number;
  /** Body and property bytes the outbox holds at most. Default 64 MiB. */
  maxBytes?: number;
  /** What a send does when the outbox is full. Default 'reject-new'. */
  whenFull?: WhenFull;
  /** Drop a message not acknowledged this long after it was queued, ms. Default: never. */
  ttlMs?: number;
}

export interface OutboxSettings {
  dir: string | undefined;
  maxMessages: number;
  maxBytes: number;
  whenFull: WhenFull;
  ttlMs: number | undefined;
}

export const OUTBOX_DEFAULTS = { maxMessages: 10_000, maxBytes: 64 * 1024 * 1024, whenFull: 'reject-new' } as const;

export function outboxSettings(options: OutboxOptions): OutboxSettings {
  return {
    dir: options.dir,
    maxMessages: options.maxMessages ?? OUTBOX_DEFAULTS.maxMessages,
    maxBytes: options.maxBytes ?? OUTBOX_DEFAULTS.maxBytes,
    whenFull: options.whenFull ?? OUTBOX_DEFAULTS.whenFull,
    ttlMs: options.ttlMs,
  };
}
