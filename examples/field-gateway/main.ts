// A field gateway: downstream sensors that cannot reach IoT Hub themselves hand their readings to
// this process, which sends each one as telemetry of that sensor's own identity and hands cloud
// commands addressed to a sensor back to it. Which protocol carries them is configuration only:
// SWITCHYARD_PROTOCOL, or the profile in SWITCHYARD_PROFILE (default profiles/relay.json next to
// this file). Over AMQP and AMQP-WS every sensor shares one connection; over MQTT each gets its own.
//
//   node --import tsx examples/field-gateway/main.ts [--sensors 100] [--seconds 10] [--json]
//   SWITCHYARD_PROTOCOL=mqtt node --import tsx examples/field-gateway/main.ts
//   node --import tsx examples/field-gateway/main.ts --identities devices.json [--ca hub-ca.pem]
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isSwitchyardError, redactSecrets } from '@switchyard/errors';
import { createGateway, type Gateway, type GatewayIdentityInput, type GatewayOptions } from '@switchyard/gateway';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { loadProfile } from '@switchyard/profile';

const USAGE = `usage: node --import tsx examples/field-gateway/main.ts [options]
  --sensors N        downstream sensors on the embedded hub (default 100)
  --seconds S        how long to relay before the summary (default 10)
  --interval-ms MS   each sensor's reading interval (default 3000)
  --identities FILE  relay for these identities on a real hub instead of the embedded one: a JSON
                     array of device connection strings or of { deviceId, connectionString }
  --ca FILE          PEM of the hub's CA, when it is not in Node's store
  --json             print only the summary, as JSON
Protocol: SWITCHYARD_PROTOCOL=amqp|amqp-ws|mqtt, or SWITCHYARD_PROFILE=<profile.json>
(default ${'examples/field-gateway/profiles/relay.json'}).`;

const DEFAULT_PROFILE = fileURLToPath(new URL('./profiles/relay.json', import.meta.url));
// Waits that end the run even when the hub or the network stops answering.
const DRAIN_MS = 10_000;

interface SensorTally {
  deviceId: string;
  relayed: number;
  sendFailures: number;
  received: number;
  commands: number;
}

