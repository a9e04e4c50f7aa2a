// The run-time source of truth for the capability profile. Every constraint a user can break
// carries its own message, because the message is what names "what would be valid".
import * as v from 'valibot';
import { FEATURES, PROTOCOLS, type CapabilityProfile, type ProfileDefinition } from './types.ts';

/** IoT Hub's device-to-cloud message limit, on every protocol (iothub-facts.md §6). */
export const D2C_MAX_BYTES = 256 * 1024;
/** "Each device should poll for cloud-to-device messages no more than once every 25 minutes." */
export const PRODUCTION_POLL_FLOOR_SECONDS = 25 * 60;
export const DEFAULT_OUTBOUND_PORTS = [443, 5671, 8883] as const;

const C2D_PATTERNS = ['none', 'occasional', 'latency-sensitive'] as const;
const AUTH_KINDS = ['sas', 'x509-thumbprint', 'x509-ca'] as const;
const ENVIRONMENTS = ['production', 'development'] as const;

const oneOf = (values: readonly string[]): string => values.map((value) => JSON.stringify(value)).join(', ');

const enumOf = <const T extends readonly string[]>(values: T, what: string) => v.picklist(values, `must be one of ${oneOf(values)} (${what})`);

// A fraction fails as a wrong type would, not as a range check: it then gets one message, and the
// duplicate and cross-field rules below never run on it. Past the safe range is only a range error.
const int = (what: string) =>
  v.pipe(
    v.custom<number>(Number.isInteger, (issue) =>
      Number.isFinite(issue.input) ? `must be ${what} (a whole number)` : `must be ${what}, got ${issue.input === null ? 'null' : typeof issue.input}`,
    ),
    v.safeInteger(`must be ${what} (a whole number)`),
  );

// Duplicates are almost always a copy-paste slip; rejecting them keeps "the list" meaning one thing.
// Only a list whose items all have the right type is checked, so a bad item is reported once.
const noDuplicates = <T>(what: string) =>
  v.rawCheck<T[]>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const seen = new Set<T>();
    dataset.value.forEach((item, key) => {
      if (seen.has(item)) {
        addIssue({
          message: `duplicate ${what} ${JSON.stringify(item)}; list each at most once`,
          path: [{ type: 'array', origin: 'value', input: dataset.value, key, value: item }],
        });
      }
      seen.add(item);
    });
  });

const portSchema = v.pipe(int('a TCP port 1..65535'), v.minValue(1, 'must be a TCP port 1..65535'), v.maxValue(65535, 'must be a TCP port 1..65535'));

const entries = {
  $schema: v.pipe(
    v.optional(v.string('must be a string: the URL or path of this JSON Schema, for editors')),
    v.description('The JSON Schema this file follows, for editors (e.g. "./node_modules/@switchyard/profile/schema.json"). Ignored by Switchyard.'),
  ),
  identities: v.pipe(
    v.optional(v.pipe(int('an integer >= 1'), v.minValue(1, 'must be >= 1 (1 for a plain device, more for a gateway)')), 1),
    v.description('Device identities this process connects. More than 1 means a gateway that multiplexes them over one connection, which only AMQP and AMQP over WebSockets can do.'),
  ),
  c2d: v.pipe(
    v.optional(enumOf(C2D_PATTERNS, 'the cloud-to-device pattern'), 'occasional'),
    v.description('How the device receives cloud-to-device messages: "none", "occasional" (polling is acceptable) or "latency-sensitive" (needs server push: MQTT or AMQP, not HTTPS).'),
  ),
  ramKiB: v.pipe(
    v.optional(v.pipe(int('an integer number of KiB'), v.minValue(1, 'must be >= 1 KiB'))),
    v.description('Memory available to the protocol stack, in KiB. Under 1024 (1 MB) leaves MQTT, MQTT over WebSockets and HTTPS.'),
  ),
  outboundPorts: v.pipe(
    v.optional(
      v.pipe(
        v.array(portSchema, 'must be an array of TCP ports, e.g. [443, 5671, 8883]'),
        v.minLength(1, 'must list at least one port the network lets out (MQTT 8883, AMQP 5671, WebSockets and HTTPS 443)'),
        noDuplicates('port'),
        v.metadata({ uniqueItems: true }),
      ),
      () => [...DEFAULT_OUTBOUND_PORTS],
    ),
    v.description('TCP ports the device\'s network lets out. MQTT needs 8883, AMQP 5671, MQTT-WS, AMQP-WS and HTTPS need 443.'),
  ),
  protocols: v.pipe(
    v.optional(
      v.pipe(
        v.array(enumOf(PROTOCOLS, 'a protocol'), `must be an array of protocols from ${oneOf(PROTOCOLS)}`),
        v.minLength(1, `must list at least one protocol from ${oneOf(PROTOCOLS)}`),
        noDuplicates('protocol'),
        v.metadata({ uniqueItems: true }),
      ),
      () => [...PROTOCOLS],
    ),
    v.description('Protocol implementations the device can run.'),
  ),
  auth: v.pipe(
    v.optional(enumOf(AUTH_KINDS, 'the authentication kind'), 'sas'),
    v.description('How the device authenticates: shared access signature, X.509 thumbprint, or X.509 CA-signed certificate.'),
  ),
  previewFeatures: v.pipe(
    v.optional(v.boolean('must be true or false'), false),
    v.description('Whether IoT Hub preview features may be used. X.509 CA over HTTPS, MQTT-WS and AMQP-WS, and file upload with X.509 CA, are preview-only.'),
  ),
  features: v.pipe(
    v.optional(
      v.pipe(
        v.array(enumOf(FEATURES, 'a feature'), `must be an array of features from ${oneOf(FEATURES)}`),
        noDuplicates('feature'),
        v.metadata({ uniqueItems: true }),
      ),
      () => ['telemetry' as const],
    ),
    v.description('IoT Hub features the device uses.'),
  ),
  payloadBytes: v.pipe(
    v.optional(
      v.pipe(
        int('an integer number of bytes'),
        v.minValue(0, 'must be >= 0 bytes'),
        v.maxValue(D2C_MAX_BYTES, `must be <= ${D2C_MAX_BYTES} bytes: IoT Hub refuses device-to-cloud messages over 256 KB`),
      ),
    ),
    v.description(`Typical device-to-cloud message size in bytes (IoT Hub's limit is ${D2C_MAX_BYTES}).`),
  ),
  environment: v.pipe(
    v.optional(enumOf(ENVIRONMENTS, 'the deployment environment'), 'production'),
    v.description('"production" enforces IoT Hub\'s guidance (e.g. HTTPS polls at most every 25 minutes); "development" relaxes it with warnings.'),
  ),
  pollIntervalSeconds: v.pipe(
    v.optional(v.pipe(int('an integer number of seconds'), v.minValue(1, 'must be >= 1 second'))),
    v.description(`Seconds between HTTPS cloud-to-device polls. At least ${PRODUCTION_POLL_FLOOR_SECONDS} (25 minutes) in production; defaults to that floor.`),
  ),
};

