// Per-identity memory of the gateway (or of one raw Azure AMQP client per identity), measured in
// a fresh `--expose-gc` process against a local hub in another process:
//
//   node --import tsx packages/gateway/test/support/memory-probe.ts [--n 50,200] [--variant gateway|raw] [--engine lean|azure-client] [--send] [--snapshot dir]
//
// For each N the child first connects 20 warm-up identities (so modules, the connection, the JIT's
// compiled code and the hub's first-use costs are paid), takes a baseline after gc, connects N
// more, and reports
// (after − baseline) / N for heap used and RSS. With --snapshot it also writes a heap snapshot at
// both points and prints the per-identity retained self size by constructor (after − baseline).
// Not a test: a measuring tool, so nothing here asserts on numbers.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import v8 from 'node:v8';

interface HubInfo {
  address: string;
  port: number;
  ca: string;
  connectionStrings: string[];
}

interface ProbeResult {
  variant: string;
  n: number;
  heapPerIdentityKiB: number;
  /** V8 heap pages committed (used or not): the part of RSS the heap accounts for. */
  heapTotalPerIdentityKiB: number;
  /** Buffers and other memory V8 knows about outside its heap. */
  externalPerIdentityKiB: number;
  rssPerIdentityKiB: number;
  connectMs: number;
  top?: Array<{ what: string; countPerIdentity: number; bytesPerIdentity: number }>;
}

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const KiB = 1024;
const WARM_UP = 20;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

async function firstLine(child: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const timer = setTimeout(() => child.kill(), timeoutMs);
  try {
    const next = await lines.next();
    if (next.done) throw new Error(`${what} exited before reporting`);
    return next.value;
  } finally {
    clearTimeout(timer);
  }
}

// ---- parent ------------------------------------------------------------------------------------

async function parent(): Promise<void> {
  const ns = (arg('n') ?? '50,200').split(',').map(Number);
  const variant = arg('variant') ?? 'gateway';
  const snapshotDir = arg('snapshot');
  const engine = arg('engine');
  const results: ProbeResult[] = [];
  for (const n of ns) {
    const hub = spawn(process.execPath, ['--import', 'tsx', here('./hub-child.ts'), String(n + 1)], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const info = await firstLine(hub, 'the hub', 60_000);
      const childArgs = ['--expose-gc', '--import', 'tsx', '--disable-warning=DEP0123', here('./memory-probe.ts'), '--child', variant, '--n', String(n)];
      if (snapshotDir !== undefined) childArgs.push('--snapshot', snapshotDir);
      if (engine !== undefined) childArgs.push('--engine', engine);
      if (process.argv.includes('--send')) childArgs.push('--send');
      const child = spawn(process.execPath, childArgs, { stdio: ['pipe', 'pipe', 'inherit'] });
      child.stdin!.end(info + '\n');
      const line = await firstLine(child, 'the probe', 300_000);
      await once(child, 'exit');
      results.push(JSON.parse(line) as ProbeResult);
    } finally {
      hub.stdin!.end();
      await once(hub, 'exit');
    }
  }
  for (const r of results) {
    console.log(
      `${r.variant} N=${r.n}: heap ${r.heapPerIdentityKiB.toFixed(1)} KiB/identity (committed ${r.heapTotalPerIdentityKiB.toFixed(1)}, external ${r.externalPerIdentityKiB.toFixed(1)}), ` +
        `RSS ${r.rssPerIdentityKiB.toFixed(1)} KiB/identity, connect ${r.connectMs} ms`,
    );
    for (const t of r.top ?? []) console.log(`  ${t.bytesPerIdentity.toFixed(0).padStart(6)} B  ×${t.countPerIdentity.toFixed(2).padStart(6)}  ${t.what}`);
  }
}

// ---- child -------------------------------------------------------------------------------------

interface Connected {
  add(connectionString: string): Promise<void>;
  /** One telemetry message from each identity added after `from` (so its telemetry link is attached). */
  sendFromEach(from: number): Promise<void>;
}

async function gatewayVariant(hub: HubInfo, engine: string | undefined): Promise<Connected> {
  const { createGateway } = await import('../../src/index.ts');
  const options: Record<string, unknown> = { env: {}, protocol: 'amqp', ca: hub.ca, endpoint: { host: hub.address, port: hub.port } };
  if (engine !== undefined) options.engine = engine;
  const gateway = await createGateway(options as Parameters<typeof createGateway>[0]);
  const added: string[] = [];
  return {
    add: async (connectionString) => {
      const deviceId = /DeviceId=([^;]+)/.exec(connectionString)![1]!;
      await gateway.add({ deviceId, connectionString });
      added.push(deviceId);
    },
    sendFromEach: async (from) => {
      await Promise.all(added.slice(from).map((deviceId) => gateway.get(deviceId)!.device.sendEvent('probe')));
    },
  };
}

