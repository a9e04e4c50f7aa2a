// Eager validation of connect() options: every mistake is reported before any socket opens,
// naming the field and the fix. Connection strings are parsed here, never echoed back.
import { z } from 'zod';
import { SwitchyardError, redactSecrets } from '@switchyard/errors';
import { PROTOCOLS, type Protocol } from '@switchyard/profile';
import type { Clock } from './poll-scheduler.ts';

const port = z.number().int().min(1, { error: 'must be a TCP port 1..65535' }).max(65535, { error: 'must be a TCP port 1..65535' });

const clockSchema = z.custom<Clock>(
  (v) => typeof v === 'object' && v !== null && typeof (v as Clock).now === 'function' && typeof (v as Clock).setTimeout === 'function' && typeof (v as Clock).clearTimeout === 'function',
  { error: 'must be an object with now(), setTimeout(fn, ms) and clearTimeout(handle)' },
);

const signalSchema = z.custom<AbortSignal>((v) => v instanceof AbortSignal, { error: 'must be an AbortSignal' });

export const connectOptionsSchema = z.strictObject({
  connectionString: z.string({ error: 'is required: the device connection string "HostName=...;DeviceId=...;SharedAccessKey=..." (or ...;x509=true with cert and key)' }).min(1, { error: 'must not be empty' }),
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  passphrase: z.string().optional(),
  profile: z.union([z.string().min(1), z.record(z.string(), z.unknown())], { error: 'must be a capability profile object or the path of a JSON profile file' }).optional(),
  ca: z.string().min(1, { error: 'must be the PEM text (or path) of the CA that signed the hub certificate' }).optional(),
  endpoint: z
    .strictObject({
      host: z.string().min(1).optional(),
      ports: z.strictObject({ mqtt: port.optional(), amqp: port.optional(), https: port.optional() }).optional(),
    })
    .optional(),
  fallback: z.boolean().default(false),
  pollStateDir: z.string().min(1).optional(),
  clock: clockSchema.optional(),
  signal: signalSchema.optional(),
  forceProtocol: z.enum(PROTOCOLS, { error: `must be one of ${PROTOCOLS.join(', ')}` }).optional(),
  /** SAS lifetime and renewal margin, in seconds; the SDK default is 3600/900. */
  tokenRenewal: z
    .strictObject({
      tokenValidTimeInSeconds: z.number().int().min(1),
      tokenRenewalMarginInSeconds: z.number().int().min(0),
    })
    .refine((t) => t.tokenRenewalMarginInSeconds < t.tokenValidTimeInSeconds, { error: 'tokenRenewalMarginInSeconds must be smaller than tokenValidTimeInSeconds' })
    .optional(),
  keepAliveSeconds: z.number().int().min(1).optional(),
  /** Per-operation deadline in ms where the SDK has none (twin, SUBACK, AMQP settlement). */
  operationTimeoutMs: z.number().int().min(1).default(30_000),
  /** Deadline for connecting one protocol, in ms. */
  connectTimeoutMs: z.number().int().min(1).default(20_000),
  /** Reconnect attempts the SDK makes after a drop before reporting 'disconnected' with willRetry false. */
  reconnectAttempts: z.number().int().min(0).default(10),
  /** HTTPS polling knobs; the 25-minute production floor cannot be lowered here. */
  poll: z
    .strictObject({
      jitterRatio: z.number().min(0).max(1).optional(),
      drainMax: z.number().int().min(0).max(50).optional(),
      backoffBaseMs: z.number().int().min(1).optional(),
      backoffMaxMs: z.number().int().min(1).optional(),
    })
    .optional(),
  onFallback: z.custom<(event: { from: Protocol; to: Protocol; reason: string }) => void>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
  productInfo: z.string().optional(),
});

export type ConnectOptionsInput = z.input<typeof connectOptionsSchema>;
export type ParsedConnectOptions = z.output<typeof connectOptionsSchema>;

export interface ParsedConnectionString {
  hostName: string;
  deviceId: string;
  moduleId?: string;
  gatewayHostName?: string;
  auth: 'sas-key' | 'sas-token' | 'x509';
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
}

/** Splits "K=V;K=V" without the SDK, so a malformed string never reaches an SDK error message. */
export function parseConnectionString(text: string): ParsedConnectionString {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new SwitchyardError('CONFIG_INVALID', `connectionString has a segment without "=" (${redactSecrets(part).slice(0, 40)}); use "HostName=...;DeviceId=...;SharedAccessKey=..."`, {
        details: { field: 'connectionString' },
      });
    }
    fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
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

/** Validates connect() options; throws CONFIG_INVALID naming each bad field. */
export function parseConnectOptions(input: unknown): ParsedConnectOptions & { connection: ParsedConnectionString } {
  const result = connectOptionsSchema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.map((i) => {
      const path = fieldPath(i.path);
      if (i.code === 'unrecognized_keys') return { field: i.keys.join(', '), message: 'unknown option' };
      return { field: path === '' ? '(options)' : path, message: i.message };
    });
    throw new SwitchyardError('CONFIG_INVALID', `invalid connect() options: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`, {
      details: { field: issues[0]?.field, issues },
    });
  }
  const options = result.data;
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
  return { ...options, connection };
}
