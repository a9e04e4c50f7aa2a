// Compares the slice profiles that `pnpm bench --cpu-prof DIR` writes: self time per function and
// per package, in µs per message acknowledged, raw against ours (and the A/A client against raw),
// per protocol and window. Self time is where the CPU went, not who asked for it; the per-package
// lines say which code to read.
//
// V8 samples on a wall clock: when another process takes the core, the time lands on whatever
// frame was running, and one such stall can put 20 ms on a function that costs nothing. So by
// default each figure is the median over slices of that slice's self time per message, which a
// stall in one slice does not move; --sum gives the plain total over all slices instead.
//
// With --heap it reads the allocation profiles of `pnpm bench --heap-prof DIR` instead: bytes
// allocated per message (garbage included), by function and package.
//
//   node --import tsx bench/profile-diff.ts DIR [--top 25] [--protocol amqp] [--window 16] [--sum] [--heap]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median } from './stats.ts';
import type { SliceResult } from './overhead-types.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  samples: number[];
  timeDeltas: number[];
}

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, protocol: { type: 'string' }, window: { type: 'string' }, sum: { type: 'boolean', default: false }, heap: { type: 'boolean', default: false } },
});
const root = positionals[0];
if (root === undefined) {
  console.error('usage: node --import tsx bench/profile-diff.ts DIR [--top N] [--protocol P] [--window W]');
  process.exit(2);
}
const top = Number(flags.top);

/** Which code a frame belongs to: a package, node's own JS, native code, or a V8 pseudo-frame. */
function packageOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node';
  if (url.includes('switchyard-bench/device.bundle')) return '@switchyard/device (bundle)';
  if (url.includes('switchyard-bench/overhead-child') || url.includes('/bench/')) return 'bench harness';
  const at = url.lastIndexOf('/node_modules/');
  if (at >= 0) {
    const [first, second] = url.slice(at + '/node_modules/'.length).split('/');
    return first?.startsWith('@') ? `${first}/${second ?? ''}` : (first ?? url);
  }
  if (url.includes('/packages/')) return `@switchyard/${url.split('/packages/')[1]?.split('/')[0] ?? '?'}`;
  return url;
}

function frameKey(frame: CallFrame): string {
  const url = frame.url.replace(/.*\/node_modules\//, '').replace(/.*\/(bench|packages)\//, '$1/');
  return `${frame.functionName || '(anonymous)'} ${url}${url === '' ? '' : `:${frame.lineNumber + 1}`}`;
}

type Slot = 'raw' | 'ours' | 'aa';

/** Self time per message of one slice, by function and by package. */
interface SliceTally {
  cpuPerMessage: number;
  profiledPerMessage: number;
  byFunction: Map<string, number>;
  byPackage: Map<string, number>;
}

const add = (map: Map<string, number>, key: string, us: number): void => {
  map.set(key, (map.get(key) ?? 0) + us);
};

function tallyChild(dir: string, window: number): SliceTally[] {
  const slices = JSON.parse(readFileSync(join(dir, 'slices.json'), 'utf8')) as SliceResult[];
  const out: SliceTally[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(`-w${window}.${flags.heap ? 'heapprofile' : 'cpuprofile'}`)).sort()) {
    const slice = slices[Number(/^slice-(\d+)-/.exec(file)?.[1])];
    if (slice === undefined || slice.messages === 0) continue;
    if (flags.heap) {
      const tally: SliceTally = { cpuPerMessage: slice.cpuUs / slice.messages, profiledPerMessage: 0, byFunction: new Map(), byPackage: new Map() };
      // Bounded: a profile's tree is finite and acyclic.
      const stack = [(JSON.parse(readFileSync(join(dir, file), 'utf8')) as { head: HeapNode }).head];
      for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
        stack.push(...node.children);
        if (node.selfSize === 0) continue;
        const bytes = node.selfSize / slice.messages;
        tally.profiledPerMessage += bytes;
        add(tally.byFunction, frameKey(node.callFrame), bytes);
        add(tally.byPackage, packageOf(node.callFrame), bytes);
      }
      out.push(tally);
      continue;
    }
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    const tally: SliceTally = { cpuPerMessage: slice.cpuUs / slice.messages, profiledPerMessage: 0, byFunction: new Map(), byPackage: new Map() };
    // timeDeltas[i] is the gap before sample i; the time a sample stands for is the gap after it.
    for (let i = 0; i < profile.samples.length; i++) {
      const frame = frames.get(profile.samples[i]!);
      const us = (profile.timeDeltas[i + 1] ?? 0) / slice.messages;
      if (frame === undefined || frame.functionName === '(idle)') continue;
      tally.profiledPerMessage += us;
      add(tally.byFunction, frameKey(frame), us);
      add(tally.byPackage, packageOf(frame), us);
    }
    out.push(tally);
  }
  return out;
}

