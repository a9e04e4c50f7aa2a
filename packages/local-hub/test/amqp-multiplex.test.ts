// Several device identities on ONE AMQP connection, driven by the real Azure SDK: each device's
// `azure-iot-device-amqp` transport gets a view of one shared `azure-iot-amqp-base` Amqp (the
// injection described in azure-sdk-transports.md §7), so each sends its own put-token and opens its
// own $cbs pair and device links on the same connection and session.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Message, SharedAccessKeyAuthenticationProvider } from 'azure-iot-device';
import { Amqp as DeviceAmqp } from 'azure-iot-device-amqp';
import { Amqp as BaseAmqp } from 'azure-iot-amqp-base';
import rhea from 'rhea';
import type { Sender } from 'rhea';
import { HUB_NAME, RawAmqpClient, RedirectAgent, deviceKey, sasToken, startAmqpTestHub, waitFor, within, type AmqpTestHub } from './support/amqp-harness.ts';

type Callback = (err?: Error | null, result?: unknown) => void;

/**
 * Ref-counts connect/disconnect (each transport's disconnect would otherwise tear the connection
 * down for everyone) and fans out the single disconnect handler the base keeps.
 */
class SharedAmqpBase {
  readonly base = new BaseAmqp(false);
  private refs = 0;
  private connecting: Promise<unknown> | undefined;
  private readonly disconnectHandlers = new Set<Callback>();

  constructor() {
    this.base.setDisconnectHandler((err) => {
      this.connecting = undefined;
      this.refs = 0;
      for (const h of this.disconnectHandlers) h(err);
    });
  }

  view(): unknown {
    const base = this.base as unknown as Record<string, (...args: unknown[]) => void>;
    const forward = (name: string) => (...args: unknown[]): void => base[name]?.apply(this.base, args);
    const view: Record<string, unknown> = {};
    for (const name of ['send', 'getReceiver', 'attachReceiverLink', 'attachSenderLink', 'detachReceiverLink', 'detachSenderLink', 'initializeCBS', 'putToken']) {
      view[name] = forward(name);
    }
    view.setDisconnectHandler = (handler: Callback): void => {
      this.disconnectHandlers.add(handler);
    };
    view.connect = (config: unknown, done: Callback): void => {
      this.refs++;
      // The first connect's config wins (URI, ca, user agent), as with any shared connection.
      this.connecting ??= new Promise((resolve, reject) => this.base.connect(config as Parameters<BaseAmqp['connect']>[0], (err, result) => (err ? reject(err) : resolve(result))));
      this.connecting.then((result) => done(null, result), (err: Error) => {
        this.connecting = undefined;
        done(err);
      });
    };
    view.disconnect = (done: Callback): void => {
      this.refs = Math.max(0, this.refs - 1);
      if (this.refs > 0) return done(null);
      this.connecting = undefined;
      this.base.disconnect((err) => done(err));
    };
    return view;
  }
}

/** AmqpWs accepts no base client, so the WebSocket flavour is the TLS transport dialing wss://. */
class SharedAmqpWs extends DeviceAmqp {
  protected _getConnectionUri(credentials: Parameters<DeviceAmqp['_getConnectionUri']>[0]): string {
    return `wss://${credentials.host}:443/$iothub/websocket`;
  }
}

