// Seeds for the fuzz suite: real protocol units as the SDKs' libraries produce them. MQTT packets
// come from mqtt-packet; AMQP units are recorded from a rhea client talking to the hub itself, so
// the post-auth prefix is a session the hub really accepted; HTTPS requests are written by hand
// after the SDK's own (routes, headers, chunked bodies).
import rhea from 'rhea';
import type { Connection, EventContext } from 'rhea';
import { generate, type Packet } from 'mqtt-packet';
import { createSasToken } from '../../src/index.ts';
import type { ChildHubInfo } from './hardening.ts';
import { within } from './hardening.ts';

export const FUZZ_DEVICE = 'fuzz-dev';

export function deviceToken(hub: ChildHubInfo, deviceId = FUZZ_DEVICE): string {
  return createSasToken(`${hub.hostName}/devices/${deviceId}`, hub.keys[deviceId]!, Math.floor(Date.now() / 1000) + 3600);
}

// ---- MQTT ---------------------------------------------------------------------------------------

function mqtt(packet: Record<string, unknown>): Buffer {
  return generate(packet as unknown as Packet);
}

export function mqttConnect(hub: ChildHubInfo, password: string): Buffer {
  return mqtt({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, keepalive: 60, clientId: FUZZ_DEVICE, username: `${hub.hostName}/${FUZZ_DEVICE}/?api-version=2021-04-12`, password: Buffer.from(password) });
}

export function mqttSeeds(hub: ChildHubInfo): { preAuth: Buffer[]; postAuth: Buffer[] } {
  const d = FUZZ_DEVICE;
  const postAuth = [
    mqtt({ cmd: 'publish', topic: `devices/${d}/messages/events/a=1&%24.ct=application%2Fjson`, payload: Buffer.from('{"t":21.5}'), qos: 1, messageId: 7 }),
    mqtt({ cmd: 'publish', topic: `devices/${d}/messages/events/`, payload: Buffer.alloc(300, 0x41), qos: 0 }),
    mqtt({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `devices/${d}/messages/devicebound/#`, qos: 1 }, { topic: '$iothub/twin/res/#', qos: 0 }, { topic: '$iothub/methods/POST/#', qos: 0 }] }),
    mqtt({ cmd: 'publish', topic: '$iothub/twin/GET/?$rid=1', payload: Buffer.alloc(0), qos: 0 }),
    mqtt({ cmd: 'publish', topic: '$iothub/twin/PATCH/properties/reported/?$rid=2', payload: Buffer.from('{"fw":"1.0","nested":{"a":[1,2,3]}}'), qos: 0 }),
    mqtt({ cmd: 'publish', topic: '$iothub/methods/res/200/?$rid=abc', payload: Buffer.from('{}'), qos: 0 }),
    mqtt({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['$iothub/twin/res/#'] }),
    mqtt({ cmd: 'puback', messageId: 1 }),
    mqtt({ cmd: 'pingreq' }),
    mqtt({ cmd: 'disconnect' }),
  ];
  const preAuth = [
    mqttConnect(hub, 'SharedAccessSignature sr=x&sig=forged&se=9999999999'),
    mqttConnect(hub, deviceToken(hub)).subarray(0, 40),
    mqtt({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'x', will: { topic: `devices/${d}/messages/events/`, payload: Buffer.from('bye'), qos: 1, retain: false } }),
    ...postAuth.slice(0, 4),
  ];
  return { preAuth, postAuth };
}

/** Re-encodes an MQTT packet's remaining length for whatever follows the fixed header's first byte. */
export function repairMqtt(buf: Buffer): Buffer {
  if (buf.length < 2) return buf;
  let p = 1;
  while (p < buf.length && p < 5 && (buf[p]! & 0x80) !== 0) p++;
  const rest = buf.subarray(Math.min(buf.length, p + 1));
  const varint: number[] = [];
  let n = rest.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    varint.push(byte);
  } while (n > 0);
  return Buffer.concat([buf.subarray(0, 1), Buffer.from(varint), rest]);
}

// ---- AMQP ---------------------------------------------------------------------------------------

export interface AmqpRecording {
  /** Header through the accepted put-token and the telemetry link's attach: replayed unmutated. */
  postAuthPrefix: Buffer[];
  /** What the client sent after that: telemetry, flow, disposition, detach, close. */
  postAuthSeeds: Buffer[];
  /** A whole unauthenticated session (SASL ANONYMOUS, refused token, refused attach). */
  preAuthSeeds: Buffer[];
}

async function record(hub: ChildHubInfo, sasl: boolean, script: (connection: Connection, mark: () => number) => Promise<void>): Promise<{ units: Buffer[]; marks: number[] }> {
  const container = rhea.create_container({ id: `fuzz-recorder-${Math.random().toString(16).slice(2)}` });
  container.on('error', () => undefined);
  const units: Buffer[] = [];
  const marks: number[] = [];
  const connection = container.connect({ host: hub.address, port: hub.ports.amqp, transport: 'tls', ca: hub.ca, servername: 'localhost', reconnect: false, ...(sasl ? { username: 'anonymous' } : {}) } as Parameters<typeof container.connect>[0]);
  // rhea writes each header and frame with its own socket.write; the copy is the seed.
  const socket = (connection as unknown as { socket: { write(b: Buffer): boolean } }).socket;
  const write = socket.write.bind(socket);
  socket.write = (b: Buffer) => {
    units.push(Buffer.from(b));
    return write(b);
  };
  connection.on('connection_error', () => undefined);
  await within(new Promise<void>((resolve) => connection.once('connection_open', () => resolve())), 10_000, 'recorder open');
  await script(connection, () => { marks.push(units.length); return units.length; });
  await within(new Promise<void>((resolve) => {
    connection.once('connection_close', () => resolve());
    connection.once('disconnected', () => resolve());
    connection.close();
  }), 10_000, 'recorder close');
  return { units, marks };
}

