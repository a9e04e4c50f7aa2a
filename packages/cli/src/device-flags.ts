// Flags shared by the commands that connect a device (send, listen): credentials, profile, CA
// and, for a hub on non-standard ports (the local hub), the endpoint.
import { readFile } from 'node:fs/promises';
import { PROTOCOLS, parseProtocol } from '@switchyard/profile';
import type { ConnectOptions } from '@switchyard/device';
import { usageError } from './cli.ts';

export const DEVICE_FLAGS = {
  profile: { type: 'string' },
  'connection-string': { type: 'string' },
  ca: { type: 'string' },
  protocol: { type: 'string' },
  host: { type: 'string' },
  'mqtt-port': { type: 'string' },
  'amqp-port': { type: 'string' },
  'https-port': { type: 'string' },
  fallback: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const DEVICE_FLAGS_HELP = `  --profile FILE            the capability profile (JSON); default: $SWITCHYARD_PROFILE
  --connection-string CS    the device connection string; default: $SWITCHYARD_CONNECTION_STRING
  --ca FILE                 PEM file of the CA that signed the hub certificate (the local hub
                            prints its path); default: the system trust store
  --protocol P              force a protocol (${PROTOCOLS.join(', ')}); still checked against the
                            profile; default: $SWITCHYARD_PROTOCOL
  --host H                  connect to H instead of the connection string's host (TLS still
                            verifies the hub name)
  --mqtt-port N, --amqp-port N, --https-port N
                            non-standard ports (the local hub's ephemeral ports); HTTPS also
                            carries MQTT and AMQP over WebSockets
  --fallback                on a network failure, try the decision's next eligible protocol
  --json                    machine-readable output, one JSON object per line`;

type Values = { [K in keyof typeof DEVICE_FLAGS]?: (typeof DEVICE_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

function port(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw usageError(flag, `${flag} must be a TCP port 1..65535, got ${JSON.stringify(value)}`);
  return n;
}

export async function connectOptionsFromFlags(flags: Values, usage: string): Promise<ConnectOptions> {
  const connectionString = flags['connection-string'] ?? process.env.SWITCHYARD_CONNECTION_STRING;
  if (!connectionString) throw usageError('--connection-string', `no device connection string: pass --connection-string CS or set SWITCHYARD_CONNECTION_STRING; usage: ${usage}`);
  const profile = flags.profile ?? process.env.SWITCHYARD_PROFILE;
  if (!profile) throw usageError('--profile', `no profile given: pass --profile FILE or set SWITCHYARD_PROFILE; usage: ${usage}`);

  const options: ConnectOptions = { connectionString, profile, fallback: flags.fallback ?? false };
  if (flags.ca !== undefined) {
    try {
      options.ca = await readFile(flags.ca, 'utf8');
    } catch (cause) {
      throw usageError('--ca', `cannot read the CA file ${flags.ca}: ${(cause as Error).message}`);
    }
  }
  if (flags.protocol !== undefined) options.forceProtocol = parseProtocol(flags.protocol, '--protocol');
  const ports = { mqtt: port('--mqtt-port', flags['mqtt-port']), amqp: port('--amqp-port', flags['amqp-port']), https: port('--https-port', flags['https-port']) };
  const definedPorts = Object.fromEntries(Object.entries(ports).filter(([, v]) => v !== undefined));
  if (flags.host !== undefined || Object.keys(definedPorts).length > 0) {
    options.endpoint = { ...(flags.host !== undefined ? { host: flags.host } : {}), ...(Object.keys(definedPorts).length > 0 ? { ports: definedPorts } : {}) };
  }
  return options;
}
