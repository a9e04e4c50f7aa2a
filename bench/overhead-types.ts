// The contract between bench/main.ts and bench/overhead-child.ts: one JSON config on the child's
// stdin, one JSON result line on its stdout.
import type { Protocol } from '@switchyard/profile';

export type Variant = 'raw' | 'ours';

export interface HubInfo {
  hostName: string;
  address: string;
  ports: { mqtt: number; amqp: number; https: number };
  ca: string;
  devices: Record<string, string>;
}

export interface PhaseConfig {
  /** Sends in flight at once. */
  window: number;
  seconds: number;
  /** Upper bound on sends, so every loop ends even if the clock misbehaves. */
  maxMessages: number;
}

export interface ChildConfig {
  variant: Variant;
  protocol: Protocol;
  hub: Omit<HubInfo, 'devices'>;
  deviceId: string;
  key: string;
  payloadBytes: number;
  warmup: number;
  /** Throughput phases; empty in the wire round. */
  phases: PhaseConfig[];
  /** Wire round: relay through a counting proxy and send this many messages one at a time. */
  wireMessages?: number;
}

export interface PhaseResult {
  window: number;
  messages: number;
  seconds: number;
  msgsPerSecond: number;
  p50Us: number;
  p99Us: number;
  /** Process CPU (user + system) per message: less sensitive to a busy machine than msgs/s. */
  cpuUsPerMessage: number;
}

export interface WireResult {
  messages: number;
  /** Connect, authenticate and the first message accepted (AMQP attaches its sender link then). */
  setupUp: number;
  setupDown: number;
  perMessageUp: number;
  perMessageDown: number;
  connections: number;
}

export interface ChildResult {
  variant: Variant;
  protocol: Protocol;
  /** What our client's selector chose; must equal `protocol`. */
  chosen?: string;
  connectMs: number;
  phases: PhaseResult[];
  wire?: WireResult;
  /** process.resourceUsage().maxRSS at the end: the kernel's high-water mark for the process. */
  peakRssMB: number;
  /** Highest process.memoryUsage.rss() sampled every 50 ms. */
  sampledPeakRssMB: number;
  rssAfterConnectMB: number;
  /** Packages of other protocols found in require.cache at the end. */
  foreignPackages: string[];
  /** Every package under node_modules found in require.cache. */
  packages: string[];
}
