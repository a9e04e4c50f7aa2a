// Gateway memory: what N device identities cost in one process when they share the gateway's AMQP
// connection, against one raw Azure client (AMQP, then MQTT) per identity. For every N and variant
// a fresh hub process (CPU 0) and a fresh client process started with --expose-gc (CPU 1): the
// child connects N identities, settles, collects garbage twice, and reports its TCP sockets, RSS
// and connect time. RSS = a + b·N is fitted per variant; the report compares the slopes b.
//
//   pnpm --filter @switchyard/bench gateway-memory [--quick] [--n 1,10,100,1000] [--repeat 2]
//        [--variants gateway-amqp,gateway-amqp-azure-client,raw-amqp,raw-mqtt] [--json FILE]
//        [--send M]
//
// N goes up to 10 000 for the gateways (a pool of connections of at most 995 identities each) and
// 5 000 for the raw clients (one socket each). With --send M, after the memory is read every
// identity sends M messages, all identities at once, and the child reports the aggregate
// telemetry throughput (messages acknowledged per second) beside the raw clients' in the same run.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { getHeapSpaceStatistics } from 'node:v8';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
// Types only: each child loads just its own variant's modules, at run time.
import type { createGateway as createGatewayType } from '@switchyard/gateway';
import type { Client as AzureClientType, Message as AzureMessageType } from 'azure-iot-device';

const VARIANTS = ['gateway-amqp', 'gateway-amqp-azure-client', 'raw-amqp', 'raw-mqtt'] as const;
const GATEWAYS = ['gateway-amqp', 'gateway-amqp-azure-client'] as const;
const isGateway = (variant: Variant): boolean => (GATEWAYS as readonly string[]).includes(variant);
type Variant = (typeof VARIANTS)[number];

interface HubInfo {
  hostName: string;
  address: string;
  ports: { mqtt: number; amqp: number; https: number };
  ca: string;
  devices: Record<string, string>;
}

interface ChildConfig {
  variant: Variant;
  n: number;
  hub: HubInfo;
  /** Raw clients connected at a time. */
  concurrency: number;
  /** Stop connecting more identities after this long; what connected is measured. */
  capMs: number;
  /** Messages each identity sends after the memory reading; 0 for none. */
  sendPerIdentity: number;
}

interface ChildResult {
  variant: Variant;
  n: number;
  connected: number;
  failed: number;
  capped: boolean;
  capReason?: string;
  connectMs: number;
  baselineRssBytes: number;
  baselineYoungGenBytes: number;
  rssBytes: number;
  /** Resident part of V8's young generation (see youngGenerationBytes). */
  youngGenBytes: number;
  heapUsedBytes: number;
  tcpSockets: number;
  /** Every socket fd, including the stdio pipes to the parent. */
  allSockets: number;
  connections?: number;
  /** With --send: messages acknowledged, and how long all identities took to send them. */
  sent?: number;
  sendMs?: number;
  sendFailed?: number;
}

const MAX_GATEWAY_N = 10_000;
const MAX_RAW_N = 5_000;
const TARGET_RATIO = 10;
const TARGET_CONNECT_MS = 10_000;
const TARGET_CONNECT_10K_MS = 15_000;
const TARGET_KIB_PER_ID = 6.5;
const CAP_MS = 120_000;
const RAW_CONCURRENCY = 50;
const SETTLE_MS = 1_000;

const USAGE = `usage: pnpm --filter @switchyard/bench gateway-memory [options]
  --quick            N = 1, 10, 100, one run each (about a minute)
  --n LIST           identity counts, comma-separated (default 1,10,100,1000)
  --repeat R         fresh processes per variant and N (default 2; --quick 1)
  --variants LIST    subset of ${VARIANTS.join(',')}
  --json FILE        also write every child's result as JSON
  --send M           after the memory reading, every identity sends M messages at once; report
                     the aggregate throughput`;

