// A device process with a durable outbox, for the restart test (outbox-e2e.test.ts).
// `queue N`: connects, waits for "go" on stdin, queues N messages (until: 'queued', so each is
// fsynced) and prints "queued"; then it only waits, to be killed. `deliver`: connects, prints the
// depth it recovered, waits for the outbox to drain and exits.
import { createInterface } from 'node:readline';
import { connect } from '../src/index.ts';

const [connectionString, ca, host, ports, dir, mode, count] = process.argv.slice(2);
const { client } = await connect({
  connectionString: connectionString!,
  ca: ca!,
  endpoint: { host: host!, ports: JSON.parse(ports!) as { mqtt: number } },
  profile: { features: ['telemetry'] },
  forceProtocol: 'mqtt',
  outbox: { dir: dir! },
  operationTimeoutMs: 10_000,
});
client.on('error', () => undefined);
if (mode === 'queue') {
  console.log('connected');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === 'go') break;
  const queued: Array<Promise<void>> = [];
  for (let i = 0; i < Number(count); i++) queued.push(client.sendEvent(`n-${i}`, { until: 'queued' }));
  await Promise.all(queued);
  console.log(`queued ${client.outbox!.depth}`);
  // Kept alive by the client's reconnect attempts and this, until the parent's SIGKILL.
  setInterval(() => undefined, 60_000);
} else {
  console.log(`recovered ${client.outbox!.depth}`);
  await client.outbox!.drain();
  console.log('drained');
  await client.close();
}
