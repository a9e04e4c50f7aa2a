// A lean AMQP gateway process put through faults by its parent, then closed: it must exit by
// itself. Prints each step; an uncaught exception is printed and the process goes on; if it is
// still alive a while after close(), it prints the handles and the timers (with where they were
// set) that hold it, then exits 3.
import { exitIfHeldAfter, say } from '../../../test/support/exit-watch.ts';
import { createInterface } from 'node:readline';
import { createGateway } from '../src/index.ts';

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
exitIfHeldAfter(8_000);
