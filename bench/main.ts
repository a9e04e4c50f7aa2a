// `pnpm bench`: our device client against the raw Azure client, per transport, in one run on one
// local hub. The hub runs in its own process (CPU 0); every measured variant runs in a fresh
// process (CPU 1), so peak RSS and loaded modules belong to one variant and one protocol. In each
// round and protocol a raw child and an ours child are both connected and take turns sending in
// short slices (ABBA order), so a burst of background load lands on both; ratios are paired per
// slice and the tables show medians. Round 0 relays each client through a counting TCP proxy to
// measure bytes on the wire; it is not timed, because the relay's hop would be charged to both.
//
//   pnpm bench [--quick] [--protocols mqtt,amqp] [--rounds N] [--slices N] [--slice-ms MS]
//              [--from-source] [--aa] [--json FILE] [--cpu-prof DIR] [--hub-throughput] [--gateway-memory]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOLS, type Protocol } from '@switchyard/profile';
import { median, percentile } from './stats.ts';
import type { ChildConfig, ChildResult, HubInfo, ReadyInfo, SliceResult, Variant } from './overhead-types.ts';

const USAGE = `usage: pnpm bench [options]
  --quick             one round, short phases (under a minute)
  --protocols LIST    comma-separated subset of ${PROTOCOLS.join(',')}
  --rounds N          measured rounds, fresh processes each (default 5; --quick 1)
  --slices N          slices per variant and window in a round (default 8; --quick 4)
  --slice-ms MS       length of one slice (default 250; --quick 200)
  --from-source       run ours from its TypeScript sources through tsx (both variants under tsx)
                      instead of as the esbuild bundle a consumer would ship (the default)
  --aa                A/A calibration: the raw client in both columns, so every ratio and
                      difference shows the bench's own noise and bias on this machine
  --json FILE         also write every child's result as JSON
  --cpu-prof DIR      run each client child under node --cpu-prof, profiles into DIR
  --hub-throughput    afterwards, run the hub's own throughput bench (bench/hub-throughput.ts)
  --gateway-memory    afterwards, run the gateway memory bench (bench/gateway-memory.ts; --quick passed on)`;

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    protocols: { type: 'string' },
    rounds: { type: 'string' },
    slices: { type: 'string' },
    'slice-ms': { type: 'string' },
    'from-source': { type: 'boolean', default: false },
    aa: { type: 'boolean', default: false },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'hub-throughput': { type: 'boolean', default: false },
    'gateway-memory': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
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
const slices = positive('slices', flags.slices, flags.quick ? 4 : 8, true);
const sliceMs = positive('slice-ms', flags['slice-ms'], flags.quick ? 200 : 250, true);
const settings = {
  payloadBytes: 100,
  warmup: flags.quick ? 100 : 200,
  wireMessages: flags.quick ? 200 : 1000,
  windows: [1, 16],
  // Far above what loopback reaches in a slice; it only bounds the loop.
  maxMessagesPerSlice: Math.ceil(sliceMs * 200),
  // Per line awaited from a child: connect, one slice, or closing.
  lineTimeoutMs: 60_000,
};
const RSS_BUDGET_MB = 3;
const RATIO_TARGET = 0.97;

const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
// This process only orchestrates; keep it off the client's core.
if (hasTaskset) spawnSync('taskset', ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const pinned = (cpu: number, args: string[]): [string, string[]] => (hasTaskset ? ['taskset', ['-c', String(cpu), process.execPath, ...args]] : [process.execPath, args]);

function gitSha(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).stdout.trim() !== '';
  return r.status === 0 ? `${r.stdout.trim()}${dirty ? ' (uncommitted changes in tree)' : ''}` : 'unknown';
}

