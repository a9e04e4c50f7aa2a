// X.509 thumbprint devices over AMQP-TLS: no CBS at all; the TLS client certificate authorizes
// the device named in each link address, and only that device.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import rhea from 'rhea';
import type { Sender } from 'rhea';
import { Client, Message } from 'azure-iot-device';
import { Amqp } from 'azure-iot-device-amqp';
import azureIotCommon from 'azure-iot-common';
import { issueDeviceCertificate, type DeviceCertificate } from '../src/tls/index.ts';
import { RawAmqpClient, startAmqpTestHub, within, type AmqpTestHub } from './support/amqp-harness.ts';

describe('X.509 devices over AMQP', () => {
  let hub: AmqpTestHub;
  let cert: DeviceCertificate;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    hub = await startAmqpTestHub();
    cert = issueDeviceCertificate('x509-dev');
    hub.local.createDevice('x509-dev', { authentication: { type: 'x509-thumbprint', primaryThumbprint: cert.thumbprint } });
    hub.local.createDevice('x509-other', { authentication: { type: 'x509-thumbprint', primaryThumbprint: issueDeviceCertificate('x509-other').thumbprint } });
  });

  afterAll(async () => {
    for (const close of closers) await within(close(), 5000, 'close').catch(() => undefined);
    await hub.close();
  });

  it('authenticates the Azure SDK by certificate thumbprint: telemetry and C2D', async () => {
    // X.509 connection strings drop GatewayHostName, so the port lives in HostName.
    const client = Client.fromConnectionString(`HostName=localhost:${hub.amqpPort};DeviceId=x509-dev;x509=true`, Amqp);
    await client.setOptions({ ca: hub.ca, cert: cert.cert, key: cert.key });
    client.setRetryPolicy(new azureIotCommon.NoRetry());
    client.on('error', () => undefined);
    closers.push(() => client.close());
    await within(client.open(), 10_000, 'open');
    await within(client.sendEvent(new Message('by certificate')), 10_000, 'sendEvent');
    expect(hub.local.telemetry({ deviceId: 'x509-dev' }).map((r) => r.body.toString())).toEqual(['by certificate']);

    const got = new Promise<Message>((resolve) => client.on('message', (m: Message) => resolve(m)));
    hub.local.sendC2D('x509-dev', { body: Buffer.from('to cert') });
    const m = await within(got, 10_000, 'c2d');
    expect(Buffer.from(m.data as Buffer).toString()).toBe('to cert');
    await client.complete(m);
  });

  it("does not let one device's certificate open another device's links", async () => {
    const raw = await RawAmqpClient.connect(hub, { cert: cert.cert, key: cert.key });
    closers.push(() => raw.close());
    const foreign = await raw.attach('sender', '/devices/x509-other/messages/events');
    expect(foreign.result).toMatchObject({ opened: false, error: { condition: 'amqp:unauthorized-access' } });
    const own = await raw.attach('sender', '/devices/x509-dev/messages/events');
    expect(own.result.opened).toBe(true);
    expect(await raw.send(own.link as Sender, { body: rhea.message.data_section(Buffer.from('raw')) })).toEqual({ outcome: 'accepted' });
    expect(hub.local.telemetry({ deviceId: 'x509-other' })).toHaveLength(0);
  });
});
