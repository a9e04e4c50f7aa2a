// A device process with a durable outbox, for the restart tests (outbox-e2e.test.ts, and
// test/fault-restart-device.test.ts over all five protocols). Arguments: connection string, CA,
// host, ports (JSON), outbox dir, mode, count, and the protocol (default mqtt).
// `queue N`: connects, waits for "go" on stdin, queues N messages n-0…n-(N-1) (until: 'queued',
// so each is fsynced) and prints "queued"; then it only waits, to be killed. `deliver [C]`:
// connects, prints the depth it recovered, waits for the outbox to drain and for C C2D messages
// (each completed, then printed as "c2d <messageId>"), and exits. A message the outbox drops is
// printed ("dropped <reason> <count>"), so the parent can tell "none lost" from "none left".
import { createInterface } from 'node:readline';
import type { Protocol } from '@switchyard/profile';
import { connect } from '../src/index.ts';

const [connectionString, ca, host, ports, dir, mode, count, protocol = 'mqtt'] = process.argv.slice(2);
const c2dWanted = mode === 'deliver' ? Number(count ?? 0) : 0;
const { client } = await connect({
  connectionString: connectionString!,
  ca: ca!,
  endpoint: { host: host!, ports: JSON.parse(ports!) as { mqtt: number; amqp: number; https: number } },
  // HTTPS receives C2D by polling: once a second here, so the message sent while the device was
  // down arrives within the test's bound.
  profile: protocol === 'https' ? { features: ['telemetry', 'c2d'], environment: 'development', pollIntervalSeconds: 1 } : { features: ['telemetry', 'c2d'] },
  forceProtocol: protocol as Protocol,
  outbox: { dir: dir! },
  operationTimeoutMs: 10_000,
});
client.on('error', () => undefined);
client.on('outbox-dropped', (event) => console.log(`dropped ${event.reason} ${event.messageIds.length}`));
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
  let received = 0;
  const allReceived = new Promise<void>((resolve) => {
    if (c2dWanted === 0) return resolve();
    client.on('message', (message) => {
      message.complete().then(
        () => {
          console.log(`c2d ${message.messageId}`);
          if (++received === c2dWanted) resolve();
        },
        // Not counted: the hub delivers it again, and the parent's bound catches one that never comes.
        (err: unknown) => console.log(`c2d-complete-failed ${(err as { code?: string }).code}`),
      );
    });
  });
  console.log(`recovered ${client.outbox!.depth}`);
  await client.outbox!.drain();
  console.log('drained');
  await allReceived;
  await client.close();
}
