// The same round trip from CommonJS: Node >= 20.19 loads the ESM-only packages with require().
const { silentLogger, startLocalHub } = require('@switchyard/local-hub');
const { connect } = require('@switchyard/device');

async function main() {
  const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
  try {
    for (const protocol of ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https']) {
      const deviceId = `cjs-${protocol}`;
      hub.createDevice(deviceId);
      const { client } = await connect({
        connectionString: hub.deviceConnectionString(deviceId, { protocol }),
        ca: hub.ca,
        endpoint: { host: hub.address, ports: hub.ports },
        forceProtocol: protocol,
        profile: protocol === 'https' ? { features: ['telemetry', 'c2d'], environment: 'development', pollIntervalSeconds: 1 } : { features: ['telemetry', 'c2d'] },
      });
      await client.sendEvent({ body: { protocol }, messageId: `${deviceId}-1` });
      hub.sendC2D(deviceId, { body: Buffer.from(`hello ${protocol}`) });
      const received = await new Promise((resolve) => client.once('message', (message) => message.complete().then(() => resolve(message.body.toString()))));
      await client.close();
      const telemetry = hub.telemetry({ deviceId }).map((r) => r.systemProperties.messageId);
      console.log(JSON.stringify({ protocol, telemetry, received }));
    }
  } finally {
    await hub.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
