// Runs in a child process: connects over one protocol and prints which Azure transport and AMQP
// modules ended up loaded, so the test can prove the factory loads only the chosen transport.
import { createRequire } from 'node:module';
import { connect } from '../src/index.ts';

const [connectionString, ca, host, ports, protocol] = process.argv.slice(2);
const { client } = await connect({
  connectionString: connectionString!,
  ca: ca!,
  profile: { protocols: [protocol as 'mqtt'] },
  endpoint: { host: host!, ports: JSON.parse(ports!) as Record<string, number> },
});
await client.sendEvent('probe');
const loaded = Object.keys(createRequire(import.meta.url).cache);
const families = ['azure-iot-device-mqtt', 'azure-iot-mqtt-base', 'azure-iot-device-amqp', 'azure-iot-amqp-base', 'rhea', 'azure-iot-device-http'];
const present = families.filter((f) => loaded.some((path) => path.includes(`/node_modules/${f}/`)));
await client.close();
console.log(JSON.stringify(present));
