// A consumer's ESM program, run with plain `node` from a project that installed the packed
// tarballs: the local hub in-process, then each of the five protocols through connect():
// telemetry up, one C2D message down, close. Prints one JSON line per protocol.
import { silentLogger, startLocalHub } from '@switchyard/local-hub';
import { connect } from '@switchyard/device';
import { createGateway } from '@switchyard/gateway';

const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
try {
  for (const protocol of ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https']) {
    const deviceId = `esm-${protocol}`;
    hub.createDevice(deviceId);
    const profile = protocol === 'https'
      ? { features: ['telemetry', 'c2d'], environment: 'development', pollIntervalSeconds: 1 }
      : { features: ['telemetry', 'c2d'] };
    const { client, decision } = await connect({
      connectionString: hub.deviceConnectionString(deviceId, { protocol }),
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      forceProtocol: protocol,
      profile,
    });
    await client.sendEvent({ body: { protocol }, messageId: `${deviceId}-1` });
    hub.sendC2D(deviceId, { body: Buffer.from(`hello ${protocol}`) });
    let received;
    for await (const message of client.messages()) {
      received = message.body.toString();
      await message.complete();
      break;
    }
    await client.close();
    const telemetry = hub.telemetry({ deviceId }).map((r) => r.systemProperties.messageId);
    console.log(JSON.stringify({ protocol, chosen: decision.protocol, telemetry, received }));
  }

  const ids = ['gw-1', 'gw-2'];
  for (const id of ids) hub.createDevice(id);
  const gateway = await createGateway({
    protocol: 'amqp',
    ca: hub.ca,
    endpoint: { host: hub.address, port: hub.ports.amqp },
    identities: ids.map((deviceId) => ({ deviceId, connectionString: hub.deviceConnectionString(deviceId) })),
  });
  const { connected } = await gateway.open();
  for (const id of ids) await gateway.get(id).device.sendEvent({ body: { id } });
  await gateway.close();
  console.log(JSON.stringify({ gateway: connected.length, telemetry: ids.map((deviceId) => hub.telemetry({ deviceId }).length) }));
} finally {
  await hub.close();
}
