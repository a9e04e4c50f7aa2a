// The backend's half, from the consumer's side: the installed local hub served to Microsoft's own
// service libraries, unchanged. The Registry (azure-iothub) registers a device, the installed
// @switchyard/device sends from it, and EventHubConsumerClient reads that telemetry from the
// hub's built-in endpoint. TLS verification stays on: every client is given the hub's CA.
import { silentLogger, startLocalHub } from '@switchyard/local-hub';
import { connect } from '@switchyard/device';
import iothub from 'azure-iothub';
import { EventHubConsumerClient, earliestEventPosition } from '@azure/event-hubs';
import { WebSocket } from 'ws';

const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
const bounded = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref())]);
try {
  const registry = iothub.Registry.fromConnectionString(hub.serviceConnectionString);
  // azure-iothub takes no CA option; its REST client does (the README's "service side" section).
  registry._restApiClient.setOptions({ ca: hub.ca, http: { agent: hub.redirectAgent() } });
  const created = await registry.create({ deviceId: 'backend-1' });
  const key = created.responseBody.authentication.symmetricKey.primaryKey;

  const { client } = await connect({
    connectionString: `HostName=${hub.hostName};DeviceId=backend-1;SharedAccessKey=${key}`,
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    profile: { features: ['telemetry'] },
    forceProtocol: 'mqtt',
  });
  await client.sendEvent({ body: { temperature: 21 }, properties: { kind: 'reading' }, messageId: 'b-1' });
  await client.close();

  const consumer = new EventHubConsumerClient('$Default', hub.eventHubConnectionString, {
    webSocketOptions: { webSocket: WebSocket, webSocketConstructorOptions: { ca: hub.ca } },
    customEndpointAddress: hub.eventHubs.webSocketEndpoint,
  });
  const event = await bounded(
    new Promise((resolve, reject) => {
      const subscription = consumer.subscribe(
        {
          processEvents: async (events) => {
            const mine = events.find((e) => e.systemProperties?.['iothub-connection-device-id'] === 'backend-1');
            if (mine) void subscription.close().then(() => resolve(mine));
          },
          processError: async (err) => reject(err),
        },
        { startPosition: earliestEventPosition },
      );
    }),
    60_000,
    'the device\'s event through the built-in endpoint',
  );
  await consumer.close();
  console.log(JSON.stringify({ registered: created.responseBody.deviceId, body: event.body, kind: event.properties?.kind, messageId: event.messageId }));
} finally {
  await hub.close();
}
