// The Switchyard demo: an IoT Hub on loopback (real TLS, all five protocols), and four devices
// that each describe themselves in a capability profile and get the protocol that fits. Each
// device exchanges telemetry and cloud-to-device messages, and, where its protocol allows,
// twin updates and a direct method call. Ends with a summary table.
//
//   npm run demo
import { connect, type DeviceClient } from '@switchyard/device';
import { startLocalHub, type LocalHub } from '@switchyard/local-hub';
import type { Decision } from '@switchyard/selector';
import { batterySensor } from '../devices/battery-sensor.ts';
import { commandValidator } from '../devices/command-validator.ts';
import type { ExampleDevice } from '../devices/example-device.ts';
import { firewalledMeter } from '../devices/firewalled-meter.ts';
import { rarelyConnected } from '../devices/rarely-connected.ts';

const DEVICES: ExampleDevice[] = [batterySensor, firewalledMeter, commandValidator, rarelyConnected];
const STEP_TIMEOUT_MS = 20_000;

const colour = process.stdout.isTTY && !process.env.NO_COLOR;
const dim = (s: string): string => (colour ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string): string => (colour ? `\x1b[1m${s}\x1b[0m` : s);

interface Row {
  device: string;
  protocol: string;
  telemetry: string;
  c2d: string;
  twin: string;
  method: string;
  result: 'ok' | 'FAILED';
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function featureOf(decision: Decision, feature: string): boolean {
  return (decision.profile.features as string[]).includes(feature);
}

/** The cloud side of the demo for one device: what a back end would do through the service API. */
async function exercise(hub: LocalHub, example: ExampleDevice, client: DeviceClient, decision: Decision, log: (m: string) => void): Promise<Omit<Row, 'device' | 'protocol' | 'result'>> {
  const id = client.deviceId;
  const expectedTelemetry = example === rarelyConnected ? 5 : example === batterySensor ? 3 : 1;
  const telemetry = await until('telemetry', () => (hub.telemetry({ deviceId: id }).length >= expectedTelemetry ? hub.telemetry({ deviceId: id }).length : undefined));

  let c2d: string;
  if (example === commandValidator) {
    hub.sendC2D(id, { body: Buffer.from(JSON.stringify({ command: 'open' })), messageId: 'cmd-1' });
    hub.sendC2D(id, { body: Buffer.from('{"command": 42'), messageId: 'cmd-2' });
    await until('one completion and one rejection', () => {
      const c = hub.counters(id);
      return c.c2dCompleted >= 1 && c.c2dRejected >= 1 ? true : undefined;
    });
    c2d = '1 completed, 1 rejected';
  } else {
    hub.sendC2D(id, { body: Buffer.from(example === rarelyConnected ? 'upload-logs' : 'calibrate'), properties: { priority: 'low' } });
    await until('C2D completion', () => (hub.counters(id).c2dCompleted >= 1 ? true : undefined));
    c2d = example === rarelyConnected ? `1 completed (${hub.counters(id).httpsC2DPolls} polls)` : '1 completed';
  }

  let twin = 'n/a over ' + decision.protocol;
  if (featureOf(decision, 'twin')) {
    await until('reported properties', () => (Object.keys(hub.readTwin(id).reported).some((k) => !k.startsWith('$')) ? true : undefined));
    const seen: Array<Record<string, unknown>> = [];
    client.on('desired', (patch) => seen.push(patch));
    // The SDK subscribes to desired changes in the background; resend until the device hears one.
    let n = 0;
    await until('desired notification', () => {
      if (seen.length > 0) return true;
      if (n++ % 10 === 0) hub.updateDesired(id, { sampleIntervalSeconds: 60 });
      return undefined;
    });
    twin = 'reported + desired';
  }

  let method = featureOf(decision, 'methods') ? '' : 'n/a';
  if (featureOf(decision, 'methods')) {
    const name = example === commandValidator ? 'setpoint' : 'reboot';
    const result = await until(`method ${name}`, async () => {
      try {
        return await hub.invokeMethod(id, { methodName: name, payload: { value: 42 }, responseTimeoutInSeconds: 5 });
      } catch {
        return undefined; // 404103 until the device has subscribed to methods
      }
    });
    method = `${name} → ${result.status}`;
  }
  log(dim(`hub saw ${telemetry} message(s); C2D ${c2d}; twin ${twin}; method ${method}`));
  return { telemetry: `${telemetry} sent`, c2d, twin, method };
}

async function runDevice(hub: LocalHub, example: ExampleDevice): Promise<Row> {
  const id = example.name;
  hub.createDevice(id);
  const log = (m: string): void => console.log(`  ${bold(id.padEnd(18))} ${m}`);
  const { client, decision } = await connect({
    connectionString: hub.deviceConnectionString(id),
    profile: example.profile,
    ca: hub.ca,
    // The hub listens on ephemeral loopback ports; `localhost` is in its certificate.
    endpoint: { host: 'localhost', ports: hub.ports },
  });
  log(`${example.story}`);
  log(`→ ${bold(decision.protocol)} on port ${decision.port}: ${decision.because[0] ?? ''}`);
  for (const r of decision.rejected.slice(0, 2)) log(dim(`  not ${r.protocol}: ${r.reasons.map((x) => x.message).join('; ')}`));
  for (const w of decision.warnings) log(dim(`  warning: ${w}`));

  const stop = new AbortController();
  const device = example.run(client, { log, signal: stop.signal });
  try {
    const outcome = await Promise.race([exercise(hub, example, client, decision, log), device.then(() => { throw new Error('device stopped early'); })]);
    return { device: id, protocol: decision.protocol, ...outcome, result: 'ok' };
  } catch (err) {
    log(`FAILED: ${(err as Error).message}`);
    return { device: id, protocol: decision.protocol, telemetry: '', c2d: '', twin: '', method: '', result: 'FAILED' };
  } finally {
    stop.abort();
    await device.catch(() => undefined);
    await client.close();
  }
}

function table(rows: Row[]): string {
  const headers: Array<[keyof Row, string]> = [['device', 'device'], ['protocol', 'protocol'], ['telemetry', 'telemetry'], ['c2d', 'cloud-to-device'], ['twin', 'twin'], ['method', 'direct method'], ['result', 'result']];
  const widths = headers.map(([k, h]) => Math.max(h.length, ...rows.map((r) => r[k].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(headers.map(([, h]) => h)), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(headers.map(([k]) => r[k])))].join('\n');
}

const started = Date.now();
const hub = await startLocalHub({ inMemory: true });
console.log(`${bold('Local IoT Hub')} ${hub.hostName} on ${hub.address}: MQTT :${hub.ports.mqtt}, AMQP :${hub.ports.amqp}, HTTPS + WebSockets :${hub.ports.https} (TLS, own CA)\n`);
const rows: Row[] = [];
try {
  for (const example of DEVICES) {
    rows.push(await runDevice(hub, example));
    console.log('');
  }
} finally {
  await hub.close();
}
console.log(table(rows));
console.log(`\n${rows.filter((r) => r.result === 'ok').length}/${rows.length} devices ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exitCode = rows.every((r) => r.result === 'ok') ? 0 : 1;
