// Builds Microsoft's clients for module identities against a local hub, TLS verification on (the
// hub's CA as `ca`): azure-iot-device's ModuleClient on the four transports that serve modules,
// and azure-iothub's Registry and Client for the service side. The SDKs are used unchanged; only
// where their sockets go is redirected, as for devices (azure-clients.ts).
import azureDevice, { type ModuleClient } from 'azure-iot-device';
import azureMqtt from 'azure-iot-device-mqtt';
import azureAmqp from 'azure-iot-device-amqp';
import azureHttp from 'azure-iot-device-http';
import azureCommon from 'azure-iot-common';
import azureIothub, { type Client as ServiceClient, type Registry } from 'azure-iothub';
import type { HubEvents, LocalHub } from '../../src/index.ts';
import { RedirectAgent } from './azure-clients.ts';

const { Mqtt, MqttWs } = azureMqtt;
const { Amqp, AmqpWs } = azureAmqp;
const { Http } = azureHttp;

export type ModuleTransport = 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws';
export const MODULE_TRANSPORTS: ModuleTransport[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws'];

const ctor = { mqtt: Mqtt, 'mqtt-ws': MqttWs, amqp: Amqp, 'amqp-ws': AmqpWs, https: Http } as const;

/**
 * A ModuleClient from the hub's own module connection string. MQTT and AMQP reach the ephemeral
 * ports through GatewayHostName; the WebSocket transports (and Http) dial 443, so they get an
 * agent that redirects the TCP connection while TLS still checks the hub's name against its CA.
 */
export async function moduleClient(hub: LocalHub, transport: ModuleTransport | 'https', deviceId: string, moduleId: string, opts: { noRetry?: boolean } = {}): Promise<ModuleClient> {
  const client = azureDevice.ModuleClient.fromConnectionString(hub.moduleConnectionString(deviceId, moduleId, { protocol: transport }), ctor[transport]);
  const agent = new RedirectAgent({ host: hub.address, port: hub.ports.https });
  const options: Record<string, unknown> = { ca: hub.ca };
  if (transport === 'mqtt-ws') options.mqtt = { webSocketAgent: agent };
  if (transport === 'amqp-ws') options.amqp = { webSocketAgent: agent };
  // Http calls back from setOptions only when a receive policy is present.
  if (transport === 'https') options.http = { agent, receivePolicy: { interval: 1 } };
  await client.setOptions(options as Parameters<ModuleClient['setOptions']>[0]);
  if (opts.noRetry) client.setRetryPolicy(new azureCommon.NoRetry());
  // An 'error' without a listener would crash the test process.
  client.on('error', () => undefined);
  return client;
}

/** What both azure-iothub clients keep their REST client in; the SDK offers no public setter. */
interface WithRestClient {
  _restApiClient: { setOptions(options: { ca: string; http: { agent: RedirectAgent } }): void };
}

function redirectRest(hub: LocalHub, client: WithRestClient): void {
  client._restApiClient.setOptions({ ca: hub.ca, http: { agent: new RedirectAgent({ host: hub.address, port: hub.ports.https }) } });
}

/** azure-iothub's Registry from the hub's service connection string, its REST calls sent to the hub's HTTPS port. */
export function serviceRegistry(hub: LocalHub): Registry {
  const registry = azureIothub.Registry.fromConnectionString(hub.serviceConnectionString);
  redirectRest(hub, registry as unknown as WithRestClient);
  return registry;
}

/** azure-iothub's Client, for invokeDeviceMethod over REST (its AMQP side is not opened). */
export function serviceClient(hub: LocalHub): ServiceClient {
  const client = azureIothub.Client.fromConnectionString(hub.serviceConnectionString);
  redirectRest(hub, client as unknown as WithRestClient);
  return client;
}

/** Rejects after `ms`, so no await in a test can hang; a bound, not a wait. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next hub event that `match` accepts; listen before causing it. */
export function nextEvent<K extends keyof HubEvents & string>(hub: LocalHub, event: K, match: (...args: HubEvents[K]) => boolean = () => true): Promise<HubEvents[K]> {
  return new Promise((resolve) => {
    const listener = (...args: HubEvents[K]): void => {
      if (!match(...args)) return;
      hub.off(event, listener);
      resolve(args);
    };
    hub.on(event, listener);
  });
}
