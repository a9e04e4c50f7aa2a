// One measured variant (our client or the raw Azure client) on one protocol, in a fresh process,
// so peak RSS and the loaded-module list belong to that variant alone. Driven by bench/main.ts
// over stdin/stdout (protocol in overhead-types.ts): the parent runs each short slice on a raw
// child, an ours child and a second raw child at once, so background load hits all alike.
// Neither variant is imported statically: each loads only what it would load in a real device.
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { Session } from 'node:inspector/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import type { Duplex } from 'node:stream';
import type * as DeviceModule from '@switchyard/device';
import type { ProfileDefinition, Protocol } from '@switchyard/profile';
import { commandLines, say, threadTimes } from './child-io.ts';
import { startCountingProxy, type CountingProxy } from './counting-proxy.ts';
import { LogHistogram } from './stats.ts';
import type { ChildConfig, ChildResult, LatencySummary, ReadyInfo, SliceResult, WireResult } from './overhead-types.ts';

interface Sender {
  send(): Promise<unknown>;
  close(): Promise<void>;
  chosen?: string;
}

type Ports = ChildConfig['hub']['ports'];

const MB = 1024 * 1024;

/**
 * RSS without what V8's young generation holds resident. The nursery grows in steps of MBs under
 * allocation and stays resident, so when each variant's RSS peaks depends on GC timing more than
 * on what it keeps; setting it aside leaves what the variant holds.
 */
function retainedRss(): number {
  let young = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name === 'new_space' || space.space_name === 'new_large_object_space') young += space.physical_space_size;
  }
  return process.memoryUsage.rss() - young;
}

function youngGenerationBytes(): number {
  let size = 0;
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'new_space') size += space.space_size;
  return size;
}

const MQTT_PACKAGES = ['azure-iot-device-mqtt', 'azure-iot-mqtt-base', 'mqtt', 'mqtt-packet'];
const AMQP_PACKAGES = ['azure-iot-device-amqp', 'azure-iot-amqp-base', 'rhea', 'rhea-promise'];
const HTTP_PACKAGES = ['azure-iot-device-http', 'azure-iot-http-base'];
const FOREIGN: Record<Protocol, string[]> = {
  mqtt: [...AMQP_PACKAGES, ...HTTP_PACKAGES],
  'mqtt-ws': [...AMQP_PACKAGES, ...HTTP_PACKAGES],
  amqp: [...MQTT_PACKAGES, ...HTTP_PACKAGES],
  'amqp-ws': [...MQTT_PACKAGES, ...HTTP_PACKAGES],
  https: [...MQTT_PACKAGES, ...AMQP_PACKAGES],
};