// ---- child: one variant, one N ------------------------------------------------------------------

/** Open TCP sockets of this process: socket fds whose inode is in the kernel's TCP tables. */
function countSockets(): { tcp: number; all: number } {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd of the directory listing itself is gone by now
    }
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match?.[1]) inodes.add(match[1]);
  }
  let tcp = 0;
  for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode !== undefined && inodes.has(inode)) tcp++;
    }
  }
  return { tcp, all: inodes.size };
}

/**
 * Resident bytes of V8's young generation. Its semi-spaces grow under allocation pressure up to a
 * fixed cap (2 × 16 MiB here) and, in Node 20, stay resident after gc(): a process that has just
 * made a burst of short-lived objects holds ~17 MiB more RSS than before it, however few of them
 * survive. That is scratch space whose size does not depend on how many identities are held, so it
 * is reported beside RSS and subtracted for the per-identity slope.
 */
function youngGenerationBytes(): number {
  return getHeapSpaceStatistics()
    .filter((space) => space.space_name === 'new_space' || space.space_name === 'new_large_object_space')
    .reduce((sum, space) => sum + space.physical_space_size, 0);
}

async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the child needs --expose-gc');
  gc();
  await sleep(50);
  gc();
}

async function withCap<T>(work: Promise<T>, capMs: number): Promise<T | 'capped'> {
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<'capped'>((resolve) => {
    timer = setTimeout(() => resolve('capped'), capMs);
  });
  try {
    return await Promise.race([work, cap]);
  } finally {
    clearTimeout(timer);
  }
}

interface Connected {
  connected: number;
  failed: number;
  capped: boolean;
  capReason?: string;
  connections?: number;
  /** Sends one message as identity number `i` (of those connected). */
  send(i: number, body: string): Promise<void>;
  close(): Promise<void>;
}

type Connector = (config: ChildConfig, ids: string[]) => Promise<Connected>;

/** Loads only what the variant needs, before the baseline, so module code is not charged per identity. */
async function loadVariant(variant: Variant): Promise<Connector> {
  if (isGateway(variant)) {
    const { createGateway } = await import('@switchyard/gateway');
    // The default engine is passed as undefined, so the variant measures whatever the default is.
    const engine = variant === 'gateway-amqp-azure-client' ? 'azure-client' : undefined;
    return (config, ids) => connectGateway(createGateway, config, ids, engine);
  }
  // Only the one transport package, as a plain Azure device program would load.
  const { Client, Message: AzureMessage } = (await import('azure-iot-device')).default;
  Message = AzureMessage;
  const Transport = variant === 'raw-amqp' ? (await import('azure-iot-device-amqp')).default.Amqp : (await import('azure-iot-device-mqtt')).default.Mqtt;
  return (config, ids) => connectRaw(Client, Transport, config, ids);
}

type CreateGateway = typeof createGatewayType;
/** The SDK's Message class, loaded with the raw variants only. */
let Message: typeof AzureMessageType;
type AzureClient = typeof AzureClientType;
type AzureTransport = Parameters<AzureClient['fromConnectionString']>[1];

async function connectGateway(createGateway: CreateGateway, config: ChildConfig, ids: string[], engine: 'azure-client' | undefined): Promise<Connected> {
  const { hub } = config;
  const gateway = await createGateway({
    protocol: 'amqp',
    ...(engine === undefined ? {} : { engine }),
    env: {},
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    identities: ids.map((deviceId) => ({
      deviceId,
      connectionString: `HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${hub.devices[deviceId]!}`,
    })),
  });
  gateway.on('identity-error', () => undefined);
  const opened = await withCap(gateway.open(), config.capMs);
  const up = gateway.list().filter((i) => i.state === 'connected');
  const connected = up.length;
  return {
    send: (i, body) => up[i]!.device.sendEvent(body),
    connected,
    failed: opened === 'capped' ? ids.length - connected : opened.failed.length,
    capped: opened === 'capped',
    ...(opened === 'capped' ? { capReason: `open() still running after ${config.capMs / 1000} s` } : {}),
    connections: gateway.connections().length,
    close: () => gateway.close(),
  };
}

