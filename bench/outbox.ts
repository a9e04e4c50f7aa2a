// `pnpm bench:outbox`: what the outbox costs, against the plain client in the same run. Every
// variant runs in a process of its own (bench/outbox-child.ts), all on one CPU (taskset: CPU 1),
// the hub in its own process on the other (CPU 0). In each round the children are started,
// connected and warmed up one after another, then run every slice together, so a burst of
// background load hits all of them alike; ratios are taken per slice set (variant / plain of the
// same slice) and the report shows their medians over every slice set of every round, with the
// A/A pair (a second plain client) beside as the noise floor.
//
//   node --conditions=source --import tsx bench/outbox.ts [--rounds 3] [--slices 6] [--slice-ms 500]
//     [--warmup 6000] [--windows 16,1] [--protocols mqtt[,amqp]] [--variants plain,aa,ids,memory,durable]
//     [--before DIR] [--from-source] [--cpu-prof DIR] [--json FILE]
//
// The children run as users run the client: compiled JavaScript, here one esbuild bundle of the
// child with @switchyard/device built in from its sources (the Azure packages stay outside, taken
// from bench/node_modules). Under tsx (--from-source) every closure made per message also pays a
// keepNames wrapper (`__name`, an Object.defineProperty), which compiled code does not have.
//
// --before DIR adds memory@before and durable@before (for those of memory and durable that run):
// the same outboxes with connect() from
// another checkout's packages/device (DIR is that checkout's root), so a change is measured
// against the code before it in the same slices.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { hasTaskset, pinned, pinSelfToHubCore, startHub } from './hub-child.ts';
import { median, percentile } from './stats.ts';
import type { OutboxChildConfig, OutboxChildResult, OutboxVariant } from './outbox-types.ts';
import type { SliceResult } from './overhead-types.ts';

const USAGE = `usage: node --conditions=source --import tsx bench/outbox.ts [options]
  --rounds N        rounds, fresh processes each (default 3)
  --slices N        slices per window in a round (default 6)
  --slice-ms MS     length of one slice (default 500)
  --warmup N        messages each child sends before its first slice (default 6000)
  --windows LIST    sends in flight, comma-separated (default 16,1)
  --protocols LIST  mqtt, amqp or both (default mqtt)
  --variants LIST   of plain,aa,ids,memory,durable (plain always runs; default plain,aa,memory,durable)
  --before DIR      also memory@before and durable@before (of those in --variants), from
                    DIR/packages/device/src
  --device DIR      every variant with connect() from DIR/packages/device/src (another checkout),
                    for runs that alternate with this checkout's
  --dir-root DIR    where the durable outboxes' directories go (default: the OS temp directory)
  --from-source     children under tsx from the TypeScript sources instead of a bundle
  --cpu-prof DIR    CPU profiles of the slices; DIR/<variant>/ then holds raw- (plain), ours- (that
                    variant) and aa- profiles for bench/profile-diff.ts
  --json FILE       every slice as JSON`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    slices: { type: 'string', default: '6' },
    'slice-ms': { type: 'string', default: '500' },
    warmup: { type: 'string', default: '6000' },
    windows: { type: 'string', default: '16,1' },
    protocols: { type: 'string', default: 'mqtt' },
    variants: { type: 'string', default: 'plain,aa,memory,durable' },
    before: { type: 'string' },
    device: { type: 'string' },
    'dir-root': { type: 'string' },
    'from-source': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
function positive(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`--${name} must be a positive integer, got ${JSON.stringify(text)}\n${USAGE}`);
    process.exit(2);
  }
  return value;
}
const rounds = positive('rounds', flags.rounds);
const slices = positive('slices', flags.slices);
const sliceMs = positive('slice-ms', flags['slice-ms']);
const warmup = positive('warmup', flags.warmup);
const windows = flags.windows.split(',').map((w) => positive('windows', w.trim()));
const protocols = flags.protocols.split(',').map((p) => p.trim());
if (protocols.some((p) => p !== 'mqtt' && p !== 'amqp')) {
  console.error(`--protocols: mqtt and/or amqp\n${USAGE}`);
  process.exit(2);
}