// Same trick as packages/local-hub/test/support/azure-clients.ts, kept local so the raw variant
// never loads any @switchyard code.
class RedirectAgent extends https.Agent {
  readonly #target: { host: string; port: number };
  constructor(target: { host: string; port: number }) {
    super({ keepAlive: true });
    this.#target = target;
  }
  // Node's typings omit createConnection on https.Agent; it is the documented hook for sockets.
  createConnection(options: Record<string, unknown>, callback?: unknown): Duplex {
    const base = https.Agent.prototype as unknown as { createConnection(o: Record<string, unknown>, cb?: unknown): Duplex };
    return base.createConnection.call(this, { ...options, host: this.#target.host, port: this.#target.port }, callback);
  }
}

function redact(text: string): string {
  return text.replace(/(SharedAccessKey=|sig=|SharedAccessSignature=)[^;&\s]+/gi, '$1<redacted>');
}

function portFor(protocol: Protocol, ports: Ports): number {
  if (protocol === 'mqtt') return ports.mqtt;
  if (protocol === 'amqp') return ports.amqp;
  return ports.https;
}

/**
 * The Azure client ours' connect() builds, caught at Client.fromConnectionString of the very
 * azure-iot-device instance ours imports (resolved from ours' module, not from this file).
 */
function catchOursAzureClient(config: ChildConfig): { client(): RawClient; Message: RawDeviceModule['Message'] } {
  const from = config.oursModule ?? import.meta.resolve('@switchyard/device');
  const device = createRequire(from)('azure-iot-device') as RawDeviceModule;
  const original = device.Client.fromConnectionString.bind(device.Client);
  let caught: RawClient | undefined;
  device.Client.fromConnectionString = (cs: string, transport: unknown) => (caught = original(cs, transport));
  return {
    client: () => {
      if (caught === undefined) throw new Error('ours-sdk: connect() built no Azure client through Client.fromConnectionString');
      return caught;
    },
    Message: device.Message,
  };
}

async function ours(config: ChildConfig, ports: Ports): Promise<Sender> {
  const sdk = config.variant === 'ours-sdk' ? catchOursAzureClient(config) : undefined;
  const { connect } = (config.oursModule === undefined ? await import('@switchyard/device') : await import(config.oursModule)) as typeof DeviceModule;
  const { protocol, hub } = config;
  // HTTPS is picked by the profile alone; development mode with a long interval keeps C2D
  // polling out of the picture (nothing listens for C2D anyway, so no poll starts).
  const profile: ProfileDefinition =
    protocol === 'https'
      ? { protocols: ['https' as const], features: ['telemetry' as const], environment: 'development' as const, pollIntervalSeconds: 3600 }
      : { protocols: [protocol], features: ['telemetry' as const], c2d: 'none' as const };
  const { client, decision } = await connect({
    connectionString: `HostName=${hub.hostName};DeviceId=${config.deviceId};SharedAccessKey=${config.key}`,
    profile,
    ca: hub.ca,
    endpoint: { host: hub.address, ports },
    ...(protocol === 'https' ? {} : { forceProtocol: protocol }),
  });
  const payload = Buffer.alloc(config.payloadBytes, 'x');
  if (sdk !== undefined) {
    const azure = sdk.client();
    const { Message } = sdk;
    return { send: () => azure.sendEvent(new Message(payload)), close: () => client.close(), chosen: decision.protocol };
  }
  return { send: () => client.sendEvent(payload), close: () => client.close(), chosen: decision.protocol };
}

interface RawClient {
  setOptions(options: unknown): Promise<unknown>;
  open(): Promise<unknown>;
  sendEvent(message: unknown): Promise<unknown>;
  close(): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}
interface RawDeviceModule {
  Client: { fromConnectionString(cs: string, transport: unknown): RawClient };
  Message: new (data: Buffer) => unknown;
}

async function loadRawTransport(protocol: Protocol): Promise<unknown> {
  const name = protocol === 'mqtt' ? 'Mqtt' : protocol === 'mqtt-ws' ? 'MqttWs' : protocol === 'amqp' ? 'Amqp' : protocol === 'amqp-ws' ? 'AmqpWs' : 'Http';
  const mod = (protocol === 'mqtt' || protocol === 'mqtt-ws'
    ? await import('azure-iot-device-mqtt')
    : protocol === 'amqp' || protocol === 'amqp-ws'
      ? await import('azure-iot-device-amqp')
      : await import('azure-iot-device-http')) as unknown as Record<string, unknown> & { default?: Record<string, unknown> };
  // CommonJS exports arrive as named exports or only under `default`, depending on the loader.
  return mod[name] ?? mod.default?.[name];
}

async function raw(config: ChildConfig, ports: Ports): Promise<Sender> {
  // Loaded, never called: whatever ours' modules alone do to the process (heap, JIT state) shows up here too.
  if (config.preloadOurs === true) await (config.oursModule === undefined ? import('@switchyard/device') : import(config.oursModule));
  const imported = (await import('azure-iot-device')) as unknown as RawDeviceModule & { default?: RawDeviceModule };
  const device = imported.default ?? imported;
  const { protocol, hub } = config;
  const Transport = await loadRawTransport(protocol);
  let cs = `HostName=${hub.hostName};DeviceId=${config.deviceId};SharedAccessKey=${config.key}`;
  if (protocol === 'mqtt' || protocol === 'amqp') cs += `;GatewayHostName=${hub.address}:${portFor(protocol, ports)}`;
  const client = device.Client.fromConnectionString(cs, Transport);
  client.on('error', () => undefined);
  const options: Record<string, unknown> = { ca: hub.ca };
  const agent = protocol === 'mqtt' || protocol === 'amqp' ? undefined : new RedirectAgent({ host: hub.address, port: ports.https });
  if (protocol === 'mqtt-ws') options.mqtt = { webSocketAgent: agent };
  if (protocol === 'amqp-ws') options.amqp = { webSocketAgent: agent };
  // setOptions replaces rather than merges, and Http's never calls back without a receive policy;
  // manual polling matches ours (no C2D polls while telemetry is measured).
  if (protocol === 'https') options.http = { agent, receivePolicy: { manualPolling: true, drain: false } };
  await client.setOptions(options);
  await client.open();
  const payload = Buffer.alloc(config.payloadBytes, 'x');
  return {
    send: () => client.sendEvent(new device.Message(payload)),
    close: async () => {
      await client.close();
      agent?.destroy();
    },
  };
}

// Every GC of the process, counted by the slice that is running, by kind (minor = scavenge,
// major = mark-compact, incremental = a step of incremental marking, weakcb = weak callbacks).
const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
const gcTally = { count: 0, ms: 0, byKind: {} as Record<string, { count: number; ms: number }> };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcTally.count++;
    gcTally.ms += entry.duration;
    const kind = GC_KINDS[(entry as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
    const k = (gcTally.byKind[kind] ??= { count: 0, ms: 0 });
    k.count++;
    k.ms += entry.duration;
  }
}).observe({ entryTypes: ['gc'] });

/** Sends with `window` in flight until `ms` pass or `maxMessages` have been issued. */
async function runSlice(sender: Sender, window: number, ms: number, maxMessages: number, histogram?: LogHistogram): Promise<SliceResult> {
  let issued = 0;
  let done = 0;
  let stop = false;
  const timer = setTimeout(() => { stop = true; }, ms);
  const gcBefore = { count: gcTally.count, ms: gcTally.ms, byKind: structuredClone(gcTally.byKind) };
  const threadsBefore = threadTimes();
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (!stop && issued < maxMessages) {
      issued++;
      const t0 = process.hrtime.bigint();
      await sender.send();
      histogram?.record(Number(process.hrtime.bigint() - t0) / 1000);
      done++;
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  const threadsAfter = threadTimes();
  clearTimeout(timer);
  const threads =
    threadsBefore === undefined || threadsAfter === undefined
      ? undefined
      : {
          mainNs: threadsAfter.mainNs - threadsBefore.mainNs,
          otherNs: threadsAfter.otherNs - threadsBefore.otherNs,
          otherByName: Object.fromEntries(Object.entries(threadsAfter.otherByName).map(([name, ns]) => [name, ns - (threadsBefore.otherByName[name] ?? 0)])),
          // voluntary_ctxt_switches of a thread that ended in the slice drop out; threads rarely end mid-run.
          voluntarySwitches: threadsAfter.voluntarySwitches - threadsBefore.voluntarySwitches,
          involuntarySwitches: threadsAfter.involuntarySwitches - threadsBefore.involuntarySwitches,
        };
  // GC entries arrive on a later turn; the few of the slice's last moments land in the next slice.
  return { window, messages: done, seconds, cpuUs: cpu.user + cpu.system, systemUs: cpu.system, gcCount: gcTally.count - gcBefore.count, gcMs: gcTally.ms - gcBefore.ms, gcByKind: Object.fromEntries(Object.entries(gcTally.byKind).map(([kind, k]) => [kind, { count: k.count - (gcBefore.byKind[kind]?.count ?? 0), ms: k.ms - (gcBefore.byKind[kind]?.ms ?? 0) }])), ...(threads === undefined ? {} : { threads }) };
}

async function sendSequential(sender: Sender, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await sender.send();
}

function packageOf(path: string): string | undefined {
  const at = path.lastIndexOf('/node_modules/');
  if (at < 0) return undefined;
  const [first, second] = path.slice(at + '/node_modules/'.length).split('/');
  return first?.startsWith('@') && second !== undefined ? `${first}/${second}` : first;
}

async function main(): Promise<void> {
  const next = commandLines();
  const config = JSON.parse(await next()) as ChildConfig;
  let sampledPeak = process.memoryUsage.rss();
  let retainedPeak = retainedRss();
  const sampler = setInterval(() => {
    sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
    retainedPeak = Math.max(retainedPeak, retainedRss());
  }, 50);
  sampler.unref();

  let proxy: CountingProxy | undefined;
  let ports: Ports = config.hub.ports;
  if (config.wireMessages !== undefined) {
    const target = portFor(config.protocol, config.hub.ports);
    proxy = await startCountingProxy({ host: config.hub.address, port: target });
    ports = config.protocol === 'mqtt' ? { ...ports, mqtt: proxy.port } : config.protocol === 'amqp' ? { ...ports, amqp: proxy.port } : { ...ports, https: proxy.port };
  }

  const connectStarted = process.hrtime.bigint();
  const sender = config.variant === 'raw' ? await raw(config, ports) : await ours(config, ports);
  const connectMs = Number(process.hrtime.bigint() - connectStarted) / 1e6;
  const rssAfterConnect = process.memoryUsage.rss();

  let wire: WireResult | undefined;
  const slices: SliceResult[] = [];
  const histograms = new Map<number, LogHistogram>();
  if (proxy !== undefined && config.wireMessages !== undefined) {
    await sender.send();
    const setup = proxy.counts();
    await sendSequential(sender, config.warmup);
    const before = proxy.counts();
    await sendSequential(sender, config.wireMessages);
    const after = proxy.counts();
    wire = {
      messages: config.wireMessages,
      setupUp: setup.up,
      setupDown: setup.down,
      perMessageUp: (after.up - before.up) / config.wireMessages,
      perMessageDown: (after.down - before.down) / config.wireMessages,
      connections: after.connections,
    };
  } else {
    // Warm-up: JIT, TLS buffers, AMQP link attach and credit, both one-at-a-time and windowed paths.
    // V8 optimizes by call counts, and CPU per message keeps falling for thousands of sends (a
    // first slice after 200 sends costs 3-5x the steady state), so warm-up is counted in messages:
    // a sixth one at a time, the rest 16 in flight, each part bounded in time for slow transports.
    // Cold start: performance.now() counts from the process's own start, so this spans node's
    // boot, the imports, connect and one acknowledged send, as a device that just booted sees it.
    await sender.send();
    const firstAckMs = performance.now();
    const sequential = Math.ceil(config.warmup / 6);
    const first = await runSlice(sender, 1, config.warmupMaxMs, sequential);
    const second = await runSlice(sender, 16, config.warmupMaxMs, config.warmup - sequential);
    const ready: ReadyInfo = {
      firstAckMs,
      connectMs,
      rssAfterConnectMB: rssAfterConnect / MB,
      // The young generation's size after the warm-up: V8 sizes it by what the process did so far,
      // and a smaller one scavenges more often for the same garbage per message.
      youngGenerationKB: youngGenerationBytes() / 1024,
      warmupMessages: first.messages + second.messages,
      warmupCpuMs: (first.cpuUs + second.cpuUs) / 1000,
      ...(sender.chosen === undefined ? {} : { chosen: sender.chosen }),
    };
    await say(`READY ${JSON.stringify(ready)}`);
    // One profile per slice, so the connect and the warm-up stay out and each window can be read alone.
    let profiler: Session | undefined;
    const profiles: object[] = [];
    if (config.cpuProfile !== undefined) {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      // 100 us: a send costs 40-600 us of CPU, so the default 1 ms sees few samples per function.
      await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    }
    // Allocation sampling, garbage included: CPU per message follows what a send allocates (the
    // young generation's scavenges, and the GC helper threads they wake), which a CPU profile
    // only shows as GC time, not as who allocated.
    let allocations: Session | undefined;
    const heapProfiles: object[] = [];
    if (config.heapProfile !== undefined) {
      allocations = new Session();
      allocations.connect();
      await allocations.post('HeapProfiler.enable');
    }
    // Bounded: the parent sends a fixed number of RUNs and then END; a closed stdin also ends it.
    for (;;) {
      const command = (await next()).trim().split(' ');
      if (command[0] === 'END') break;
      if (command[0] !== 'RUN') throw new Error(`unknown command ${JSON.stringify(command[0])}`);
      const window = Number(command[1]);
      const ms = Number(command[2]);
      let histogram = histograms.get(window);
      if (histogram === undefined) histograms.set(window, (histogram = new LogHistogram()));
      if (profiler !== undefined) await profiler.post('Profiler.start');
      if (allocations !== undefined) await allocations.post('HeapProfiler.startSampling', { samplingInterval: 2048, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
      const slice = await runSlice(sender, window, ms, config.maxMessagesPerSlice, histogram);
      if (allocations !== undefined) heapProfiles.push((await allocations.post('HeapProfiler.stopSampling')).profile);
      if (profiler !== undefined) profiles.push((await profiler.post('Profiler.stop')).profile);
      slices.push(slice);
      await say(`SLICE ${JSON.stringify(slice)}`);
    }
    if (profiler !== undefined && config.cpuProfile !== undefined) {
      profiler.disconnect();
      // Written only now: a write between slices would run while the other child is measured.
      mkdirSync(config.cpuProfile, { recursive: true });
      profiles.forEach((profile, i) => writeFileSync(join(config.cpuProfile!, `slice-${String(i).padStart(3, '0')}-w${slices[i]!.window}.cpuprofile`), JSON.stringify(profile)));
      writeFileSync(join(config.cpuProfile, 'slices.json'), JSON.stringify(slices));
    }
    if (allocations !== undefined && config.heapProfile !== undefined) {
      allocations.disconnect();
      mkdirSync(config.heapProfile, { recursive: true });
      heapProfiles.forEach((profile, i) => writeFileSync(join(config.heapProfile!, `slice-${String(i).padStart(3, '0')}-w${slices[i]!.window}.heapprofile`), JSON.stringify(profile)));
      writeFileSync(join(config.heapProfile, 'slices.json'), JSON.stringify(slices));
    }
  }
  await sender.close();
  await proxy?.close();
  clearInterval(sampler);
  sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
  retainedPeak = Math.max(retainedPeak, retainedRss());

  const packages = [...new Set(Object.keys(createRequire(import.meta.url).cache).map(packageOf).filter((p): p is string => p !== undefined))].sort();
  const foreign = FOREIGN[config.protocol];
  const latency: LatencySummary[] = [...histograms].map(([window, h]) => ({ window, samples: h.total, p50Us: h.percentile(50), p99Us: h.percentile(99) }));
  const result: ChildResult = {
    variant: config.variant,
    protocol: config.protocol,
    ...(sender.chosen === undefined ? {} : { chosen: sender.chosen }),
    connectMs,
    slices,
    latency,
    ...(wire === undefined ? {} : { wire }),
    // maxRSS is in KiB on Linux.
    peakRssMB: (process.resourceUsage().maxRSS * 1024) / MB,
    sampledPeakRssMB: sampledPeak / MB,
    peakRetainedMB: retainedPeak / MB,
    rssAfterConnectMB: rssAfterConnect / MB,
    foreignPackages: packages.filter((p) => foreign.includes(p)),
    packages,
  };
  await say(`RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`overhead-child failed: ${redact(String((err as Error)?.stack ?? err))}\n`);
  process.exit(1);
});
