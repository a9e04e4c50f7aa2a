// A lean AMQP gateway process put through faults by its parent, then closed: it must exit by
// itself. Prints each step; an uncaught exception is printed and the process goes on; if it is
// still alive a while after close(), it prints the handles and the timers (with where they were
// set) that hold it, then exits 3.
import { createInterface } from 'node:readline';
import { createGateway } from '../src/index.ts';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
process.on('uncaughtException', (err: Error) => say(`uncaught ${String(err.stack ?? err).replace(/\s*\n\s*/g, ' | ')}`));

// Node 20 lists a pending timer as 'Timeout' without saying whose: keep where each was set.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
const timers = new Map<NodeJS.Timeout, string>();
globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const where = (new Error().stack ?? '').split('\n').slice(2, 10).map((l) => l.trim()).join(' < ');
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

const [identitiesJson, ca, host, ports, protocol] = process.argv.slice(2) as [string, string, string, string, 'amqp' | 'amqp-ws'];
const identities = JSON.parse(identitiesJson) as Array<{ deviceId: string; connectionString: string }>;
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

const gateway = await createGateway({ protocol, env: {}, ca, endpoint: { host, ports: JSON.parse(ports) as Record<string, number> }, identities });
gateway.on('identity-error', () => undefined);
await gateway.open();
const devices = identities.map(({ deviceId }) => gateway.get(deviceId)!.device);
/** One telemetry message and one reported patch per identity; true when every one was answered. */
const work = async (n: number): Promise<boolean> => {
  const results = await Promise.allSettled(devices.flatMap((d) => [d.sendEvent(`m${n}`, { timeoutMs: 10_000 }), d.updateReported({ n }, { timeoutMs: 10_000 })]));
  return results.every((r) => r.status === 'fulfilled');
};
await work(0);
say('ready');
for (let step = 1; ; step++) {
  const line = await lines.next();
  if (line.done === true || line.value === 'close') break;
  const answered = await work(step);
  say(`step ${step}${answered ? ' all answered' : ''}`);
}
input.close();
process.stdin.destroy();
await gateway.close();
say('closed');
realSetTimeout(() => {
  const held = [...timers].filter(([t]) => t.hasRef()).map(([, where]) => where);
  say(`held ${JSON.stringify(process.getActiveResourcesInfo())} ${JSON.stringify(held)}`);
  process.exit(3);
}, 8_000).unref();
