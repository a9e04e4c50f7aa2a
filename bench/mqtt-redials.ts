// How often an MQTT client reconnects through one window fault, and which SDK path dials each
// time (soak item 5). One client against a local hub in this process: telemetry at 5 msg/s
// through an outbox, a C2D listener, a method handler and a reported-twin patch every 5 s, as the
// soak's clients; after 2 s the hub gets the fault for `seconds`, then the load stops and the
// outbox drains.
// Prints, per dial path (the first frames of the stack at the transport call that dialled), how
// many dials it made, then a JSON line with the counts.
//
//   node --conditions=source --import tsx bench/mqtt-redials.ts [fault] [seconds] [mqtt|mqtt-ws]
import { createRequire } from 'node:module';
import { silentLogger, startLocalHub, type FaultInjection } from '@switchyard/local-hub';
import { connect, type StateChange } from '@switchyard/device';

const fault = (process.argv[2] ?? 'InvokeThrottling') as FaultInjection['type'];
const seconds = Number(process.argv[3] ?? 20);
const protocol = (process.argv[4] ?? 'mqtt') as 'mqtt' | 'mqtt-ws';

// Every path that dials calls the transport in its `disconnected` state (or connect itself).
const require = createRequire(import.meta.url);
const { Mqtt } = require('azure-iot-device-mqtt') as { Mqtt: { prototype: Record<string, unknown> } };
const dialPaths = new Map<string, number>();
for (const method of ['connect', 'sendEvent', 'updateTwinReportedProperties', 'getTwin', 'enableC2D', 'enableMethods', 'enableTwinDesiredPropertiesUpdates', 'sendMethodResponse']) {
  const original = Mqtt.prototype[method];
  if (typeof original !== 'function') continue;
  Mqtt.prototype[method] = function (this: { _fsm?: { state?: string } }, ...args: unknown[]) {
    const state = this._fsm?.state;
    if (state === 'disconnected') {
      const frames = (new Error().stack ?? '').split('\n').slice(2, 5).map((line) => line.trim().replace(/^at /, '').replace(/\(?\/.*node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?/, '('));
      const key = `${method}: ${frames.join(' <- ')}`;
      dialPaths.set(key, (dialPaths.get(key) ?? 0) + 1);
    }
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
}

const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
const deviceId = 'redials';
hub.createDevice(deviceId);
const { client } = await connect({
  connectionString: hub.deviceConnectionString(deviceId),
  ca: hub.ca,
  endpoint: { host: hub.address, ports: hub.ports },
  forceProtocol: protocol,
  profile: { features: ['telemetry', 'c2d', 'twin', 'methods'] },
  outbox: {},
});
let reconnects = 0;
client.on('state', (change: StateChange) => {
  if (change.to === 'connected') reconnects++;
});
client.on('error', () => undefined);
client.on('message', (message) => void message.complete().catch(() => undefined));
client.onMethod('ping', () => ({ status: 200 }));
let sent = 0;
let acked = 0;
const load = setInterval(() => {
  client.sendEvent({ body: Buffer.alloc(200, 120), messageId: `m${sent++}` }, { timeoutMs: 900_000 }).then(() => acked++, () => undefined);
}, 200);
const twin = setInterval(() => void client.updateReported({ at: Date.now() }, { timeoutMs: 10_000 }).catch(() => undefined), 5_000);
await new Promise((resolve) => setTimeout(resolve, 2_000));
const ended = new Promise<void>((resolve) => hub.faults.on('fault', (e) => e.fault === fault && e.phase === 'ended' && resolve()));
const started = Date.now();
hub.faults.inject(deviceId, { type: fault, durationSeconds: seconds } as FaultInjection);
await ended;
const windowMs = Date.now() - started;
const inWindow = reconnects;
clearInterval(load);
clearInterval(twin);
await client.outbox!.drain();
await new Promise((resolve) => setImmediate(resolve));
for (const [path, count] of [...dialPaths].sort((a, b) => b[1] - a[1])) console.log(String(count).padStart(5), path);
console.log(JSON.stringify({ protocol, fault, windowMs, reconnectsInWindow: inWindow, reconnects, sent, acked }));
await client.close();
await hub.close();
