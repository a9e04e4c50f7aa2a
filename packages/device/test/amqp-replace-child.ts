// A device process over AMQP whose first twin request is cut off by a network that drops
// everything (the parent black-holes the connection when told "ready"): the request times out,
// the client replaces the connection, the next twin request is answered on the new one, and
// close() must leave nothing running. Prints each step; an uncaught exception is printed and the
// process goes on, so the parent sees it; if the process is still alive a while after close(),
// it prints the handles and the timers (with where they were set) that hold it, then exits 3.
import { createInterface } from 'node:readline';
import { connect, type DeviceClient } from '../src/internal.ts';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
process.on('uncaughtException', (err: Error) => say(`uncaught ${String(err.stack ?? err).replace(/\s*\n\s*/g, ' | ')}`));

// Node 20 lists a pending timer as 'Timeout' without saying whose: keep where each was set.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
const timers = new Map<NodeJS.Timeout, string>();
globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const where = (new Error().stack ?? '').split('\n').slice(2, 9).map((l) => l.trim()).join(' < ');
  const timer = realSetTimeout(() => {
    timers.delete(timer);
    fn(...args);
  }, ms);
  timers.set(timer, `${ms ?? 0} ms at ${where}`);
  return timer;
}) as typeof setTimeout;
globalThis.clearTimeout = ((timer?: NodeJS.Timeout | string | number) => {
  if (typeof timer === 'object') timers.delete(timer);
  realClearTimeout(timer);
}) as typeof clearTimeout;

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
realSetTimeout(() => {
  const held = [...timers].filter(([t]) => t.hasRef()).map(([, where]) => where);
  say(`held ${JSON.stringify(process.getActiveResourcesInfo())} ${JSON.stringify(held)}`);
  process.exit(3);
}, 8_000).unref();
