// The gateway's options, checked without the network so a typo fails createGateway, and its
// identities' connection strings, parsed once.
import { join } from 'node:path';
import { parseOutboxOptions, type OutboxOptions } from '@switchyard/device/internal';
import { SwitchyardError } from '@switchyard/errors';
import { backoffDelay } from '@switchyard/time';
import azureCommon from 'azure-iot-common';
import { DEFAULT_MAX_IDENTITIES_PER_CONNECTION } from './amqp/pool.ts';
import type { GatewayEngine, GatewayIdentityInput, GatewayOptions, ReconnectPolicy } from './types.ts';

const { ConnectionString } = azureCommon;

export interface ParsedIdentity {
  deviceId: string;
  connectionString: string;
  hubHostName: string;
  dialHost: string;
  dialPort: number | undefined;
}

export function invalid(field: string, message: string): SwitchyardError {
  return new SwitchyardError('CONFIG_INVALID', `${field} ${message}`, { details: { field } });
}

function positiveInteger(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw invalid(field, `must be an integer >= 1, got ${String(value)}`);
  return value;
}

/** Splits "host:port"; the port stays undefined when absent. */
function splitHostPort(value: string): { host: string; port: number | undefined } {
  const match = /^(.*):(\d+)$/.exec(value);
  if (!match || match[1] === undefined || match[2] === undefined) return { host: value, port: undefined };
  return { host: match[1], port: Number(match[2]) };
}

/** `index` places the identity in `options.identities` for error messages; absent for `add()`. */
export function parseIdentity(input: GatewayIdentityInput, index?: number): ParsedIdentity {
  const where = index === undefined ? 'identity' : `identities[${index}]`;
  if (typeof input?.deviceId !== 'string' || input.deviceId === '') throw invalid(`${where}.deviceId`, 'must be a non-empty string');
  if (typeof input.connectionString !== 'string' || input.connectionString === '') throw invalid(`${where}.connectionString`, 'must be a device connection string');
  let parsed: ReturnType<typeof ConnectionString.parse>;
  try {
    parsed = ConnectionString.parse(input.connectionString, ['HostName', 'DeviceId']);
  } catch (err) {
    throw invalid(`${where}.connectionString`, `is not a device connection string (needs HostName and DeviceId): ${(err as Error).name}`);
  }
  if (parsed.DeviceId !== input.deviceId) {
    throw invalid(`${where}.deviceId`, `is "${input.deviceId}" but the connection string names DeviceId "${parsed.DeviceId}"; make them agree`);
  }
  if (parsed.ModuleId) throw invalid(`${where}.connectionString`, 'names a module (ModuleId); the gateway connects device identities only');
  if (!parsed.SharedAccessKey && !parsed.SharedAccessSignature) {
    throw invalid(`${where}.connectionString`, 'has no SharedAccessKey or SharedAccessSignature: X.509 identities authenticate with their own TLS connection and cannot be multiplexed');
  }
  const hub = splitHostPort(parsed.HostName!);
  const dial = splitHostPort(parsed.GatewayHostName ?? parsed.HostName!);
  return { deviceId: input.deviceId, connectionString: input.connectionString, hubHostName: hub.host, dialHost: dial.host, dialPort: dial.port };
}

export interface GatewaySettings {
  engine: GatewayEngine;
  maxPerConnection: number;
  connectConcurrency: number;
  openTimeoutMs: number;
  closeTimeoutMs: number;
  keepAliveSeconds: number;
  reconnect: ReconnectPolicy;
  outbox: OutboxOptions | undefined;
}

/** Identity `deviceId`'s outbox: the gateway's options, in a directory of its own. */
export function identityOutbox(outbox: OutboxOptions | undefined, deviceId: string): OutboxOptions | undefined {
  if (outbox === undefined) return undefined;
  return outbox.dir === undefined ? { ...outbox } : { ...outbox, dir: join(outbox.dir, encodeURIComponent(deviceId)) };
}

