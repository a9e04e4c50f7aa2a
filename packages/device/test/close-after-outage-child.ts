// A device process with C2D, methods, desired updates and an outbox whose connection the parent
// drops while the hub refuses new ones; told "close" when the refusals end, it closes at once,
// while its reconnect is under way. Its process must then exit by itself: the SDK's retry chains
// (each feature re-enabled after the drop) went on dialling from the closed client, and their
// timers held the process for the rest of their attempts.
import { exitIfHeldAfter, say } from '../../../test/support/exit-watch.ts';
import { createInterface } from 'node:readline';
import { connect, type DeviceClient } from '../src/internal.ts';

const [connectionString, ca, host, ports, protocol] = process.argv.slice(2) as [string, string, string, string, 'mqtt' | 'amqp'];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const { client } = await connect({
  connectionString,
  ca,
  endpoint: { host, ports: JSON.parse(ports) as Record<string, number> },
  forceProtocol: protocol,
  profile: { features: ['telemetry', 'c2d', 'methods', 'twin'] },
  outbox: {},
});
const device = client as DeviceClient;
device.on('error', () => undefined);
device.on('message', (message) => void message.complete().catch(() => undefined));
device.onMethod('ping', () => ({ status: 200, payload: 'pong' }));
device.on('desired', () => undefined);
await device.sendEvent('before');
say('ready');
await lines.next();
say(`closing in state ${device.state}`);
await device.close();
say('closed');
// Well under the soak's 15 s, and above the SDK's longest retry wait (5 s), which one armed
// before close may still sit out.
exitIfHeldAfter(8_000);
