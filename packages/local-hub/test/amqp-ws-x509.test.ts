// X.509 thumbprint devices over AMQP over WebSockets: the WebSocket rides on the HTTPS listener's
// TLS connection, whose client certificate authorizes the device as on the AMQP port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Message } from 'azure-iot-device';
import { AmqpWs } from 'azure-iot-device-amqp';
import azureIotCommon from 'azure-iot-common';
import { issueDeviceCertificate, type DeviceCertificate } from '../src/tls/index.ts';
import { HUB_NAME, RedirectAgent, startAmqpTestHub, within, type AmqpTestHub } from './support/amqp-harness.ts';

describe('X.509 devices over AMQP-WS', () => {
  let hub: AmqpTestHub;
  let cert: DeviceCertificate;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    hub = await startAmqpTestHub();
    cert = issueDeviceCertificate('x509-ws');
    hub.local.createDevice('x509-ws', { authentication: { type: 'x509-thumbprint', primaryThumbprint: cert.thumbprint } });
  });

  afterAll(async () => {
    for (const close of closers) await within(close(), 5000, 'close').catch(() => undefined);
    await hub.close();
  });

  async function open(certificate: DeviceCertificate): Promise<Client> {
    const client = Client.fromConnectionString(`HostName=${HUB_NAME};DeviceId=x509-ws;x509=true`, AmqpWs);
    await client.setOptions({ ca: hub.ca, cert: certificate.cert, key: certificate.key, amqp: { webSocketAgent: new RedirectAgent({ host: '127.0.0.1', port: hub.httpsPort }) } } as Parameters<Client['setOptions']>[0]);
    client.setRetryPolicy(new azureIotCommon.NoRetry());
    client.on('error', () => undefined);
    closers.push(() => client.close());
    return client;
  }

  it('authenticates the Azure SDK by certificate thumbprint: telemetry and C2D', async () => {
    const client = await open(cert);
    await within(client.open(), 10_000, 'open');
    await within(client.sendEvent(new Message('by certificate over ws')), 10_000, 'sendEvent');
    expect(hub.local.telemetry({ deviceId: 'x509-ws' }).map((r) => `${r.body.toString()}/${r.protocol}`)).toEqual(['by certificate over ws/amqp-ws']);

    const got = new Promise<Message>((resolve) => client.on('message', (m: Message) => resolve(m)));
    hub.local.sendC2D('x509-ws', { body: Buffer.from('to cert over ws') });
    const m = await within(got, 10_000, 'c2d');
    expect(Buffer.from(m.data as Buffer).toString()).toBe('to cert over ws');
    await client.complete(m);
  });

  it("refuses a certificate whose thumbprint is not the device's", async () => {
    const client = await open(issueDeviceCertificate('x509-ws'));
    // Without CBS the SDK opens no link until it sends; the first attach is where the hub refuses.
    const error = await within(client.open().then(() => client.sendEvent(new Message('impostor'))).then(() => undefined, (e: unknown) => e), 10_000, 'open and send');
    expect(error).toBeInstanceOf(Error);
    expect(hub.local.telemetry({ deviceId: 'x509-ws' })).toHaveLength(1);
  });
});
