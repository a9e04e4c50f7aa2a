// The contract between bench/main.ts and bench/overhead-child.ts: one JSON config on the child's
// stdin, one JSON result line on its stdout.
import type { Protocol } from '@switchyard/profile';

/**
 * 'ours-sdk' (diagnostic, --aa-ours-sdk): ours' connect() builds and opens the Azure client, and
 * the sends go straight to that client's sendEvent, past our layers: ours / ours-sdk is what our
 * per-send code costs, ours-sdk / raw what our configuration of the SDK costs.
 */
export type Variant = 'raw' | 'ours' | 'ours-sdk';

export interface HubInfo {
  hostName: string;
  address: string;
  ports: { mqtt: number; amqp: number; https: number };
  ca: string;
  devices: Record<string, string>;
}

export interface ChildConfig {
  variant: Variant;
  protocol: Protocol;
  hub: Omit<HubInfo, 'devices'>;
  deviceId: string;
  key: string;
  payloadBytes: number;
  /** Messages sent before READY (a wire child: before counting bytes). */
  warmup: number;
  /** Upper bound on each of the two warm-up phases, in ms. */
  warmupMaxMs: number;
  /** Upper bound on sends per slice, so every loop ends even if the clock misbehaves. */
  maxMessagesPerSlice: number;
  /** Where ours imports the client from: the workspace package, or a bundle (--bundled). */
  oursModule?: string;
  /** A raw child that imports ours' module first, unused (--aa-loaded), so it carries ours' code and heap. */
  preloadOurs?: boolean;
  /** Wire round: relay through a counting proxy, send this many messages one at a time, exit. */
  wireMessages?: number;
  /**
   * A directory for V8 CPU profiles of the measured slices only, one per slice, plus slices.json:
   * connect, module loading and warm-up would otherwise swamp the per-send functions.
   */
  cpuProfile?: string;
  /** A directory for sampled allocation profiles (garbage included) of the measured slices, one per slice. */
  heapProfile?: string;
}

/**
 * The parent drives a measured child line by line: after "READY" it sends "RUN <window> <ms>"
 * any number of times (each answered by "SLICE <SliceResult>"), then "END" ("RESULT <ChildResult>").
 */
export interface ReadyInfo {
  /** Cold start: ms from this process's start to its first acknowledged message (imports, connect and one send). */
  firstAckMs: number;
  connectMs: number;
  rssAfterConnectMB: number;
  /** V8's new space (both semi-spaces) after the warm-up, KiB. */
  youngGenerationKB?: number;
  /** What the warm-up sent and the process CPU it took (JIT compilation included). */
  warmupMessages: number;
  warmupCpuMs: number;
  chosen?: string;
}

export interface SliceResult {
  window: number;
  messages: number;
  seconds: number;
  /** Process CPU (user + system, all threads) spent in the slice, µs. */
  cpuUs: number;
  /** The system part of cpuUs: syscalls (socket writes and reads, epoll, timers). */
  systemUs: number;
  /** Garbage collections in the slice (every kind, from perf_hooks 'gc' entries) and their total pause. */
  gcCount: number;
  gcMs: number;
  /** The same by kind: minor (scavenge), major (mark-compact), incremental (marking steps), weakcb. */
  gcByKind?: Record<string, { count: number; ms: number }>;
  /**
   * From /proc (Linux; absent elsewhere): CPU of the main thread (the event loop) and of all other
   * threads (V8's GC helpers and compilers, libuv's pool), ns, and context switches of the process.
   */
  threads?: { mainNs: number; otherNs: number; voluntarySwitches: number; involuntarySwitches: number; otherByName?: Record<string, number> };
}

export interface LatencySummary {
  window: number;
  samples: number;
  p50Us: number;
  p99Us: number;
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
  slices: SliceResult[];
  latency: LatencySummary[];
  wire?: WireResult;
  /** process.resourceUsage().maxRSS at the end: the kernel's high-water mark for the process. */
  peakRssMB: number;
  /** Highest process.memoryUsage.rss() sampled every 50 ms. */
  sampledPeakRssMB: number;
  /** Highest sampled RSS minus V8's resident young generation (see overhead-child.ts). */
  peakRetainedMB: number;
  rssAfterConnectMB: number;
  /** Packages of other protocols found in require.cache at the end. */
  foreignPackages: string[];
  /** Every package under node_modules found in require.cache. */
  packages: string[];
}