async function connectRaw(Client: AzureClient, Transport: AzureTransport, config: ChildConfig, ids: string[]): Promise<Connected> {
  const { hub } = config;
  const port = config.variant === 'raw-amqp' ? hub.ports.amqp : hub.ports.mqtt;
  const clients: Array<InstanceType<typeof Client>> = [];
  let failed = 0;
  let capReason: string | undefined;
  const deadline = Date.now() + config.capMs;
  const queue = [...ids];
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      if (Date.now() > deadline) {
        capReason ??= `stopped connecting after ${config.capMs / 1000} s`;
        return;
      }
      const client = Client.fromConnectionString(`HostName=${hub.hostName};DeviceId=${id};SharedAccessKey=${hub.devices[id]!};GatewayHostName=${hub.address}:${port}`, Transport);
      // An 'error' without a listener would end the measurement.
      client.on('error', () => undefined);
      try {
        await client.setOptions({ ca: hub.ca });
        await client.open();
        clients.push(client);
      } catch (err) {
        failed++;
        capReason ??= `a client failed to connect: ${(err as Error).name}: ${(err as Error).message}`;
        await client.close().catch(() => undefined);
        // Refused or exhausted (file descriptors, ports): stop, and measure what is up.
        if (failed >= 10) return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.concurrency, ids.length) }, worker));
  return {
    send: (i, body) => clients[i]!.sendEvent(new Message(body)).then(() => undefined),
    connected: clients.length,
    failed,
    capped: clients.length < ids.length,
    ...(capReason === undefined ? {} : { capReason }),
    close: async () => {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    },
  };
}

async function runChild(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  const [line] = (await once(lines, 'line')) as [string];
  const config = JSON.parse(line) as ChildConfig;
  const ids = Array.from({ length: config.n }, (_, i) => `bench-${i}`);

  const connect = await loadVariant(config.variant);
  await collectGarbage();
  const baselineRssBytes = process.memoryUsage().rss;
  const baselineYoungGenBytes = youngGenerationBytes();
  const start = performance.now();
  const up = await connect(config, ids);
  const connectMs = performance.now() - start;

  // Let handshake garbage and pending callbacks settle before the heap is measured.
  await sleep(SETTLE_MS);
  await collectGarbage();
  await sleep(200);
  const memory = process.memoryUsage();
  const sockets = countSockets();
  const result: ChildResult = {
    variant: config.variant,
    n: config.n,
    connected: up.connected,
    failed: up.failed,
    capped: up.capped,
    ...(up.capReason === undefined ? {} : { capReason: up.capReason }),
    connectMs,
    baselineRssBytes,
    baselineYoungGenBytes,
    rssBytes: memory.rss,
    youngGenBytes: youngGenerationBytes(),
    heapUsedBytes: memory.heapUsed,
    tcpSockets: sockets.tcp,
    allSockets: sockets.all,
    ...(up.connections === undefined ? {} : { connections: up.connections }),
  };
  if (config.sendPerIdentity > 0 && up.connected > 0) {
    let sent = 0;
    let sendFailed = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: up.connected }, async (_, i) => {
        for (let m = 0; m < config.sendPerIdentity; m++) {
          try {
            await up.send(i, `m${m}`);
            sent++;
          } catch {
            sendFailed++;
          }
        }
      }),
    );
    Object.assign(result, { sent, sendFailed, sendMs: performance.now() - t0 });
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await withCap(up.close(), 15_000);
  // The measurement is out; SDK retry timers must not keep a finished child around.
  process.exit(0);
}

// ---- parent: orchestration and report ---------------------------------------------------------

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const hasTaskset = (): boolean => spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;