function opened(link: { once(event: string, fn: (ctx: EventContext) => void): unknown }, event: string): Promise<void> {
  return within(new Promise<void>((resolve) => { link.once(event, () => resolve()); }), 10_000, event);
}

export async function recordAmqp(hub: ChildHubInfo): Promise<AmqpRecording> {
  const session = async (connection: Connection, token: string): Promise<void> => {
    const cbsOut = connection.open_sender({ target: { address: '$cbs' } });
    const cbsIn = connection.open_receiver({ source: { address: '$cbs' } });
    await Promise.all([opened(cbsOut, 'sendable'), opened(cbsIn, 'receiver_open')]);
    const reply = within(new Promise<void>((resolve) => { cbsIn.once('message', () => resolve()); }), 10_000, 'put-token reply');
    cbsOut.send({ message_id: 'put-1', reply_to: 'cbs', application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: encodeURIComponent(`${hub.hostName}/devices/${FUZZ_DEVICE}`) }, body: token } as unknown as rhea.Message);
    await reply;
  };
  const post = await record(hub, false, async (connection, mark) => {
    await session(connection, deviceToken(hub));
    const events = connection.open_sender({ target: { address: `/devices/${FUZZ_DEVICE}/messages/events` } });
    await opened(events, 'sendable');
    mark();
    const accepted = within(new Promise<void>((resolve) => { events.once('accepted', () => resolve()); events.once('rejected', () => resolve()); }), 10_000, 'telemetry settled');
    events.send({ message_id: 'm-1', to: `/devices/${FUZZ_DEVICE}/messages/events`, application_properties: { temperature: 21, unit: 'C' }, message_annotations: { 'iothub-interface-id': 'x' }, body: rhea.message.data_section(Buffer.from('{"t":21.5}')) } as unknown as rhea.Message);
    await accepted;
    const c2d = connection.open_receiver({ source: { address: `/devices/${FUZZ_DEVICE}/messages/devicebound` } });
    await opened(c2d, 'receiver_open');
    const twin = connection.open_sender({ target: { address: `/devices/${FUZZ_DEVICE}/twin` }, properties: { 'com.microsoft:channel-correlation-id': 'twin:1' } });
    await opened(twin, 'sender_open');
    twin.close();
  });
  const pre = await record(hub, true, async (connection) => {
    await session(connection, 'SharedAccessSignature sr=x&sig=forged&se=9999999999');
    const refused = connection.open_sender({ target: { address: `/devices/${FUZZ_DEVICE}/messages/events` } });
    await within(new Promise<void>((resolve) => { refused.once('sender_close', () => resolve()); refused.once('sender_error', () => resolve()); }), 10_000, 'refused attach');
  });
  const cut = post.marks[0]!;
  return { postAuthPrefix: post.units.slice(0, cut), postAuthSeeds: post.units.slice(cut), preAuthSeeds: pre.units };
}

/** Rewrites an AMQP frame's size field to its length (leaves protocol headers alone). */
export function repairAmqp(buf: Buffer): Buffer {
  if (buf.length < 8 || buf.subarray(0, 4).toString('latin1') === 'AMQP') return buf;
  const out = Buffer.from(buf);
  out.writeUInt32BE(out.length, 0);
  return out;
}

// ---- HTTPS --------------------------------------------------------------------------------------

export function httpsSeeds(auth: string | undefined): Buffer[] {
  const d = FUZZ_DEVICE;
  const api = 'api-version=2021-04-12';
  const authLine = auth === undefined ? [] : [`Authorization: ${auth}`];
  const req = (method: string, path: string, headers: string[], body = ''): Buffer => Buffer.from([`${method} ${path} HTTP/1.1`, 'Host: localhost', ...authLine, ...headers, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n'), 'utf8');
  return [
    req('POST', `/devices/${d}/messages/events?${api}`, ['Content-Type: application/json', 'iothub-app-temperature: 21', 'iothub-messageid: m1'], '{"t":21.5}'),
    req('GET', `/devices/${d}/messages/deviceBound?${api}`, ['iothub-app-x: y']),
    req('DELETE', `/devices/${d}/messages/deviceBound/lock-1?${api}`, ['If-Match: "lock-1"']),
    req('POST', `/devices/${d}/messages/deviceBound/lock-1/abandon?${api}`, []),
    req('POST', `/devices/${d}/files?${api}`, ['Content-Type: application/json'], '{"blobName":"a/b.txt"}'),
    req('POST', `/devices/${d}/files/notifications?${api}`, ['Content-Type: application/json'], '{"correlationId":"c","isSuccess":true,"statusCode":200}'),
    req('PUT', `/devices/${d}?${api}`, ['Content-Type: application/json'], '{"deviceId":"x"}'),
    Buffer.from([`POST /devices/${d}/messages/events?${api} HTTP/1.1`, 'Host: localhost', ...authLine, 'Transfer-Encoding: chunked', '', '5', 'hello', '0', '', ''].join('\r\n'), 'utf8'),
    Buffer.from(['GET /$iothub/websocket HTTP/1.1', 'Host: localhost', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol: mqtt', '', ''].join('\r\n'), 'utf8'),
  ];
}
