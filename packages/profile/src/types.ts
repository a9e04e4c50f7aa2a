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

/**
 * A profile as a program or a file writes it: every field with a default may be left out. The
 * type behind `defineProfile()`, `connect({ profile })` and `createGateway({ profile })`, which
 * also refuse fields it does not name (see {@link ExactProfile}), so a typo fails to compile.
 */
export interface ProfileDefinition {
  /** The JSON Schema the file follows, for editors; ignored. */
  $schema?: string;
  /** Device identities this process connects; > 1 means a gateway multiplexing them. Default 1. */
  identities?: number;
  /** Default `'occasional'`. */
  c2d?: C2DPattern;
  /** Memory available to the protocol stack, in KiB. */
  ramKiB?: number;
  /** Ports the device's network lets out. Default `[443, 5671, 8883]`. */
  outboundPorts?: readonly number[];
  /** Protocol implementations the device can run. Default: all five. */
  protocols?: readonly Protocol[];
  /** Default `'sas'`. */
  auth?: AuthKind;
  /** Default `false`. */
  previewFeatures?: boolean;
  /** Default `['telemetry']`. */
  features?: readonly Feature[];
  /** Typical message size in bytes. */
  payloadBytes?: number;
  /** Default `'production'`. */
  environment?: Environment;
  /** HTTPS C2D polling interval in seconds. */
  pollIntervalSeconds?: number;
}

/**
 * `P` when it names no field outside {@link ProfileDefinition}; otherwise the unknown fields are
 * typed `never`, so `{ featurs: [...] }` fails to compile where the profile is written. A path
 * (string) passes through: its file is checked when it is read.
 */
export type ExactProfile<P> = P & (P extends string | undefined ? unknown : { [K in Exclude<keyof P, keyof ProfileDefinition>]: never });
