// Found by the fuzz suite: a WebSocket upgrade whose subprotocol the hub refuses, followed by a
// malformed frame, raised an 'error' on the WebSocket that nothing listened to, ending the hub's
// process. The hub runs in a child so that a hub that falls fails this test, not the run.
import type { Client } from 'azure-iot-device';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azureClient } from './support/azure-clients.ts';
import { sendTelemetry, startChildHub, tlsPipe, within, type ChildHub } from './support/hardening.ts';

const upgrade = (protocol: string): Buffer => Buffer.from([
  'GET /$iothub/websocket HTTP/1.1', 'Host: localhost', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `Sec-WebSocket-Protocol: ${protocol}`, '', '',
].join('\r\n'), 'latin1');
// A masked binary frame with RSV1 set, which no extension was negotiated for.
const BAD_FRAME = Buffer.from('c28400000000deadbeef', 'hex');

describe('WebSocket frames the hub cannot parse', () => {
  let hub: ChildHub;
  let device: Client;

  beforeAll(async () => {
    hub = await startChildHub();
    device = await azureClient(hub.info, 'mqtt-ws', 'good-mqtt-ws', hub.info.keys['good-mqtt-ws']!);
    await within(device.open(), 20_000, 'device open');
  }, 90_000);
  afterAll(async () => {
    await device?.close().catch(() => undefined);
    await hub?.stop();
  });

  it.each(['bogus', 'mqtt', 'AMQPWSB10'])('close the connection, not the hub, after an upgrade offering %s', async (protocol) => {
    const pipe = await tlsPipe(hub.info, hub.info.ports.https);
    await pipe.write(Buffer.concat([upgrade(protocol), BAD_FRAME]));
    await within(pipe.closed, 10_000, 'hub closes the connection');
    await sendTelemetry(device, `after-bad-frame-${protocol}`);
    expect(hub.exited).toBe(false);
  });
});
