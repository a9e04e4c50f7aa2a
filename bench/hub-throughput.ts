// Hub throughput: QoS 1 MQTT telemetry from 1 and from 100 devices, each keeping a fixed window
// of unacknowledged publishes. The hub runs in a child process (pinned to CPU 0 when taskset
// exists) and this process drives raw MQTT clients (pinned to CPU 1), so the number reflects
// the hub rather than a shared event loop. Later benchmarks use it to show the hub is not their
// bottleneck.
//
//   pnpm --filter @switchyard/bench hub-throughput [seconds]
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { deviceSasToken } from './sas.ts';

interface HubInfo { hostName: string; address: string; ports: { mqtt: number }; ca: string; devices: Record<string, string> }

const seconds = Number(process.argv[2] ?? '10');
const window = 16;
const payload = Buffer.alloc(100, 'x');
const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
if (hasTaskset) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

async function startHub(devices: number): Promise<{ info: HubInfo; stop: () => Promise<number> }> {
  const script = fileURLToPath(new URL('./hub-process.ts', import.meta.url));
  const args = ['--import', 'tsx', script, String(devices)];
  const child = hasTaskset ? spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  const stop = async (): Promise<number> => {
    const last = once(lines, 'line') as Promise<[string]>;
    child.stdin!.end();
    const [report] = await last;
    await once(child, 'exit');
    return (JSON.parse(report) as { telemetryReceived: number }).telemetryReceived;
  };
  return { info: JSON.parse(line) as HubInfo, stop };
}

async function run(devices: number): Promise<{ devices: number; msgsPerSecond: number; acked: number; sent: number; hubReceived: number }> {
  const hub = await startHub(devices);
  const { info } = hub;
  const clients = await Promise.all(Object.entries(info.devices).map(async ([id, key]) => {
    const client = mqtt.connect({
      protocol: 'mqtts', host: info.address, port: info.ports.mqtt, servername: info.hostName, ca: info.ca,
      clientId: id, username: `${info.hostName}/${id}/?api-version=2021-04-12`, password: deviceSasToken(info.hostName, id, key),
      protocolVersion: 4, clean: true, reconnectPeriod: 0, keepalive: 180,
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    return { id, client };
  }));

  let acked = 0;
  let ackedTotal = 0;
  let counting = false;
  let running = true;
  const pump = (id: string, client: mqtt.MqttClient): void => {
    if (!running) return;
    client.publish(`devices/${id}/messages/events/`, payload, { qos: 1 }, (err) => {
      if (err) { running = false; return; }
      ackedTotal++;
      if (counting) acked++;
      pump(id, client);
    });
  };
  for (const { id, client } of clients) for (let i = 0; i < window; i++) pump(id, client);
  await new Promise((r) => setTimeout(r, 2000)); // warm-up: JIT, TLS buffers
  counting = true;
  const started = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  running = false;
  await Promise.all(clients.map(({ client }) => client.endAsync()));
  const hubReceived = await hub.stop();
  return { devices, msgsPerSecond: Math.round(acked / elapsed), acked, sent: ackedTotal, hubReceived };
}

console.log(`hub throughput: QoS 1 MQTT telemetry, ${payload.length} B payload, window ${window} per device, ${seconds} s per cell`);
console.log(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, taskset ${hasTaskset ? 'hub on CPU 0, clients on CPU 1' : 'not available'}`);
for (const n of [1, 100]) {
  const r = await run(n);
  // Every PUBACK the clients saw must match a message the hub recorded, or the rate means nothing.
  const check = r.hubReceived === r.sent ? 'hub count matches' : `MISMATCH: hub recorded ${r.hubReceived}`;
  console.log(`devices=${String(r.devices).padStart(3)}  msgs/s=${String(r.msgsPerSecond).padStart(7)}  acked in window=${r.acked}  acked in all=${r.sent} (${check})`);
}
