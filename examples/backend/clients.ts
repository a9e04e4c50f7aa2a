// How the backend's SDK clients reach a hub. Against IoT Hub (or a local hub on its standard
// ports) they need nothing but the connection strings: the service string for azure-iothub's
// Registry and Client, the built-in endpoint's Event Hubs-compatible string for
// EventHubConsumerClient, a CA of your own trusted through NODE_EXTRA_CA_CERTS.
//
// The embedded local hub listens on ephemeral loopback ports with a CA made at start, which the
// unmodified SDKs cannot be told through a connection string:
// - azure-iothub takes no CA, port or agent. Its REST client does take `ca` and an agent through
//   its `setOptions`, and its AMQP base reads `sslOptions` (the CA) and `policyOverride` (rhea's
//   host and port) from the config its transport builds, so a subclass of the transport adds them.
//   Those are fields the SDK does not document (`_restApiClient`, `_amqp`); the SDK is unchanged.
// - @azure/event-hubs has no CA option over plain AMQP; over WebSockets it hands its
//   `webSocketConstructorOptions` to `ws`, which takes `ca`.
// TLS verification stays on everywhere: every client checks the hub's certificate against its CA.
import type { Agent } from 'node:https';
import { EventHubConsumerClient, type WebSocketImpl } from '@azure/event-hubs';
import iothub from 'azure-iothub';
import type { Client as ServiceClient, Registry } from 'azure-iothub';
import { WebSocket } from 'ws';
import type { LocalHub } from '@switchyard/local-hub';

export type ServiceTransport = 'amqp' | 'amqp-ws';

export interface HubClients {
  /** The hub's host name, as the service connection string names it (device strings use it). */
  hostName: string;
  registry(): Registry;
  serviceClient(transport: ServiceTransport): ServiceClient;
  eventHubConsumer(consumerGroup: string): EventHubConsumerClient;
  /** What `@switchyard/device`'s connect() needs besides the connection string. */
  device: { ca?: string; endpoint?: { host: string; ports: LocalHub['ports'] } };
}

export function hostNameOf(connectionString: string): string {
  const hostName = /(?:^|;)HostName=([^;]+)/i.exec(connectionString)?.[1];
  if (hostName === undefined) throw new Error('the service connection string has no HostName=');
  return hostName;
}

/** Plain SDK clients from connection strings, as a backend runs against IoT Hub. */
export function clientsFromConnectionStrings(serviceConnectionString: string, eventHubConnectionString: string): HubClients {
  return {
    hostName: hostNameOf(serviceConnectionString),
    registry: () => iothub.Registry.fromConnectionString(serviceConnectionString),
    serviceClient: (transport) => iothub.Client.fromConnectionString(serviceConnectionString, transport === 'amqp' ? iothub.Amqp : iothub.AmqpWs),
    eventHubConsumer: (group) => new EventHubConsumerClient(group, eventHubConnectionString),
    device: {},
  };
}

interface AmqpBaseConfig {
  uri: string;
  sslOptions?: Record<string, unknown>;
  policyOverride?: Record<string, unknown>;
  [key: string]: unknown;
}

interface AmqpBase {
  connect(config: AmqpBaseConfig, done: (err?: Error, result?: unknown) => void): void;
}

interface RestClient {
  setOptions(options: unknown): void;
}

type TransportCtor = typeof iothub.Amqp;

function routedTransport(hub: LocalHub, transport: ServiceTransport, agent: Agent): TransportCtor {
  const Sdk = transport === 'amqp' ? iothub.Amqp : iothub.AmqpWs;
  return class Routed extends Sdk {
    constructor(config: ConstructorParameters<TransportCtor>[0]) {
      super(config);
      const base = (this as unknown as { _amqp: AmqpBase })._amqp;
      const connect = base.connect.bind(base);
      base.connect = (amqpConfig, done) => {
        // The WebSocket dials wss://<hub name>:443, which the agent sends to the hub's HTTPS port;
        // the TLS port is dialled directly, with the certificate still checked against the hub name.
        const sslOptions = { ...amqpConfig.sslOptions, ca: hub.ca, ...(transport === 'amqp-ws' ? { agent } : {}) };
        const policyOverride = transport === 'amqp'
          ? { ...amqpConfig.policyOverride, host: hub.address, port: hub.ports.amqp, servername: hub.hostName }
          : amqpConfig.policyOverride;
        connect({ ...amqpConfig, sslOptions, ...(policyOverride === undefined ? {} : { policyOverride }) }, done);
      };
    }
  };
}

/** The same SDK clients, pointed at an in-process local hub's ports and CA. */
export function clientsForLocalHub(hub: LocalHub): HubClients {
  const agent = hub.redirectAgent();
  const restOptions = { ca: hub.ca, http: { agent } };
  return {
    hostName: hostNameOf(hub.serviceConnectionString),
    registry: () => {
      const registry = iothub.Registry.fromConnectionString(hub.serviceConnectionString);
      (registry as unknown as { _restApiClient: RestClient })._restApiClient.setOptions(restOptions);
      return registry;
    },
    serviceClient: (transport) => {
      const client = iothub.Client.fromConnectionString(hub.serviceConnectionString, routedTransport(hub, transport, agent));
      // invokeDeviceMethod goes over REST; the Client constructor has just set its REST options.
      (client as unknown as { _restApiClient: RestClient })._restApiClient.setOptions(restOptions);
      return client;
    },
    eventHubConsumer: (group) => new EventHubConsumerClient(group, hub.eventHubConnectionString, {
      webSocketOptions: { webSocket: WebSocket as unknown as WebSocketImpl, webSocketConstructorOptions: { ca: hub.ca } },
      customEndpointAddress: hub.eventHubs.webSocketEndpoint,
    }),
    device: { ca: hub.ca, endpoint: { host: hub.address, ports: hub.ports } },
  };
}
