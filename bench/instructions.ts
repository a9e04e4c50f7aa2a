// `pnpm bench:instructions`: machine instructions per message, ours against the raw Azure client,
// counted by valgrind's callgrind. CPU time on a shared 2-core VM swings with the neighbours and
// the hypervisor (the A/A pair of `pnpm bench` differs by 2-6 % at best); an instruction count does
// not: two raw runs of the same sends agree within 0.1 %. Each variant runs in its own process
// (bench/overhead-child.ts, ours from its packed tarball as npm installs it), warms up natively
// slow under valgrind, then counts only the measured sends (instrumentation switched on and off
// around them), per thread. The main thread's count is split into the mutator (the code that
// sends) and what V8 does about it (garbage collection, compilation, interpreter and baseline
// code), because under valgrind V8 tiers up and collects at other moments than natively.
//
// Variants: raw (the Azure client as its docs set it up), ours (connect() and sendEvent),
// ours-sdk (ours' connect(), sending straight through the Azure client it built: ours / ours-sdk
// is our per-send code, ours-sdk / raw our configuration of the SDK).
//
//   pnpm bench:instructions [--protocols https,amqp] [--windows 1,16] [--messages 2000]
//                           [--warmup 6000] [--variants raw,ours,ours-sdk] [--keep DIR] [--perf-map]
//
// --perf-map: the children write node's perf map (--perf-basic-prof, /tmp/perf-<pid>.map), so the
// kept callgrind files' JIT addresses can be named; each row then says which map is its own.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOLS, type Protocol } from '@switchyard/profile';
import { createConsumerProject } from '../scripts/consumer-project.ts';
import { bundleChild } from './bundle-child.ts';
import { startHub } from './hub-child.ts';
import type { ChildConfig, Variant } from './overhead-types.ts';

const { values: flags } = parseArgs({
  options: {
    protocols: { type: 'string', default: 'https,amqp,mqtt' },
    windows: { type: 'string', default: '1,16' },
    messages: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '6000' },
    variants: { type: 'string', default: 'raw,ours,ours-sdk' },
    keep: { type: 'string' },
    'perf-map': { type: 'boolean', default: false },
  },
});
const protocols = flags.protocols.split(',') as Protocol[];
for (const p of protocols) if (!PROTOCOLS.includes(p)) throw new Error(`--protocols: unknown protocol ${JSON.stringify(p)} (one of ${PROTOCOLS.join(', ')})`);
const windows = flags.windows.split(',').map(Number);
const variants = flags.variants.split(',') as Variant[];
const messages = Number(flags.messages);
const warmup = Number(flags.warmup);
for (const tool of ['valgrind', 'callgrind_control', 'callgrind_annotate']) {
  // callgrind_annotate has no --version that exits 0; spawning it at all is the check.
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error !== undefined) {
    console.error(`bench:instructions needs ${tool} (Debian: apt-get install valgrind)`);
    process.exit(2);
  }
}

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const outDir = flags.keep ?? mkdtempSync(join(tmpdir(), 'switchyard-instructions-'));
mkdirSync(outDir, { recursive: true });

const installed = await createConsumerProject();
process.once('exit', () => installed.remove());
const child = await bundleChild(here('./overhead-child.ts'), join(installed.dir, 'overhead-child.bundle.mjs'), ['azure-iot-*', '@switchyard/device']);
const oursModule = pathToFileURL(join(installed.dir, 'node_modules', '@switchyard', 'device', 'dist', 'index.js')).href;

const hub = await startHub(protocols.length * windows.length * variants.length, ['--import', 'tsx']);
const { devices, ...hubAddress } = hub.info;
const deviceIds = Object.keys(devices);

/** What V8 does about the code rather than the code itself: GC, compilation, interpreter and baseline tiers. */
const ENGINE = /Scaveng|IterateObjectCache|RootScavenge|EvacuationAllocator|PretenuringHandler|IteratePointers|Heap::|MarkCompact|Marking|Sweep|Evacuat|RememberedSet|SlotSet|heap::base|GlobalHandles|compiler::|Compiler|Baseline|Maglev|Deoptimiz|CompileLazy|Interpreter|Bytecode/;

