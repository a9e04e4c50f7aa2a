// @azure/event-hubs, unchanged, reads the local hub's built-in endpoint while official device
// clients (azure-iot-device-mqtt and -amqp) send telemetry: TLS verification on everywhere.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import azureDevice, { type Client } from 'azure-iot-device';
import azureMqtt from 'azure-iot-device-mqtt';
import { WebSocket } from 'ws';
import { EventHubConsumerClient, earliestEventPosition, latestEventPosition, type ReceivedEventData, type WebSocketImpl } from '@azure/event-hubs';
import { ManualClock } from '@switchyard/time';
import { startLocalHub, type LocalHub } from '../src/index.ts';
import { azureClient, waitFor, type TransportName } from './support/azure-clients.ts';
import { consumer, devicesOnDistinctPartitions, LogWatch, read, type Reading } from './support/eventhubs.ts';
import { hubRequest, serviceHeaders } from './support/https-helpers.ts';
import { within } from './support/amqp-harness.ts';

const { Message } = azureDevice;
const ATTACHED = 'event hubs reader attached';

describe('the built-in endpoint read by @azure/event-hubs', () => {
  let hub: LocalHub;
  const log = new LogWatch();
  const devices: Client[] = [];
  const consumers: EventHubConsumerClient[] = [];
  const readings: Reading[] = [];
  let ids: string[] = [];

  beforeAll(async () => {
    hub = await startLocalHub({ logger: log, eventHubs: { partitionCount: 4 } });
    ids = devicesOnDistinctPartitions(hub, 'eh', 2);
  });

  afterAll(async () => {
    // Bounded: a client that never answers its close must not hold the suite; the hub's close cuts it anyway.
    const closing = (p: Promise<unknown>): Promise<unknown> => within(p, 5000, 'client close').catch(() => undefined);
    await Promise.all(readings.map((r) => closing(r.subscription.close())));
    await Promise.all(consumers.map((c) => closing(c.close())));
    await Promise.all(devices.map((d) => closing(d.close())));
    await hub.close();
  });

  async function device(deviceId: string, transport: TransportName): Promise<Client> {
    const record = hub.getDevice(deviceId) ?? hub.createDevice(deviceId);
    if (record.authentication.type !== 'sas') throw new Error('sas devices only');
    const client = await azureClient(hub, transport, deviceId, record.authentication.primaryKey);
    devices.push(client);
    await client.open();
    return client;
  }

  function client(group?: string): EventHubConsumerClient {
    const c = consumer(hub, group);
    consumers.push(c);
    return c;
  }

  function reading(r: Reading): Reading {
    readings.push(r);
    return r;
  }

  function telemetry(body: string, messageId: string): InstanceType<typeof Message> {
    const m = new Message(body);
    m.messageId = messageId;
    m.correlationId = `corr-${messageId}`;
    m.contentType = 'application/json';
    m.contentEncoding = 'utf-8';
    m.properties.add('color', 'red');
    m.properties.add('seq', messageId);
    return m;
  }

  it('reports the event hub and an empty partition before any telemetry', async () => {
    const c = client();
    expect(await c.getPartitionIds()).toEqual(hub.eventHubs.partitionIds);
    const properties = await c.getEventHubProperties();
    expect(properties.name).toBe(hub.eventHubs.name);
    expect(properties.partitionIds).toEqual(['0', '1', '2', '3']);
    expect(properties.createdOn.getTime()).toBeLessThanOrEqual(Date.now());
    const empty = await c.getPartitionProperties('0');
    expect(empty).toMatchObject({ partitionId: '0', eventHubName: hub.eventHubs.name, isEmpty: true, lastEnqueuedSequenceNumber: -1 });
  });

  it('reads from earliest across partitions, with IoT Hub system properties and the application properties', async () => {
    const [a, b] = ids as [string, string];
    const mqtt = await device(a, 'mqtt');
    const amqp = await device(b, 'amqp');
    await mqtt.sendEvent(telemetry('{"t":1}', 'a-1'));
    await mqtt.sendEvent(telemetry('{"t":2}', 'a-2'));
    await amqp.sendEvent(telemetry('{"t":3}', 'b-1'));

    const c = client();
    const pa = hub.eventHubs.partitionOf(a);
    const pb = hub.eventHubs.partitionOf(b);
    expect(pa).not.toBe(pb);
    const fromA = reading(read(c, pa, earliestEventPosition));
    const fromB = reading(read(c, pb, earliestEventPosition));
    const eventsA = await fromA.atLeast(2);
    const eventsB = await fromB.atLeast(1);
    expect(eventsA.map((e) => e.messageId)).toEqual(['a-1', 'a-2']);
    expect(eventsB.map((e) => e.messageId)).toEqual(['b-1']);
    expect(eventsA.map((e) => e.sequenceNumber)).toEqual([0, 1]);
    expect(Number(eventsA[1]!.offset)).toBeGreaterThan(Number(eventsA[0]!.offset));

    for (const [event, deviceId, body] of [[eventsA[0]!, a, { t: 1 }], [eventsB[0]!, b, { t: 3 }]] as const) {
      const record = hub.getDevice(deviceId)!;
      expect(event.body).toEqual(body);
      expect(event.properties).toEqual({ color: 'red', seq: event.messageId });
      expect(event.correlationId).toBe(`corr-${String(event.messageId)}`);
      expect(event.contentType).toBe('application/json');
      const sp = event.systemProperties ?? {};
      expect(sp['iothub-connection-device-id']).toBe(deviceId);
      expect(JSON.parse(String(sp['iothub-connection-auth-method']))).toMatchObject({ scope: 'device', type: 'sas', issuer: 'iothub' });
      expect(sp['iothub-connection-auth-generation-id']).toBe(record.generationId);
      expect(sp['iothub-message-source']).toBe('Telemetry');
      expect(sp['contentEncoding']).toBe('utf-8');
      expect(typeof sp['iothub-enqueuedtime']).toBe('number');
      expect(sp['iothub-enqueuedtime']).toBe(event.enqueuedTimeUtc.getTime());
      expect(hub.telemetry({ deviceId }).some((r) => Date.parse(r.receivedAt) === event.enqueuedTimeUtc.getTime())).toBe(true);
    }

    const properties = await c.getPartitionProperties(pa);
    expect(properties).toEqual({
      partitionId: pa,
      eventHubName: hub.eventHubs.name,
      beginningSequenceNumber: 0,
      lastEnqueuedSequenceNumber: 1,
      lastEnqueuedOffset: eventsA[1]!.offset,
      lastEnqueuedOnUtc: eventsA[1]!.enqueuedTimeUtc,
      isEmpty: false,
    });
  });

  it('marks telemetry of an X.509 device with its certificate authentication', async () => {
    const cert = hub.issueDeviceCertificate('eh-x509');
    hub.createDevice('eh-x509', { authentication: { type: 'x509-thumbprint', primaryThumbprint: cert.thumbprint } });
    const d = azureDevice.Client.fromConnectionString(`HostName=${hub.address}:${hub.ports.mqtt};DeviceId=eh-x509;x509=true`, azureMqtt.Mqtt);
    d.on('error', () => undefined);
    await d.setOptions({ ca: hub.ca, cert: cert.cert, key: cert.key });
    await d.open();
    await d.sendEvent(telemetry('{"by":"certificate"}', 'x509-1'));
    const events = await reading(read(client(), hub.eventHubs.partitionOf('eh-x509'), earliestEventPosition)).atLeast(1);
    const mine = events.find((e) => e.messageId === 'x509-1');
    await d.close();
    expect(JSON.parse(String(mine?.systemProperties?.['iothub-connection-auth-method']))).toMatchObject({ scope: 'device', type: 'x509Certificate' });
    expect(mine?.systemProperties?.['iothub-connection-auth-generation-id']).toBe(hub.getDevice('eh-x509')!.generationId);
  });

  it('reads from latest only what arrives after the reader attached', async () => {
    const [a] = ids as [string];
    const mqtt = await device(a, 'mqtt');
    await mqtt.sendEvent(telemetry('{"before":true}', 'before-latest'));
    const p = hub.eventHubs.partitionOf(a);
    const seen = log.count(ATTACHED, { partitionId: p });
    const r = reading(read(client(), p, latestEventPosition));
    await log.next(ATTACHED, { partitionId: p }, seen);
    await mqtt.sendEvent(telemetry('{"after":true}', 'after-latest'));
    const events = await r.atLeast(1);
    expect(events.map((e) => e.messageId)).toEqual(['after-latest']);
    expect(events[0]!.body).toEqual({ after: true });
  });

  it('starts at a sequence number, after an offset, or after an enqueue time', async () => {
    const [, b] = ids as [string, string];
    const amqp = await device(b, 'amqp');
    const p = hub.eventHubs.partitionOf(b);
    for (let i = 0; i < 3; i++) {
      // Each event in a later millisecond than the one before, so a time position separates them.
      await waitFor(() => (Date.now() > (hub.eventHubs.partitionInfo(p)?.lastEnqueuedAt ?? 0) ? true : undefined), 5000, 'the clock to move on');
      await amqp.sendEvent(telemetry(`{"n":${i}}`, `pos-${i}`));
    }
    const c = client();
    const all = await reading(read(c, p, earliestEventPosition)).atLeast(4);
    const mine = all.filter((e) => String(e.messageId).startsWith('pos-'));
    expect(mine).toHaveLength(3);
    const [first, second] = mine as [ReceivedEventData, ReceivedEventData];
    const idsOf = (events: ReceivedEventData[]): unknown[] => events.map((e) => e.messageId);
    // One subscription per partition and client, as the SDK enforces.
    const bySequence = await reading(read(client(), p, { sequenceNumber: second.sequenceNumber, isInclusive: true })).atLeast(2);
    expect(idsOf(bySequence)).toEqual(idsOf(all.filter((e) => e.sequenceNumber >= second.sequenceNumber)));
    const byOffset = await reading(read(client(), p, { offset: first.offset })).atLeast(2);
    expect(idsOf(byOffset)).toEqual(idsOf(all.filter((e) => Number(e.offset) > Number(first.offset))));
    const after = all.filter((e) => e.enqueuedTimeUtc.getTime() > first.enqueuedTimeUtc.getTime());
    expect(idsOf(after)).toEqual(['pos-1', 'pos-2']);
    const byTime = await reading(read(client(), p, { enqueuedOn: first.enqueuedTimeUtc })).atLeast(2);
    expect(idsOf(byTime)).toEqual(idsOf(after));
  });

  it('tells a reader that asks where the partition ends (trackLastEnqueuedEventProperties)', async () => {
    const [a] = ids as [string];
    const p = hub.eventHubs.partitionOf(a);
    const r = reading(read(client(), p, earliestEventPosition, { trackLastEnqueuedEventProperties: true }));
    await r.atLeast(1);
    const info = hub.eventHubs.partitionInfo(p)!;
    expect(r.lastEnqueued()).toMatchObject({ sequenceNumber: info.lastSequenceNumber, offset: info.lastOffset, enqueuedOn: new Date(info.lastEnqueuedAt) });
    expect(r.lastEnqueued()?.retrievedOn).toBeInstanceOf(Date);
  });

  it('reads through a created consumer group, and refuses one that does not exist', async () => {
    const [a] = ids as [string];
    expect(hub.eventHubs.createConsumerGroup('analytics')).toBe('analytics');
    expect(hub.eventHubs.consumerGroups()).toEqual(['$Default', 'analytics']);
    const p = hub.eventHubs.partitionOf(a);
    const events = await reading(read(client('analytics'), p, earliestEventPosition)).atLeast(1);
    expect(events[0]!.systemProperties?.['iothub-connection-device-id']).toBe(a);
    const error = await reading(read(client('nosuch'), p, earliestEventPosition)).firstError();
    expect(error.code).toBe('MessagingEntityNotFoundError');
  });

  it('creates, lists and deletes consumer groups over the REST API, as the portal does', async () => {
    const [a] = ids as [string];
    const put = await hubRequest(hub, { method: 'PUT', path: '/local/eventhubs/consumergroups/dashboard', headers: serviceHeaders(hub) });
    expect(put.status).toBe(200);
    expect(put.json()).toEqual({ name: 'dashboard' });
    const list = await hubRequest(hub, { method: 'GET', path: '/local/eventhubs/consumergroups', headers: serviceHeaders(hub) });
    expect(list.json()).toEqual(hub.eventHubs.consumerGroups().map((name) => ({ name })));
    const events = await reading(read(client('dashboard'), hub.eventHubs.partitionOf(a), earliestEventPosition)).atLeast(1);
    expect(events[0]!.systemProperties?.['iothub-connection-device-id']).toBe(a);
    const bad = await hubRequest(hub, { method: 'PUT', path: '/local/eventhubs/consumergroups/-nope', headers: serviceHeaders(hub) });
    expect(bad.status).toBe(400);
    const unauthenticated = await hubRequest(hub, { method: 'PUT', path: '/local/eventhubs/consumergroups/other', headers: {} });
    expect(unauthenticated.status).toBe(401);
    expect((await hubRequest(hub, { method: 'DELETE', path: '/local/eventhubs/consumergroups/dashboard', headers: serviceHeaders(hub) })).status).toBe(204);
    expect((await hubRequest(hub, { method: 'DELETE', path: '/local/eventhubs/consumergroups/dashboard', headers: serviceHeaders(hub) })).status).toBe(404);
    expect(hub.eventHubs.consumerGroups()).not.toContain('dashboard');
  });

  it('a reader with a higher owner level takes the partition from the one holding it', async () => {
    const [a] = ids as [string];
    const p = hub.eventHubs.partitionOf(a);
    const seen = log.count(ATTACHED, { partitionId: p });
    const low = reading(read(client(), p, earliestEventPosition, { ownerLevel: 1 }));
    await low.atLeast(1);
    await log.next(ATTACHED, { partitionId: p }, seen);
    const high = reading(read(client(), p, earliestEventPosition, { ownerLevel: 2 }));
    const error = await low.firstError();
    expect(error.code).toBe('ReceiverDisconnectedError');
    expect((await high.atLeast(1))[0]!.sequenceNumber).toBe(0);
  });
});