async function startHub(devices: number): Promise<{ info: HubInfo; stop: () => Promise<void> }> {
  const [cmd, args] = pinned(0, ['--import', 'tsx', here('./hub-process.ts'), String(devices)]);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    once(lines, 'line') as Promise<[string]>,
    once(child, 'exit').then(() => { throw new Error('the hub process exited before printing its address'); }),
  ]);
  return {
    info: JSON.parse(first[0]) as HubInfo,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
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
    // A directory per child: the loader thread writes its own profile, and a fixed name would let it
    // overwrite the main thread's.
    const prof = flags['cpu-prof'] === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(flags['cpu-prof'], `${config.variant}-${config.protocol}-${config.deviceId}`)}`];
    // The SDK itself sets an IP address as TLS servername when GatewayHostName is an address (both
    // variants alike); the warning would only clutter the report.
    const script = bundled === undefined ? ['--import', 'tsx', here('./overhead-child.ts')] : [bundled.child];
    const [cmd, args] = pinned(1, [...prof, '--disable-warning=DEP0123', ...script]);
    this.#child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#exited = once(this.#child, 'exit');
    this.#lines = createInterface({ input: this.#child.stdout! })[Symbol.asyncIterator]();
    this.#child.stdin!.write(`${JSON.stringify(config)}\n`);
  }

  /** Starts a child; measured children answer READY, wire children go straight to RESULT. */
  static async start(config: ChildConfig): Promise<ClientChild> {
    const child = new ClientChild(config);
    if (config.wireMessages === undefined) child.ready = JSON.parse(await child.#expect('READY')) as ReadyInfo;
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
const signed = (v: number, digits = 1): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(digits)}` : '-');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// ---- the run ------------------------------------------------------------------------------

const startedAt = Date.now();
const loadAtStart = loadavg();
const cpuList = cpus();
console.log('switchyard bench: device client overhead against the raw Azure client (issue 4)');
console.log(`git ${gitSha()} | node ${process.version} | ${cpuList.length} x ${cpuList[0]?.model ?? 'unknown CPU'} | load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start`);
console.log(
  `hub: own process${hasTaskset ? ' on CPU 0' : ''}; clients: a fresh process per variant, protocol and round${hasTaskset ? ', on CPU 1' : ''} (taskset ${hasTaskset ? 'on' : 'not available: unpinned'}); ` +
    `${settings.payloadBytes} B messages; warm-up ${settings.warmup}; ${rounds} round(s) x ${slices} slices of ${sliceMs} ms per variant at W=${settings.windows.join(' and W=')} sends in flight, raw and ours alternating ABBA; ` +
    `wire round: ${settings.wireMessages} messages one at a time through a counting TCP proxy`,
);

/**
 * What a consumer's bundler would ship: the client and zod tree-shaken into one file, the Azure
 * packages left external. It lives under bench/node_modules so the externals resolve from there.
 */
async function bundle(entry: string, name: string, external: string[]): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = here(`./node_modules/.cache/switchyard-bench/${name}`);
  await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', external, keepNames: false, outfile, logLevel: 'error' });
  return outfile;
}
// By default ours is measured as it ships: bundled and tree-shaken by esbuild, as a consumer's
// build would, with the child harness bundled too so that both variants run on plain node. From
// sources, tsx charges ours alone for transforming and source-mapping its TypeScript and for
// keepNames wrappers around every named closure (a few MB and a few us per message).
const bundled = !flags['from-source']
  ? {
      device: pathToFileURL(await bundle(here('../packages/device/src/index.ts'), 'device.bundle.mjs', ['azure-iot-*'])).href,
      child: await bundle(here('./overhead-child.ts'), 'overhead-child.bundle.mjs', ['azure-iot-*', '@switchyard/device']),
      adapter: await bundle(here('./adapter-cost.ts'), 'adapter-cost.bundle.mjs', ['azure-iot-*', '@switchyard/device']),
    }
  : undefined;
if (bundled !== undefined) {
  console.log(`ours = @switchyard/device bundled by esbuild (tree-shaken, no keepNames, ${(statSync(fileURLToPath(bundled.device)).size / 1024).toFixed(0)} KiB); both variants on plain node, no tsx (--from-source: both under tsx, ours from its TypeScript)`);
} else {
  console.log('--from-source: both variants under node --import tsx; ours from its TypeScript sources');
}
if (flags.aa) console.log("--aa: A/A calibration, the raw Azure client in both the 'raw' and the 'ours' column");
const oursModule = bundled?.device;