/** An issue for a field the profile does not have; valibot reports only the first one. */
export const isUnknownField = (issue: v.BaseIssue<unknown>): boolean => issue.type === 'strict_object' && issue.expected === 'never';

// The rules between fields read every field, so they wait until each has the right type. Range
// errors and unknown fields do not stop them: a profile's mistakes are all reported at once.
const crossFieldRules = v.rawCheck<CapabilityProfile>(({ dataset, addIssue }) => {
  if (dataset.issues?.some((issue) => issue.kind === 'schema' && !isUnknownField(issue))) return;
  // An unknown field leaves the dataset untyped, but every known field has passed its own schema.
  const p = dataset.value as CapabilityProfile;
  const at = (key: keyof CapabilityProfile): v.ObjectPathItem => ({ type: 'object', origin: 'value', input: dataset.value as Record<string, unknown>, key, value: p[key] });
  if (p.c2d === 'none') {
    p.features.forEach((feature, index) => {
      if (feature === 'c2d' || feature === 'c2d-reject-abandon') {
        addIssue({
          message: `feature ${JSON.stringify(feature)} contradicts c2d "none"; set c2d to "occasional" or "latency-sensitive", or drop the feature`,
          path: [at('features'), { type: 'array', origin: 'value', input: p.features, key: index, value: feature }],
        });
      }
    });
  }
  if (p.environment === 'production' && p.pollIntervalSeconds !== undefined && p.pollIntervalSeconds < PRODUCTION_POLL_FLOOR_SECONDS) {
    addIssue({
      message: `must be >= ${PRODUCTION_POLL_FLOOR_SECONDS} (25 minutes) in production: IoT Hub throttles devices that poll more often; use environment "development" to poll faster while developing`,
      path: [at('pollIntervalSeconds')],
    });
  }
});

export const profileSchema = v.pipe(
  v.strictObject(entries),
  crossFieldRules,
  v.metadata({
    $id: 'https://switchyard.dev/schemas/capability-profile.json',
    title: 'Switchyard capability profile',
    description: 'What a device can do; Switchyard chooses its IoT Hub protocol from this.',
  }),
);

/** A profile as written in a file: every field with a default may be left out. */
export type ProfileInput = v.InferInput<typeof profileSchema>;

// The hand-written contracts in types.ts and the schema must describe the same shapes: the
// validated profile (`$schema` is dropped by parsing), and the literal a user writes.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type MutableArray<V> = V extends readonly (infer E)[] ? E[] : V;
type Mutable<T> = { -readonly [K in keyof T]: MutableArray<T[K]> };
const schemaMatchesContract: Equal<Omit<v.InferOutput<typeof profileSchema>, '$schema'>, CapabilityProfile> = true;
const inputMatchesDefinition: Equal<ProfileInput, Mutable<ProfileDefinition>> = true;
void schemaMatchesContract;
void inputMatchesDefinition;