describe('one subscription over every partition', () => {
  it('the SDK\'s load-balanced subscribe (as in the README) claims all partitions and reads each', async () => {
    const hub = await startLocalHub({});
    const c = consumer(hub);
    try {
      const ids = devicesOnDistinctPartitions(hub, 'spread', 4);
      expect(ids).toHaveLength(4);
      for (const id of ids) {
        const record = hub.createDevice(id);
        if (record.authentication.type !== 'sas') throw new Error('sas expected');
        const d = await azureClient(hub, 'mqtt', id, record.authentication.primaryKey);
        await d.open();
        await d.sendEvent(new Message(JSON.stringify({ from: id })));
        await d.close();
      }
      const seen = new Map<string, string>();
      const subscription = c.subscribe({
        processEvents: async (events, context) => {
          for (const e of events) seen.set(String(e.systemProperties?.['iothub-connection-device-id']), context.partitionId);
        },
        processError: async () => undefined,
      }, { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1 });
      await waitFor(() => (seen.size === 4 ? true : undefined), 20_000, 'an event from every partition');
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(ids.map((id) => [id, hub.eventHubs.partitionOf(id)])));
      await subscription.close();
    } finally {
      await c.close();
      await hub.close();
    }
  });
});

describe('a backlog and a bounded retention', () => {
  it('delivers a retained backlog larger than the reader\'s prefetch, in order, without what retention dropped', async () => {
    const hub = await startLocalHub({ devices: ['chatty'], eventHubs: { partitionCount: 1, retention: { maxEvents: 500 } } });
    const c = consumer(hub);
    try {
      const record = hub.getDevice('chatty')!;
      if (record.authentication.type !== 'sas') throw new Error('sas expected');
      const d = await azureClient(hub, 'amqp', 'chatty', record.authentication.primaryKey);
      await d.open();
      for (let batch = 0; batch < 7; batch++) {
        // Issued in order on one link, so they arrive in order; the SDK's Amqp has no sendEventBatch.
        await Promise.all(Array.from({ length: 100 }, (_, i) => d.sendEvent(new Message(JSON.stringify({ n: batch * 100 + i })))));
      }
      await d.close();
      const properties = await c.getPartitionProperties('0');
      expect(properties).toMatchObject({ beginningSequenceNumber: 200, lastEnqueuedSequenceNumber: 699, isEmpty: false });
      const r = read(c, '0', earliestEventPosition, { maxBatchSize: 50, prefetchCount: 100 });
      const events = await r.atLeast(500);
      expect(events).toHaveLength(500);
      expect(events.map((e) => e.sequenceNumber)).toEqual(Array.from({ length: 500 }, (_, i) => 200 + i));
      expect(events.map((e) => (e.body as { n: number }).n)).toEqual(Array.from({ length: 500 }, (_, i) => 200 + i));
      await r.subscription.close();
    } finally {
      await c.close();
      await hub.close();
    }
  });
});

