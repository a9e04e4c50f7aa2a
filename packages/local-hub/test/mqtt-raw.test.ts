// The MQTT front-end on real sockets, driven by a raw MQTT client (mqtt.js) and raw TLS bytes for
// what the Azure SDK never sends: refused credentials, foreign topics, QoS 2, oversized and
// malformed packets. Each refused client must get IoT Hub's answer while a good client keeps working.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { generate, parser, type IPublishPacket, type Packet } from 'mqtt-packet';
import type { LocalHub } from '../src/index.ts';
import { deviceKey, deviceToken, refusals as refusalsOf, startTestHub, type MemoryLogger } from './support/mqtt-harness.ts';
import { waitFor } from './support/azure-clients.ts';

let hub: LocalHub;
let logger: MemoryLogger;
let stateDir: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  // A state dir, so one test can restart the hub and find its persistent sessions again.
  stateDir = mkdtempSync(join(tmpdir(), 'switchyard-mqtt-raw-'));
  ({ hub, logger } = await startTestHub({ stateDir }));
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await hub?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const WAIT_MS = 5_000;

function bounded<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function options(deviceId: string, password: string | undefined, extra: Partial<IClientOptions> = {}): IClientOptions {
  return {
    protocolVersion: 4,
    clientId: deviceId,
    username: `${hub.hostName}/${deviceId}/?api-version=2021-04-12`,
    ...(password === undefined ? {} : { password }),
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    ca: hub.ca,
    servername: 'localhost',
    ...extra,
  };
}

/** Connects and resolves with the CONNACK, or rejects with mqtt.js's error (code = CONNACK return code). */
function connect(opts: IClientOptions, url = `mqtts://127.0.0.1:${hub.ports.mqtt}`): Promise<{ client: MqttClient; sessionPresent: boolean; messages: Array<[string, Buffer]> }> {
  const client = mqtt.connect(url, opts);
  clients.push(client);
  client.on('error', () => undefined);
  // Messages the hub sends right behind CONNACK arrive before any later listener could attach.
  const messages: Array<[string, Buffer]> = [];
  client.on('message', (topic, payload) => messages.push([topic, payload]));
  return bounded(new Promise((resolve, reject) => {
    client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent, messages }));
    client.once('error', (err) => reject(err));
    client.once('close', () => reject(new Error('closed before CONNACK')));
  }), 'CONNACK');
}

function closed(client: MqttClient): Promise<void> {
  if (!client.connected && client.disconnected) return Promise.resolve();
  return bounded(new Promise((resolve) => client.once('close', () => resolve())), 'connection close');
}

async function goodClient(deviceId: string): Promise<MqttClient> {
  const { client } = await connect(options(deviceId, deviceToken(hub, deviceId, deviceKey(hub, deviceId), 600)));
  return client;
}

/** Proves the hub still serves: a fresh device connects and one QoS 1 telemetry message is acknowledged. */
async function hubStillServes(): Promise<void> {
  const id = `witness-${Math.random().toString(36).slice(2, 8)}`;
  const client = await goodClient(id);
  await client.publishAsync(`devices/${id}/messages/events/`, 'alive', { qos: 1 });
  expect(hub.telemetry({ deviceId: id }).map((r) => r.body.toString())).toEqual(['alive']);
  await client.endAsync();
}

const refusals = (deviceId: string): string[] => refusalsOf(logger, deviceId);