/**
 * Delay before re-open attempt `attempt` (0-based): doubling from `initialDelayMs`, capped at
 * `maxDelayMs`, then drawn from [50 %, 100 %] of that by `random`, so identities that lost the
 * same connection do not all come back in the same instant. The one backoff schedule.
 */
export function reopenDelayMs(attempt: number, policy: ReconnectPolicy, random: number): number {
  const r = Math.min(Math.max(random, 0), 1);
  return backoffDelay({ baseMs: policy.initialDelayMs, maxMs: policy.maxDelayMs, maxRetries: Infinity, jitter: 0.5 }, attempt, () => r)!;
}

/** Everything that can be checked without the network, so a typo fails createGateway. */
export function validateOptions(options: GatewayOptions): GatewaySettings {
  const maxPerConnection = positiveInteger(options.maxIdentitiesPerConnection, 'maxIdentitiesPerConnection', DEFAULT_MAX_IDENTITIES_PER_CONNECTION);
  if (maxPerConnection > 999) throw invalid('maxIdentitiesPerConnection', `must be <= 999 (IoT Hub accepts 999 tokens per connection), got ${maxPerConnection}`);
  if (options.engine !== undefined && options.engine !== 'azure-client' && options.engine !== 'lean') {
    throw invalid('engine', `must be "azure-client" or "lean", got ${JSON.stringify(options.engine)}`);
  }
  const settings: GatewaySettings = {
    engine: options.engine ?? 'lean',
    maxPerConnection,
    connectConcurrency: positiveInteger(options.connectConcurrency, 'connectConcurrency', 50),
    openTimeoutMs: positiveInteger(options.openTimeoutMs, 'openTimeoutMs', 30_000),
    closeTimeoutMs: positiveInteger(options.closeTimeoutMs, 'closeTimeoutMs', 5_000),
    keepAliveSeconds: positiveInteger(options.keepAliveSeconds, 'keepAliveSeconds', 30),
    reconnect: {
      initialDelayMs: positiveInteger(options.reconnect?.initialDelayMs, 'reconnect.initialDelayMs', 1_000),
      maxDelayMs: positiveInteger(options.reconnect?.maxDelayMs, 'reconnect.maxDelayMs', 60_000),
    },
    outbox: options.outbox === undefined ? undefined : parseOutboxOptions(options.outbox),
  };
  if (settings.reconnect.maxDelayMs < settings.reconnect.initialDelayMs) {
    throw invalid('reconnect.maxDelayMs', `must be >= reconnect.initialDelayMs (${settings.reconnect.initialDelayMs})`);
  }
  const renewal = options.tokenRenewal;
  if (renewal !== undefined) {
    positiveInteger(renewal.tokenValidTimeInSeconds, 'tokenRenewal.tokenValidTimeInSeconds', 1);
    positiveInteger(renewal.tokenRenewalMarginInSeconds, 'tokenRenewal.tokenRenewalMarginInSeconds', 1);
    if (renewal.tokenRenewalMarginInSeconds >= renewal.tokenValidTimeInSeconds) {
      throw invalid('tokenRenewal.tokenRenewalMarginInSeconds', 'must be smaller than tokenValidTimeInSeconds, or tokens would be renewed before they are used');
    }
  }
  if (options.endpoint !== undefined) {
    if (typeof options.endpoint.host !== 'string' || options.endpoint.host === '') throw invalid('endpoint.host', 'must be a host name or IP address');
    const ports: Array<[string, number | undefined]> = [['endpoint.port', options.endpoint.port], ...Object.entries(options.endpoint.ports ?? {}).map(([k, v]): [string, number | undefined] => [`endpoint.ports.${k}`, v])];
    for (const [field, port] of ports) {
      if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw invalid(field, `must be a TCP port 1..65535, got ${String(port)}`);
    }
  }
  const seen = new Set<string>();
  (options.identities ?? []).forEach((identity, index) => {
    parseIdentity(identity, index);
    if (seen.has(identity.deviceId)) throw invalid(`identities[${index}].deviceId`, `"${identity.deviceId}" is listed twice; list each identity once`);
    seen.add(identity.deviceId);
  });
  return settings;
}