describe('the built-in endpoint on the standard ports', () => {
  const canBindPrivilegedPorts = process.getuid?.() === 0;
  it.skipIf(!canBindPrivilegedPorts)('one connection string without a port reaches WebSockets on 443, no customEndpointAddress (needs root: port 443)', async () => {
    // A loopback address of its own, away from hub-standard-ports.test.ts's 127.0.0.100-249.
    const address = `127.0.0.${10 + (process.pid % 80)}`;
    const hub = await startLocalHub({ standardPorts: true, address, devices: ['std-eh'] });
    const c = new EventHubConsumerClient('$Default', hub.eventHubConnectionString, {
      webSocketOptions: { webSocket: WebSocket as unknown as WebSocketImpl, webSocketConstructorOptions: { ca: hub.ca } },
    });
    try {
      expect(hub.eventHubConnectionString).toMatch(new RegExp(`^Endpoint=sb://${address.replace(/\./g, '\\.')}/;`));
      const record = hub.getDevice('std-eh')!;
      if (record.authentication.type !== 'sas') throw new Error('sas expected');
      const d = await azureClient(hub, 'mqtt', 'std-eh', record.authentication.primaryKey);
      await d.open();
      await d.sendEvent(new Message('{"std":true}'));
      await d.close();
      expect(await c.getPartitionIds()).toEqual(hub.eventHubs.partitionIds);
      const r = read(c, hub.eventHubs.partitionOf('std-eh'), earliestEventPosition);
      expect((await r.atLeast(1))[0]!.body).toEqual({ std: true });
      await r.subscription.close();
    } finally {
      await c.close();
      await hub.close();
    }
  });
});