describe('MQTT CONNECT', () => {
  it('accepts a valid SAS token and acknowledges QoS 1 telemetry with its properties', async () => {
    const client = await goodClient('t-ok');
    await client.publishAsync('devices/t-ok/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&k%201=v%2F1', '{"a":1}', { qos: 1 });
    await client.publishAsync('devices/t-ok/messages/events/', 'q0', { qos: 0 });
    await client.publishAsync('devices/t-ok/messages/events/r=1', 'kept', { qos: 1, retain: true });
    const records = await waitFor(() => { const r = hub.telemetry({ deviceId: 't-ok' }); return r.length === 3 ? r : undefined; }, WAIT_MS, 'three records');
    expect(records[0]?.systemProperties).toEqual({ messageId: 'm1', contentType: 'application/json', contentEncoding: 'utf-8' });
    expect(records[0]?.properties).toEqual({ 'k 1': 'v/1' });
    expect(records[0]?.protocol).toBe('mqtt');
    expect(records[1]?.body.toString()).toBe('q0');
    expect(records[2]?.properties).toEqual({ r: '1', 'mqtt-retain': 'true' });
    await client.endAsync();
  });

  it('refuses a token signed with the wrong key with CONNACK 5', async () => {
    deviceKey(hub, 't-wrongkey');
    const forged = deviceToken(hub, 't-wrongkey', Buffer.alloc(32, 7).toString('base64'), 600);
    await expect(connect(options('t-wrongkey', forged))).rejects.toMatchObject({ code: 5 });
    expect(refusals('t-wrongkey')).toContain('CONNECT');
    await hubStillServes();
  });

  it('refuses an expired token with CONNACK 5', async () => {
    const key = deviceKey(hub, 't-expired');
    await expect(connect(options('t-expired', deviceToken(hub, 't-expired', key, -10)))).rejects.toMatchObject({ code: 5 });
    await hubStillServes();
  });

  it('refuses an unknown device, a username for another device, and no credential at all', async () => {
    const key = deviceKey(hub, 't-user');
    await expect(connect(options('t-nobody', deviceToken(hub, 't-nobody', key, 600)))).rejects.toMatchObject({ code: 5 });
    await expect(connect(options('t-user', deviceToken(hub, 't-user', key, 600), { username: `${hub.hostName}/other/?api-version=2021-04-12` }))).rejects.toMatchObject({ code: 5 });
    await expect(connect(options('t-user', undefined))).rejects.toMatchObject({ code: 5 });
  });

  it('refuses a device token on a module client id with CONNACK 5, a malformed client id with 2, and MQTT 3.1 with 1', async () => {
    const key = deviceKey(hub, 't-mod');
    await expect(connect(options('t-mod/m1', deviceToken(hub, 't-mod', key, 600), { username: `${hub.hostName}/t-mod/m1/?api-version=2021-04-12` }))).rejects.toMatchObject({ code: 5 });
    await expect(connect(options('t-mod/m1/x', deviceToken(hub, 't-mod', key, 600), { username: `${hub.hostName}/t-mod/m1/?api-version=2021-04-12` }))).rejects.toMatchObject({ code: 2 });
    await expect(connect(options('t-mod', deviceToken(hub, 't-mod', key, 600), { protocolVersion: 3, protocolId: 'MQIsdp' }))).rejects.toMatchObject({ code: 1 });
  });

  it('authenticates a client certificate by thumbprint when there is no password', async () => {
    const certificate = hub.issueDeviceCertificate('t-x509');
    // Registered by SHA-256, so the front-end's second thumbprint flavour is what matches.
    hub.createDevice('t-x509', { authentication: { type: 'x509-thumbprint', primaryThumbprint: certificate.thumbprint256 } });
    const { client } = await connect(options('t-x509', undefined, { cert: certificate.cert, key: certificate.key }));
    await client.publishAsync('devices/t-x509/messages/events/', 'x', { qos: 1 });
    expect(hub.telemetry({ deviceId: 't-x509' })).toHaveLength(1);
    await client.endAsync();
    // Without the certificate the same identity is refused.
    await expect(connect(options('t-x509', undefined))).rejects.toMatchObject({ code: 5 });
  });

  it('closes the older connection when the device connects again (one MQTT connection per device)', async () => {
    const first = await goodClient('t-twice');
    const firstClosed = closed(first);
    const second = await goodClient('t-twice');
    await firstClosed;
    await second.publishAsync('devices/t-twice/messages/events/', 'second', { qos: 1 });
    expect(second.connected).toBe(true);
    await second.endAsync();
  });

  it('closes the connection when the SAS token expires', async () => {
    const key = deviceKey(hub, 't-ttl');
    const { client } = await connect(options('t-ttl', deviceToken(hub, 't-ttl', key, 2)));
    await bounded(new Promise<void>((r) => client.once('close', () => r())), 'expiry close', 6_000);
  });
});

