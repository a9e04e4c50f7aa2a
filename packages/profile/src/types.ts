// The capability profile contract. The valibot schema in schema.ts is the source of truth at run
// time; this file states the normalized shape that every later stage consumes, and schema.ts
// checks at compile time that the two agree.

export const PROTOCOLS = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const FEATURES = ['telemetry', 'batch', 'c2d', 'c2d-reject-abandon', 'twin', 'methods', 'file-upload'] as const;
export type Feature = (typeof FEATURES)[number];

export type C2DPattern = 'none' | 'occasional' | 'latency-sensitive';
export type AuthKind = 'sas' | 'x509-thumbprint' | 'x509-ca';
export type Environment = 'production' | 'development';

/** A profile after validation, with every default filled in. */
export interface CapabilityProfile {
  /** Device identities this process connects; > 1 means a gateway multiplexing them. */
  identities: number;
  c2d: C2DPattern;
  /** Memory available to the protocol stack, in KiB. */
  ramKiB?: number;
  /** Ports the device's network lets out. */
  outboundPorts: number[];
  /** Protocol implementations the device can run. */
  protocols: Protocol[];
  auth: AuthKind;
  previewFeatures: boolean;
  features: Feature[];
  /** Typical message size in bytes. */
  payloadBytes?: number;
  environment: Environment;
  /** HTTPS C2D polling interval in seconds. */
  pollIntervalSeconds?: number;
}
