// Builds Microsoft's azure-iothub service Client, unmodified, against a local hub with TLS
// verification on. azure-iothub has no option for a CA or a port: its Amqp/AmqpWs transports hand
// the AMQP base only `{ uri, userAgentString }`, and its REST client's options are replaced in the
// Client constructor. The base does read `sslOptions` (cert, key, ca; for WebSockets passed to ws
// as is) and `policyOverride` (merged over rhea's connection parameters), so this wraps the base's
// `connect` to add the hub's CA there and to dial the hub's ephemeral ports: the TLS port through
// policyOverride (host, port; servername keeps the hub's name checked), the WebSocket's port-443
// URL through an https.Agent. The REST client (invokeDeviceMethod) gets the CA and the same agent
// through its setOptions. These reach fields the SDK does not document (`_amqp`,
// `_restApiClient`); the packages themselves are untouched.
import type { Agent } from 'node:https';
import iothub from 'azure-iothub';
import type { Client as ServiceClient } from 'azure-iothub';
import type { LocalHub } from '../../src/index.ts';

export type ServiceTransportName = 'amqp' | 'amqp-ws';
export const SERVICE_TRANSPORTS: ServiceTransportName[] = ['amqp', 'amqp-ws'];

interface AmqpBaseConfig {
  uri: string;
  sslOptions?: Record<string, unknown>;
  policyOverride?: Record<string, unknown>;
  [key: string]: unknown;
}

interface AmqpBaseLike {
  connect(config: AmqpBaseConfig, done: (err?: Error, result?: unknown) => void): void;
}

function routeBase(base: AmqpBaseLike, hub: LocalHub, transport: ServiceTransportName, agent: Agent): void {
  const connect = base.connect.bind(base);
  base.connect = (config, done) => {
    const sslOptions = { ...config.sslOptions, ca: hub.ca, ...(transport === 'amqp-ws' ? { agent } : {}) };
    const policyOverride = transport === 'amqp'
      ? { ...config.policyOverride, host: hub.address, port: hub.ports.amqp, servername: hub.hostName }
      : config.policyOverride;
    connect({ ...config, sslOptions, ...(policyOverride === undefined ? {} : { policyOverride }) }, done);
  };
}

type TransportCtor = new (config: ConstructorParameters<typeof iothub.Amqp>[0]) => InstanceType<typeof iothub.Amqp>;

/** The unmodified SDK Client; `connectionString` defaults to the hub's iothubowner string. */
export function serviceClient(hub: LocalHub, transport: ServiceTransportName, connectionString = hub.serviceConnectionString): ServiceClient {
  return serviceClientFrom(hub, transport, (Transport) => iothub.Client.fromConnectionString(connectionString, Transport));
}

/** The same, built by one of the SDK's other factories (fromSharedAccessSignature, fromTokenCredential). */
export function serviceClientFrom(hub: LocalHub, transport: ServiceTransportName, create: (Transport: TransportCtor) => ServiceClient): ServiceClient {
  const agent = hub.redirectAgent();
  const Sdk = transport === 'amqp' ? iothub.Amqp : iothub.AmqpWs;
  class Routed extends Sdk {
    constructor(config: ConstructorParameters<typeof iothub.Amqp>[0]) {
      super(config);
      routeBase((this as unknown as { _amqp: AmqpBaseLike })._amqp, hub, transport, agent);
    }
  }
  const client = create(Routed);
  const rest = (client as unknown as { _restApiClient?: { setOptions(options: unknown): void } })._restApiClient;
  rest?.setOptions({ ca: hub.ca, http: { agent } });
  // An 'error' without a listener would crash the test process.
  client.on('error', () => undefined);
  return client;
}

export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
