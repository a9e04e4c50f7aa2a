import { fork } from 'node:child_process';
import azureDevice from 'azure-iot-device';
import azureAmqp from 'azure-iot-device-amqp';
import { createGateway } from './src/index.ts';
const N = Number(process.argv[2]);
const mode = process.argv[3] as 'gateway' | 'raw';
const child = fork(new URL('./.scratch-hub.ts', import.meta.url).pathname, [String(N)], { execArgv: ['--import', 'tsx'] });
const info = await new Promise<any>((r) => child.once('message', r));
global.gc!(); global.gc!();
const before = process.memoryUsage();
const t0 = performance.now();
let close: () => Promise<unknown>;
if (mode === 'gateway') {
  const gw = await createGateway({ env: {}, ca: info.ca, endpoint: { host: info.address, port: info.ports.amqp }, identities: info.css.map(([deviceId, connectionString]: string[]) => ({ deviceId, connectionString })), connectConcurrency: 100 });
  const s = await gw.open();
  if (s.failed.length) console.log('failed', s.failed.length, s.failed[0]);
  close = () => gw.close();
} else {
  const clients: any[] = [];
  const q = [...info.css];
  await Promise.all(Array.from({ length: 50 }, async () => { for (let x = q.shift(); x; x = q.shift()) { const c = azureDevice.Client.fromConnectionString(x[1], azureAmqp.Amqp); await c.setOptions({ ca: info.ca }); await c.open(); clients.push(c); } }));
  close = () => Promise.all(clients.map((c) => c.close()));
}
const t1 = performance.now();
await new Promise((r) => setTimeout(r, 2000));
global.gc!(); global.gc!();
const after = process.memoryUsage();
if (process.env.SNAP) { const v8 = await import('node:v8'); console.log(v8.writeHeapSnapshot('/tmp/gwm/' + mode + '.heapsnapshot')); }
child.send('stats');
const st = await new Promise<any>((r) => child.once('message', r));
console.log(JSON.stringify({ N, mode, connectMs: Math.round(t1 - t0), rssKiBPerId: +((after.rss - before.rss) / N / 1024).toFixed(1), heapKiBPerId: +((after.heapUsed - before.heapUsed) / N / 1024).toFixed(1), externalKiBPerId: +((after.external - before.external) / N / 1024).toFixed(1), hub: st.stats }));
await close();
child.send('close');
