// The contract between bench/outbox.ts and bench/outbox-child.ts: one JSON config on the child's
// stdin, then the line protocol of bench/overhead-types.ts (READY, RUN/SLICE, END/RESULT).
import type { HubInfo } from './overhead-types.ts';

/**
 * plain: connect() without an outbox; ids: plain, the caller giving each message a fresh
 * messageId; memory: `outbox: {}`; durable: `outbox: { dir }`.
 */
export type OutboxVariant = 'plain' | 'ids' | 'memory' | 'durable';

export interface OutboxChildConfig {
  variant: OutboxVariant;
  protocol: 'mqtt' | 'amqp';
  /** Where connect() comes from: the workspace package by default, or another tree's src/index.ts (--before). */
  module?: string;
  hub: Omit<HubInfo, 'devices'>;
  deviceId: string;
  key: string;
  /** The outbox directory of a durable child (fresh, empty). */
  dir?: string;
  payloadBytes: number;
  warmup: number;
  warmupMaxMs: number;
  maxMessagesPerSlice: number;
  /** A directory for V8 CPU profiles of the measured slices, one per slice, plus slices.json. */
  cpuProfile?: string;
}

export interface OutboxChildResult {
  variant: OutboxVariant;
  /** Messages acknowledged in all, warm-up included. */
  messages: number;
  /** The durable outbox's log at the end: its size and how often it was rewritten. */
  durableLog?: { bytes: number; liveBytes: number; compactions: number; writes?: number };
}
