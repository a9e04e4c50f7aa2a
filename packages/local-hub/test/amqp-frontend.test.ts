// Front-end options that startLocalHub leaves at their defaults, exercised on a front-end built
// directly over the real core and a TLS listener of its own.
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import rhea from 'rhea';
import { createAmqpFrontEnd, type AmqpFrontEnd } from '../src/amqp/index.ts';
import { createHubCore, createMemoryLogger, createSasToken, ensureTlsMaterial, openHubStore, type HubStore, type LocalHubCore } from '../src/internal.ts';
import { within } from './support/amqp-harness.ts';

const HOST = 'frontend.azure-devices.net';

describe('AMQP front-end connection guards', () => {
  let store: HubStore;
  let core: LocalHubCore;
  let frontEnd: AmqpFrontEnd;
  let server: tls.Server;
  let port: number;
  let ca: string;

  beforeAll(async () => {
    const logger = createMemoryLogger();
    store = openHubStore({ inMemory: true });
    core = createHubCore({ hostName: HOST, store, logger });
    const material = ensureTlsMaterial({ hostName: HOST, address: '127.0.0.1' });
    ca = material.ca;
    frontEnd = createAmqpFrontEnd({ core, logger, openTimeoutMs: 300 });
    server = tls.createServer({ cert: material.cert, key: material.key }, (socket) => frontEnd.handleTlsSocket(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await frontEnd.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    core.close();
    store.close();
  });

  it('closes a transport that never sends the AMQP header', async () => {
    const socket = tls.connect({ host: 'localhost', port, ca });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await within(closed, 5000, 'silent socket closed by the hub');
    expect(core.stats().connections.amqp).toBe(0);
  });

  it('keeps an opened connection past the open timeout and advertises an idle timeout', async () => {
    const key = core.createDevice('fe-1').authentication;
    if (key.type !== 'sas') throw new Error('expected a SAS device');
    const container = rhea.create_container();
    container.on('error', () => undefined);
    const connection = container.connect({ host: 'localhost', port, transport: 'tls', ca, reconnect: false } as Parameters<typeof container.connect>[0]);
    await within(new Promise<void>((resolve) => connection.once('connection_open', () => resolve())), 5000, 'open');
    expect(connection.idle_time_out).toBe(240_000);
    // A silent transport opened after this connection is closed by the open timeout: once it is,
    // this connection's own open timeout has passed too (the event, not a guess at how long).
    const silent = tls.connect({ host: 'localhost', port, ca });
    silent.on('error', () => undefined);
    await within(new Promise<void>((resolve) => silent.once('close', () => resolve())), 5000, 'a later silent socket closed by the open timeout');
    expect(core.stats().connections.amqp).toBe(1);
    // The connection still works: a put-token round trip after the open timeout has passed.
    const sender = connection.open_sender({ target: { address: '$cbs' } });
    const receiver = connection.open_receiver({ source: { address: '$cbs' } });
    const reply = new Promise<unknown>((resolve) => receiver.once('message', (ctx) => resolve((ctx.message?.application_properties as Record<string, unknown>)['status-code'])));
    await within(new Promise<void>((resolve) => sender.once('sendable', () => resolve())), 5000, 'credit');
    sender.send({
      message_id: 'p1',
      application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: encodeURIComponent(`${HOST}/devices/fe-1`) },
      body: createSasToken(`${HOST}/devices/fe-1`, key.primaryKey, Math.floor(Date.now() / 1000) + 60),
    } as unknown as Parameters<typeof sender.send>[0]);
    expect(await within(reply, 5000, 'put-token reply')).toBe(200);
    const closed = new Promise<void>((resolve) => connection.once('connection_close', () => resolve()));
    connection.close();
    await within(closed, 5000, 'close');
  });
});