describe.each(['amqp', 'amqp-ws'] as const)('several device identities on one %s connection (Azure SDK, shared base)', (protocol) => {
  let hub: AmqpTestHub;
  const devices = ['gw-a', 'gw-b', 'gw-c'].map((d) => `${protocol}-${d}`);
  const clients = new Map<string, Client>();

  beforeAll(async () => {
    hub = await startAmqpTestHub();
    const shared = new SharedAmqpBase();
    for (const id of devices) {
      const cs = `HostName=${HUB_NAME};DeviceId=${id};SharedAccessKey=${deviceKey(hub, id)};GatewayHostName=localhost:${hub.amqpPort}`;
      // Client.fromConnectionString builds its own transport; this builds the same one with the shared base.
      const auth = SharedAccessKeyAuthenticationProvider.fromConnectionString(cs);
      const Transport = protocol === 'amqp' ? DeviceAmqp : SharedAmqpWs;
      const transport = new Transport(auth, shared.view() as ConstructorParameters<typeof DeviceAmqp>[1]);
      const client = new Client(transport);
      await client.setOptions(protocol === 'amqp' ? { ca: hub.ca } : { ca: hub.ca, amqp: { webSocketAgent: new RedirectAgent({ host: '127.0.0.1', port: hub.httpsPort }) } });
      client.on('error', () => undefined);
      clients.set(id, client);
    }
    for (const client of clients.values()) await within(client.open(), 10_000, 'open');
  });

  afterAll(async () => {
    for (const client of clients.values()) await within(client.close(), 5000, 'close').catch(() => undefined);
    await hub.close();
  });

  it('opens one connection that carries every identity', () => {
    const stats = hub.local.stats();
    expect(stats.connections[protocol]).toBe(1);
    const identities = stats.connectedIdentities.filter((i) => devices.includes(i.deviceId));
    expect(identities.map((i) => i.deviceId).sort()).toEqual(devices);
    expect(new Set(identities.map((i) => i.connectionId)).size).toBe(1);
  });

  it('attributes each identity its own telemetry', async () => {
    for (const [id, client] of clients) await within(client.sendEvent(new Message(`from ${id}`)), 10_000, `send ${id}`);
    for (const id of devices) {
      const records = hub.local.telemetry({ deviceId: id });
      expect(records.map((r) => r.body.toString())).toEqual([`from ${id}`]);
      expect(records[0]?.protocol).toBe(protocol);
    }
  });

  it('delivers each C2D message to its addressee only', async () => {
    const received = new Map<string, string[]>(devices.map((id) => [id, []]));
    for (const [id, client] of clients) {
      client.on('message', (m: Message) => {
        received.get(id)?.push(Buffer.from(m.data as Buffer).toString());
        void client.complete(m);
      });
    }
    for (const id of devices) hub.local.sendC2D(id, { body: Buffer.from(`to ${id}`) });
    await waitFor(() => (devices.every((id) => hub.local.stats().devices[id]?.c2dCompleted === 1) ? true : undefined), 10_000, 'all completed');
    for (const id of devices) expect(received.get(id)).toEqual([`to ${id}`]);
  });

  it('keeps the other identities working when one device closes', async () => {
    const first = devices[0] as string;
    await within((clients.get(first) as Client).close(), 5000, 'close first');
    clients.delete(first);
    const second = devices[1] as string;
    await within((clients.get(second) as Client).sendEvent(new Message('still here')), 10_000, 'send after close');
    expect(hub.local.telemetry({ deviceId: second }).map((r) => r.body.toString())).toContain('still here');
    expect(hub.local.stats().connections[protocol]).toBe(1);
  });
});

describe('several identities on one connection (raw rhea client, one $cbs pair per identity)', () => {
  let hub: AmqpTestHub;
  let client: RawAmqpClient | undefined;

  beforeAll(async () => {
    hub = await startAmqpTestHub();
  });

  afterAll(async () => {
    await client?.close();
    await hub.close();
  });

  it('answers each put-token on the pair it came from, renewals included', async () => {
    client = await RawAmqpClient.connect(hub);
    const a = deviceKey(hub, 'raw-a');
    const b = deviceKey(hub, 'raw-b');
    expect((await client.putToken('raw-a', sasToken('raw-a', a), 0)).status).toBe(200);
    expect((await client.putToken('raw-b', sasToken('raw-b', b), 1)).status).toBe(200);
    // raw-a renews on its own, older pair while a newer pair exists.
    expect((await client.putToken('raw-a', sasToken('raw-a', a), 0)).status).toBe(200);
    expect(client.strayCbsReplies).toBe(0);

    const senders = new Map<string, Sender>();
    for (const id of ['raw-a', 'raw-b']) senders.set(id, (await client.attach('sender', `/devices/${id}/messages/events`)).link as Sender);
    for (const [id, sender] of senders) expect(await client.send(sender, { body: rhea.message.data_section(Buffer.from(id)) })).toEqual({ outcome: 'accepted' });
    expect(hub.local.telemetry({ deviceId: 'raw-a' }).map((r) => r.body.toString())).toEqual(['raw-a']);
    expect(hub.local.telemetry({ deviceId: 'raw-b' }).map((r) => r.body.toString())).toEqual(['raw-b']);
    const stats = hub.local.stats();
    expect(stats.connections.amqp).toBe(1);
    expect(stats.connectedIdentities.filter((i) => i.deviceId.startsWith('raw-')).map((i) => i.deviceId).sort()).toEqual(['raw-a', 'raw-b']);
  });
});