function gitSha(): string {
  const cwd = here('.');
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd });
  const dirty = spawnSync('git', ['status', '--porcelain'], { encoding: 'utf8', cwd }).stdout?.trim() !== '';
  return r.status === 0 ? `${r.stdout.trim()}${dirty ? ' (uncommitted changes in tree)' : ''}` : 'unknown';
}

/** Reads one line of a child's stdout, or fails after `ms` or when the child exits first. */
async function firstLine(child: ReturnType<typeof spawn>, ms: number, what: string): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  let timer: NodeJS.Timeout | undefined;
  try {
    const [line] = await Promise.race([
      once(lines, 'line') as Promise<[string]>,
      once(child, 'exit').then(([code]) => {
        throw new Error(`${what} exited (code ${String(code)}) before reporting`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not report within ${ms / 1000} s`)), ms);
      }),
    ]);
    return line;
  } finally {
    clearTimeout(timer);
    lines.close();
  }
}

async function stopChild(child: ReturnType<typeof spawn>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

async function measure(variant: Variant, n: number, pin: (cpu: number, args: string[]) => [string, string[]], sendPerIdentity: number): Promise<ChildResult> {
  const [hubCmd, hubArgs] = pin(0, ['--import', 'tsx', here('./hub-process.ts'), String(n)]);
  const hub = spawn(hubCmd, hubArgs, { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const hubInfo = JSON.parse(await firstLine(hub, 60_000, 'the hub process')) as HubInfo;
    // DEP0123: the raw AMQP client sets an IP as TLS server name when GatewayHostName is an IP.
    const [cmd, args] = pin(1, ['--expose-gc', '--disable-warning=DEP0123', '--import', 'tsx', here('./gateway-memory.ts'), '--child']);
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const config: ChildConfig = { variant, n, hub: hubInfo, concurrency: RAW_CONCURRENCY, capMs: CAP_MS, sendPerIdentity };
      child.stdin!.write(`${JSON.stringify(config)}\n`);
      return JSON.parse(await firstLine(child, CAP_MS + 60_000, `the ${variant} child (N=${n})`)) as ChildResult;
    } finally {
      await stopChild(child);
    }
  } finally {
    await stopChild(hub);
  }
}

/** Least squares y = a + b·x, with R². */
export function fitLine(points: ReadonlyArray<{ x: number; y: number }>): { a: number; b: number; r2: number } {
  const n = points.length;
  if (n < 2) return { a: Number.NaN, b: Number.NaN, r2: Number.NaN };
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const syy = points.reduce((s, p) => s + (p.y - my) ** 2, 0);
  const b = sxy / sxx;
  const a = my - b * mx;
  const r2 = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  return { a, b, r2 };
}

const MiB = 1024 * 1024;
/** RSS without the young generation's residency: what the process holds once its scratch space is set aside. */
const retained = (rss: number, young: number): number => rss - young;
const fmt = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

async function runParent(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      n: { type: 'string' },
      repeat: { type: 'string' },
      variants: { type: 'string' },
      json: { type: 'string' },
      send: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  const counts = (flags.n ?? (flags.quick ? '1,10,100' : '1,10,100,1000')).split(',').map((s) => Number(s.trim()));
  if (counts.some((c) => !Number.isInteger(c) || c < 1 || c > MAX_GATEWAY_N)) {
    console.error(`--n must list integers from 1 to ${MAX_GATEWAY_N}\n${USAGE}`);
    process.exit(2);
  }
  const sendPerIdentity = Number(flags.send ?? '0');
  if (!Number.isInteger(sendPerIdentity) || sendPerIdentity < 0 || sendPerIdentity > 10_000) {
    console.error(`--send must be an integer from 0 to 10000\n${USAGE}`);
    process.exit(2);
  }
  // The children load the packages as a consumer does (their dist/): build them first, so what is
  // measured is the code in this tree.
  const built = spawnSync(process.execPath, [here('../node_modules/typescript/bin/tsc'), '-b', here('../tsconfig.build.json')], { stdio: 'inherit' });
  if (built.status !== 0) process.exit(1);
  const repeat = Number(flags.repeat ?? (flags.quick ? '1' : '2'));
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 10) {
    console.error(`--repeat must be an integer from 1 to 10\n${USAGE}`);
    process.exit(2);
  }
  const variants = (flags.variants ?? VARIANTS.join(',')).split(',').map((s) => s.trim()) as Variant[];
  const unknown = variants.filter((v) => !(VARIANTS as readonly string[]).includes(v));
  if (unknown.length > 0) {
    console.error(`--variants: unknown ${unknown.join(', ')}\n${USAGE}`);
    process.exit(2);
  }

  const taskset = hasTaskset();
  // This process only orchestrates; keep it off the measured child's core.
  if (taskset) spawnSync('taskset', ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const pin = (cpu: number, args: string[]): [string, string[]] => (taskset ? ['taskset', ['-c', String(cpu), process.execPath, ...args]] : [process.execPath, args]);

  const cpu = cpus();
  console.log('Gateway memory: N identities in one process, gateway (one AMQP connection) against one raw Azure client per identity');
  console.log(`node ${process.version} · ${cpu[0]?.model ?? 'unknown CPU'} × ${cpu.length} · ${(totalmem() / 1024 ** 3).toFixed(1)} GiB · load ${loadavg().map((l) => l.toFixed(2)).join(' ')} · git ${gitSha()}`);
  console.log(`hub in its own process${taskset ? ' (CPU 0)' : ''}; each variant and N in a fresh child (--expose-gc${taskset ? ', CPU 1' : ''}); raw clients connect ${RAW_CONCURRENCY} at a time, the gateway with its default concurrency (50); RSS after connect, ${SETTLE_MS} ms settling and gc() twice; "young" = resident young generation (V8 nursery, capped, kept after gc); "retained" = RSS − young; "added KiB/id" = growth of retained from before connecting (modules loaded) / connected`);
  console.log('');

  const results: ChildResult[] = [];
  const header = `${'run'.padStart(3)} ${'variant'.padEnd(25)} ${'N'.padStart(5)} ${'connected'.padStart(9)} ${'TCP sockets'.padStart(11)} ${'connect s'.padStart(9)} ${'RSS MiB'.padStart(8)} ${'young MiB'.padStart(9)} ${'retained'.padStart(8)} ${'heap MiB'.padStart(8)} ${'added KiB/id'.padStart(12)}`;
  console.log(header);
  for (let run = 1; run <= repeat; run++) {
    // Every other run reverses the variant order, so a drift in the machine's load is shared.
    const order = run % 2 === 1 ? variants : [...variants].reverse();
    for (const n of counts) {
      for (const variant of order) {
        let r: ChildResult;
        try {
          if (!isGateway(variant) && n > MAX_RAW_N) {
            console.log(`${String(run).padStart(3)} ${variant.padEnd(25)} ${String(n).padStart(5)}  skipped: raw clients are measured up to N = ${MAX_RAW_N} (one socket each)`);
            continue;
          }
          r = await measure(variant, n, pin, sendPerIdentity);
        } catch (err) {
          console.log(`${String(run).padStart(3)} ${variant.padEnd(25)} ${String(n).padStart(5)}  failed: ${(err as Error).message}`);
          continue;
        }
        results.push(r);
        const added = retained(r.rssBytes, r.youngGenBytes) - retained(r.baselineRssBytes, r.baselineYoungGenBytes);
        const perId = r.connected > 0 ? added / 1024 / r.connected : Number.NaN;
        console.log(
          `${String(run).padStart(3)} ${variant.padEnd(25)} ${String(n).padStart(5)} ${String(r.connected).padStart(9)} ${String(r.tcpSockets).padStart(11)} ${fmt(r.connectMs / 1000, 2).padStart(9)} ${fmt(r.rssBytes / MiB).padStart(8)} ${fmt(r.youngGenBytes / MiB).padStart(9)} ${fmt(retained(r.rssBytes, r.youngGenBytes) / MiB).padStart(8)} ${fmt(r.heapUsedBytes / MiB).padStart(8)} ${fmt(perId).padStart(12)}` +
            (r.sendMs === undefined ? '' : `  sent ${r.sent} (${r.sendFailed} failed) in ${fmt(r.sendMs / 1000, 2)} s = ${fmt((r.sent ?? 0) / (r.sendMs / 1000), 0)} msg/s`) +
            (r.capped ? `  CAPPED: ${r.capReason ?? 'not all identities connected'}` : ''),
        );
      }
    }
  }
  if (flags.json !== undefined) writeFileSync(flags.json, JSON.stringify({ node: process.version, cpu: cpu[0]?.model, git: gitSha(), results }, null, 2));

  console.log('');
  console.log(`fit retained = a + b·N over connected identities, every run a point (least squares); the same fit on plain RSS and on the heap alongside`);
  const fits = new Map<Variant, ReturnType<typeof fitLine>>();
  const rssFits = new Map<Variant, ReturnType<typeof fitLine>>();
  for (const variant of variants) {
    const rows = results.filter((r) => r.variant === variant && r.connected > 0);
    const fit = fitLine(rows.map((r) => ({ x: r.connected, y: retained(r.rssBytes, r.youngGenBytes) })));
    const rss = fitLine(rows.map((r) => ({ x: r.connected, y: r.rssBytes })));
    const heap = fitLine(rows.map((r) => ({ x: r.connected, y: r.heapUsedBytes })));
    fits.set(variant, fit);
    rssFits.set(variant, rss);
    console.log(
      `  ${variant.padEnd(25)} b = ${fmt(fit.b / 1024).padStart(6)} KiB/identity   a = ${fmt(fit.a / MiB).padStart(6)} MiB   R² = ${fmt(fit.r2, 4)}   (RSS: ${fmt(rss.b / 1024)} KiB/identity, R² ${fmt(rss.r2, 3)}; heap: ${fmt(heap.b / 1024)} KiB/identity)   ${rows.length} points`,
    );
  }

  // Judged on what N identities added to the process that holds them (its own baseline
  // subtracted, so process-to-process noise of a few MiB cancels), at the largest N: there the
  // one-time costs are spread thin. The fits above corroborate it across N.
  const largest = Math.max(...counts);
  const addedAt = (variant: Variant): number => {
    const rows = results.filter((r) => r.variant === variant && r.n === largest && r.connected > 0);
    const values = rows.map((r) => (retained(r.rssBytes, r.youngGenBytes) - retained(r.baselineRssBytes, r.baselineYoungGenBytes)) / 1024 / r.connected).sort((x, y) => x - y);
    if (values.length === 0) return Number.NaN;
    const mid = (values.length - 1) / 2;
    return (values[Math.floor(mid)]! + values[Math.ceil(mid)]!) / 2;
  };
  console.log('');
  console.log(`per-identity memory at N = ${largest}: median added KiB/identity (retained); slopes of the fits in brackets`);
  for (const engine of GATEWAYS) {
    if (!variants.includes(engine)) continue;
    for (const raw of ['raw-amqp', 'raw-mqtt'] as const) {
      if (!variants.includes(raw)) continue;
      const ratio = addedAt(raw) / addedAt(engine);
      const slope = fits.get(raw)!.b / fits.get(engine)!.b;
      const rssSlope = rssFits.get(raw)!.b / rssFits.get(engine)!.b;
      console.log(
        `  ${raw} / ${engine} = ${fmt(addedAt(raw))} / ${fmt(addedAt(engine))} = ${fmt(ratio, 1)}×   (retained slope ${fmt(slope, 1)}×, plain RSS slope ${fmt(rssSlope, 1)}×)   target ≥ ${TARGET_RATIO}×: ${Number.isFinite(ratio) && ratio >= TARGET_RATIO ? 'met' : 'NOT met'}`,
      );
    }
  }
  const big = results.filter((r) => r.variant === 'gateway-amqp' && r.n === 1000);
  if (big.length === 0) console.log(`1000 identities connected in under ${TARGET_CONNECT_MS / 1000} s: not measured in this run (needs N = 1000 and the gateway variant)`);
  else {
    // Judged on the slowest run: the target is about every start of a gateway, not a good one.
    const slowest = Math.max(...big.map((r) => r.connectMs));
    const ok = big.every((r) => r.connected === 1000) && slowest < TARGET_CONNECT_MS;
    const sockets = [...new Set(big.map((r) => r.tcpSockets))].join('/');
    console.log(`1000 identities over the gateway connected in ${big.map((r) => fmt(r.connectMs / 1000, 2)).join(', ')} s (${big.length === 1 ? 'one run' : `${big.length} runs`}; ${sockets} TCP sockets)   target < ${TARGET_CONNECT_MS / 1000} s: ${ok ? 'met' : 'NOT met'}`);
  }
  const huge = results.filter((r) => r.variant === 'gateway-amqp' && r.n === MAX_GATEWAY_N);
  if (huge.length > 0) {
    const slowest = Math.max(...huge.map((r) => r.connectMs));
    const ok = huge.every((r) => r.connected === MAX_GATEWAY_N) && slowest < TARGET_CONNECT_10K_MS;
    const perId = huge.map((r) => (retained(r.rssBytes, r.youngGenBytes) - retained(r.baselineRssBytes, r.baselineYoungGenBytes)) / 1024 / r.connected);
    console.log(
      `${MAX_GATEWAY_N} identities over the gateway (${[...new Set(huge.map((r) => r.connections))].join('/')} connections) connected in ${huge.map((r) => fmt(r.connectMs / 1000, 2)).join(', ')} s, ${perId.map((v) => fmt(v)).join(', ')} KiB/id retained   target < ${TARGET_CONNECT_10K_MS / 1000} s and ≤ ${TARGET_KIB_PER_ID} KiB/id: ${ok && perId.every((v) => v <= TARGET_KIB_PER_ID) ? 'met' : 'NOT met'}`,
    );
  }
  if (sendPerIdentity > 0) {
    console.log('');
    console.log(`aggregate telemetry throughput, every identity sending ${sendPerIdentity} messages at once (msg/s acknowledged; median over runs)`);
    const rate = (variant: Variant, n: number): number => {
      const rows = results.filter((r) => r.variant === variant && r.n === n && r.sendMs !== undefined).map((r) => (r.sent ?? 0) / (r.sendMs! / 1000)).sort((x, y) => x - y);
      if (rows.length === 0) return Number.NaN;
      const mid = (rows.length - 1) / 2;
      return (rows[Math.floor(mid)]! + rows[Math.ceil(mid)]!) / 2;
    };
    for (const n of counts) {
      const line = variants.map((v) => `${v} ${fmt(rate(v, n), 0)}`).join('   ');
      const ratio = rate('gateway-amqp', n) / rate('raw-amqp', n);
      console.log(`  N = ${String(n).padStart(5)}: ${line}${Number.isFinite(ratio) ? `   gateway/raw-amqp = ${fmt(ratio, 2)}×` : ''}`);
    }
  }
  const capped = results.filter((r) => r.capped);
  if (capped.length > 0) console.log(`capped: ${capped.map((r) => `${r.variant} N=${r.n} (${r.connected} connected: ${r.capReason ?? ''})`).join('; ')}; their fit uses the identities that connected`);
  console.log(`load at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (2 shared cores: read the connect times with it)`);
}

if (process.argv.includes('--child')) await runChild();
else await runParent();