export interface FieldGatewaySummary {
  hub: 'embedded' | 'external';
  protocol: string;
  multiplexed: boolean;
  /** The selector's reasons for the protocol, then its warnings (why multiplexing was lost). */
  because: string[];
  warnings: string[];
  profile: string;
  sensors: number;
  seconds: number;
  intervalMs: number;
  connectMs: number;
  /** Connections the hub counted for this protocol once every sensor was up (external hub: the gateway's own count). */
  connectionsOpened: number;
  connectionsSource: 'hub stats' | 'gateway';
  /** Distinct hub connection ids carrying the sensors (embedded hub only). */
  distinctConnectionIds: number | null;
  identitiesConnected: number;
  failedIdentities: Array<{ deviceId: string; code: string }>;
  readings: { relayed: number; sendFailures: number; receivedByHub: number | null; misattributed: number | null };
  c2d: { sent: number | null; delivered: number; misrouted: number };
  perSensor: SensorTally[];
}

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) fail(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

function readIdentities(file: string): GatewayIdentityInput[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`--identities ${file}: cannot read it as JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) fail(`--identities ${file}: must be a non-empty JSON array`);
  return parsed.map((entry: unknown, index): GatewayIdentityInput => {
    if (typeof entry === 'string') {
      const deviceId = /(?:^|;)DeviceId=([^;]+)/.exec(entry)?.[1];
      if (deviceId === undefined) fail(`--identities ${file}: entry ${index} has no DeviceId=`);
      return { deviceId, connectionString: entry };
    }
    const candidate = entry as Partial<GatewayIdentityInput> | null;
    if (typeof candidate?.deviceId !== 'string' || typeof candidate.connectionString !== 'string') {
      fail(`--identities ${file}: entry ${index} must be a connection string or { "deviceId", "connectionString" }`);
    }
    return { deviceId: candidate.deviceId, connectionString: candidate.connectionString };
  });
}

function errorCode(err: unknown): string {
  return isSwitchyardError(err) ? err.code : (err as Error)?.name ?? 'Error';
}

/** Polls until `done()` or `ms` elapse; the caller reports whatever was reached. */
async function settle(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(50);
}

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<FieldGatewaySummary> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      sensors: { type: 'string' },
      seconds: { type: 'string' },
      'interval-ms': { type: 'string' },
      identities: { type: 'string' },
      ca: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (flags.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const json = flags.json;
  // With --json, stdout carries the summary alone; the running commentary goes to stderr.
  const say = (line: string): void => void (json ? process.stderr : process.stdout).write(`${line}\n`);
  const seconds = positive('seconds', flags.seconds, 10);
  const intervalMs = positive('interval-ms', flags['interval-ms'], 3_000);
  const sensorCount = Math.floor(positive('sensors', flags.sensors, 100));
  const profile = env.SWITCHYARD_PROFILE ?? DEFAULT_PROFILE;

  let hub: LocalHub | undefined;
  let identities: GatewayIdentityInput[];
  const options: Omit<GatewayOptions, 'identities'> = { env };
  if (flags.identities !== undefined) {
    identities = readIdentities(flags.identities);
    if (flags.ca !== undefined) options.ca = readFileSync(flags.ca, 'utf8');
  } else {
    hub = await startLocalHub({ inMemory: true, logger: silentLogger });
    identities = [];
    for (let i = 1; i <= sensorCount; i++) {
      const deviceId = `sensor-${String(i).padStart(3, '0')}`;
      hub.createDevice(deviceId);
      // The plain form a real hub's registry hands out (no GatewayHostName): `endpoint` says where to dial.
      identities.push({ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp-ws' }) });
    }
    options.ca = hub.ca;
    options.endpoint = { host: hub.address, ports: { ...hub.ports } };
  }

  // The profile names a typical sensor count; the decision record should quote the real one.
  options.profile = { ...(await loadProfile(profile)), identities: Math.max(2, identities.length) };

  const tallies = new Map<string, SensorTally>(identities.map(({ deviceId }) => [deviceId, { deviceId, relayed: 0, sendFailures: 0, received: 0, commands: 0 }]));
  let misattributed = 0;
  const stopHubTap = hub?.onTelemetry((record) => {
    const tally = tallies.get(record.deviceId);
    let sensor: unknown;
    try {
      sensor = (JSON.parse(record.body.toString()) as { sensor?: unknown }).sensor;
    } catch {
      sensor = undefined;
    }
    // The hub attributes a message to the identity that authenticated the link it came on; the
    // body names the sensor the gateway meant. They must agree.
    if (tally && sensor === record.deviceId) tally.received++;
    else misattributed++;
  });

  let gateway: Gateway | undefined;
  try {
    gateway = await createGateway({ ...options, identities });
    const gw = gateway;
    say(`field gateway: ${identities.length} sensors over ${gw.protocol} (${gw.multiplexed ? 'multiplexed' : 'one connection per sensor'}), profile ${profile}`);
    for (const reason of gw.decision.because.slice(0, 2)) say(`  because ${reason}`);
    for (const warning of gw.decision.warnings) say(`  warning: ${warning}`);
    gw.on('identity-error', ({ deviceId, error }) => say(`  ${deviceId}: ${error.code} ${redactSecrets(error.message)}`));

    const connectStart = performance.now();
    const opened = await gw.open();
    const connectMs = Math.round(performance.now() - connectStart);
    const failedIdentities = opened.failed.map(({ deviceId, error }) => ({ deviceId, code: error.code }));
    const live = opened.connected;
    say(`  ${live.length} connected in ${connectMs} ms${failedIdentities.length ? `, ${failedIdentities.length} failed` : ''}`);

    // Sampled now, while every sensor is up and before anything closes.
    let connectionsOpened = gw.connections().length;
    let distinctConnectionIds: number | null = null;
    let identitiesConnected = live.filter((id) => gw.get(id)?.state === 'connected').length;
    if (hub) {
      const stats = hub.stats();
      const ours = stats.connectedIdentities.filter((s) => s.protocol === gw.protocol && tallies.has(s.deviceId));
      connectionsOpened = stats.connections[gw.protocol as keyof typeof stats.connections];
      distinctConnectionIds = new Set(ours.map((s) => s.connectionId)).size;
      identitiesConnected = new Set(ours.map((s) => s.deviceId)).size;
    }

    const intervals = new Map<string, number>(live.map((id) => [id, intervalMs]));
    let delivered = 0;
    let misrouted = 0;
    for (const deviceId of live) {
      gw.get(deviceId)!.device.on('message', (message) => {
        const body = message.body.toString();
        const addressee = message.properties.to;
        if (addressee !== undefined && addressee !== deviceId) misrouted++;
        delivered++;
        tallies.get(deviceId)!.commands++;
        say(`  [c2d] ${deviceId} <- ${body}`);
        // A sensor command the gateway can act on locally: the reading interval.
        try {
          const command = JSON.parse(body) as { command?: unknown; intervalMs?: unknown };
          if (command.command === 'set-interval' && typeof command.intervalMs === 'number' && command.intervalMs >= 100) intervals.set(deviceId, command.intervalMs);
        } catch {
          // Not JSON: printed above, nothing to apply.
        }
        message.complete().catch((err: unknown) => say(`  ${deviceId}: completing a command failed: ${errorCode(err)}`));
      });
    }

    const stop = new AbortController();
    // Every sensor loop and the back end wait on this one signal.
    setMaxListeners(live.length + 10, stop.signal);
    const runMs = seconds * 1_000;
    const endAt = Date.now() + runMs;
    // Each sensor's first reading lands inside the first interval (and early in a short run), so
    // every sensor is heard from at least once; the cap bounds the loop even with a fast interval.
    const maxReadings = Math.ceil(runMs / 100) + 1;
    const sensorLoop = async (deviceId: string): Promise<void> => {
      const tally = tallies.get(deviceId)!;
      const device = gw.get(deviceId)!.device;
      await sleep(Math.random() * Math.min(intervalMs, runMs / 2), undefined, { signal: stop.signal }).catch(() => undefined);
      for (let n = 0; n < maxReadings; n++) {
        const reading = { sensor: deviceId, seq: n, temperature: Math.round((18 + Math.random() * 8) * 10) / 10, at: new Date().toISOString() };
        try {
          await device.sendEvent({ body: reading, properties: { sensor: deviceId } });
          tally.relayed++;
        } catch (err) {
          tally.sendFailures++;
          say(`  ${deviceId}: reading ${n} not relayed: ${errorCode(err)}`);
        }
        if (stop.signal.aborted || Date.now() >= endAt) return;
        await sleep(intervals.get(deviceId) ?? intervalMs, undefined, { signal: stop.signal }).catch(() => undefined);
        if (stop.signal.aborted) return;
      }
    };

    // The back end of the embedded hub: a command about once a second, to sensors spread over the set.
    const commandTargets = hub ? Array.from({ length: Math.max(1, Math.min(live.length, Math.floor(seconds))) }, (_, i) => live[(i * 37) % live.length]!) : [];
    let commandsSent = 0;
    const backEnd = async (): Promise<void> => {
      if (!hub) return;
      const spacing = runMs / (commandTargets.length + 1);
      for (const target of commandTargets) {
        await sleep(spacing, undefined, { signal: stop.signal }).catch(() => undefined);
        if (stop.signal.aborted) return;
        hub.sendC2D(target, { body: Buffer.from(JSON.stringify({ command: 'set-interval', intervalMs: intervalMs * 2 })), properties: { to: target } });
        commandsSent++;
      }
    };

    const progress = setInterval(() => {
      const relayed = [...tallies.values()].reduce((sum, t) => sum + t.relayed, 0);
      const received = hub ? [...tallies.values()].reduce((sum, t) => sum + t.received, 0) : undefined;
      say(`  ${Math.round((runMs - (endAt - Date.now())) / 1000)} s: ${relayed} readings relayed${received === undefined ? '' : `, ${received} at the hub`}`);
    }, 2_000);
    const timer = setTimeout(() => stop.abort(), runMs);
    await Promise.all([...live.map(sensorLoop), backEnd()]);
    clearTimeout(timer);
    clearInterval(progress);

    const all = [...tallies.values()];
    const relayed = all.reduce((sum, t) => sum + t.relayed, 0);
    if (hub) await settle(() => all.reduce((sum, t) => sum + t.received, 0) + misattributed >= relayed && delivered >= commandsSent, DRAIN_MS);

    return {
      hub: hub ? 'embedded' : 'external',
      protocol: gw.protocol,
      multiplexed: gw.multiplexed,
      because: gw.decision.because,
      warnings: gw.decision.warnings,
      profile,
      sensors: identities.length,
      seconds,
      intervalMs,
      connectMs,
      connectionsOpened,
      connectionsSource: hub ? 'hub stats' : 'gateway',
      distinctConnectionIds,
      identitiesConnected,
      failedIdentities,
      readings: {
        relayed,
        sendFailures: all.reduce((sum, t) => sum + t.sendFailures, 0),
        receivedByHub: hub ? all.reduce((sum, t) => sum + t.received, 0) : null,
        misattributed: hub ? misattributed : null,
      },
      c2d: { sent: hub ? commandsSent : null, delivered, misrouted },
      perSensor: all,
    };
  } finally {
    stopHubTap?.();
    await gateway?.close();
    await hub?.close();
  }
}

function printSummary(s: FieldGatewaySummary): void {
  const line = (label: string, value: string | number): void => console.log(`  ${label.padEnd(22)} ${value}`);
  const silent = s.perSensor.filter((t) => t.relayed === 0).length;
  console.log('\nsummary');
  line('hub', s.hub);
  line('protocol', s.protocol);
  line('multiplexed', s.multiplexed ? 'yes' : 'no');
  const lost = s.warnings.filter((w) => w.startsWith('multiplexing lost'));
  for (const reason of s.multiplexed ? s.because.slice(0, 1) : lost) line('  why', reason);
  for (const warning of s.warnings.filter((w) => !lost.includes(w))) line('  warning', warning);
  line('sensors', s.sensors);
  line('connect time', `${s.connectMs} ms`);
  line('connections opened', `${s.connectionsOpened} (${s.connectionsSource})`);
  line('identities connected', s.identitiesConnected);
  if (s.failedIdentities.length) line('failed identities', s.failedIdentities.map((f) => `${f.deviceId} ${f.code}`).join(', '));
  line('readings relayed', `${s.readings.relayed}${s.readings.sendFailures ? ` (${s.readings.sendFailures} failed)` : ''}`);
  if (s.readings.receivedByHub !== null) line('received by the hub', `${s.readings.receivedByHub} (${s.readings.misattributed} misattributed)`);
  line('sensors never heard', silent);
  line('C2D delivered', `${s.c2d.delivered}${s.c2d.sent === null ? '' : ` of ${s.c2d.sent} sent`} (${s.c2d.misrouted} to the wrong sensor)`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  try {
    const summary = await run(argv, process.env);
    if (argv.includes('--json')) console.log(JSON.stringify(summary));
    else printSummary(summary);
  } catch (err) {
    console.error(`field gateway failed: ${isSwitchyardError(err) ? `${err.code}: ` : ''}${redactSecrets((err as Error).message ?? String(err))}`);
    process.exitCode = 1;
  }
}
