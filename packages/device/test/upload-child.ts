// Runs in a child process started with NODE_EXTRA_CA_CERTS (the SDK's blob client ignores `ca`).
import { readFileSync } from 'node:fs';
import { connect } from '../src/index.ts';

const [connectionString, host, httpsPort, mqttPort] = process.argv.slice(2);
const ca = readFileSync(process.env.NODE_EXTRA_CA_CERTS!, 'utf8');
const { client } = await connect({
  connectionString: connectionString!,
  ca,
  profile: { features: ['telemetry', 'file-upload'], protocols: ['mqtt'] },
  endpoint: { host: host!, ports: { https: Number(httpsPort), mqtt: Number(mqttPort) } },
});
await client.uploadToBlob('logs/today.txt', Buffer.from('a log line\n'));
await client.close();
console.log('uploaded');