describe('tokens of the built-in endpoint', () => {
  it('detaches a reader whose token expired unrenewed, on the hub clock', async () => {
    const clock = new ManualClock(Date.now());
    const hub = await startLocalHub({ clock, devices: ['expiring'] });
    const c = consumer(hub);
    try {
      const record = hub.getDevice('expiring')!;
      if (record.authentication.type !== 'sas') throw new Error('sas expected');
      const d = await azureClient(hub, 'mqtt', 'expiring', record.authentication.primaryKey);
      await d.open();
      await d.sendEvent(new Message('{"n":1}'));
      await d.close();
      const r = read(c, hub.eventHubs.partitionOf('expiring'), earliestEventPosition);
      await r.atLeast(1);
      expect(r.errors).toEqual([]);
      // The SDK's tokens live an hour and it renews them on real time, which this clock outruns.
      clock.advance(3_600_000 + 60_000);
      // The SDK retries (with a token the hub's clock already finds expired) and then reports
      // every attempt's error in one AggregateError; the first is the hub's detach.
      const error = await r.firstError();
      const attempts = (error as Error & { errors?: Array<Error & { code?: string }> }).errors ?? [error];
      expect(attempts[0]).toMatchObject({ code: 'UnauthorizedError', message: 'The token authorizing this link expired.' });
      await r.subscription.close();
    } finally {
      await c.close();
      await hub.close();
    }
  });
});

