// One client alone against a hub of its own process, for strace or a --cpu-prof: `variant` as in
// bench/outbox-child.ts, `dir` for durable. Prints CPU µs per message at `window` in flight.
//   node --conditions=source --import tsx bench/outbox-solo.ts <plain|memory|durable> [window = 1] [seconds = 5] [dir]
// With OUTBOX_SOLO_PROFILE=<dir>, a CPU profile of the measured part (not connect or warm-up) goes there.
// Alone on a shared machine its rate swings with the neighbours: for profiles, not for ratios.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect } from '@switchyard/device';
import type { HubInfo } from './overhead-types.ts';

const variant = process.argv[2] ?? 'durable';
const window = Number(process.argv[3] ?? '1');
const seconds = Number(process.argv[4] ?? '5');
const dir = process.argv[5] ?? mkdtempSync(join(tmpdir(), 'switchyard-outbox-solo-'));
// Beside this file, or (bundled to run without tsx) under bench/ of the working directory.
const hubScript = [fileURLToPath(new URL('./hub-process.ts', import.meta.url)), join(process.cwd(), 'bench', 'hub-process.ts')].find((p) => existsSync(p))!;
const hubArgs = ['--conditions=source', '--import', 'tsx', hubScript, '1'];
const hubChild = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0 ? spawn('taskset', ['-c', '0', process.execPath, ...hubArgs], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(process.execPath, hubArgs, { stdio: ['pipe', 'pipe', 'inherit'] });
const [line] = (await once(createInterface({ input: hubChild.stdout! }), 'line')) as [string];
const hub = JSON.parse(line) as HubInfo;
const { client } = await connect({
  connectionString: `HostName=${hub.hostName};DeviceId=bench-0;SharedAccessKey=${hub.devices['bench-0']}`,
  ca: hub.ca,
  endpoint: { host: hub.address, ports: hub.ports },
  profile: { protocols: ['mqtt'], features: ['telemetry'], c2d: 'none' },
  forceProtocol: 'mqtt',
  ...(variant === 'memory' ? { outbox: {} } : variant === 'durable' ? { outbox: { dir } } : {}),
});
const payload = Buffer.alloc(100, 'x');
async function run(ms: number): Promise<{ n: number; cpu: number }> {
  let stop = false;
  let n = 0;
  setTimeout(() => (stop = true), ms);
  const before = process.cpuUsage();
  await Promise.all(Array.from({ length: window }, async () => {
    while (!stop) {
      await client.sendEvent(payload);
      n++;
    }
  }));
  const used = process.cpuUsage(before);
  return { n, cpu: (used.user + used.system) / n };
}
await run(2000);
const profileDir = process.env.OUTBOX_SOLO_PROFILE;
const session = profileDir === undefined ? undefined : new Session();
if (session !== undefined) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
// OUTBOX_SOLO_HEAP=<dir>: a sampled allocation profile (garbage included) of the measured part instead;
// with OUTBOX_SOLO_MINOR=0 only what outlived a scavenge (or was allocated old), which is what the GC copies.
const heapDir = process.env.OUTBOX_SOLO_HEAP;
const heap = heapDir === undefined ? undefined : new Session();
if (heap !== undefined) {
  heap.connect();
  await heap.post('HeapProfiler.enable');
  await heap.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.OUTBOX_SOLO_MINOR !== "0" } as never);
}
const { n, cpu } = await run(seconds * 1000);
if (heap !== undefined && heapDir !== undefined) {
  const { profile } = await heap.post('HeapProfiler.stopSampling');
  mkdirSync(heapDir, { recursive: true });
  writeFileSync(join(heapDir, `${variant}-w${window}.heapprofile`), JSON.stringify(profile));
  writeFileSync(join(heapDir, `${variant}-w${window}.json`), JSON.stringify({ messages: n, cpuMicrosPerMessage: cpu }));
}
if (session !== undefined && profileDir !== undefined) {
  const { profile } = await session.post('Profiler.stop');
  mkdirSync(profileDir, { recursive: true });
  writeFileSync(join(profileDir, `${variant}-w${window}.cpuprofile`), JSON.stringify(profile));
  writeFileSync(join(profileDir, `${variant}-w${window}.json`), JSON.stringify({ messages: n, cpuMicrosPerMessage: cpu }));
}
console.log(`${variant} W=${window}: ${(n / seconds).toFixed(0)} msg/s, ${cpu.toFixed(1)} µs CPU/msg`);
await client.close();
hubChild.stdin!.end();
await once(hubChild, 'exit');
if (process.argv[5] === undefined) rmSync(dir, { recursive: true, force: true });
