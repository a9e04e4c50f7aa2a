// The decision record contract: what the selector returns and what the CLI prints with --json.
import type { CapabilityProfile, Protocol } from '@switchyard/profile';

export const PROTOCOL_PORTS = { mqtt: 8883, 'mqtt-ws': 443, amqp: 5671, 'amqp-ws': 443, https: 443 } as const satisfies Record<Protocol, number>;

/** A stable identifier per rule, so tools can match on it; `message` is for people. */
export interface RuleFinding {
  rule: string;
  message: string;
}

export interface Rejection {
  protocol: Protocol;
  reasons: RuleFinding[];
}

export interface Decision {
  protocol: Protocol;
  port: number;
  /** Other eligible protocols, best first. */
  fallbacks: Protocol[];
  rejected: Rejection[];
  warnings: string[];
  /** Why the chosen protocol beat the other eligible ones, in order of weight. */
  because: string[];
  /** True when several identities share one connection (AMQP or AMQP-WS with identities > 1). */
  multiplexed: boolean;
  /** HTTPS only: seconds between C2D polls that the client will enforce. */
  pollIntervalSeconds?: number;
  /** Set when the protocol was forced (option or SWITCHYARD_PROTOCOL) rather than chosen. */
  forced?: boolean;
  profile: CapabilityProfile;
}
