// What the durable outbox costs the CPU per message without a network: N sends (100-byte bodies,
// 16 in flight, as bench/outbox.ts drives them) through an Outbox over a host that acknowledges
// every attempt on the next turn, in memory and with `dir`, rounds interleaved. Prints µs of
// process CPU (user + system) per message and the durable - memory difference, which is the log.
// A measuring script, not a test.
//   node --conditions=source --import tsx bench/outbox-log-cost.ts [messages = 50000] [rounds = 5] [only: memory | durable | both] [window = 16]
// (`only` runs one kind, for a --cpu-prof of it alone.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceMessage } from '@switchyard/device';
import { Outbox, type OutboxHost } from '@switchyard/device/internal';
import { median } from './stats.ts';

const n = Number(process.argv[2] ?? '50000');
const rounds = Number(process.argv[3] ?? '5');
const only = process.argv[4];
const WINDOW = Number(process.argv[5] ?? '16');
const payload = Buffer.alloc(100, 'x');

class AckingHost implements OutboxHost {
  readonly protocol = 'mqtt' as const;
  readonly clock: OutboxHost['clock'] = {
    now: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined),
  };
  readonly identity = undefined;
  attempt(_message: DeviceMessage, done: (err?: unknown) => void): void {
    setImmediate(done);
  }
  dropped(): void {}
}

async function run(dir: string | undefined): Promise<number> {
  const outbox = (await Outbox.open(dir === undefined ? {} : { dir })).bind(new AckingHost());
  outbox.resume();
  const before = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next < n) {
        next++;
        await outbox.send('sendEvent', [payload], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' });
      }
    }),
  );
  const used = process.cpuUsage(before);
  await outbox.close();
  return (used.user + used.system) / n;
}

const results: { memory: number[]; durable: number[] } = { memory: [], durable: [] };
for (let round = 0; round < rounds; round++) {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-outbox-cost-'));
  if (only !== 'durable') results.memory.push(await run(undefined));
  if (only !== 'memory') results.durable.push(await run(dir));
  rmSync(dir, { recursive: true, force: true });
  process.stderr.write(`round ${round + 1}: memory ${results.memory.at(-1)?.toFixed(2) ?? '-'} µs/msg, durable ${results.durable.at(-1)?.toFixed(2) ?? '-'} µs/msg\n`);
}
const memory = median(results.memory);
const durable = median(results.durable);
console.log(JSON.stringify({ messages: n, rounds, cpuMicrosPerMessage: { memory: Number(memory.toFixed(2)), durable: Number(durable.toFixed(2)), log: Number((durable - memory).toFixed(2)) } }, null, 2));
