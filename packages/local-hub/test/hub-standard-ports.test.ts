// With --standard-ports the unmodified Azure SDK needs nothing but `ca`: no GatewayHostName port,
// no redirect agent. Binding 443 needs root (or CAP_NET_BIND_SERVICE), so the test runs only then.
import { afterAll, describe, expect, it } from 'vitest';
import { Client, Message } from 'azure-iot-device';
import { Http } from 'azure-iot-device-http';
import { Mqtt, MqttWs } from 'azure-iot-device-mqtt';
import { Amqp, AmqpWs } from 'azure-iot-device-amqp';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';

const canBindPrivilegedPorts = process.getuid?.() === 0;
// A loopback address of its own, so the fixed ports do not collide with another suite's hub.
const address = `127.0.0.${100 + (process.pid % 150)}`;
let hub: LocalHub | undefined;

afterAll(async () => {
  await hub?.close();
});

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms); })]).finally(() => clearTimeout(timer));
}

describe('standard ports', () => {
  it.skipIf(!canBindPrivilegedPorts)('binds 8883, 5671 and 443, and one printed connection string serves all five unmodified transports with only `ca` set (needs root: port 443)', async () => {
    hub = await startLocalHub({ standardPorts: true, address, devices: ['std-mqtt', 'std-amqp', 'std-http', 'std-mqttws', 'std-amqpws'], logger: createMemoryLogger() });
    expect(hub.ports).toEqual({ mqtt: 8883, amqp: 5671, https: 443 });
    const cases = [
      { id: 'std-mqtt', protocol: 'mqtt', transport: Mqtt, options: { ca: hub.ca } },
      { id: 'std-amqp', protocol: 'amqp', transport: Amqp, options: { ca: hub.ca } },
      { id: 'std-http', protocol: 'https', transport: Http, options: { ca: hub.ca, http: { receivePolicy: { interval: 1 } } } },
      { id: 'std-mqttws', protocol: 'mqtt-ws', transport: MqttWs, options: { ca: hub.ca } },
      { id: 'std-amqpws', protocol: 'amqp-ws', transport: AmqpWs, options: { ca: hub.ca } },
    ] as const;
    for (const c of cases) {
      // The string `switchyard hub --standard-ports` prints: the one for no protocol in particular.
      const connectionString = hub.deviceConnectionString(c.id);
      expect(connectionString).not.toMatch(/GatewayHostName|:\d+/);
      const client = Client.fromConnectionString(connectionString, c.transport);
      client.on('error', () => undefined);
      try {
        await within(15_000, `${c.protocol} setOptions`, client.setOptions(c.options));
        await within(15_000, `${c.protocol} open`, client.open());
        await within(15_000, `${c.protocol} sendEvent`, client.sendEvent(new Message(`via ${c.protocol}`)));
      } finally {
        await within(15_000, `${c.protocol} close`, client.close()).catch(() => undefined);
      }
      expect(hub.telemetry({ deviceId: c.id }).map((r) => `${r.body.toString()}/${r.protocol}`)).toEqual([`via ${c.protocol}/${c.protocol}`]);
    }
  });
});
