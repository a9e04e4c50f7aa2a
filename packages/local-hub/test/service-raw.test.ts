// The service side below the SDK: a raw rhea client, on a hub whose clock the test drives, sees a
// service credential end at its expiry (the device identity on the same connection living on),
// and the REST API admits each policy only to what its rights cover.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import rhea from 'rhea';
import type { Connection, EventContext, Message, Receiver, Sender } from 'rhea';
import { ManualClock } from '@switchyard/time';
import { createMemoryLogger, createSasToken, startLocalHub, type LocalHub, type PolicyName } from '../src/index.ts';
import { API, hubRequest } from './support/https-helpers.ts';
import { within } from './support/service-client.ts';

const HUB = 'raw-service.azure-devices.net';
let hub: LocalHub;
const clock = new ManualClock(Date.now());
const connections: Connection[] = [];

beforeAll(async () => {
  // One record per feedback message, so a test can make many without waiting on the window.
  hub = await startLocalHub({ inMemory: true, hostName: HUB, logger: createMemoryLogger(), clock, service: { feedback: { maxRecordsPerMessage: 1 } } });
});

afterAll(async () => {
  for (const c of connections) c.close();
  await hub.close();
});

function keyOf(policy: PolicyName): string {
  return /SharedAccessKey=([^;]+)/.exec(hub.policyConnectionString(policy))![1]!;
}

function policyToken(policy: PolicyName, ttlSeconds: number): string {
  return createSasToken(HUB, keyOf(policy), Math.floor(clock.now() / 1000) + ttlSeconds, policy);
}

async function connect(): Promise<Connection> {
  const container = rhea.create_container({ id: `raw-svc-${Math.random().toString(16).slice(2)}` });
  container.on('error', () => undefined);
  const connection = container.connect({ host: '127.0.0.1', port: hub.ports.amqp, servername: HUB, transport: 'tls', ca: hub.ca, reconnect: false } as Parameters<typeof container.connect>[0]);
  connection.on('connection_error', () => undefined);
  connections.push(connection);
  await within(new Promise<void>((resolve) => connection.once('connection_open', () => resolve())), 5000, 'open');
  return connection;
}

async function putToken(connection: Connection, audience: string, token: string): Promise<unknown> {
  const sender = connection.open_sender({ target: { address: '$cbs' } });
  const receiver = connection.open_receiver({ source: { address: '$cbs' } });
  await within(new Promise<void>((resolve) => receiver.once('receiver_open', () => resolve())), 5000, 'cbs attach');
  const messageId = rhea.generate_uuid();
  const reply = new Promise<unknown>((resolve) => receiver.on('message', (ctx: EventContext) => {
    if (String(ctx.message?.correlation_id) === messageId) resolve((ctx.message?.application_properties as Record<string, unknown>)['status-code']);
  }));
  await within(new Promise<void>((resolve) => (sender.sendable() ? resolve() : sender.once('sendable', () => resolve()))), 5000, 'cbs credit');
  sender.send({
    message_id: messageId,
    reply_to: 'cbs',
    application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: audience },
    body: token,
  } as unknown as Message);
  return within(reply, 5000, 'put-token reply');
}

function attached<L extends Sender | Receiver>(link: L, kind: 'sender' | 'receiver'): Promise<L> {
  return within(new Promise<L>((resolve) => link.once(`${kind}_open`, () => resolve(link))), 5000, `${kind} attach`);
}

function detached(link: Sender | Receiver, kind: 'sender' | 'receiver'): Promise<unknown> {
  return within(new Promise<unknown>((resolve) => link.once(`${kind}_close`, (ctx: EventContext) => resolve((kind === 'sender' ? ctx.sender : ctx.receiver)?.error))), 5000, `${kind} detach`);
}