/** One figure per key over a slot's slices: the median (a slice without the key counts 0) or the mean. */
function combine(tallies: SliceTally[], pick: (t: SliceTally) => Map<string, number>, key: string): number {
  const values = tallies.map((t) => pick(t).get(key) ?? 0);
  return flags.sum ? values.reduce((a, b) => a + b, 0) / Math.max(1, values.length) : median(values);
}

const children = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => {
    const m = /^(raw|ours|aa)-(.+)-(bench-\d+)$/.exec(d.name);
    return m === null ? undefined : { dir: join(root, d.name), slot: m[1] as Slot, protocol: m[2]! };
  })
  .filter((c) => c !== undefined);
const protocols = [...new Set(children.map((c) => c.protocol))].filter((p) => flags.protocol === undefined || p === flags.protocol);

const fmt = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === header.length - 1 ? c : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const how = flags.sum ? 'mean over slices' : 'median over slices';
const unit = flags.heap ? 'B/msg allocated' : 'us/msg';
for (const protocol of protocols) {
  for (const window of flags.window === undefined ? [1, 16] : [Number(flags.window)]) {
    const tallies: Record<Slot, SliceTally[]> = { raw: [], ours: [], aa: [] };
    for (const child of children.filter((c) => c.protocol === protocol)) tallies[child.slot].push(...tallyChild(child.dir, window));
    const { raw, ours, aa } = tallies;
    if (raw.length === 0 || ours.length === 0) continue;
    const cpu = (t: SliceTally[]): number => median(t.map((x) => x.cpuPerMessage));
    const profiled = (t: SliceTally[]): number => median(t.map((x) => x.profiledPerMessage));
    console.log(
      `\n== ${protocol} W=${window}: ${raw.length} raw, ${ours.length} ours, ${aa.length} A/A slices; process CPU ${fmt(cpu(raw))} / ${fmt(cpu(ours))} / ${fmt(cpu(aa))} us/msg ` +
        `(ours/raw ${(cpu(ours) / cpu(raw)).toFixed(3)}, A/A/raw ${(cpu(aa) / cpu(raw)).toFixed(3)}); ${flags.heap ? 'allocated' : 'main thread, idle excluded'}: ${fmt(profiled(raw))} / ${fmt(profiled(ours))} / ${fmt(profiled(aa))} ${flags.heap ? 'B/msg' : 'us/msg'} (${how})`,
    );
    const rowsOf = (pick: (t: SliceTally) => Map<string, number>, limit: number): string[][] => {
      const keys = new Set([raw, ours, aa].flat().flatMap((t) => [...pick(t).keys()]));
      return [...keys]
        .map((k) => ({ k, r: combine(raw, pick, k), o: combine(ours, pick, k), a: aa.length === 0 ? Number.NaN : combine(aa, pick, k) }))
        .sort((x, y) => Math.abs(y.o - y.r) - Math.abs(x.o - x.r))
        .slice(0, limit)
        .map(({ k, r, o, a }) => [fmt(r), fmt(o), fmt(o - r), fmt(a - r), k]);
    };
    console.log(table(['raw', 'ours', 'ours-raw', 'A/A-raw', `self ${unit} by package (${how})`], rowsOf((t) => t.byPackage, Number.POSITIVE_INFINITY)));
    console.log(table(['raw', 'ours', 'ours-raw', 'A/A-raw', `self ${unit} by function, top ${top} by |ours-raw|`], rowsOf((t) => t.byFunction, top)));
  }
}