describe('MQTT topic and packet rules', () => {
  it('closes the connection on a publish to another device\'s topic and never delivers it', async () => {
    const client = await goodClient('t-foreign');
    deviceKey(hub, 't-victim');
    const gone = closed(client);
    client.publish('devices/t-victim/messages/events/', 'spoof', { qos: 1 });
    await gone;
    expect(hub.telemetry({ deviceId: 't-victim' })).toEqual([]);
    expect(refusals('t-foreign').some((w) => w.includes('devices/t-victim/'))).toBe(true);
    await hubStillServes();
  });

  it('closes the connection on a QoS 2 publish', async () => {
    const client = await goodClient('t-qos2');
    const gone = closed(client);
    client.publish('devices/t-qos2/messages/events/', 'two', { qos: 2 });
    await gone;
    expect(hub.telemetry({ deviceId: 't-qos2' })).toEqual([]);
    await hubStillServes();
  });

  it('closes the connection on a payload over 256 KB; 256 KB exactly is accepted', async () => {
    const client = await goodClient('t-big');
    await client.publishAsync('devices/t-big/messages/events/', Buffer.alloc(256 * 1024, 1), { qos: 1 });
    const gone = closed(client);
    client.publish('devices/t-big/messages/events/', Buffer.alloc(256 * 1024 + 1, 1), { qos: 1 });
    await gone;
    expect(hub.telemetry({ deviceId: 't-big' })).toHaveLength(1);
    const huge = await goodClient('t-big');
    const hugeGone = closed(huge);
    huge.publish('devices/t-big/messages/events/', Buffer.alloc(2 * 1024 * 1024, 2), { qos: 1 });
    await hugeGone;
    expect(hub.telemetry({ deviceId: 't-big' })).toHaveLength(1);
    await hubStillServes();
  });

  it('grants the documented filters (QoS capped at 1) and fails others with 0x80', async () => {
    const client = await goodClient('t-sub');
    // mqtt.js turns any 0x80 into a rejected promise, so read the SUBACK packet itself.
    const suback = bounded(new Promise<number[]>((r) => client.on('packetreceive', (p) => { if (p.cmd === 'suback') r(p.granted as number[]); })), 'SUBACK');
    client.subscribe({
      'devices/t-sub/messages/devicebound/#': { qos: 2 },
      '$iothub/methods/POST/#': { qos: 0 },
      'devices/t-other/messages/devicebound/#': { qos: 1 },
      '#': { qos: 1 },
    }, () => undefined);
    expect(await suback).toEqual([1, 0, 128, 128]);
    expect(client.connected).toBe(true);
    expect(refusals('t-sub').filter((w) => w.startsWith('SUBSCRIBE'))).toHaveLength(2);
    await client.endAsync();
  });

  it('delivers C2D over a persistent session after a reconnect without SUBSCRIBE; clean=1 drops it', async () => {
    const key = deviceKey(hub, 't-persist');
    const token = (): string => deviceToken(hub, 't-persist', key, 600);
    const first = (await connect(options('t-persist', token()))).client;
    await first.subscribeAsync('devices/t-persist/messages/devicebound/#', { qos: 1 });
    await first.endAsync();
    hub.sendC2D('t-persist', { body: Buffer.from('while offline'), messageId: 'c1', properties: { color: 'red' } });

    const again = await connect(options('t-persist', token()));
    expect(again.sessionPresent).toBe(true);
    const [topic, payload] = await waitFor(() => again.messages[0], WAIT_MS, 'C2D after reconnect');
    expect(payload.toString()).toBe('while offline');
    expect(topic.startsWith('devices/t-persist/messages/devicebound/')).toBe(true);
    expect(topic).toContain('color=red');
    // mqtt.js PUBACKs on receipt; the PUBACK completes the message in the core.
    await waitFor(() => (hub.counters('t-persist').c2dCompleted === 1 ? true : undefined), WAIT_MS, 'completion');
    await again.client.endAsync();

    const cleanSession = await connect(options('t-persist', token(), { clean: true }));
    expect(cleanSession.sessionPresent).toBe(false);
    await cleanSession.client.endAsync();
    const afterClean = await connect(options('t-persist', token()));
    expect(afterClean.sessionPresent).toBe(false);
    await afterClean.client.endAsync();
  });

  it('keeps a persistent session across a hub restart: C2D and desired patches arrive without SUBSCRIBE', async () => {
    const id = 't-restart';
    const token = (): string => deviceToken(hub, id, deviceKey(hub, id), 600);
    const first = await connect(options(id, token()));
    await first.client.subscribeAsync(['devices/t-restart/messages/devicebound/#', '$iothub/twin/PATCH/properties/desired/#', '$iothub/twin/res/#'], { qos: 1 });
    await first.client.endAsync();

    await hub.close();
    ({ hub, logger } = await startTestHub({ stateDir }));

    const again = await connect(options(id, token()));
    expect(again.sessionPresent).toBe(true);
    hub.sendC2D(id, { body: Buffer.from('after restart') });
    hub.updateDesired(id, { mode: 'eco' });
    again.client.publish('$iothub/twin/GET/?$rid=r1', ' ');
    await waitFor(() => (again.messages.length >= 3 ? true : undefined), WAIT_MS, 'three messages after restart');
    const byKind = (prefix: string): [string, Buffer] | undefined => again.messages.find(([t]) => t.startsWith(prefix));
    expect(byKind('devices/t-restart/messages/devicebound/')?.[1].toString()).toBe('after restart');
    const desired = byKind('$iothub/twin/PATCH/properties/desired/');
    expect(JSON.parse(desired?.[1].toString() ?? '{}')).toMatchObject({ mode: 'eco' });
    expect(desired?.[0]).toMatch(/\?\$version=\d+$/);
    const twin = byKind('$iothub/twin/res/200/?$rid=r1');
    expect(JSON.parse(twin?.[1].toString() ?? '{}')).toMatchObject({ desired: { mode: 'eco' }, reported: {} });
    await again.client.endAsync();
  });

  it('answers twin requests: reported patch 204 with version, bad JSON 400 with errorCode in the body', async () => {
    const id = 't-twin';
    const { client, messages } = await connect(options(id, deviceToken(hub, id, deviceKey(hub, id), 600)));
    await client.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
    client.publish('$iothub/twin/PATCH/properties/reported/?$rid=p1', JSON.stringify({ fw: '2.0' }));
    client.publish('$iothub/twin/PATCH/properties/reported/?$rid=p2', '{not json');
    await waitFor(() => (messages.length >= 2 ? true : undefined), WAIT_MS, 'two twin responses');
    const ok = messages.find(([t]) => t.includes('$rid=p1'));
    expect(ok?.[0]).toMatch(/^\$iothub\/twin\/res\/204\/\?\$rid=p1&\$version=\d+$/);
    expect(ok?.[1].length).toBe(0);
    const bad = messages.find(([t]) => t.includes('$rid=p2'));
    expect(bad?.[0]).toBe('$iothub/twin/res/400/?$rid=p2');
    expect(JSON.parse(bad?.[1].toString() ?? '{}')).toMatchObject({ errorCode: 400004 });
    expect(hub.readTwin(id).reported).toMatchObject({ fw: '2.0' });
    await client.endAsync();
  });

  it('keeps at most 8 C2D in flight, sends the next on PUBACK, and hands unacknowledged ones to the next connection', async () => {
    const id = 't-window';
    const first = await bareClient(id);
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${id}/messages/devicebound/#`, qos: 1 }] });
    await waitFor(() => first.packets.find((x) => x.cmd === 'suback'), WAIT_MS, 'SUBACK');
    for (let i = 0; i < 10; i++) hub.sendC2D(id, { body: Buffer.from(`m${i}`) });
    const published = (packets: Packet[]): IPublishPacket[] => packets.filter((x): x is IPublishPacket => x.cmd === 'publish');
    // A PINGRESP is written after everything the hub had already sent, so the count is final.
    first.send({ cmd: 'pingreq' });
    await waitFor(() => first.packets.find((x) => x.cmd === 'pingresp'), WAIT_MS, 'PINGRESP');
    expect(published(first.packets).map((x) => x.payload.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    expect(published(first.packets).every((x) => x.qos === 1 && x.topic.startsWith(`devices/${id}/messages/devicebound/`))).toBe(true);

    first.send({ cmd: 'puback', messageId: published(first.packets)[0]?.messageId ?? 0 });
    await waitFor(() => (published(first.packets).length === 9 ? true : undefined), WAIT_MS, 'ninth delivery');
    expect(published(first.packets)[8]?.payload.toString()).toBe('m8');
    expect(hub.counters(id).c2dCompleted).toBe(1);

    // Dropping the socket returns the 8 unacknowledged locks at once instead of after 60 s.
    first.socket.destroy();
    const second = await bareClient(id);
    await waitFor(() => (published(second.packets).length === 8 ? true : undefined), WAIT_MS, 'redelivery');
    expect(published(second.packets).map((x) => x.payload.toString()).sort()).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']);
    second.socket.destroy();
  });

  it('delivers a method request on its documented topic and maps the device\'s status back', async () => {
    const id = 't-method';
    const { client, messages } = await connect(options(id, deviceToken(hub, id, deviceKey(hub, id), 600)));
    await client.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
    const call = hub.invokeMethod(id, { methodName: 'getLog', payload: { lines: 3 }, responseTimeoutInSeconds: 10 });
    const [topic, payload] = await waitFor(() => messages[0], WAIT_MS, 'method request');
    const rid = /^\$iothub\/methods\/POST\/getLog\/\?\$rid=(.+)$/.exec(topic)?.[1];
    expect(rid).toBeDefined();
    expect(JSON.parse(payload.toString())).toEqual({ lines: 3 });
    client.publish(`$iothub/methods/res/404/?$rid=${rid}`, JSON.stringify({ error: 'no log' }));
    await expect(call).resolves.toEqual({ status: 404, payload: { error: 'no log' } });
    await client.endAsync();
  });

  it('refuses a wrong key over the WebSocket path with CONNACK 5', async () => {
    deviceKey(hub, 't-ws-bad');
    const forged = deviceToken(hub, 't-ws-bad', Buffer.alloc(32, 9).toString('base64'), 600);
    await expect(connect(options('t-ws-bad', forged, { wsOptions: { ca: hub.ca } } as Partial<IClientOptions>), `wss://localhost:${hub.ports.https}/$iothub/websocket`))
      .rejects.toMatchObject({ code: 5 });
    await hubStillServes();
  });

  it('forwards a will as telemetry with iothub-MessageType=Will on an ungraceful drop only', async () => {
    const id = 't-will';
    const will = { topic: `devices/${id}/messages/events/reason=lost`, payload: Buffer.from('gone'), qos: 1 as const, retain: false };
    const graceful = await connect(options(id, deviceToken(hub, id, deviceKey(hub, id), 600), { will }));
    await graceful.client.endAsync();
    const dropped = await connect(options(id, deviceToken(hub, id, deviceKey(hub, id), 600), { will }));
    dropped.client.stream.destroy();
    const [record] = await waitFor(() => { const r = hub.telemetry({ deviceId: id }); return r.length > 0 ? r : undefined; }, WAIT_MS, 'will telemetry');
    expect(record?.body.toString()).toBe('gone');
    expect(record?.properties).toEqual({ reason: 'lost', 'iothub-MessageType': 'Will' });
    // The graceful DISCONNECT earlier (processed before this connection existed) produced none.
    expect(hub.telemetry({ deviceId: id })).toHaveLength(1);
  });

  it('closes a connection whose first packet is not CONNECT, or that sends CONNECT twice', async () => {
    await expect(rawExchange(Buffer.from([0xc0, 0x00]))).resolves.toBe('closed');
    const client = await goodClient('t-dup');
    const key = deviceKey(hub, 't-dup');
    const gone = closed(client);
    // Reaches into mqtt.js to send a second CONNECT on the same stream.
    (client as unknown as { _sendPacket(p: object): void })._sendPacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 't-dup', clean: false, keepalive: 60, username: 'x', password: Buffer.from(deviceToken(hub, 't-dup', key, 60)) });
    await gone;
    await hubStillServes();
  });

  it('closes on malformed bytes and on a huge declared length without waiting for the body', async () => {
    // Reserved packet type 0.
    await expect(rawExchange(Buffer.from([0x00, 0x00]))).resolves.toBe('closed');
    // Remaining length with a fifth continuation byte.
    await expect(rawExchange(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]))).resolves.toBe('closed');
    // PUBLISH declaring ~268 MB: refused on the header alone.
    await expect(rawExchange(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))).resolves.toBe('closed');
    // A CONNECT with garbage in the variable header.
    await expect(rawExchange(Buffer.from([0x10, 0x04, 0x00, 0x09, 0x41, 0x42]))).resolves.toBe('closed');
    await hubStillServes();
  });

  it('closes a connection that stays silent past 1.5 × keep-alive', async () => {
    const key = deviceKey(hub, 't-silent');
    // A raw client that announces keep-alive 1 s and then never pings.
    const connectPacket = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 't-silent', clean: true, keepalive: 1,
      username: `${hub.hostName}/t-silent/?api-version=2021-04-12`, password: Buffer.from(deviceToken(hub, 't-silent', key, 600)) });
    const received: Buffer[] = [];
    await expect(rawExchange(connectPacket, received, 6_000)).resolves.toBe('closed');
    // CONNACK accepted (0x20 0x02 flags 0), then the close.
    expect(Buffer.concat(received).subarray(0, 4)).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00]));
  });

  it('serves MQTT over the WebSocket path', async () => {
    const key = deviceKey(hub, 't-ws');
    const { client } = await connect(options('t-ws', deviceToken(hub, 't-ws', key, 600), { servername: 'localhost', wsOptions: { ca: hub.ca } } as Partial<IClientOptions>),
      `wss://localhost:${hub.ports.https}/$iothub/websocket`);
    await client.publishAsync('devices/t-ws/messages/events/%24.mid=w1', 'over ws', { qos: 1 });
    expect(hub.telemetry({ deviceId: 't-ws' })[0]?.protocol).toBe('mqtt-ws');
    await client.endAsync();
  });
});

