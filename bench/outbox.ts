// Outbox cost: MQTT telemetry throughput of the plain client, the in-memory outbox and the
// durable outbox (outbox.dir, fsync group commits) in the same run, each keeping 16 sends in
// flight (sendEvent resolves on the hub's acknowledgement in all three). The hub runs in a child
// process (pinned to CPU 0 when taskset exists, this process to CPU 1). Runs alternate
// plain / memory / durable for several rounds and the medians are compared, so drift in the
// machine's load hits all three alike.
//
//   node --conditions=source --import tsx bench/outbox.ts [seconds per run] [rounds]
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect, type DeviceClient, type OutboxOptions } from '@switchyard/device';

interface HubInfo { hostName: string; address: string; ports: { mqtt: number; amqp: number; https: number }; ca: string; devices: Record<string, string> }

const seconds = Number(process.argv[2] ?? '3');
const rounds = Number(process.argv[3] ?? '3');
const WINDOW = 16;
const payload = Buffer.alloc(100, 'x');
const loadBefore = loadavg()[0]!;
const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
if (hasTaskset) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

const script = fileURLToPath(new URL('./hub-process.ts', import.meta.url));
const args = ['--conditions=source', '--import', 'tsx', script, '5'];
const hubChild = hasTaskset ? spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
const hubLines = createInterface({ input: hubChild.stdout! });
const [line] = (await once(hubLines, 'line')) as [string];
const hub = JSON.parse(line) as HubInfo;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-outbox-'));

async function client(index: number, outbox: OutboxOptions | undefined): Promise<DeviceClient> {
  const id = `bench-${index}`;
  const { client } = await connect({
    connectionString: `HostName=${hub.hostName};DeviceId=${id};SharedAccessKey=${hub.devices[id]}`,
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    profile: { features: ['telemetry'] },
    forceProtocol: 'mqtt',
    ...(outbox === undefined ? {} : { outbox }),
  });
  return client as DeviceClient;
}

/**
 * Messages per second acknowledged with WINDOW sends in flight, after a one-second warm-up, and
 * this process's CPU (user + system) per message meanwhile: on a loaded machine the rate swings
 * with the neighbours, the CPU a message costs much less.
 */
async function measure(device: DeviceClient, withIds: boolean): Promise<{ rate: number; cpuMicros: number }> {
  let running = true;
  let counting = false;
  let acked = 0;
  let failed: unknown;
  const loops: Array<Promise<void>> = [];
  for (let i = 0; i < WINDOW; i++) {
    loops.push(
      (async () => {
        while (running) {
          try {
            await device.sendEvent(withIds ? { body: payload, messageId: randomUUID() } : payload);
          } catch (err) {
            failed = err;
            running = false;
          }
          if (counting) acked++;
        }
      })(),
    );
  }
  await new Promise((r) => setTimeout(r, 1000));
  counting = true;
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const used = process.cpuUsage(cpu);
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  running = false;
  await Promise.all(loops);
  if (failed !== undefined) throw failed;
  return { rate: acked / elapsed, cpuMicros: (used.user + used.system) / acked };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// 'ids' is the plain client given a fresh messageId per message by the caller: what stable ids
// alone cost (a longer MQTT topic for the SDK to build and the hub to parse), outbox or not.
// 'aa' is a second plain client: plain/aa is the noise floor of the same run (A/A).
const kinds = {
  plain: await client(0, undefined),
  aa: await client(4, undefined),
  ids: await client(3, undefined),
  memory: await client(1, {}),
  durable: await client(2, { dir }),
};
const results: Record<keyof typeof kinds, number[]> = { plain: [], aa: [], ids: [], memory: [], durable: [] };
const cpu: Record<keyof typeof kinds, number[]> = { plain: [], aa: [], ids: [], memory: [], durable: [] };
for (let round = 0; round < rounds; round++) {
  for (const kind of Object.keys(kinds) as Array<keyof typeof kinds>) {
    const { rate, cpuMicros } = await measure(kinds[kind], kind === 'ids');
    results[kind].push(rate);
    cpu[kind].push(cpuMicros);
    process.stderr.write(`round ${round + 1} ${kind}: ${Math.round(rate)} msg/s, ${cpuMicros.toFixed(1)} µs CPU/msg\n`);
  }
}
const durableFile = (kinds.durable as unknown as { outbox: { file?: { bytes: number; compactions: number } } }).outbox.file;
for (const device of Object.values(kinds)) await device.close();
hubChild.stdin!.end();
await once(hubChild, 'exit');
rmSync(dir, { recursive: true, force: true });

const plain = median(results.plain);
const summary = {
  protocol: 'mqtt',
  inFlight: WINDOW,
  secondsPerRun: seconds,
  rounds,
  msgsPerSecond: { plain: Math.round(plain), aa: Math.round(median(results.aa)), plainWithIds: Math.round(median(results.ids)), memory: Math.round(median(results.memory)), durable: Math.round(median(results.durable)) },
  ratioVsPlain: { aa: Number((median(results.aa) / plain).toFixed(3)), plainWithIds: Number((median(results.ids) / plain).toFixed(3)), memory: Number((median(results.memory) / plain).toFixed(3)), durable: Number((median(results.durable) / plain).toFixed(3)) },
  ratioVsPlainWithIds: { memory: Number((median(results.memory) / median(results.ids)).toFixed(3)), durable: Number((median(results.durable) / median(results.ids)).toFixed(3)) },
  clientCpuMicrosPerMessage: Object.fromEntries(Object.entries(cpu).map(([kind, xs]) => [kind, Number(median(xs).toFixed(1))])),
  clientCpuVsPlain: { memory: Number((median(cpu.memory) / median(cpu.plain)).toFixed(3)), durable: Number((median(cpu.durable) / median(cpu.plain)).toFixed(3)) },
  durableLog: durableFile,
  taskset: hasTaskset,
  // The machine is shared: the 1-minute load average when the run began and ended.
  loadAverage: { before: Number(loadBefore.toFixed(2)), after: Number(loadavg()[0]!.toFixed(2)) },
};
console.log(JSON.stringify(summary, null, 2));
console.log(`durable outbox / plain client at ${WINDOW} in flight: ${summary.ratioVsPlain.durable.toFixed(3)}x (target >= 0.9x); in-memory outbox: ${summary.ratioVsPlain.memory.toFixed(3)}x; plain client with message ids: ${summary.ratioVsPlain.plainWithIds.toFixed(3)}x; A/A (a second plain client): ${summary.ratioVsPlain.aa.toFixed(3)}x`);