/** Instructions of one callgrind output file, split into mutator and engine. */
function count(file: string): { mutator: number; engine: number } {
  const text = spawnSync('callgrind_annotate', ['--threshold=100', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
  let mutator = 0;
  let engine = 0;
  for (const row of text.split('\n')) {
    const m = /^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$/.exec(row);
    if (m === null || m[2]!.includes('PROGRAM TOTALS')) continue;
    const n = Number(m[1]!.replace(/,/g, ''));
    if (ENGINE.test(m[2]!)) engine += n;
    else mutator += n;
  }
  return { mutator, engine };
}

interface Row {
  protocol: Protocol;
  window: number;
  variant: Variant;
  messages: number;
  mainMutator: number;
  mainEngine: number;
  otherThreads: number;
}

async function measure(protocol: Protocol, window: number, variant: Variant, deviceId: string): Promise<Row> {
  const out = join(outDir, `${protocol}-w${window}-${variant}.callgrind`);
  const proc = spawn(
    'valgrind',
    ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', '--separate-threads=yes', `--callgrind-out-file=${out}`, process.execPath, ...(flags['perf-map'] ? ['--perf-basic-prof'] : []), '--disable-warning=DEP0123', child],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => {
    // valgrind's own banner and notes go here too; only the tail is kept, for a failure's message.
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const expect = async (tag: string): Promise<string> => {
    for (;;) {
      const { value, done } = await lines.next();
      if (done === true) throw new Error(`${protocol} ${variant}: the child ended before ${tag}:\n${stderr}`);
      if ((value as string).startsWith(`${tag} `)) return (value as string).slice(tag.length + 1);
    }
  };
  const config: ChildConfig = {
    variant,
    protocol,
    hub: hubAddress,
    deviceId,
    key: devices[deviceId]!,
    payloadBytes: 100,
    warmup,
    // Under valgrind everything runs 20-50x slower; the counts, not the clock, bound these.
    warmupMaxMs: 3_600_000,
    maxMessagesPerSlice: messages,
    oursModule,
  };
  proc.stdin!.write(`${JSON.stringify(config)}\n`);
  await expect('READY');
  proc.stdin!.write(`RUN ${window} 3600000\n`);
  await expect('SLICE');
  spawnSync('callgrind_control', ['-i', 'on', String(proc.pid)], { stdio: 'ignore' });
  proc.stdin!.write(`RUN ${window} 3600000\n`);
  const slice = JSON.parse(await expect('SLICE')) as { messages: number };
  spawnSync('callgrind_control', ['-i', 'off', String(proc.pid)], { stdio: 'ignore' });
  proc.stdin!.write('END\n');
  await expect('RESULT');
  await once(proc, 'exit');
  if (flags['perf-map']) console.log(`  ${protocol} W=${window} ${variant}: JIT names in /tmp/perf-${proc.pid}.map, counts in ${out}-*`);
  const files = readdirSync(outDir).filter((f) => f.startsWith(`${protocol}-w${window}-${variant}.callgrind-`));
  let main = { mutator: 0, engine: 0 };
  let other = 0;
  for (const f of files) {
    const c = count(join(outDir, f));
    if (f.endsWith('-01')) main = c;
    else other += c.mutator + c.engine;
  }
  return { protocol, window, variant, messages: slice.messages, mainMutator: main.mutator, mainEngine: main.engine, otherThreads: other };
}

const rows: Row[] = [];
let next = 0;
try {
console.log(`instructions per message (thousands), valgrind callgrind, ${messages} messages per variant after ${warmup} + ${messages} natively-counted warm-up sends; ours from its packed tarball`);
console.log('protocol   W  variant   main mutator  main engine  other threads   mutator / raw');
for (const protocol of protocols) {
  for (const window of windows) {
    for (const variant of variants) {
      const row = await measure(protocol, window, variant, deviceIds[next++]!);
      rows.push(row);
      const raw = rows.find((r) => r.protocol === protocol && r.window === window && r.variant === 'raw');
      const k = (n: number): string => (n / row.messages / 1000).toFixed(1).padStart(12);
      const ratio = raw === undefined ? '' : (row.mainMutator / row.messages / (raw.mainMutator / raw.messages)).toFixed(3);
      console.log(`${protocol.padEnd(8)} ${String(window).padStart(3)}  ${variant.padEnd(8)} ${k(row.mainMutator)} ${k(row.mainEngine)} ${k(row.otherThreads).padStart(14)}   ${ratio.padStart(13)}`);
    }
  }
}
} finally {
  await hub.stop();
}
if (flags.keep === undefined) rmSync(outDir, { recursive: true, force: true });
else console.log(`callgrind files kept in ${outDir} (callgrind_annotate FILE-01 for the main thread)`);