async function rawVariant(hub: HubInfo): Promise<Connected> {
  const { Client } = (await import('azure-iot-device')).default;
  const { Amqp } = (await import('azure-iot-device-amqp')).default;
  const { Message } = (await import('azure-iot-device')).default;
  const clients: Array<InstanceType<typeof Client>> = [];
  return {
    add: async (connectionString) => {
      const client = Client.fromConnectionString(connectionString, Amqp);
      await client.setOptions({ ca: hub.ca });
      await client.open();
      clients.push(client);
    },
    sendFromEach: async (from) => {
      await Promise.all(clients.slice(from).map((client) => client.sendEvent(new Message('probe'))));
    },
  };
}

function settle(): { heap: number; heapTotal: number; external: number; rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run the probe child with --expose-gc');
  gc();
  gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, heapTotal: usage.heapTotal, external: usage.external, rss: usage.rss };
}

/** Self size and count per `type:name` of every node of a .heapsnapshot. */
function census(file: string): Map<string, { count: number; bytes: number }> {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const types = snapshot.snapshot.meta.node_types[0];
  const out = new Map<string, { count: number; bytes: number }>();
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!;
    const name = type === 'object' || type === 'closure' || type === 'native' ? `${type} ${strings[nodes[i + nameAt]!]}` : type;
    const entry = out.get(name) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += nodes[i + sizeAt]!;
    out.set(name, entry);
  }
  return out;
}

async function child(variant: string): Promise<void> {
  const n = Number(arg('n'));
  const snapshotDir = arg('snapshot');
  const sending = process.argv.includes('--send');
  const info = JSON.parse(await firstLine({ stdout: process.stdin } as unknown as ChildProcess, 'the parent', 60_000)) as HubInfo;
  const target = variant === 'raw' ? await rawVariant(info) : await gatewayVariant(info, arg('engine'));
  const warmUp = info.connectionStrings.slice(0, WARM_UP);
  const rest = info.connectionStrings.slice(WARM_UP);
  for (const connectionString of warmUp) await target.add(connectionString);
  if (sending) await target.sendFromEach(0);
  const base = settle();
  let before: string | undefined;
  if (snapshotDir !== undefined) {
    mkdirSync(snapshotDir, { recursive: true });
    before = v8.writeHeapSnapshot(join(snapshotDir, `${variant}-${n}-before.heapsnapshot`));
  }
  const started = Date.now();
  const queue = rest.slice(0, n);
  const concurrency = variant === 'raw' ? 50 : 100;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await target.add(next);
    }),
  );
  const connectMs = Date.now() - started;
  if (sending) await target.sendFromEach(WARM_UP);
  // Let timers armed at connect time (token renewal, link credit) settle into their steady state.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const after = settle();
  const result: ProbeResult = {
    variant: (variant === 'gateway' && arg('engine') !== undefined ? `gateway(${arg('engine')})` : variant) + (sending ? ', after one send each' : ''),
    n,
    heapPerIdentityKiB: (after.heap - base.heap) / n / KiB,
    heapTotalPerIdentityKiB: (after.heapTotal - base.heapTotal) / n / KiB,
    externalPerIdentityKiB: (after.external - base.external) / n / KiB,
    rssPerIdentityKiB: (after.rss - base.rss) / n / KiB,
    connectMs,
  };
  if (snapshotDir !== undefined && before !== undefined) {
    const afterFile = v8.writeHeapSnapshot(join(snapshotDir, `${variant}-${n}-after.heapsnapshot`));
    const [b, a] = [census(before), census(afterFile)];
    result.top = [...a.entries()]
      .map(([what, { count, bytes }]) => ({ what, countPerIdentity: (count - (b.get(what)?.count ?? 0)) / n, bytesPerIdentity: (bytes - (b.get(what)?.bytes ?? 0)) / n }))
      .sort((x, y) => y.bytesPerIdentity - x.bytesPerIdentity)
      .slice(0, 40);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

const childIndex = process.argv.indexOf('--child');
if (childIndex === -1) await parent();
else await child(process.argv[childIndex + 1] ?? 'gateway');