interface Slot {
  name: string;
  variant: OutboxVariant;
  module?: string;
}
const KNOWN: Record<string, OutboxVariant> = { plain: 'plain', aa: 'plain', ids: 'ids', memory: 'memory', durable: 'durable' };
function deviceModule(flag: string, dir: string): string {
  const entry = resolve(dir, 'packages/device/src/index.ts');
  if (!existsSync(entry)) {
    console.error(`--${flag}: no ${entry}`);
    process.exit(2);
  }
  return pathToFileURL(entry).href;
}
const allFrom = flags.device === undefined ? undefined : deviceModule('device', flags.device);
const slots: Slot[] = [{ name: 'plain', variant: 'plain', ...(allFrom === undefined ? {} : { module: allFrom }) }];
for (const name of flags.variants.split(',').map((v) => v.trim())) {
  const variant = KNOWN[name];
  if (variant === undefined) {
    console.error(`--variants: unknown ${JSON.stringify(name)}\n${USAGE}`);
    process.exit(2);
  }
  if (name !== 'plain') slots.push({ name, variant, ...(allFrom === undefined ? {} : { module: allFrom }) });
}
if (flags.before !== undefined) {
  const module = deviceModule('before', flags.before);
  for (const variant of ['memory', 'durable'] as const) if (slots.some((s) => s.name === variant)) slots.push({ name: `${variant}@before`, variant, module });
}

const settings = { payloadBytes: 100, warmupMaxMs: 8000, maxMessagesPerSlice: sliceMs * 200, lineTimeoutMs: 60_000 };
// This process only orchestrates; it stays off the clients' core.
pinSelfToHubCore();
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

function gitSha(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).stdout.trim() !== '';
  return r.status === 0 ? `${r.stdout.trim()}${dirty ? ' (uncommitted changes)' : ''}` : 'unknown';
}

/** One child, driven line by line. */
class Child {
  readonly #child: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #exited: Promise<unknown>;

  constructor(config: OutboxChildConfig, bundle: string | undefined) {
    const script = bundle === undefined ? ['--conditions=source', '--import', 'tsx', here('./outbox-child.ts')] : [bundle];
    const [cmd, args] = pinned(1, ['--disable-warning=DEP0123', ...script]);
    this.#child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#exited = once(this.#child, 'exit');
    this.#lines = createInterface({ input: this.#child.stdout! })[Symbol.asyncIterator]();
    this.#child.stdin!.write(`${JSON.stringify(config)}\n`);
  }

