// The contracts of the soak (bench/soak.ts): requests to the hub process's control channel
// (bench/hub-control.ts), and the lines between the soak and each client process
// (bench/soak-child.ts).
import type { Protocol } from '@switchyard/profile';

// ---- hub control ----------------------------------------------------------------------------

export type HubRequest = { id: number } & (
  | { op: 'create'; deviceIds: string[] }
  | { op: 'inject'; deviceIds: string[]; type: string; durationSeconds?: number }
  | { op: 'network'; deviceIds: string[]; kind: string; seconds?: number; delayMs?: number }
  | { op: 'clear' }
  | { op: 'c2d'; deviceId: string; messageId: string }
  | { op: 'method'; deviceId: string; methodName: string; payload: unknown; timeoutSeconds: number }
  | { op: 'telemetry'; devices: Record<string, { issued: number; rejected: number[] }> }
  | { op: 'stats' }
);

/** Distributes over the union, so each request keeps its own fields without its id. */
export type HubRequestBody = HubRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export interface TelemetryReport {
  /** Numbers 0 … issued − 1 seen at least once. */
  unique: number;
  /** Copies beyond the first (at-least-once delivery). */
  duplicates: number;
  /** Issued, not refused to the caller, never seen. */
  lostCount: number;
  /** The first of them. */
  lost: number[];
  /** Refused to the caller and seen at the hub all the same. */
  rejectedSeen: number;
  /** Numbers seen that were never issued (must be 0). */
  beyond: number;
}

export interface HubFaultEvent {
  event: 'fault';
  at: number;
  deviceId: string;
  fault: string;
  phase: 'scheduled' | 'started' | 'ended' | 'ignored';
  detail: string;
}

// ---- clients ----------------------------------------------------------------------------------

export interface SoakClientConfig {
  /** Its row in the tables: the protocol, or `gateway-amqp×20`. */
  name: string;
  kind: 'device' | 'gateway';
  protocol: Protocol;
  hub: { hostName: string; address: string; ports: { mqtt: number; amqp: number; https: number }; ca: string };
  identities: Array<{ deviceId: string; key: string }>;
  /** Telemetry per identity per second. */
  ratePerIdentity: number;
  payloadBytes: number;
  /** With `dir`, the durable outbox; otherwise in memory. */
  outboxDir?: string;
  /**
   * 'acknowledged': every send awaits the hub's acknowledgement (bounded by `ackTimeoutMs`);
   * 'queued': the send resolves once recorded and the outbox delivers it (acknowledged = what left
   * the outbox without being dropped).
   */
  until: 'queued' | 'acknowledged';
  ackTimeoutMs: number;
  twinEverySeconds: number;
  /** HTTPS C2D polling (development profile). */
  pollIntervalSeconds: number;
}

/**
 * The soak drives a client line by line: after "READY <ReadyLine>", "STATS" any number of times
 * ("STATS <ClientStats>"), "STOP" (stop sending, drain: "DRAINED <ClientStats>"), "CLOSE"
 * ("RESULT <ClientResult>"). "EVENT <ClientEvent>" lines come at any time.
 */
export interface ReadyLine {
  connectMs: number;
  protocol: string;
  identities: number;
}

export interface ClientStats {
  /** ms since the client process started. */
  at: number;
  issued: number;
  acknowledged: number;
  rejected: number;
  /** 'acknowledged' sends whose caller deadline passed while the outbox kept the message. */
  callerTimeouts: number;
  /** Sends not yet settled for their caller. */
  pendingCallers: number;
  /** Outbox depth now, summed over identities, and the highest sampled (every 200 ms). */
  depth: number;
  maxDepth: number;
  maxDepthSinceLast: number;
  dropped: Record<string, number>;
  c2dReceived: number;
  c2dDuplicates: number;
  c2dSettleFailed: number;
  methodsAnswered: number;
  twinOk: number;
  twinFailed: number;
  /** Transitions out of `connected`, and back into it. */
  disconnects: number;
  reconnects: number;
  /** State of each identity now: state → count. */
  states: Record<string, number>;
  errors: Record<string, number>;
  warnings: number;
  heapUsedMB: number;
  /** Event-loop delay since the previous STATS, and over the whole run, ms. */
  eldP99Ms: number;
  eldMaxMs: number;
  eldRunP99Ms: number;
  eldRunMaxMs: number;
  /** Per identity, so the hub's count can still be checked against the last STATS of a client that crashed. */
  identities: IdentityResult[];
}

export interface IdentityResult {
  deviceId: string;
  issued: number;
  /** Sends refused to their caller without the outbox keeping them. */
  rejectedSeqs: number[];
  /** C2D numbers received (each once). */
  c2dReceived: number[];
}

export interface ClientResult {
  stats: ClientStats;
  identities: IdentityResult[];
  drained: boolean;
  drainMs: number;
  closeMs: number;
  closeError?: string;
}

export interface ClientEvent {
  at: number;
  /** Date.now() when the soak read it. */
  seenAt?: number;
  deviceId?: string;
  what: string;
  detail?: string;
}
