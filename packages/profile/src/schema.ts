// The run-time source of truth for the capability profile. Every constraint a user can break
// carries its own message, because the message is what names "what would be valid".
import { z } from 'zod';
import { FEATURES, PROTOCOLS, type CapabilityProfile } from './types.ts';

/** IoT Hub's device-to-cloud message limit, on every protocol (iothub-facts.md §6). */
export const D2C_MAX_BYTES = 256 * 1024;
/** "Each device should poll for cloud-to-device messages no more than once every 25 minutes." */
export const PRODUCTION_POLL_FLOOR_SECONDS = 25 * 60;
export const DEFAULT_OUTBOUND_PORTS = [443, 5671, 8883] as const;

const C2D_PATTERNS = ['none', 'occasional', 'latency-sensitive'] as const;
const AUTH_KINDS = ['sas', 'x509-thumbprint', 'x509-ca'] as const;
const ENVIRONMENTS = ['production', 'development'] as const;

const oneOf = (values: readonly string[]): string => values.map((v) => JSON.stringify(v)).join(', ');

const enumOf = <T extends readonly [string, ...string[]]>(values: T, what: string) =>
  z.enum(values, { error: `must be one of ${oneOf(values)} (${what})` });

const int = (what: string) =>
  z.number({ error: (iss) => `must be ${what}, got ${iss.input === null ? 'null' : typeof iss.input}` })
    .int({ error: `must be ${what} (a whole number)` });

// Duplicates are almost always a copy-paste slip; rejecting them keeps "the list" meaning one thing.
function noDuplicates<T>(items: readonly T[], ctx: z.core.$RefinementCtx<T[]>, what: string): void {
  const seen = new Set<T>();
  items.forEach((item, index) => {
    if (seen.has(item)) ctx.addIssue({ code: 'custom', path: [index], message: `duplicate ${what} ${JSON.stringify(item)}; list each at most once` });
    seen.add(item);
  });
}

const portSchema = int('a TCP port 1..65535')
  .min(1, { error: 'must be a TCP port 1..65535' })
  .max(65535, { error: 'must be a TCP port 1..65535' });

export const profileSchema = z
  .strictObject({
    identities: int('an integer >= 1')
      .min(1, { error: 'must be >= 1 (1 for a plain device, more for a gateway)' })
      .default(1)
      .describe('Device identities this process connects. More than 1 means a gateway that multiplexes them over one connection, which only AMQP and AMQP over WebSockets can do.'),
    c2d: enumOf(C2D_PATTERNS, 'the cloud-to-device pattern')
      .default('occasional')
      .describe('How the device receives cloud-to-device messages: "none", "occasional" (polling is acceptable) or "latency-sensitive" (needs server push: MQTT or AMQP, not HTTPS).'),
    ramKiB: int('an integer number of KiB')
      .min(1, { error: 'must be >= 1 KiB' })
      .optional()
      .describe('Memory available to the protocol stack, in KiB. Under 1024 (1 MB) leaves MQTT, MQTT over WebSockets and HTTPS.'),
    outboundPorts: z
      .array(portSchema, { error: 'must be an array of TCP ports, e.g. [443, 5671, 8883]' })
      .min(1, { error: 'must list at least one port the network lets out (MQTT 8883, AMQP 5671, WebSockets and HTTPS 443)' })
      .superRefine((ports, ctx) => noDuplicates(ports, ctx, 'port'))
      .meta({ uniqueItems: true })
      .default(() => [...DEFAULT_OUTBOUND_PORTS])
      .describe('TCP ports the device\'s network lets out. MQTT needs 8883, AMQP 5671, MQTT-WS, AMQP-WS and HTTPS need 443.'),
    protocols: z
      .array(enumOf(PROTOCOLS, 'a protocol'), { error: `must be an array of protocols from ${oneOf(PROTOCOLS)}` })
      .min(1, { error: `must list at least one protocol from ${oneOf(PROTOCOLS)}` })
      .superRefine((protocols, ctx) => noDuplicates(protocols, ctx, 'protocol'))
      .meta({ uniqueItems: true })
      .default(() => [...PROTOCOLS])
      .describe('Protocol implementations the device can run.'),
    auth: enumOf(AUTH_KINDS, 'the authentication kind')
      .default('sas')
      .describe('How the device authenticates: shared access signature, X.509 thumbprint, or X.509 CA-signed certificate.'),
    previewFeatures: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .describe('Whether IoT Hub preview features may be used. X.509 CA over HTTPS, MQTT-WS and AMQP-WS, and file upload with X.509 CA, are preview-only.'),
    features: z
      .array(enumOf(FEATURES, 'a feature'), { error: `must be an array of features from ${oneOf(FEATURES)}` })
      .superRefine((features, ctx) => noDuplicates(features, ctx, 'feature'))
      .meta({ uniqueItems: true })
      .default(() => ['telemetry' as const])
      .describe('IoT Hub features the device uses.'),
    payloadBytes: int('an integer number of bytes')
      .min(0, { error: 'must be >= 0 bytes' })
      .max(D2C_MAX_BYTES, { error: `must be <= ${D2C_MAX_BYTES} bytes: IoT Hub refuses device-to-cloud messages over 256 KB` })
      .optional()
      .describe(`Typical device-to-cloud message size in bytes (IoT Hub's limit is ${D2C_MAX_BYTES}).`),
    environment: enumOf(ENVIRONMENTS, 'the deployment environment')
      .default('production')
      .describe('"production" enforces IoT Hub\'s guidance (e.g. HTTPS polls at most every 25 minutes); "development" relaxes it with warnings.'),
    pollIntervalSeconds: int('an integer number of seconds')
      .min(1, { error: 'must be >= 1 second' })
      .optional()
      .describe(`Seconds between HTTPS cloud-to-device polls. At least ${PRODUCTION_POLL_FLOOR_SECONDS} (25 minutes) in production; defaults to that floor.`),
  })
  .superRefine((p, ctx) => {
    if (p.c2d === 'none') {
      p.features.forEach((feature, index) => {
        if (feature === 'c2d' || feature === 'c2d-reject-abandon') {
          ctx.addIssue({ code: 'custom', path: ['features', index], message: `feature ${JSON.stringify(feature)} contradicts c2d "none"; set c2d to "occasional" or "latency-sensitive", or drop the feature` });
        }
      });
    }
    if (p.environment === 'production' && p.pollIntervalSeconds !== undefined && p.pollIntervalSeconds < PRODUCTION_POLL_FLOOR_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['pollIntervalSeconds'],
        message: `must be >= ${PRODUCTION_POLL_FLOOR_SECONDS} (25 minutes) in production: IoT Hub throttles devices that poll more often; use environment "development" to poll faster while developing`,
      });
    }
  })
  .meta({
    $id: 'https://switchyard.dev/schemas/capability-profile.json',
    title: 'Switchyard capability profile',
    description: 'What a device can do; Switchyard chooses its IoT Hub protocol from this.',
  });

/** A profile as written in a file: every field with a default may be left out. */
export type ProfileInput = z.input<typeof profileSchema>;

// The hand-written contract in types.ts and the schema must describe the same shape.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const schemaMatchesContract: Equal<z.output<typeof profileSchema>, CapabilityProfile> = true;
void schemaMatchesContract;
