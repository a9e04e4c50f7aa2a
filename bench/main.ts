// `pnpm bench`: our device client against the raw Azure client, per transport, in one run on one
// local hub. The hub runs in its own process (CPU 0); every measured variant runs in a fresh
// process (CPU 1), so peak RSS and loaded modules belong to one variant and one protocol. In each
// round and protocol three children are connected and warmed up, raw, ours and a second raw client
// (the A/A reference), and run each slice together on the clients' CPU, so a burst of background
// load, the hypervisor's steal or a slower hub hits all three alike (--sequential: they take turns
// instead); ratios are taken per slice set and the tables show medians beside the A/A figures of
// the same rounds. Round 0 relays each client through a counting TCP
// proxy to measure bytes on the wire; it is not timed, because the relay's hop would be charged.
//
//   pnpm bench [--quick] [--protocols mqtt,amqp] [--rounds N] [--slices N] [--slice-ms MS] [--warmup N]
//              [--from-source] [--aa] [--sequential] [--json FILE] [--cpu-prof DIR] [--hub-throughput] [--gateway-memory]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOLS, type Protocol } from '@switchyard/profile';
import { createConsumerProject } from '../scripts/consumer-project.ts';
import { bundleChild } from './bundle-child.ts';
import { hasTaskset, pinned, pinSelfToHubCore, startHub } from './hub-child.ts';
import { report, rowFor, SLOTS, type AdapterCost, type ProtocolResults, type SliceSet, type Slot } from './overhead-report.ts';
import { median, percentile } from './stats.ts';
import type { ChildConfig, ChildResult, ReadyInfo, SliceResult } from './overhead-types.ts';

const USAGE = `usage: pnpm bench [options]
  --quick             one round, short phases (under a minute)
  --protocols LIST    comma-separated subset of ${PROTOCOLS.join(',')}
  --rounds N          measured rounds, fresh processes each (default 5; --quick 1)
  --slices N          slices per client and window in a round (default 6; --quick 4)
  --slice-ms MS       length of one slice (default 250; --quick 200)
  --warmup N          messages each client sends before its first slice (default 6000; --quick 4000)
  --from-source       run ours from its TypeScript sources through tsx (both variants under tsx)
                      instead of as npm installs it from the packed tarballs (the default)
  --aa                the raw client in the ours column too (every round already runs a second
                      raw client beside ours, the A/A reference; this makes all three raw)
  --sequential        the three clients take turns slice by slice instead of running each slice
                      together (the default: a burst of load, steal or a slow hub hits all three
                      at once, so the per-set ratios cancel it)
  --aa-loaded         the A/A client imports ours' module (unused) before it connects: a gap
                      ours/raw that A/A/raw then shows too comes from the code loaded, not the sends
  --aa-ours-sdk       diagnostic: the A/A client is ours' connect(), sending straight through the
                      Azure client it built (past our layers): ours/A-A is our per-send code,
                      A-A/raw our configuration of the SDK
  --json FILE         also write every child's result as JSON
  --report FILE       print the report of a run kept with --json again, without running
  --cpu-prof DIR      V8 CPU profiles of each measured child's slices (not its connect or
                      warm-up), one directory per child in DIR; compare them with
                      bench/profile-diff.ts (profiles are held in memory: ignore RSS then)
  --heap-prof DIR     sampled allocation profiles (every 2 KiB, garbage included) of each measured
                      child's slices; compare them with bench/allocation-diff.ts
  --hub-throughput    afterwards, run the hub's own throughput bench (bench/hub-throughput.ts)
  --gateway-memory    afterwards, run the gateway memory bench (bench/gateway-memory.ts; --quick passed on)`;