/** A bare MQTT 3.1.1 client on verified TLS that acknowledges nothing unless told to. */
async function bareClient(deviceId: string, clean = false): Promise<{ packets: Packet[]; send(p: Packet): void; socket: tls.TLSSocket }> {
  const socket = tls.connect({ host: '127.0.0.1', port: hub.ports.mqtt, ca: hub.ca, servername: 'localhost' });
  const packets: Packet[] = [];
  const p = parser({ protocolVersion: 4 });
  p.on('packet', (packet: Packet) => packets.push(packet));
  socket.on('data', (chunk: Buffer) => p.parse(chunk));
  socket.on('error', () => undefined);
  const send = (packet: Packet): void => { socket.write(generate(packet)); };
  await bounded(once(socket, 'secureConnect'), 'TLS handshake');
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: deviceId, clean, keepalive: 60,
    username: `${hub.hostName}/${deviceId}/?api-version=2021-04-12`, password: Buffer.from(deviceToken(hub, deviceId, deviceKey(hub, deviceId), 600)) });
  await waitFor(() => packets.find((x) => x.cmd === 'connack'), WAIT_MS, 'CONNACK');
  return { packets, send, socket };
}

/** Writes raw bytes over verified TLS and reports whether the hub closed the connection. */
function rawExchange(bytes: Buffer, received: Buffer[] = [], ms = WAIT_MS): Promise<'closed'> {
  return bounded(new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: hub.ports.mqtt, ca: hub.ca, servername: 'localhost' }, () => socket.write(bytes));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('close', () => resolve('closed'));
  }), 'raw close', ms);
}