const childrenPerRound = protocols.length * 2;
// Identities from bench-10 on, so ids of equal length keep per-message bytes comparable (HTTPS
// repeats the id in every request path and SAS audience).
const hub = await startHub(10 + childrenPerRound * (rounds + 1));
const deviceIds = Object.keys(hub.info.devices).slice(10);
const { devices: _keys, ...hubAddress } = hub.info;
let nextDevice = 0;

function configFor(variant: Variant, protocol: Protocol, wire: boolean): ChildConfig {
  // A fresh identity per child, so no child inherits a session or queue from the previous one.
  const deviceId = deviceIds[nextDevice++];
  const key = deviceId === undefined ? undefined : hub.info.devices[deviceId];
  if (deviceId === undefined || key === undefined) throw new Error('bench: ran out of hub devices');
  return {
    // A/A: the "ours" slot runs a second raw client; results stay filed under the slot.
    variant: flags.aa ? 'raw' : variant,
    protocol,
    hub: hubAddress,
    deviceId,
    key,
    payloadBytes: settings.payloadBytes,
    warmup: settings.warmup,
    maxMessagesPerSlice: settings.maxMessagesPerSlice,
    ...(oursModule === undefined ? {} : { oursModule }),
    ...(wire ? { wireMessages: settings.wireMessages } : {}),
  };
}

interface PairedSlice {
  round: number;
  window: number;
  raw: SliceResult;
  ours: SliceResult;
}
interface ProtocolResults {
  children: Record<Variant, ChildResult[]>;
  wire: Record<Variant, ChildResult[]>;
  pairs: PairedSlice[];
}
const results = {} as Record<Protocol, ProtocolResults>;
for (const p of protocols) results[p] = { children: { raw: [], ours: [] }, wire: { raw: [], ours: [] }, pairs: [] };
const failures: string[] = [];

const rate = (s: SliceResult): number => s.messages / s.seconds;