/** What --json writes and --report reads back. */
interface SavedRun {
  git: string;
  loadAtStart: number[];
  loadAtEnd: number[];
  settings: { windows: number[]; rounds: number; slices: number; payloadBytes: number; wireMessages: number; aa: boolean };
  results: Record<Protocol, ProtocolResults>;
  adapter?: Record<string, AdapterCost>;
}

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    protocols: { type: 'string' },
    rounds: { type: 'string' },
    slices: { type: 'string' },
    'slice-ms': { type: 'string' },
    warmup: { type: 'string' },
    'from-source': { type: 'boolean', default: false },
    aa: { type: 'boolean', default: false },
    'aa-loaded': { type: 'boolean', default: false },
    'aa-ours-sdk': { type: 'boolean', default: false },
    sequential: { type: 'boolean', default: false },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'heap-prof': { type: 'string' },
    'hub-throughput': { type: 'boolean', default: false },
    'gateway-memory': { type: 'boolean', default: false },
    report: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
if (flags.report !== undefined) {
  // Re-reads a run kept with --json and prints its report again (with this version's report code).
  const saved = JSON.parse(readFileSync(flags.report, 'utf8')) as SavedRun;
  console.log(`${flags.report}: git ${saved.git}, load average ${saved.loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start, ${saved.loadAtEnd.map((l) => l.toFixed(2)).join(' ')} at end`);
  const protocolsRun = Object.keys(saved.results) as Protocol[];
  const { settings: s } = saved;
  for (const line of report({ protocols: protocolsRun, windows: s.windows, rounds: s.rounds, slices: s.slices, payloadBytes: s.payloadBytes, wireMessages: s.wireMessages, aa: s.aa, results: saved.results, ...(saved.adapter === undefined ? {} : { adapter: saved.adapter }) })) console.log(line);
  process.exit(0);
}

