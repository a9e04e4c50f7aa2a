import { it, expect } from 'vitest';
import { WebSocket } from 'ws';
import { EventHubConsumerClient, earliestEventPosition } from '@azure/event-hubs';
import { startLocalHub } from '../src/index.ts';
import { azureClient } from './support/azure-clients.ts';
import azureDevice from 'azure-iot-device';

it('smoke', async () => {
  const hub = await startLocalHub({ devices: ['d1'], logger: { info: (m, f) => console.log('I', m, JSON.stringify(f)), warn: (m, f) => console.log('W', m, JSON.stringify(f)) } });
  const dev = hub.getDevice('d1')!;
  const key = (dev.authentication as { primaryKey: string }).primaryKey;
  const client = await azureClient(hub, 'mqtt', 'd1', key);
  await client.open();
  const m = new azureDevice.Message('{"a":1}');
  m.properties.add('color', 'red');
  m.messageId = 'm1';
  await client.sendEvent(m);
  console.log(hub.eventHubConnectionString.replace(/SharedAccessKey=[^;]+/, 'K'));
  const consumer = new EventHubConsumerClient('$Default', hub.eventHubConnectionString, {
    webSocketOptions: { webSocket: WebSocket as never, webSocketConstructorOptions: { ca: hub.ca } },
    customEndpointAddress: hub.eventHubs.webSocketEndpoint,
  });
  const ids = await consumer.getPartitionIds();
  console.log(ids, await consumer.getEventHubProperties());
  const p = hub.eventHubs.partitionOf('d1');
  console.log(await consumer.getPartitionProperties(p));
  const got = await new Promise<unknown[]>((resolve, reject) => {
    const sub = consumer.subscribe(p, {
      processEvents: async (events) => { if (events.length) { resolve(events); await sub.close(); } },
      processError: async (e) => { console.log('err', e); reject(e); },
    }, { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 5 });
  });
  console.log(JSON.stringify(got, null, 1));
  await consumer.close();
  await client.close();
  await hub.close();
  expect(got.length).toBe(1);
}, 15000);
