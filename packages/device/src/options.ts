// Eager validation of connect() options: every mistake is reported before any socket opens,
// naming the field and the fix. Connection strings are parsed here, never echoed back.
import * as v from 'valibot';
import { SwitchyardError } from '@switchyard/errors';
import { PROTOCOLS, type Protocol } from '@switchyard/profile';
import type { Clock } from '@switchyard/time';

// The generic messages keep the wording connect() has always used, so callers see no change.
function received(input: unknown): string {
  if (typeof input === 'number') return Number.isFinite(input) ? 'number' : String(input);
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'array';
  if (typeof input === 'object' && Object.getPrototypeOf(input) !== Object.prototype && input.constructor) return input.constructor.name;
  return typeof input;
}
const expected = (type: string) => (issue: v.BaseIssue<unknown>) => `Invalid input: expected ${type}, received ${received(issue.input)}`;
const atLeast = (min: number) => v.minValue<number, number, string>(min, `Too small: expected number to be >=${min}`);
const atMost = (max: number) => v.maxValue<number, number, string>(max, `Too big: expected number to be <=${max}`);
const nonEmpty = (message = 'Too small: expected string to have >=1 characters') => v.pipe(v.string(expected('string')), v.minLength(1, message));

// A non-finite number, and for int a fraction, is a wrong type rather than a range error: it gets
// one message, and the tokenRenewal rule does not run on it.
const finite = v.custom<number>(Number.isFinite, expected('number'));
const int = v.pipe(
  v.custom<number>(Number.isInteger, (issue) => (Number.isFinite(issue.input) ? 'Invalid input: expected int, received number' : expected('number')(issue))),
  v.safeInteger((issue) => (issue.input > 0 ? `Too big: expected int to be <=${Number.MAX_SAFE_INTEGER}` : `Too small: expected int to be >=${Number.MIN_SAFE_INTEGER}`)),
);

const UNKNOWN_OPTION = 'unknown option';
const isUnknownKey = (issue: v.BaseIssue<unknown>): boolean => issue.type === 'strict_object' && issue.expected === 'never';

// An object checked as connect() always has, which v.strictObject alone does not: an array is not
// an object, a missing field gets the message its schema gives undefined, and one issue names every
// unknown key in its input, where v.strictObject's own issue names only the first.
function strict<const E extends v.ObjectEntries>(entries: E) {
  const object = v.strictObject(entries, (issue) => {
    const key = issue.path?.[0]?.key;
    return typeof key === 'string' && Object.hasOwn(entries, key) ? v.safeParse(entries[key]!, undefined).issues![0].message : expected('object')(issue);
  });
  return v.pipe(
    v.custom<v.InferInput<typeof object>>((input) => !Array.isArray(input), expected('object')),
    object,
    v.rawCheck(({ dataset, addIssue }) => {
      const first = dataset.issues?.find((issue) => isUnknownKey(issue) && issue.path!.length === 1);
      if (first === undefined) return;
      const unknown: string[] = [];
      for (const key in first.path![0]!.input as object) if (!Object.hasOwn(entries, key)) unknown.push(key);
      addIssue({ input: unknown, message: UNKNOWN_OPTION });
    }),
  );
}

const port = v.pipe(int, v.minValue(1, 'must be a TCP port 1..65535'), v.maxValue(65535, 'must be a TCP port 1..65535'));

const clockSchema = v.custom<Clock>(
  (value) => typeof value === 'object' && value !== null && typeof (value as Clock).now === 'function' && typeof (value as Clock).setTimeout === 'function' && typeof (value as Clock).clearTimeout === 'function',
  'must be an object with now(), setTimeout(fn, ms) and clearTimeout(handle)',
);

const signalSchema = v.custom<AbortSignal>((value) => value instanceof AbortSignal, 'must be an AbortSignal');

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && [Object.prototype, null].includes(Object.getPrototypeOf(value));

