// A device process that only listens for C2D over HTTPS, as `switchyard listen` does: nothing
// but the wait for its next poll keeps it running. Prints the first message it receives.
import { connect } from '../src/index.ts';

const [connectionString, ca, host, ports, pollStateDir] = process.argv.slice(2);
const { client } = await connect({
  connectionString: connectionString!,
  ca: ca!,
  endpoint: { host: host!, ports: JSON.parse(ports!) as { https: number } },
  profile: { features: ['telemetry', 'c2d'], environment: 'development', pollIntervalSeconds: 2 },
  forceProtocol: 'https',
  pollStateDir: pollStateDir!,
});
console.log('listening');
for await (const message of client.messages()) {
  console.log(`received ${message.body.toString()}`);
  await message.complete();
  break;
}
await client.close();