async function wireRound(protocol: Protocol, order: Variant[]): Promise<void> {
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

async function measuredRound(round: number, protocol: Protocol, order: [Variant, Variant]): Promise<void> {
  const started: Partial<Record<Variant, ClientChild>> = {};
  try {
    for (const variant of order) {
      const child = await ClientChild.start(configFor(variant, protocol, false));
      started[variant] = child;
      if (!flags.aa && variant === 'ours' && child.ready?.chosen !== protocol) throw new Error(`our client chose ${child.ready?.chosen ?? '(nothing)'} instead of ${protocol}`);
    }
    const pairs: PairedSlice[] = [];
    for (let s = 0; s < slices; s++) {
      for (const window of settings.windows) {
        // ABBA: whoever goes first in one slice goes second in the next.
        const turn = s % 2 === 0 ? order : ([order[1], order[0]] as const);
        const got: Partial<Record<Variant, SliceResult>> = {};
        for (const variant of turn) got[variant] = await started[variant]!.run(window, sliceMs);
        pairs.push({ round, window, raw: got.raw!, ours: got.ours! });
      }
    }
    const ended: Partial<Record<Variant, ChildResult>> = {};
    for (const variant of order) ended[variant] = await started[variant]!.end();
    results[protocol].pairs.push(...pairs);
    for (const variant of order) results[protocol].children[variant].push(ended[variant]!);
    const summary = settings.windows
      .map((w) => {
        const ps = pairs.filter((p) => p.window === w);
        return `W${w} raw ${fmt(median(ps.map((p) => rate(p.raw))))} ours ${fmt(median(ps.map((p) => rate(p.ours))))} msg/s ratio ${fmt(median(ps.map((p) => rate(p.ours) / rate(p.raw))), 3)}`;
      })
      .join('  ');
    console.log(`  ${protocol.padEnd(7)} ${summary}  peak RSS raw ${fmt(ended.raw!.peakRssMB, 1)} ours ${fmt(ended.ours!.peakRssMB, 1)} MB`);
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
    console.log(`round ${round} of ${rounds} (per protocol: medians of ${slices} paired slices per window)`);
    for (const [i, protocol] of protocols.entries()) await measuredRound(round, protocol, (round + i) % 2 === 0 ? ['raw', 'ours'] : ['ours', 'raw']);
  }
} finally {
  await hub.stop();
}

// ---- report -------------------------------------------------------------------------------

const med = (rs: ChildResult[], pick: (r: ChildResult) => number | undefined): number => median(rs.map(pick).filter((v): v is number => v !== undefined));
const latencyOf = (r: ChildResult, window: number, p: 'p50Us' | 'p99Us'): number | undefined => r.latency.find((l) => l.window === window)?.[p];
const iqr = (values: number[]): string => (values.length < 4 ? '-' : `${fmt(percentile(values, 25), 2)}-${fmt(percentile(values, 75), 2)}`);
const slicesOf = (protocol: Protocol, window: number): PairedSlice[] => results[protocol].pairs.filter((p) => p.window === window);

const throughputRows: string[][] = [];
const targetLines: string[] = [];
const noise: number[] = [];
for (const protocol of protocols) {
  const { children } = results[protocol];
  for (const window of settings.windows) {
    const pairs = slicesOf(protocol, window);
    const ratios = pairs.map((p) => rate(p.ours) / rate(p.raw));
    const ratio = median(ratios);
    const rawRates = pairs.map((p) => rate(p.raw));
    // Spread of the raw client against itself: the resolution any ratio can claim.
    if (rawRates.length >= 4) noise.push((percentile(rawRates, 75) - percentile(rawRates, 25)) / median(rawRates));
    const cpuPerMessage = (v: Variant): number => median(pairs.map((p) => p[v].cpuUs / Math.max(1, p[v].messages)));
    throughputRows.push([
      protocol,
      String(window),
      fmt(median(rawRates)),
      fmt(median(pairs.map((p) => rate(p.ours)))),
      fmt(ratio, 3),
      iqr(ratios),
      `${fmt(med(children.raw, (r) => latencyOf(r, window, 'p50Us')))} / ${fmt(med(children.raw, (r) => latencyOf(r, window, 'p99Us')))}`,
      `${fmt(med(children.ours, (r) => latencyOf(r, window, 'p50Us')))} / ${fmt(med(children.ours, (r) => latencyOf(r, window, 'p99Us')))}`,
      fmt(cpuPerMessage('raw')),
      fmt(cpuPerMessage('ours')),
    ]);
    // Below the target only counts when most pairs are: if the IQR reaches the target, the
    // slices cannot tell this ratio from it (compare an --aa run on the same machine).
    const upper = ratios.length >= 4 ? percentile(ratios, 75) : ratio;
    const verdict = !Number.isFinite(ratio) ? 'no data' : ratio >= RATIO_TARGET ? 'met' : upper >= RATIO_TARGET ? 'not resolved (the IQR reaches the target)' : 'NOT met';
    targetLines.push(`  throughput ratio >= ${RATIO_TARGET}    ${protocol.padEnd(7)} W=${String(window).padEnd(2)}  ${fmt(ratio, 3)} (IQR ${iqr(ratios)}, ${ratios.length} slices): ${verdict}`);
  }
}

const memoryRows: string[][] = [];
for (const protocol of protocols) {
  const { children, wire } = results[protocol];
  const rawPeak = med(children.raw, (r) => r.peakRssMB);
  const oursPeak = med(children.ours, (r) => r.peakRssMB);
  const rawIdle = med(children.raw, (r) => r.rssAfterConnectMB);
  const oursIdle = med(children.ours, (r) => r.rssAfterConnectMB);
  const rawRetained = med(children.raw, (r) => r.peakRetainedMB);
  const oursRetained = med(children.ours, (r) => r.peakRetainedMB);
  const foreign = (variant: Variant): string => {
    const names = [...new Set([...children[variant], ...wire[variant]].flatMap((r) => r.foreignPackages))].sort();
    return names.length === 0 ? 'none' : names.join(',');
  };
  memoryRows.push([
    protocol,
    fmt(rawPeak, 1),
    fmt(oursPeak, 1),
    signed(oursPeak - rawPeak),
    fmt(rawRetained, 1),
    fmt(oursRetained, 1),
    signed(oursRetained - rawRetained),
    fmt(rawIdle, 1),
    fmt(oursIdle, 1),
    signed(oursIdle - rawIdle),
    foreign('raw'),
    foreign('ours'),
  ]);
  const diff = oursPeak - rawPeak;
  targetLines.push(`  peak RSS within ${RSS_BUDGET_MB} MB of raw  ${protocol.padEnd(7)}  ${signed(diff)} MB (${fmt(oursPeak, 1)} vs ${fmt(rawPeak, 1)}): ${!Number.isFinite(diff) ? 'no data' : diff <= RSS_BUDGET_MB ? 'met' : 'NOT met'}`);
  const retainedDiff = oursRetained - rawRetained;
  targetLines.push(
    `  peak RSS within ${RSS_BUDGET_MB} MB, young generation set aside  ${protocol.padEnd(7)}  ${signed(retainedDiff)} MB (${fmt(oursRetained, 1)} vs ${fmt(rawRetained, 1)}): ${!Number.isFinite(retainedDiff) ? 'no data' : retainedDiff <= RSS_BUDGET_MB ? 'met' : 'NOT met'}`,
  );
}

// Which packages our client loads that belong to other protocols and that the raw client on the
// same protocol does not load itself (azure-iot-device pulls in azure-iot-http-base on its own).
for (const protocol of protocols) {
  const { children, wire } = results[protocol];
  const all = [...children.raw, ...children.ours, ...wire.raw, ...wire.ours];
  const rawForeign = new Set(all.filter((r) => r.variant === 'raw').flatMap((r) => r.foreignPackages));
  const oursForeign = [...new Set(all.filter((r) => r.variant === 'ours').flatMap((r) => r.foreignPackages))].sort();
  const extra = oursForeign.filter((p) => !rawForeign.has(p));
  const inherent = oursForeign.filter((p) => rawForeign.has(p));
  const other = protocol.startsWith('mqtt') ? 'AMQP or HTTP' : protocol.startsWith('amqp') ? 'MQTT or HTTP' : 'MQTT or AMQP';
  const seen = all.some((r) => r.variant === 'ours');
  targetLines.push(
    `  ${protocol} client loads no ${other} module: ${!seen ? 'no data' : extra.length === 0 ? 'met' : `NOT met: ${extra.join(', ')}`}` +
      (inherent.length > 0 ? ` (${inherent.join(', ')} is required by azure-iot-device itself; the raw client loads it too)` : ''),
  );
}

const wireRows: string[][] = [];
for (const protocol of protocols) {
  const { wire } = results[protocol];
  const cell = (rs: ChildResult[], up: (r: ChildResult) => number | undefined, down: (r: ChildResult) => number | undefined): string => `${fmt(med(rs, up), 1)} / ${fmt(med(rs, down), 1)}`;
  wireRows.push([
    protocol,
    cell(wire.raw, (r) => r.wire?.perMessageUp, (r) => r.wire?.perMessageDown),
    cell(wire.ours, (r) => r.wire?.perMessageUp, (r) => r.wire?.perMessageDown),
    cell(wire.raw, (r) => r.wire?.setupUp, (r) => r.wire?.setupDown),
    cell(wire.ours, (r) => r.wire?.setupUp, (r) => r.wire?.setupDown),
  ]);
}

// The adapter's own CPU per send, measured without the network (adapter-cost.ts), turns into a
// bound on the throughput ratio of a CPU-bound client: raw / (raw + what the adapter adds). It does
// not move with the machine's load the way paired slices do.
async function adapterCost(): Promise<Record<string, { rawUs: number; oursUs: number }> | undefined> {
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
  return JSON.parse(out.trim()) as Record<string, { rawUs: number; oursUs: number }>;
}
const adapter = flags.aa ? undefined : await adapterCost();
const adapterRows: string[][] = [];
if (adapter !== undefined) {
  for (const protocol of protocols) {
    const cost = adapter[protocol];
    if (!cost) continue;
    const added = cost.oursUs - cost.rawUs;
    for (const window of settings.windows) {
      const pairs = slicesOf(protocol, window);
      const rawCpu = median(pairs.map((p) => p.raw.cpuUs / Math.max(1, p.raw.messages)));
      const bound = rawCpu / (rawCpu + Math.max(0, added));
      adapterRows.push([protocol, String(window), fmt(cost.rawUs, 2), fmt(cost.oursUs, 2), fmt(added, 2), fmt(rawCpu), fmt(bound, 3)]);
      targetLines.push(
        `  throughput ratio >= ${RATIO_TARGET}, bound   ${protocol.padEnd(7)} W=${String(window).padEnd(2)}  ${fmt(bound, 3)} (adapter +${fmt(added, 2)} us on ${fmt(rawCpu)} us/msg): ${bound >= RATIO_TARGET ? 'met' : 'NOT met'}`,
      );
    }
  }
}

const loadAtEnd = loadavg();
console.log('');
console.log(`Throughput and send latency (${settings.payloadBytes} B body; medians over ${rounds} round(s) x ${slices} slices; ratio = ours/raw of adjacent slices; IQR = its 25th-75th percentile)`);
console.log(table(['protocol', 'W', 'raw msg/s', 'ours msg/s', 'ratio', 'ratio IQR', 'raw p50/p99 us', 'ours p50/p99 us', 'raw CPU us/msg', 'ours CPU us/msg'], throughputRows));
console.log('');
console.log(
  "Memory in MB (peak = process.resourceUsage().maxRSS at exit; peak retained = highest sampled RSS minus V8's resident young generation; idle = RSS right after connect; medians over rounds) and other protocols' packages in require.cache",
);
console.log(table(['protocol', 'raw peak', 'ours peak', 'diff', 'raw retained', 'ours retained', 'diff', 'raw idle', 'ours idle', 'diff', 'foreign pkgs (raw)', 'foreign pkgs (ours)'], memoryRows));
console.log('');
if (adapterRows.length > 0) {
  console.log('Adapter cost (adapter-cost.ts: 300,000 sends at W=16 in one process, the Azure client replaced by one that resolves at once; CPU us per send, median of 5) and the throughput ratio it bounds: raw CPU/msg / (raw CPU/msg + added)');
  console.log(table(['protocol', 'W', 'stub only us', 'ours over stub us', 'added us', 'raw CPU us/msg', 'ratio bound'], adapterRows));
  console.log('');
}
console.log(`Bytes on the wire (TCP payload incl. TLS, counted by a relay; per message = delta over ${settings.wireMessages} messages sent one at a time, ack included; setup = connect + first message)`);
console.log(table(['protocol', 'raw B/msg up / down', 'ours B/msg up / down', 'raw setup up / down', 'ours setup up / down'], wireRows));
console.log('');
console.log(flags.aa ? "A/A calibration: the 'ours' column ran the raw client too, so these lines measure the bench, not the client:" : 'Targets (reported, not asserted):');
for (const line of targetLines) console.log(line);
console.log('');
console.log(
  `Noise: load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')} at end, on ${cpuList.length} cores shared with other work. ` +
    `The raw client's own slice rates have a median IQR of ${fmt(median(noise) * 100)}% of their median: ratios closer to 1.0 than that, ` +
    'or whose IQR straddles 1.0, show no detectable difference. CPU us/msg counts all threads of the client process and is the least load-sensitive column.',
);
if (failures.length > 0) {
  console.log(`Failures (${failures.length}):`);
  for (const f of failures) console.log(`  ${f}`);
}
console.log(`Total ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`);

if (flags.json !== undefined) {
  const json = { git: gitSha(), node: process.version, cpu: cpuList[0]?.model, cores: cpuList.length, loadAtStart, loadAtEnd, settings: { ...settings, rounds, slices, sliceMs, bundled: !flags['from-source'], aa: flags.aa }, results, failures };
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