/** The outbox (outbox/options.ts), for connect() and each gateway identity. */
export const outboxSchema = strict({
  dir: v.optional(nonEmpty('must be the path of a directory for the outbox log')),
  maxMessages: v.optional(v.pipe(int, atLeast(1))),
  maxBytes: v.optional(v.pipe(int, atLeast(1))),
  whenFull: v.optional(v.picklist(['reject-new', 'drop-oldest'], 'must be "reject-new" or "drop-oldest"')),
  ttlMs: v.optional(v.pipe(int, atLeast(1))),
});

export const connectOptionsSchema = strict({
  connectionString: v.pipe(
    v.string('is required: the device connection string "HostName=...;DeviceId=...;SharedAccessKey=..." (or ...;x509=true with cert and key)'),
    v.minLength(1, 'must not be empty'),
  ),
  cert: v.optional(nonEmpty()),
  key: v.optional(nonEmpty()),
  passphrase: v.optional(v.string(expected('string'))),
  profile: v.optional(v.union([nonEmpty(), v.custom<Record<string, unknown>>(isPlainObject)], 'must be a capability profile object or the path of a JSON profile file')),
  ca: v.optional(nonEmpty('must be the PEM text (or path) of the CA that signed the hub certificate')),
  endpoint: v.optional(
    strict({
      host: v.optional(nonEmpty()),
      ports: v.optional(strict({ mqtt: v.optional(port), amqp: v.optional(port), https: v.optional(port) })),
    }),
  ),
  fallback: v.optional(v.boolean(expected('boolean')), false),
  pollStateDir: v.optional(nonEmpty()),
  clock: v.optional(clockSchema),
  signal: v.optional(signalSchema),
  forceProtocol: v.optional(v.picklist(PROTOCOLS, `must be one of ${PROTOCOLS.join(', ')}`)),
  /** SAS lifetime and renewal margin, in seconds; the SDK default is 3600/900. */
  tokenRenewal: v.optional(
    v.pipe(
      strict({
        tokenValidTimeInSeconds: v.pipe(int, atLeast(1)),
        tokenRenewalMarginInSeconds: v.pipe(int, atLeast(0)),
      }),
      // Compares the two fields, so it waits until both have the right type; range errors and unknown keys do not stop it.
      v.rawCheck(({ dataset, addIssue }) => {
        if (dataset.issues?.some((issue) => issue.kind === 'schema' && !isUnknownKey(issue))) return;
        const t = dataset.value as { tokenValidTimeInSeconds: number; tokenRenewalMarginInSeconds: number };
        if (t.tokenRenewalMarginInSeconds >= t.tokenValidTimeInSeconds) addIssue({ message: 'tokenRenewalMarginInSeconds must be smaller than tokenValidTimeInSeconds' });
      }),
    ),
  ),
  /** MQTT keep-alive and half the AMQP idle timeout: a silent connection is replaced within 2 x this. */
  keepAliveSeconds: v.optional(v.pipe(int, atLeast(1)), 30),
  /** Per-operation deadline in ms where the SDK has none (twin, SUBACK, AMQP settlement). */
  operationTimeoutMs: v.optional(v.pipe(int, atLeast(1)), 30_000),
  /** Deadline for connecting one protocol, in ms. */
  connectTimeoutMs: v.optional(v.pipe(int, atLeast(1)), 20_000),
  /** Reconnect attempts the SDK makes after a drop before reporting 'disconnected' with willRetry false. */
  reconnectAttempts: v.optional(v.pipe(int, atLeast(0)), 10),
  /** HTTPS polling knobs; the 25-minute production floor cannot be lowered here. */
  poll: v.optional(
    strict({
      jitterRatio: v.optional(v.pipe(finite, atLeast(0), atMost(1))),
      drainMax: v.optional(v.pipe(int, atLeast(0), atMost(50))),
      backoffBaseMs: v.optional(v.pipe(int, atLeast(1))),
      backoffMaxMs: v.optional(v.pipe(int, atLeast(1))),
    }),
  ),
  onFallback: v.optional(v.custom<(event: { from: Protocol; to: Protocol; reason: string }) => void>((value) => typeof value === 'function', 'must be a function')),
  productInfo: v.optional(v.string(expected('string'))),
  /** Record every send before sending it, and replay what the hub has not acknowledged. Off by default. */
  outbox: v.optional(outboxSchema),
  /**
   * false: connect() returns the client at once (state `connecting`) and keeps trying the first
   * connection in the background; sends go to the outbox meanwhile. Needs `outbox`. Default true.
   */
  waitForConnection: v.optional(v.boolean(expected('boolean')), true),
});

