// Runs a local hub in its own process for benchmarks, so the hub and the load generator do not
// share an event loop (or, with taskset, a core). Prints one JSON line when ready; exits on
// SIGTERM or when its parent's stdin closes. With --control it also takes requests on stdin.
import { startLocalHub } from '@switchyard/local-hub';

const count = Number(process.argv[2] ?? '1');
const hub = await startLocalHub({ inMemory: true });
const devices: Record<string, string> = {};
for (let i = 0; i < count; i++) {
  const id = `bench-${i}`;
  const record = hub.createDevice(id);
  if (record.authentication.type !== 'sas') throw new Error('expected a SAS device');
  devices[id] = record.authentication.primaryKey;
}
process.stdout.write(JSON.stringify({ hostName: hub.hostName, address: hub.address, ports: hub.ports, ca: hub.ca, devices }) + '\n');
// --control: also serve the soak's JSON-line requests on stdin (bench/hub-control.ts).
if (process.argv.includes('--control')) {
  const { serveControl } = await import('./hub-control.ts');
  serveControl(hub, process.stdin, (line) => process.stdout.write(line));
}

// On the way out, report what the hub itself accepted, so a benchmark can check its own count.
const stop = async (): Promise<void> => {
  const received = hub.listDevices().reduce((sum, d) => sum + hub.counters(d.deviceId).telemetryReceived, 0);
  process.stdout.write(JSON.stringify({ telemetryReceived: received }) + '\n');
  await hub.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.resume();