function positive(name: string, text: string | undefined, fallback: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    console.error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(text)}\n${USAGE}`);
    process.exit(2);
  }
  return value;
}

const protocols: Protocol[] = (flags.protocols ?? PROTOCOLS.join(',')).split(',').map((p) => p.trim()).filter((p) => p !== '') as Protocol[];
const unknown = protocols.filter((p) => !(PROTOCOLS as readonly string[]).includes(p));
if (unknown.length > 0 || protocols.length === 0) {
  console.error(`--protocols: unknown ${unknown.join(', ') || '(empty list)'}; use a comma-separated subset of ${PROTOCOLS.join(',')}\n${USAGE}`);
  process.exit(2);
}
// Five rounds: a single peak RSS moves by MBs with GC timing, and three medians let one outlier through.
const rounds = positive('rounds', flags.rounds, flags.quick ? 1 : 5, true);
const slices = positive('slices', flags.slices, flags.quick ? 4 : 6, true);
const sliceMs = positive('slice-ms', flags['slice-ms'], flags.quick ? 200 : 250, true);
const settings = {
  payloadBytes: 100,
  // CPU per message falls for thousands of sends while V8 optimizes the SDK, the transport and
  // ours: after 200 sends a slice still costs 3-5x the steady state (the first slices of a
  // --quick run at caf80bc read 2x ours/raw where the steady state reads 1.0-1.1).
  warmup: positive('warmup', flags.warmup, flags.quick ? 4000 : 6000, true),
  warmupMaxMs: flags.quick ? 2500 : 4000,
  // The wire round counts bytes, not time: a short warm-up attaches links and fills TLS state.
  wireWarmup: 200,
  wireMessages: flags.quick ? 200 : 1000,
  windows: [1, 16],
  // Far above what loopback reaches in a slice; it only bounds the loop.
  maxMessagesPerSlice: Math.ceil(sliceMs * 200),
  // Per line awaited from a child: connect, one slice, or closing.
  lineTimeoutMs: 60_000,
};

// This process only orchestrates; keep it off the client's core.
pinSelfToHubCore();
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

function gitSha(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).stdout.trim() !== '';
  return r.status === 0 ? `${r.stdout.trim()}${dirty ? ' (uncommitted changes in tree)' : ''}` : 'unknown';
}


/** One client process, driven line by line (see overhead-types.ts). */
class ClientChild {
  readonly #child: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #exited: Promise<unknown>;
  readonly config: ChildConfig;
  ready: ReadyInfo | undefined;

  private constructor(config: ChildConfig) {
    this.config = config;
    // The SDK itself sets an IP address as TLS servername when GatewayHostName is an address (both
    // variants alike); the warning would only clutter the report.
    const script = bundled === undefined ? ['--import', 'tsx', here('./overhead-child.ts')] : [bundled.child];
    const [cmd, args] = pinned(1, ['--disable-warning=DEP0123', ...script]);
    this.#child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#exited = once(this.#child, 'exit');
    this.#lines = createInterface({ input: this.#child.stdout! })[Symbol.asyncIterator]();
    this.#child.stdin!.write(`${JSON.stringify(config)}\n`);
  }

  /** Starts a child; measured children answer READY, wire children go straight to RESULT. */
  static async start(config: ChildConfig): Promise<ClientChild> {
    const child = new ClientChild(config);
    try {
      if (config.wireMessages === undefined) child.ready = JSON.parse(await child.#expect('READY')) as ReadyInfo;
    } catch (err) {
      child.kill();
      throw err;
    }
    return child;
  }

  async #expect(tag: string): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${tag} within ${settings.lineTimeoutMs} ms`)), settings.lineTimeoutMs);
    });
    const exited = this.#exited.then(() => { throw new Error(`child exited (code ${this.#child.exitCode ?? this.#child.signalCode}) before ${tag}`); });
    try {
      for (let i = 0; i < 1000; i++) {
        const next = await Promise.race([this.#lines.next(), timeout, exited]);
        if (next.done === true) throw new Error(`child closed stdout before ${tag}`);
        const line = next.value;
        if (line.startsWith(`${tag} `)) return line.slice(tag.length + 1);
      }
      throw new Error(`no ${tag} in 1000 lines`);
    } finally {
      clearTimeout(timer);
    }
  }

  async run(window: number, ms: number): Promise<SliceResult> {
    this.#child.stdin!.write(`RUN ${window} ${ms}\n`);
    return JSON.parse(await this.#expect('SLICE')) as SliceResult;
  }

  async end(): Promise<ChildResult> {
    if (this.config.wireMessages === undefined) this.#child.stdin!.end('END\n');
    const result = JSON.parse(await this.#expect('RESULT')) as ChildResult;
    await this.#exited;
    return result;
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

// ---- formatting ---------------------------------------------------------------------------

const fmt = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');

// ---- the run ------------------------------------------------------------------------------

const startedAt = Date.now();
const loadAtStart = loadavg();
const cpuList = cpus();
console.log('switchyard bench: device client overhead against the raw Azure client (issue 4)');
console.log(`git ${gitSha()} | node ${process.version} | ${cpuList.length} x ${cpuList[0]?.model ?? 'unknown CPU'} | load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start`);
console.log(
  `hub: own process${hasTaskset ? ' on CPU 0' : ''}; clients: a fresh process per variant, protocol and round${hasTaskset ? ', on CPU 1' : ''} (taskset ${hasTaskset ? 'on' : 'not available: unpinned'}); ` +
    `${settings.payloadBytes} B messages; warm-up ${settings.warmup} messages per client; ${rounds} round(s) x ${slices} slices of ${sliceMs} ms per client at W=${settings.windows.join(' and W=')} sends in flight, raw, ours and a second raw client (A/A) ${flags.sequential ? 'taking turns in rotating order' : 'running each slice together on one CPU'}; ` +
    `wire round: ${settings.wireMessages} messages one at a time through a counting TCP proxy`,
);

// By default ours is measured as a user installs it: every package packed and installed with npm
// into a project outside the workspace (scripts/consumer-project.ts), loaded from its dist/. The
// harness is bundled into that project, so raw and ours take the Azure packages from the same
// node_modules, on plain node. From sources, tsx charges ours alone for transforming and
// source-mapping its TypeScript and for keepNames wrappers around every named closure.
const installed = flags['from-source'] ? undefined : await createConsumerProject();
if (installed !== undefined) process.once('exit', () => installed.remove());
const bundled = installed === undefined
  ? undefined
  : {
      device: pathToFileURL(join(installed.dir, 'node_modules', '@switchyard', 'device', 'dist', 'index.js')).href,
      child: await bundleChild(here('./overhead-child.ts'), join(installed.dir, 'overhead-child.bundle.mjs'), ['azure-iot-*', '@switchyard/device']),
      adapter: await bundleChild(here('./adapter-cost.ts'), join(installed.dir, 'adapter-cost.bundle.mjs'), ['azure-iot-*', '@switchyard/device']),
    };
if (installed !== undefined) {
  const tarball = installed.tarballs['@switchyard/device'];
  console.log(`ours = @switchyard/device as npm installs it from its packed tarball (${tarball === undefined ? '?' : (statSync(tarball).size / 1024).toFixed(0)} KiB), in a project outside the workspace; both variants on plain node, no tsx (--from-source: both under tsx, ours from its TypeScript)`);
} else {
  console.log('--from-source: both variants under node --import tsx; ours from its TypeScript sources');
}
if (flags.aa) console.log("--aa: the raw Azure client in the 'ours' column too");
if (flags['aa-ours-sdk']) console.log("--aa-ours-sdk: the A/A column is ours' connect() sending straight through the Azure client it built (ours/A-A = our per-send layers, A-A/raw = our SDK configuration)");
if (flags['aa-loaded']) console.log("--aa-loaded: the A/A client has imported ours' module (unused) before connecting");
const oursModule = bundled?.device;
if (flags['cpu-prof'] !== undefined) mkdirSync(flags['cpu-prof'], { recursive: true });

// Three clients per round and protocol: raw, ours and a second raw client, the A/A reference.
const childrenPerRound = protocols.length * SLOTS.length;
// Identities from bench-100 on, so ids of equal length keep per-message bytes comparable (HTTPS
// repeats the id in every request path and SAS audience).
const hub = await startHub(100 + protocols.length * 2 + childrenPerRound * rounds, ['--import', 'tsx']);
const deviceIds = Object.keys(hub.info.devices).slice(100);
const { devices: _keys, ...hubAddress } = hub.info;
let nextDevice = 0;

function configFor(slot: Slot, protocol: Protocol, wire: boolean): ChildConfig {
  // A fresh identity per child, so no child inherits a session or queue from the previous one.
  const deviceId = deviceIds[nextDevice++];
  const key = deviceId === undefined ? undefined : hub.info.devices[deviceId];
  if (deviceId === undefined || key === undefined) throw new Error('bench: ran out of hub devices');
  return {
    // The A/A slot, and with --aa the ours slot too, run the raw client; results stay filed under the slot.
    variant: slot === 'ours' && !flags.aa ? 'ours' : slot === 'aa' && flags['aa-ours-sdk'] ? 'ours-sdk' : 'raw',
    protocol,
    hub: hubAddress,
    deviceId,
    key,
    payloadBytes: settings.payloadBytes,
    warmup: wire ? settings.wireWarmup : settings.warmup,
    warmupMaxMs: settings.warmupMaxMs,
    maxMessagesPerSlice: settings.maxMessagesPerSlice,
    ...(oursModule === undefined ? {} : { oursModule }),
    ...(slot === 'aa' && flags['aa-loaded'] ? { preloadOurs: true } : {}),
    ...(wire ? { wireMessages: settings.wireMessages } : {}),
    ...(flags['cpu-prof'] === undefined || wire ? {} : { cpuProfile: join(flags['cpu-prof'], `${slot}-${protocol}-${deviceId}`) }),
    ...(flags['heap-prof'] === undefined || wire ? {} : { heapProfile: join(flags['heap-prof'], `${slot}-${protocol}-${deviceId}`) }),
  };
}

const results = {} as Record<Protocol, ProtocolResults>;
for (const p of protocols) results[p] = { children: { raw: [], ours: [], aa: [] }, wire: { raw: [], ours: [] }, sets: [] };
const failures: string[] = [];

const rate = (s: SliceResult): number => s.messages / s.seconds;

async function wireRound(protocol: Protocol, order: Array<'raw' | 'ours'>): Promise<void> {
  for (const variant of order) {
    let child: ClientChild | undefined;
    try {
      child = await ClientChild.start(configFor(variant, protocol, true));
      const r = await child.end();
      results[protocol].wire[variant].push(r);
      console.log(`  ${protocol.padEnd(7)} ${variant.padEnd(4)}  ${fmt(r.wire?.perMessageUp ?? Number.NaN, 1)} B up / ${fmt(r.wire?.perMessageDown ?? Number.NaN, 1)} B down per message`);
    } catch (err) {
      failures.push(`wire ${protocol} ${variant}: ${(err as Error).message}`);
      console.log(`  ${protocol.padEnd(7)} ${variant.padEnd(4)}  FAILED: ${(err as Error).message}`);
    } finally {
      child?.kill();
    }
  }
}

// The six orders of three, arranged so that any three consecutive ones put every slot once in
// every position: whoever goes first (right after another client's burst, or after idling) rotates.
const ORDERS: Array<[number, number, number]> = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [1, 0, 2], [0, 2, 1]];

async function measuredRound(round: number, protocol: Protocol, offset: number): Promise<void> {
  const started: Partial<Record<Slot, ClientChild>> = {};
  try {
    // Started, connected and warmed up one after another, in an order that rotates with the round:
    // each child's cold start (process start to first acknowledged message) then runs alone on its
    // CPU, and all of them share one CPU anyway, so starting them together would save no time. A
    // child that fails is killed below.
    for (const slot of ORDERS[offset % ORDERS.length]!.map((i) => SLOTS[i]!)) started[slot] = await ClientChild.start(configFor(slot, protocol, false));
    if (!flags.aa && started.ours?.ready?.chosen !== protocol) throw new Error(`our client chose ${started.ours?.ready?.chosen ?? '(nothing)'} instead of ${protocol}`);
    const sets: SliceSet[] = [];
    for (let s = 0; s < slices; s++) {
      for (const window of settings.windows) {
        const order = ORDERS[(offset + s) % ORDERS.length]!.map((i) => SLOTS[i]!);
        const got: Partial<Record<Slot, SliceResult>> = {};
        if (!flags.sequential) {
          const runs = await Promise.all(order.map((slot) => started[slot]!.run(window, sliceMs)));
          order.forEach((slot, i) => (got[slot] = runs[i]));
        } else {
          for (const slot of order) got[slot] = await started[slot]!.run(window, sliceMs);
        }
        sets.push({ round, window, slices: got as Record<Slot, SliceResult> });
      }
    }
    const ended: Partial<Record<Slot, ChildResult>> = {};
    for (const slot of SLOTS) ended[slot] = await started[slot]!.end();
    results[protocol].sets.push(...sets);
    for (const slot of SLOTS) {
      const ready = started[slot]!.ready;
      results[protocol].children[slot].push({ round, result: ended[slot]!, ...(ready === undefined ? {} : { ready }) });
    }
    const summary = settings.windows
      .map((w) => {
        const row = rowFor(protocol, w, sets);
        const ps = sets.filter((p) => p.window === w);
        return `W${w} raw ${fmt(median(ps.map((p) => rate(p.slices.raw))))} msg/s ${fmt(row.cpu.raw)} us/msg; ours/raw msg/s ${fmt(row.rateRatio.ours, 3)} CPU ${fmt(row.cpuRatio.ours, 3)}; A/A ${fmt(row.rateRatio.aa, 3)} ${fmt(row.cpuRatio.aa, 3)}`;
      })
      .join(' | ');
    console.log(`  ${protocol.padEnd(7)} ${summary}`);
  } catch (err) {
    failures.push(`round ${round} ${protocol}: ${(err as Error).message}`);
    console.log(`  ${protocol.padEnd(7)} FAILED: ${(err as Error).message}`);
  } finally {
    for (const child of Object.values(started)) child.kill();
  }
}

try {
  console.log('round 0: bytes on the wire, through the counting proxy (not timed)');
  for (const [i, protocol] of protocols.entries()) await wireRound(protocol, i % 2 === 0 ? ['raw', 'ours'] : ['ours', 'raw']);
  for (let round = 1; round <= rounds; round++) {
    console.log(`round ${round} of ${rounds} (per protocol and window: msg/s ratio = median over ${slices} slice sets; CPU ratio = ratio of median CPU us/msg)`);
    for (const [i, protocol] of protocols.entries()) await measuredRound(round, protocol, round + i);
  }
} finally {
  await hub.stop();
}

// ---- report -------------------------------------------------------------------------------

// The adapter's own CPU per send, measured without the network (adapter-cost.ts): a lower bound on
// what ours adds, since the stub hides everything that happens around a real send.
async function adapterCost(): Promise<Record<string, AdapterCost> | undefined> {
  const script = bundled === undefined ? ['--import', 'tsx', here('./adapter-cost.ts'), protocols.join(','), '300000'] : [bundled.adapter, protocols.join(','), '300000', bundled.device];
  const [cmd, args] = pinned(1, script);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) {
    failures.push(`adapter cost: exit code ${String(code)}`);
    return undefined;
  }
  return JSON.parse(out.trim()) as Record<string, AdapterCost>;
}
const adapter = flags.aa ? undefined : await adapterCost();

const loadAtEnd = loadavg();
const noise: number[] = [];
for (const protocol of protocols) {
  for (const window of settings.windows) {
    const rawRates = results[protocol].sets.filter((s) => s.window === window).map((s) => rate(s.slices.raw));
    // Spread of the raw client's own slices: the resolution a throughput ratio can claim.
    if (rawRates.length >= 4) noise.push((percentile(rawRates, 75) - percentile(rawRates, 25)) / median(rawRates));
  }
}
console.log('');
for (const line of report({ protocols, windows: settings.windows, rounds, slices, payloadBytes: settings.payloadBytes, wireMessages: settings.wireMessages, aa: flags.aa, results, ...(adapter === undefined ? {} : { adapter }) })) console.log(line);
console.log('');
console.log(
  `Noise: load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')} at end, on ${cpuList.length} cores shared with other work. ` +
    `The raw client's own slice rates have a median IQR of ${fmt(median(noise) * 100)}% of their median. Read every ours/raw figure against the A/A figure beside it: ` +
    'the second raw client differs from the first only by chance. CPU us/msg counts all threads of the client process and is the least load-sensitive column.',
);
if (failures.length > 0) {
  console.log(`Failures (${failures.length}):`);
  for (const f of failures) console.log(`  ${f}`);
}
console.log(`Total ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`);

if (flags.json !== undefined) {
  const json = { git: gitSha(), node: process.version, cpu: cpuList[0]?.model, cores: cpuList.length, loadAtStart, loadAtEnd, settings: { ...settings, rounds, slices, sliceMs, bundled: !flags['from-source'], aa: flags.aa, aaLoaded: flags['aa-loaded'], aaOursSdk: flags['aa-ours-sdk'], together: !flags.sequential }, results, adapter, failures };
  writeFileSync(flags.json, JSON.stringify(json, null, 2));
  console.log(`Wrote ${flags.json}.`);
}

async function runAfter(script: string, args: string[]): Promise<void> {
  console.log('');
  const child = spawn(process.execPath, ['--import', 'tsx', here(script), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) process.exitCode = 1;
}
if (flags['hub-throughput']) await runAfter('./hub-throughput.ts', [String(flags.quick ? 3 : 10)]);
if (flags['gateway-memory']) await runAfter('./gateway-memory.ts', flags.quick ? ['--quick'] : []);
if (failures.length > 0) process.exitCode = 1;