export type ConnectOptionsInput = v.InferInput<typeof connectOptionsSchema>;
export type ParsedConnectOptions = v.InferOutput<typeof connectOptionsSchema>;

export interface ParsedConnectionString {
  hostName: string;
  deviceId: string;
  moduleId?: string;
  gatewayHostName?: string;
  auth: 'sas-key' | 'sas-token' | 'x509';
}

function fieldPath(path: readonly v.IssuePathItem[]): string {
  return path.map((p) => (typeof p.key === 'number' ? `[${p.key}]` : String(p.key))).join('.').replace(/\.\[/g, '[');
}

// What IoT Hub's device and module connection strings carry, by lower-cased name.
const CONNECTION_STRING_FIELDS = new Map(
  ['HostName', 'DeviceId', 'ModuleId', 'SharedAccessKey', 'SharedAccessKeyName', 'SharedAccessSignature', 'GatewayHostName', 'x509'].map((f) => [f.toLowerCase(), f]),
);

/** Splits "K=V;K=V" without the SDK, so a malformed string never reaches an SDK error message. */
export function parseConnectionString(text: string): ParsedConnectionString {
  const fields = new Map<string, string>();
  // A malformed segment is named by its position only: its text may be a key that lost its name
  // ("SharedAccessKey:…", a bare base64 string), which no pattern could tell from the rest.
  let position = 0;
  for (const part of text.split(';')) {
    if (part.trim() === '') continue;
    position++;
    const eq = part.indexOf('=');
    const name = eq <= 0 ? '' : part.slice(0, eq).trim().toLowerCase();
    if (!CONNECTION_STRING_FIELDS.has(name)) {
      const why = eq <= 0 ? 'is not of the form Name=value' : 'names no field of a device connection string';
      throw new SwitchyardError('CONFIG_INVALID', `connectionString segment ${position} ${why}; the fields are ${[...CONNECTION_STRING_FIELDS.values()].join(', ')}, as in "HostName=...;DeviceId=...;SharedAccessKey=..."`, {
        details: { field: 'connectionString', segment: position },
      });
    }
    fields.set(name, part.slice(eq + 1).trim());
  }
  const hostName = fields.get('hostname');
  const deviceId = fields.get('deviceid');
  const missing = [hostName ? undefined : 'HostName', deviceId ? undefined : 'DeviceId'].filter((m) => m !== undefined);
  if (missing.length > 0 || hostName === undefined || deviceId === undefined) {
    throw new SwitchyardError('CONFIG_INVALID', `connectionString lacks ${missing.join(' and ')}; use "HostName=<hub>.azure-devices.net;DeviceId=<id>;SharedAccessKey=<key>"`, {
      details: { field: 'connectionString', missing },
    });
  }
  let auth: ParsedConnectionString['auth'];
  if (fields.get('sharedaccesskey')) auth = 'sas-key';
  else if (fields.get('sharedaccesssignature')) auth = 'sas-token';
  else if ((fields.get('x509') ?? '').toLowerCase() === 'true') auth = 'x509';
  else {
    throw new SwitchyardError('CONFIG_INVALID', 'connectionString has no credential; add SharedAccessKey=<key>, SharedAccessSignature=<token>, or x509=true (with the cert and key options)', {
      details: { field: 'connectionString', missing: ['SharedAccessKey'] },
    });
  }
  const out: ParsedConnectionString = { hostName, deviceId, auth };
  const moduleId = fields.get('moduleid');
  if (moduleId) out.moduleId = moduleId;
  const gateway = fields.get('gatewayhostname');
  if (gateway) out.gatewayHostName = gateway;
  return out;
}

function invalidOptions(what: string, issues: v.BaseIssue<unknown>[], prefix = ''): SwitchyardError {
  const list = issues.filter((i) => !isUnknownKey(i)).map((i) => {
    if (i.message === UNKNOWN_OPTION) {
      // A nested object's unknown keys are named with the path to it (endpoint.ports.mqt).
      const at = fieldPath(i.path ?? []);
      return { field: (i.input as string[]).map((k) => prefix + (at === '' ? k : `${at}.${k}`)).join(', '), message: i.message };
    }
    const path = fieldPath(i.path ?? []);
    return { field: path === '' ? (prefix === '' ? '(options)' : prefix.slice(0, -1)) : prefix + path, message: i.message };
  });
  return new SwitchyardError('CONFIG_INVALID', `invalid ${what} options: ${list.map((i) => `${i.field}: ${i.message}`).join('; ')}`, {
    details: { field: list[0]?.field, issues: list },
  });
}

/** Validates an `outbox` option on its own (the gateway's); `field` prefixes the names in errors. */
export function parseOutboxOptions(input: unknown, field = 'outbox'): v.InferOutput<typeof outboxSchema> {
  const result = v.safeParse(outboxSchema, input);
  if (!result.success) throw invalidOptions('gateway', result.issues, `${field}.`);
  return result.output;
}

/** Validates connect() options; throws CONFIG_INVALID naming each bad field. */
export function parseConnectOptions(input: unknown): ParsedConnectOptions & { connection: ParsedConnectionString } {
  const result = v.safeParse(connectOptionsSchema, input);
  if (!result.success) throw invalidOptions('connect()', result.issues);
  const options = result.output;
  const connection = parseConnectionString(options.connectionString);
  if (connection.moduleId !== undefined) {
    throw new SwitchyardError('CONFIG_INVALID', 'connectionString names a module (ModuleId); connect() serves device identities only', { details: { field: 'connectionString' } });
  }
  if (connection.auth === 'x509' && (options.cert === undefined || options.key === undefined)) {
    throw new SwitchyardError('CONFIG_INVALID', `connectionString says x509=true but the ${options.cert === undefined ? 'cert' : 'key'} option is missing; pass the device certificate and its unencrypted private key as PEM`, {
      details: { field: options.cert === undefined ? 'cert' : 'key' },
    });
  }
  if (connection.auth !== 'x509' && (options.cert !== undefined || options.key !== undefined)) {
    throw new SwitchyardError('CONFIG_INVALID', 'cert and key are for X.509 devices; add x509=true to the connection string instead of a SharedAccessKey, or drop cert/key', {
      details: { field: options.cert !== undefined ? 'cert' : 'key' },
    });
  }
  if (connection.auth !== 'sas-key' && options.tokenRenewal !== undefined) {
    throw new SwitchyardError('CONFIG_INVALID', 'tokenRenewal needs a SharedAccessKey in the connection string: a fixed SharedAccessSignature or an X.509 device has no token to renew', {
      details: { field: 'tokenRenewal' },
    });
  }
  if (!options.waitForConnection && options.outbox === undefined) {
    throw new SwitchyardError('CONFIG_INVALID', 'waitForConnection: false needs an outbox: without one, nothing keeps what is sent before the first connection; add outbox: { dir } (or outbox: {} to keep it in memory)', {
      details: { field: 'waitForConnection' },
    });
  }
  if (!options.waitForConnection && options.fallback) {
    throw new SwitchyardError('CONFIG_INVALID', 'waitForConnection: false cannot be combined with fallback: true: the client returned at once has its protocol fixed; drop fallback, or force the protocol the device can reach', {
      details: { field: 'waitForConnection' },
    });
  }
  return { ...options, connection };
}
