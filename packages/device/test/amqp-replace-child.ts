// A device process over AMQP whose first twin request is cut off by a network that drops
// everything (the parent black-holes the connection when told "ready"): the request times out,
// the client replaces the connection, the next twin request is answered on the new one, and
// close() must leave nothing running. Prints each step; an uncaught exception is printed and the
// process goes on, so the parent sees it; if the process is still alive a while after close(),
// it prints the handles and the timers (with where they were set) that hold it, then exits 3.
import { exitIfHeldAfter, say } from '../../../test/support/exit-watch.ts';
import { createInterface } from 'node:readline';
import { connect, type DeviceClient } from '../src/internal.ts';

const [connectionString, ca, host, ports, protocol] = process.argv.slice(2) as [string, string, string, string, 'amqp' | 'amqp-ws'];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const { client } = await connect({
  connectionString,
  ca,
  endpoint: { host, ports: JSON.parse(ports) as Record<string, number> },
  forceProtocol: protocol,
  profile: { features: ['telemetry', 'twin'] },
  operationTimeoutMs: 1_500,
});
const device = client as DeviceClient;
device.on('error', () => undefined);
let replaced = false;
const reconnected = new Promise<void>((resolve) =>
  device.on('state', (change: { to: string; reason: string }) => {
    if (change.reason.includes('replacing the connection')) replaced = true;
    else if (replaced && change.to === 'connected') resolve();
  }),
);
await device.sendEvent('before');
say('ready');
await lines.next();
const first = await device.getTwin().then(
  () => 'answered',
  (err: { code?: string }) => err.code ?? String(err),
);
say(`first ${first}`);
await reconnected;
await device.getTwin();
say('second answered');
await device.close();
say('closed');
exitIfHeldAfter(8_000);