describe('service credentials over raw AMQP', () => {
  it('ends the service links when the token expires on the hub clock; a renewal keeps them, the device identity stays', async () => {
    const device = hub.createDevice('raw-dev');
    if (device.authentication.type !== 'sas') throw new Error('not SAS');
    const connection = await connect();
    expect(await putToken(connection, HUB, policyToken('service', 60))).toBe(200);
    const deviceToken = createSasToken(`${HUB}/devices/raw-dev`, device.authentication.primaryKey, Math.floor(clock.now() / 1000) + 3600);
    expect(await putToken(connection, encodeURIComponent(`${HUB}/devices/raw-dev`), deviceToken)).toBe(200);
    const feedback = await attached(connection.open_receiver({ source: { address: '/messages/serviceBound/feedback' } }), 'receiver');
    const events = await attached(connection.open_sender({ target: { address: '/devices/raw-dev/messages/events' } }), 'sender');

    // Renewed before expiry: still open past the first token's end.
    await clock.advanceAsync(30_000);
    expect(await putToken(connection, HUB, policyToken('service', 60))).toBe(200);
    await clock.advanceAsync(45_000);
    expect(feedback.is_open()).toBe(true);

    const gone = detached(feedback, 'receiver');
    await clock.advanceAsync(20_000);
    expect(await gone).toMatchObject({ condition: 'amqp:unauthorized-access' });
    expect(events.is_open()).toBe(true);
  });

  it('refuses a service token whose audience is another hub, and a link in the wrong direction', async () => {
    const connection = await connect();
    expect(await putToken(connection, HUB, createSasToken('other.azure-devices.net', keyOf('service'), Math.floor(clock.now() / 1000) + 60, 'service'))).toBe(401);
    expect(await putToken(connection, HUB, policyToken('iothubowner', 600))).toBe(200);
    const wrongWay = connection.open_receiver({ source: { address: '/messages/devicebound' } });
    expect(await detached(wrongWay, 'receiver')).toMatchObject({ condition: 'amqp:not-allowed' });
  });
});

describe('service-bound delivery over raw AMQP', () => {
  it('keeps delivering past the receiver\'s credit window as it settles and grants more', async () => {
    hub.createDevice('raw-purge');
    for (let i = 0; i < 30; i++) hub.sendC2D('raw-purge', { body: Buffer.from(`m${i}`), messageId: `purge-${i}`, ack: 'full' });
    const connection = await connect();
    expect(await putToken(connection, HUB, policyToken('service', 600))).toBe(200);
    const receiver = await attached(connection.open_receiver({ source: { address: '/messages/serviceBound/feedback' }, credit_window: 4, autoaccept: true }), 'receiver');
    const ids: string[] = [];
    const all = new Promise<void>((resolve) => receiver.on('message', (ctx: EventContext) => {
      const body = (ctx.message?.body as { content: Buffer }).content;
      for (const record of JSON.parse(body.toString('utf8')) as Array<{ originalMessageId: string; statusCode: string }>) ids.push(`${record.originalMessageId}/${record.statusCode}`);
      if (ids.length === 30) resolve();
    }));
    // Removing the device purges its queue: 30 'Purged' records, one message each.
    hub.removeDevice('raw-purge');
    await within(all, 10_000, 'all 30 feedback messages');
    expect(ids.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `purge-${i}/Purged`).sort());
  });
});

describe('service REST API rights per policy', () => {
  const call = (policy: PolicyName, method: string, path: string, body?: string): Promise<number> =>
    hubRequest(hub, { method, path, headers: { Authorization: policyToken(policy, 600), 'Content-Type': 'application/json' }, ...(body === undefined ? {} : { body }) }).then((r) => r.status);

  it('lets registryRead read the registry only, registryReadWrite write it, service reach twins and methods only', async () => {
    hub.createDevice('rights-dev');
    expect(await call('registryRead', 'GET', `/devices/rights-dev?${API}`)).toBe(200);
    expect(await call('registryRead', 'PUT', `/devices/rights-new?${API}`, '{}')).toBe(401);
    expect(await call('registryReadWrite', 'PUT', `/devices/rights-new?${API}`, '{}')).toBe(200);
    expect(await call('registryRead', 'POST', `/twins/rights-dev/methods?${API}`, '{"methodName":"m"}')).toBe(401);
    expect(await call('service', 'GET', `/devices/rights-dev?${API}`)).toBe(401);
    expect(await call('service', 'GET', `/twins/rights-dev?${API}`)).toBe(200);
    expect(await call('device', 'GET', `/twins/rights-dev?${API}`)).toBe(401);
    expect(await call('iothubowner', 'GET', `/devices/rights-dev?${API}`)).toBe(200);
  });
});