  async expect(tag: string): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${tag} within ${settings.lineTimeoutMs} ms`)), settings.lineTimeoutMs);
    });
    const exited = this.#exited.then(() => { throw new Error(`child exited (code ${this.#child.exitCode ?? this.#child.signalCode}) before ${tag}`); });
    try {
      for (let i = 0; i < 1000; i++) {
        const next = await Promise.race([this.#lines.next(), timeout, exited]);
        if (next.done === true) throw new Error(`child closed stdout before ${tag}`);
        if (next.value.startsWith(`${tag} `)) return next.value.slice(tag.length + 1);
      }
      throw new Error(`no ${tag} in 1000 lines`);
    } finally {
      clearTimeout(timer);
    }
  }

  async run(window: number, ms: number): Promise<SliceResult> {
    this.#child.stdin!.write(`RUN ${window} ${ms}\n`);
    return JSON.parse(await this.expect('SLICE')) as SliceResult;
  }

  async end(): Promise<OutboxChildResult> {
    this.#child.stdin!.end('END\n');
    const result = JSON.parse(await this.expect('RESULT')) as OutboxChildResult;
    await this.#exited;
    return result;
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}


interface SliceSet {
  protocol: string;
  round: number;
  window: number;
  slices: Record<string, SliceResult>;
}

const rate = (s: SliceResult): number => s.messages / s.seconds;
const cpuPerMessage = (s: SliceResult): number => s.cpuUs / Math.max(1, s.messages);
const fmt = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const iqr = (values: number[], digits = 2): string => (values.length < 4 ? '-' : `${fmt(percentile(values, 25), digits)}-${fmt(percentile(values, 75), digits)}`);

/**
 * The child as one plain-node file with `module` (a device package's src/index.ts; the
 * workspace's by default) built in. Written under bench/node_modules, so the Azure packages it
 * leaves outside resolve from bench/node_modules.
 */
async function bundleFor(module: string | undefined, name: string): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = here(`./node_modules/.cache/switchyard-bench/outbox-child-${name}.mjs`);
  await build({
    entryPoints: [here('./outbox-child.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    external: ['azure-iot-*'],
    keepNames: false,
    ...(module === undefined ? {} : { alias: { '@switchyard/device': fileURLToPath(module) } }),
    outfile,
    logLevel: 'error',
  });
  return outfile;
}
const bundles = new Map<string | undefined, string>();
if (!flags['from-source']) for (const [i, module] of [...new Set(slots.map((s) => s.module))].entries()) bundles.set(module, await bundleFor(module, String(i)));

const loadAtStart = loadavg();
const startedAt = Date.now();
console.log('switchyard outbox bench: the outbox against the plain client, every variant in its own process, each slice run by all of them together');
console.log(
  `git ${gitSha()} | node ${process.version} | load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start | hub on ${hasTaskset ? 'CPU 0' : 'any CPU (no taskset)'}, clients on ${hasTaskset ? 'CPU 1' : 'any CPU'} | ` +
    `${protocols.join(', ')} | ${settings.payloadBytes} B messages, acknowledged by the hub | warm-up ${warmup} messages | ${rounds} round(s) x ${slices} slices of ${sliceMs} ms at W=${windows.join(' and W=')} | variants ${slots.map((s) => s.name).join(', ')} | ${flags['from-source'] ? 'children under tsx, from the TypeScript sources' : 'children bundled (esbuild, no keepNames), as compiled code runs'}`,
);
if (flags.before !== undefined) console.log(`@before: connect() from ${resolve(flags.before)}`);
if (flags.device !== undefined) console.log(`every variant: connect() from ${resolve(flags.device)}`);

const hub = await startHub(slots.length * rounds * protocols.length, ['--conditions=source', '--import', 'tsx']);
const { devices: _keys, ...hubAddress } = hub.info;
const deviceIds = Object.keys(hub.info.devices);
let nextDevice = 0;
const outboxRoot = mkdtempSync(join(flags['dir-root'] ?? tmpdir(), 'switchyard-bench-outbox-'));
console.log(`durable outboxes under ${outboxRoot} (${spawnSync('df', ['--output=fstype', outboxRoot], { encoding: 'utf8' }).stdout.split('\n')[1]?.trim() ?? '?'})`);
const profileRoot = flags['cpu-prof'] === undefined ? undefined : resolve(flags['cpu-prof']);
const sets: SliceSet[] = [];
const logs: Array<{ slot: string; protocol: string; round: number; messages: number; log: NonNullable<OutboxChildResult['durableLog']> }> = [];
const failures: string[] = [];
const profileDirs: Array<{ slot: string; protocol: string; deviceId: string; dir: string }> = [];

async function round(protocol: 'mqtt' | 'amqp', r: number): Promise<void> {
  const started = new Map<string, Child>();
  try {
    // One after another, in an order that rotates with the round: each cold start and warm-up
    // runs without the others competing for the CPU.
    const order = slots.map((_, i) => slots[(i + r) % slots.length]!);
    for (const slot of order) {
      const deviceId = deviceIds[nextDevice++]!;
      const cpuProfile = profileRoot === undefined ? undefined : join(profileRoot, 'all', `${slot.name}-${protocol}-${deviceId}`);
      if (cpuProfile !== undefined) profileDirs.push({ slot: slot.name, protocol, deviceId, dir: cpuProfile });
      const bundle = bundles.get(slot.module);
      const child = new Child({
        variant: slot.variant,
        protocol,
        ...(slot.module === undefined || bundle !== undefined ? {} : { module: slot.module }),
        hub: hubAddress,
        deviceId,
        key: hub.info.devices[deviceId]!,
        ...(slot.variant === 'durable' ? { dir: join(outboxRoot, deviceId) } : {}),
        payloadBytes: settings.payloadBytes,
        warmup,
        warmupMaxMs: settings.warmupMaxMs,
        maxMessagesPerSlice: settings.maxMessagesPerSlice,
        ...(cpuProfile === undefined ? {} : { cpuProfile }),
      }, bundle);
      started.set(slot.name, child);
      await child.expect('READY');
    }
    const mine: SliceSet[] = [];
    for (let s = 0; s < slices; s++) {
      for (const window of windows) {
        // The order the RUN lines go out in rotates too: the first to start gets a head start.
        const turn = slots.map((_, i) => slots[(i + s + r) % slots.length]!.name);
        const results = await Promise.all(turn.map((name) => started.get(name)!.run(window, sliceMs)));
        mine.push({ protocol, round: r, window, slices: Object.fromEntries(turn.map((name, i) => [name, results[i]!])) });
      }
    }
    for (const [name, child] of started) {
      const result = await child.end();
      if (result.durableLog !== undefined) logs.push({ slot: name, protocol, round: r, messages: result.messages, log: result.durableLog });
    }
    sets.push(...mine);
    const line = windows
      .map((w) => {
        const ws = mine.filter((set) => set.window === w);
        const plain = median(ws.map((set) => rate(set.slices.plain!)));
        return `W${w} plain ${fmt(plain)} msg/s; ` + slots.filter((s) => s.name !== 'plain').map((s) => `${s.name} ${fmt(median(ws.map((set) => rate(set.slices[s.name]!) / rate(set.slices.plain!))), 3)}`).join(' ');
      })
      .join(' | ');
    console.log(`  ${protocol} round ${r + 1}: ${line}`);
  } catch (err) {
    failures.push(`${protocol} round ${r + 1}: ${(err as Error).message}`);
    console.log(`  ${protocol} round ${r + 1} FAILED: ${(err as Error).message}`);
  } finally {
    for (const child of started.values()) child.kill();
  }
}

try {
  for (const protocol of protocols as Array<'mqtt' | 'amqp'>) for (let r = 0; r < rounds; r++) await round(protocol, r);
} finally {
  await hub.stop();
  rmSync(outboxRoot, { recursive: true, force: true });
}

// ---- report -------------------------------------------------------------------------------

const loadAtEnd = loadavg();
console.log('');
console.log('Per protocol and window, medians over every slice set of every round. rate / plain and CPU / plain are');
console.log('ratios within one slice set (the variants ran it together); CPU is the process (all threads) per message.');
for (const protocol of protocols) {
  for (const window of windows) {
    const ws = sets.filter((set) => set.protocol === protocol && set.window === window);
    if (ws.length === 0) continue;
    console.log(`\n${protocol} W=${window} (${ws.length} slice sets)`);
    const header = ['variant', 'msg/s', 'rate / plain', 'IQR', 'CPU us/msg', 'CPU / plain', 'IQR', 'main-thread us/msg'];
    const rows = slots.map((slot) => {
      const ratio = ws.map((set) => rate(set.slices[slot.name]!) / rate(set.slices.plain!));
      const cpuRatio = ws.map((set) => cpuPerMessage(set.slices[slot.name]!) / cpuPerMessage(set.slices.plain!));
      const main = ws.map((set) => (set.slices[slot.name]!.threads?.mainNs ?? Number.NaN) / 1000 / Math.max(1, set.slices[slot.name]!.messages));
      return [slot.name, fmt(median(ws.map((set) => rate(set.slices[slot.name]!)))), fmt(median(ratio), 3), iqr(ratio), fmt(median(ws.map((set) => cpuPerMessage(set.slices[slot.name]!))), 1), fmt(median(cpuRatio), 3), iqr(cpuRatio), fmt(median(main), 1)];
    });
    // Under 100 % the clients wait for the hub (or the network), not for their CPU: rates then say
    // how the hub shares itself out as much as what a variant costs; CPU per message still holds.
    const busy = median(ws.map((set) => Object.values(set.slices).reduce((sum, sl) => sum + sl.cpuUs / (sl.seconds * 1e6), 0)));
    console.log(`  clients' CPU busy (sum over variants, median per slice set): ${fmt(busy * 100)} % of one core`);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    for (const row of [header, ...rows]) console.log(`  ${row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}`);
  }
}
const durableW16 = sets.filter((set) => set.protocol === 'mqtt' && set.window === 16 && set.slices.durable !== undefined);
if (durableW16.length > 0) {
  const ratio = (name: string): number => median(durableW16.map((set) => rate(set.slices[name]!) / rate(set.slices.plain!)));
  console.log(`\nmqtt W=16: durable outbox / plain ${fmt(ratio('durable'), 3)}x (target >= 0.9x); in-memory outbox ${slots.some((s) => s.name === 'memory') ? fmt(ratio('memory'), 3) : '-'}x; A/A ${slots.some((s) => s.name === 'aa') ? fmt(ratio('aa'), 3) : '-'}x`);
}
for (const { slot, protocol, round: r, messages, log } of logs) {
  const perWrite = log.writes === undefined ? '' : `, ${log.writes} writes (${(messages / log.writes).toFixed(1)} messages per write)`;
  console.log(`durable log (${slot}, ${protocol}, round ${r + 1}): ${messages} messages, ${log.bytes} bytes, ${log.liveBytes} live, ${log.compactions} compaction(s)${perWrite}`);
}
console.log(`Load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')} at end (2 cores shared with other work). Total ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`);
if (failures.length > 0) {
  console.log(`Failures (${failures.length}):`);
  for (const f of failures) console.log(`  ${f}`);
  process.exitCode = 1;
}

if (profileRoot !== undefined) {
  // bench/profile-diff.ts compares raw-, ours- and aa- directories: one such view per variant.
  for (const slot of slots.filter((s) => s.name !== 'plain' && s.name !== 'aa')) {
    const view = join(profileRoot, slot.name.replace('@', '-'));
    mkdirSync(view, { recursive: true });
    for (const p of profileDirs) {
      const as = p.slot === 'plain' ? 'raw' : p.slot === 'aa' ? 'aa' : p.slot === slot.name ? 'ours' : undefined;
      // Copies, not links: profile-diff.ts lists directories only.
      if (as !== undefined && existsSync(p.dir)) cpSync(p.dir, join(view, `${as}-${p.protocol}-${p.deviceId}`), { recursive: true });
    }
  }
  console.log(`Profiles: node --import tsx bench/profile-diff.ts ${profileRoot}/<variant> (plain as raw, the variant as ours, aa as A/A)`);
}
if (flags.json !== undefined) {
  writeFileSync(flags.json, JSON.stringify({ git: gitSha(), loadAtStart, loadAtEnd, settings: { ...settings, rounds, slices, sliceMs, warmup, windows, protocols, slots }, sets, logs, failures }, null, 2));
  console.log(`Wrote ${flags.json}.`);
}
