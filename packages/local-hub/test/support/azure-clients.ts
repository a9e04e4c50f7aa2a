// Builds the official Azure device Client for any of the five transports against a local hub,
// with TLS verification on: the hub's CA is passed as `ca`. MQTT and AMQP reach ephemeral ports
// through GatewayHostName; the WebSocket transports and HTTPS hard-code port 443, so they get an
// https.Agent that redirects the TCP connection while TLS still verifies the hub's name.
import https from 'node:https';
import type { Duplex } from 'node:stream';
// Default imports: these are CommonJS packages, and plain Node (unlike vitest) cannot always
// name their exports from ESM.
import azureDevice, { type Client } from 'azure-iot-device';
import azureMqtt from 'azure-iot-device-mqtt';
import azureAmqp from 'azure-iot-device-amqp';
import azureHttp from 'azure-iot-device-http';

const { Mqtt, MqttWs } = azureMqtt;
const { Amqp, AmqpWs } = azureAmqp;
const { Http } = azureHttp;

export type TransportName = 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws' | 'https';
export const TRANSPORTS: TransportName[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];

export interface HubAddress {
  hostName: string;
  address: string;
  ca: string;
  ports: { mqtt: number; amqp: number; https: number };
}

export class RedirectAgent extends https.Agent {
  constructor(private readonly target: { host: string; port: number }) {
    super({ keepAlive: true });
  }
  // Node's typings omit createConnection on Agent; it is the documented hook for custom sockets.
  createConnection(options: Record<string, unknown>, callback?: unknown): Duplex {
    const base = https.Agent.prototype as unknown as { createConnection(o: Record<string, unknown>, cb?: unknown): Duplex };
    return base.createConnection.call(this, { ...options, host: this.target.host, port: this.target.port }, callback);
  }
}

export function connectionString(hub: HubAddress, transport: TransportName, deviceId: string, key: string): string {
  const base = `HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${key}`;
  if (transport === 'mqtt') return `${base};GatewayHostName=${hub.address}:${hub.ports.mqtt}`;
  if (transport === 'amqp') return `${base};GatewayHostName=${hub.address}:${hub.ports.amqp}`;
  return base;
}

const ctor = { mqtt: Mqtt, 'mqtt-ws': MqttWs, amqp: Amqp, 'amqp-ws': AmqpWs, https: Http } as const;

export interface ClientOptions {
  /** HTTPS receive interval in seconds (tests only; production devices poll every 25 min or more). */
  httpPollSeconds?: number;
  tokenRenewal?: { tokenValidTimeInSeconds: number; tokenRenewalMarginInSeconds: number };
}

export async function azureClient(hub: HubAddress, transport: TransportName, deviceId: string, key: string, opts: ClientOptions = {}): Promise<Client> {
  const client = azureDevice.Client.fromConnectionString(connectionString(hub, transport, deviceId, key), ctor[transport]);
  const agent = new RedirectAgent({ host: hub.address, port: hub.ports.https });
  const options: Record<string, unknown> = { ca: hub.ca };
  if (opts.tokenRenewal) options.tokenRenewal = opts.tokenRenewal;
  if (transport === 'mqtt-ws') options.mqtt = { webSocketAgent: agent };
  if (transport === 'amqp-ws') options.amqp = { webSocketAgent: agent };
  // setOptions replaces rather than merges, and Http only calls back when a receive policy is present.
  if (transport === 'https') options.http = { agent, receivePolicy: { interval: opts.httpPollSeconds ?? 0.2, drain: true } };
  await client.setOptions(options as Parameters<Client['setOptions']>[0]);
  // An 'error' without a listener would crash the test process.
  client.on('error', () => undefined);
  return client;
}

/** Polls `probe` until it returns a value other than undefined, or fails after `ms`. */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, ms = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