describe('the built-in endpoint across restarts and over plain AMQP/TLS', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps events, their numbers and created consumer groups when the hub restarts on its state dir', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'switchyard-eh-'));
    dirs.push(stateDir);
    const first = await startLocalHub({ stateDir, devices: ['kept-device'], eventHubs: { partitionCount: 2, consumerGroups: ['kept'] } });
    const record = first.getDevice('kept-device')!;
    if (record.authentication.type !== 'sas') throw new Error('sas expected');
    const d = await azureClient(first, 'mqtt', 'kept-device', record.authentication.primaryKey);
    await d.open();
    await d.sendEvent(new Message('{"n":1}'));
    await d.sendEvent(new Message('{"n":2}'));
    await d.close();
    const partition = first.eventHubs.partitionOf('kept-device');
    const before = first.eventHubs.partitionInfo(partition);
    await first.close();

    const second = await startLocalHub({ stateDir, eventHubs: { partitionCount: 2 } });
    try {
      expect(second.eventHubs.consumerGroups()).toEqual(['$Default', 'kept']);
      expect(second.eventHubs.partitionInfo(partition)).toEqual(before);
      const c = consumer(second, 'kept');
      const r = read(c, partition, earliestEventPosition);
      const events = await r.atLeast(2);
      expect(events.map((e) => [e.sequenceNumber, e.body])).toEqual([[0, { n: 1 }], [1, { n: 2 }]]);
      await r.subscription.close();
      await c.close();
    } finally {
      await second.close();
    }
  });

  it('serves plain AMQP over TLS to a client trusting the hub CA through NODE_EXTRA_CA_CERTS', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'switchyard-eh-tls-'));
    dirs.push(stateDir);
    const hub = await startLocalHub({ stateDir, devices: ['tls-device'] });
    try {
      const record = hub.getDevice('tls-device')!;
      if (record.authentication.type !== 'sas') throw new Error('sas expected');
      const d = await azureClient(hub, 'amqp', 'tls-device', record.authentication.primaryKey);
      await d.open();
      await d.sendEvent(new Message('{"over":"tls"}'));
      await d.close();
      const fixture = fileURLToPath(new URL('./fixtures/eventhubs-reader.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          NODE_EXTRA_CA_CERTS: hub.caPath,
          EVENTHUB_CONNECTION_STRING: hub.eventHubConnectionString,
          EVENTHUB_PARTITION: hub.eventHubs.partitionOf('tls-device'),
          EVENTHUB_COUNT: '1',
        },
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
      child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(err).not.toMatch(/self[- ]signed|unable to verify/i);
      expect(code).toBe(0);
      const result = JSON.parse(out) as { partitionIds: string[]; events: Array<{ body: unknown; sequenceNumber: number; deviceId: unknown }> };
      expect(result.partitionIds).toEqual(hub.eventHubs.partitionIds);
      expect(result.events).toEqual([{ body: { over: 'tls' }, sequenceNumber: 0, deviceId: 'tls-device' }]);
    } finally {
      await hub.close();
    }
  });
});
