// `pnpm bench:soak`: a soak, not a test (issue 13, "nothing lost"). Mixed load for N minutes with a
// fault every period: one client process per protocol (the device client as a user installs it:
// packed, npm-installed into a project outside the workspace) plus a lean AMQP gateway with a few
// identities, every identity with an outbox (one client's on disk), sending numbered telemetry at
// a steady rate, completing the C2D the hub sends, answering a method, patching its reported twin,
// against a local hub in its own process with TLS verified against its CA. Every period each
// client gets the next fault of its own list (soak-faults.ts). Every minute, and at the end, a
// table per client; at the end, after draining and closing: what the hub never saw, what is left
// running. Exits non-zero if anything was lost (or a client crashed or was left running).
//
//   pnpm bench:soak [--minutes 30] [--protocols mqtt,amqp,...] [--fault-every-s 60] [--json FILE]
//                   [--gateway 20] [--rate 5] [--gateway-rate 0.5] [--from-source] [--keep]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOLS, type Protocol } from '@switchyard/profile';
import { createConsumerProject, userEnv } from '../scripts/consumer-project.ts';
import { bundleChild } from './bundle-child.ts';
import { faultPlan, faultTimes, stepAt, type FaultStep } from './soak-faults.ts';
import { ProcTrack } from './soak-proc.ts';
import { ClientProcess, HubError, HubProcess } from './soak-processes.ts';
import { clock, faultLines, finalTable, minuteTable, type ClientRow, type FaultRecord } from './soak-report.ts';
import type { ClientEvent, ClientResult, ClientStats, HubFaultEvent, ReadyLine, SoakClientConfig, TelemetryReport } from './soak-types.ts';

const USAGE = `usage: pnpm bench:soak [options]
  --minutes N          minutes of load (default 30)
  --protocols LIST     device clients, one per protocol (default ${PROTOCOLS.join(',')})
  --fault-every-s S    one fault per client every S seconds (default 60)
  --gateway N          identities of the lean AMQP gateway client (default 20; 0: none)
  --rate R             telemetry per second per device client (default 5)
  --gateway-rate R     telemetry per second per gateway identity (default 0.5)
  --durable PROTOCOL   the device client whose outbox is on disk (default amqp, else the first)
  --from-source        clients from the workspace's TypeScript (tsx) instead of the packed tarballs
  --json FILE          also write everything collected as JSON
  --keep               keep the run directory (logs, outbox) even when nothing failed`;

const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string' },
    protocols: { type: 'string' },
    'fault-every-s': { type: 'string' },
    gateway: { type: 'string' },
    rate: { type: 'string' },
    'gateway-rate': { type: 'string' },
    durable: { type: 'string' },
    'from-source': { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}

function number(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) {
    console.error(`--${name} must be a number >= ${min}, got ${JSON.stringify(text)}\n${USAGE}`);
    process.exit(2);
  }
  return value;
}

const protocols = (flags.protocols ?? PROTOCOLS.join(',')).split(',').map((p) => p.trim()).filter((p) => p !== '') as Protocol[];
const unknown = protocols.filter((p) => !(PROTOCOLS as readonly string[]).includes(p));
if (unknown.length > 0 || protocols.length === 0) {
  console.error(`--protocols: unknown ${unknown.join(', ') || '(empty list)'}; use a subset of ${PROTOCOLS.join(',')}\n${USAGE}`);
  process.exit(2);
}
const settings = {
  minutes: number('minutes', flags.minutes, 30, 0.5),
  faultEverySeconds: number('fault-every-s', flags['fault-every-s'], 60, 5),
  gatewayIdentities: Math.round(number('gateway', flags.gateway, 20, 0)),
  rate: number('rate', flags.rate, 5, 0.1),
  gatewayRate: number('gateway-rate', flags['gateway-rate'], 0.5, 0.01),
  durable: (flags.durable ?? (protocols.includes('amqp') ? 'amqp' : protocols[0])) as Protocol,
  payloadBytes: 200,
  // The backend's side, per identity: a C2D message every 20 s, a method call every 15 s (each
  // waiting at most 10 s for the answer); each identity patches its reported twin every 30 s.
  c2dEverySeconds: 20,
  methodEverySeconds: 15,
  methodTimeoutSeconds: 10,
  twinEverySeconds: 30,
  pollIntervalSeconds: 10,
  // An 'acknowledged' send waits this long for the hub: far longer than any fault here, so a
  // caller timeout would itself be a finding.
  ackTimeoutMs: 15 * 60_000,
  // After the load: the outboxes get this long to drain, and C2D this long to arrive (a message
  // delivered on a link a fault cut stays locked at the hub for 60 s, and a throttled HTTPS poll
  // backs off up to 60 s).
  drainMs: 180_000,
  c2dWaitMs: 150_000,
  sampleEverySeconds: 5,
};
if (!protocols.includes(settings.durable)) {
  console.error(`--durable ${settings.durable}: not among --protocols ${protocols.join(',')}`);
  process.exit(2);
}

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
function gitSha(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd: here('.') });
  const dirty = spawnSync('git', ['status', '--porcelain'], { encoding: 'utf8', cwd: here('.') }).stdout?.trim() !== '';
  return r.status === 0 ? `${r.stdout.trim()}${dirty ? ' (uncommitted changes in tree)' : ''}` : 'unknown';
}
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const errorText = (err: unknown): string => (err instanceof HubError && err.errorCode !== undefined ? err.errorCode : String((err as Error)?.message ?? err));

// ---- set-up ------------------------------------------------------------------------------------

const startedAt = Date.now();
const git = gitSha();
const loadAtStart = load();
const runDir = mkdtempSync(join(tmpdir(), 'switchyard-soak-'));
const durationS = settings.minutes * 60;
const faultAt = faultTimes(durationS, settings.faultEverySeconds);
console.log('switchyard soak: mixed load with a fault every period (issue 13, "nothing lost")');
console.log(`git ${git} | node ${process.version} | ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'} | load average ${loadAtStart} at start`);
console.log(
  `${settings.minutes} min of load; device clients ${protocols.join(', ')} at ${settings.rate} msg/s each` +
    (settings.gatewayIdentities > 0 ? `; gateway-amqp: ${settings.gatewayIdentities} identities on the lean engine at ${settings.gatewayRate} msg/s each` : '') +
    `; ${settings.payloadBytes} B messages; every identity has an in-memory outbox except ${settings.durable} (outbox.dir, sends resolve once queued); ` +
    `C2D every ${settings.c2dEverySeconds} s and a method every ${settings.methodEverySeconds} s per identity, reported twin every ${settings.twinEverySeconds} s per identity; ` +
    `${faultAt.length} fault(s) per client, every ${settings.faultEverySeconds} s from ${clock(faultAt[0] ?? 0)}`,
);
console.log(`run directory (logs, durable outbox): ${runDir}`);

const installed = flags['from-source'] ? undefined : await createConsumerProject();
let childCommand: [string, string[]];
// Installed clients run in a user's environment: no `source` condition or pnpm settings inherited.
const childEnv = installed === undefined ? process.env : userEnv();
if (installed === undefined) {
  childCommand = [process.execPath, ['--conditions=source', '--import', 'tsx', here('./soak-child.ts')]];
  console.log('clients: from the workspace TypeScript sources, under tsx (--from-source)');
} else {
  // The consumer's node_modules provide ours and the Azure packages: the harness keeps them external.
  const bundled = await bundleChild(here('./soak-child.ts'), join(installed.dir, 'soak-child.bundle.mjs'), ['azure-iot-*', '@switchyard/*']);
  childCommand = [process.execPath, [bundled]];
  console.log('clients: @switchyard/device and @switchyard/gateway as npm installs them from their packed tarballs, in a project outside the workspace, on plain node');
}

/** One client process of the run: its row in the tables and everything gathered about it. */
interface Run extends ClientRow {
  index: number;
  config: SoakClientConfig;
  plan: FaultStep[];
  process?: ClientProcess;
  track: ProcTrack;
  ready?: ReadyLine;
  sendStartedAt?: number;
  result?: ClientResult;
  drained?: ClientStats;
  telemetry?: Record<string, TelemetryReport>;
  failure?: string;
  exit?: string;
  events: ClientEvent[];
  c2dSentIds: Map<string, number[]>;
  methodErrors: Record<string, number>;
  c2dErrors: Record<string, number>;
}
const clientRows: Run[] = [];
const ownerOf = new Map<string, Run>();
const hubEvents: HubFaultEvent[] = [];
const hubTrack = new ProcTrack();

const { hub, info } = await HubProcess.start(process.execPath, ['--conditions=source', '--import', 'tsx', here('./hub-process.ts'), '0', '--control'], join(runDir, 'hub.log'), (e) => {
  hubEvents.push(e);
  const row = ownerOf.get(e.deviceId);
  const fault = row?.faults.at(-1);
  if (fault !== undefined && e.phase !== 'scheduled') fault.phases[e.phase] = (fault.phases[e.phase] ?? 0) + 1;
});

let exitCode = 0;
const problems: string[] = [];
try {
  // ---- clients ---------------------------------------------------------------------------------
  const specs: Array<{ name: string; kind: 'device' | 'gateway'; protocol: Protocol; ids: string[]; rate: number }> = protocols.map((protocol) => ({ name: protocol, kind: 'device', protocol, ids: [`soak-${protocol}`], rate: settings.rate }));
  if (settings.gatewayIdentities > 0) {
    specs.push({ name: `gateway-amqp×${settings.gatewayIdentities}`, kind: 'gateway', protocol: 'amqp', ids: Array.from({ length: settings.gatewayIdentities }, (_, i) => `soak-gw-${String(i).padStart(2, '0')}`), rate: settings.gatewayRate });
  }
  const keys = await hub.call<Record<string, string>>({ op: 'create', deviceIds: specs.flatMap((s) => s.ids) });
  for (const [index, spec] of specs.entries()) {
    const durable = spec.kind === 'device' && spec.protocol === settings.durable;
    const config: SoakClientConfig = {
      name: spec.name,
      kind: spec.kind,
      protocol: spec.protocol,
      hub: info,
      identities: spec.ids.map((deviceId) => ({ deviceId, key: keys[deviceId]! })),
      ratePerIdentity: spec.rate,
      payloadBytes: settings.payloadBytes,
      ...(durable ? { outboxDir: join(runDir, `outbox-${spec.name}`) } : {}),
      until: durable ? 'queued' : 'acknowledged',
      ackTimeoutMs: settings.ackTimeoutMs,
      twinEverySeconds: settings.twinEverySeconds,
      pollIntervalSeconds: settings.pollIntervalSeconds,
    };
    if (config.outboxDir !== undefined) mkdirSync(config.outboxDir, { recursive: true });
    const row: Run = {
      name: spec.name,
      config,
      plan: faultPlan(spec.protocol),
      stats: undefined,
      c2dSent: 0,
      methodsOk: 0,
      methodsFailed: 0,
      proc: { start: undefined, max: undefined, last: undefined, end: undefined },
      track: new ProcTrack(),
      faults: [],
      events: [],
      c2dSentIds: new Map(spec.ids.map((id) => [id, [] as number[]])),
      methodErrors: {},
      c2dErrors: {},
      index,
    };
    clientRows.push(row);
    for (const id of spec.ids) ownerOf.set(id, row);
  }
  // Started together: connecting is what differs by protocol, and none of it is measured here.
  for (const row of clientRows) {
    const [command, args] = childCommand;
    row.process = new ClientProcess(command, ['--disable-warning=DEP0123', ...args], childEnv, row.config, join(runDir, `${row.name}.log`), (e) => row.events.push({ ...e, seenAt: Date.now() }));
  }
  await Promise.all(
    clientRows.map(async (row) => {
      try {
        row.ready = await row.process!.expect<ReadyLine>('READY', 120_000);
        row.sendStartedAt = Date.now();
      } catch (err) {
        row.failure = `did not connect: ${(err as Error).message} (see ${join(runDir, `${row.name}.log`)})`;
      }
    }),
  );
  const failedToStart = clientRows.filter((r) => r.failure !== undefined);
  if (failedToStart.length > 0) throw new Error(failedToStart.map((r) => `${r.name} ${r.failure}`).join('; '));
  console.log(`connected: ${clientRows.map((r) => `${r.name} over ${r.ready!.protocol} in ${r.ready!.connectMs} ms`).join(', ')}`);

  const syncProc = (): void => {
    hubTrack.sample(hub.pid);
    for (const row of clientRows) {
      row.track.sample(row.process?.pid);
      row.proc = { start: row.track.start, max: row.track.max, last: row.track.last, end: row.track.end };
    }
  };

  // ---- the load ----------------------------------------------------------------------------------
  const t0 = Date.now();
  const inflight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  const minutes: Array<{ atS: number; load: string; rows: Array<{ name: string; stats: ClientStats | undefined; rssMB?: number; fds?: number }> }> = [];
  const printMinute = async (atS: number): Promise<void> => {
    await Promise.all(
      clientRows.map(async (row) => {
        try {
          row.stats = await row.process!.expect<ClientStats>('STATS', 15_000);
        } catch (err) {
          row.failure ??= `no stats at ${clock(atS)}: ${(err as Error).message}`;
        }
      }),
    );
    syncProc();
    minutes.push({ atS, load: load(), rows: clientRows.map((r) => ({ name: r.name, stats: r.stats, ...(r.proc.last === undefined ? {} : { rssMB: r.proc.last.rssMB, fds: r.proc.last.fds }) })) });
    const hubNow = hubTrack.last;
    console.log('');
    console.log(`${clock(atS)} | load ${load()} | hub RSS ${hubNow?.rssMB.toFixed(0) ?? '-'} MB, ${hubNow?.fds ?? '-'} fds | pending = sent − acknowledged − rejected`);
    console.log(minuteTable(clientRows));
    const lastFaults = clientRows.map((r) => (r.faults.length === 0 ? undefined : `${r.name}: ${r.faults.at(-1)!.label}`)).filter((x) => x !== undefined);
    if (lastFaults.length > 0) console.log(`last faults: ${lastFaults.join('; ')}`);
  };
  const requestStats = (): void => {
    for (const row of clientRows) row.process!.send('STATS');
  };

  const injectFault = async (k: number, atS: number): Promise<void> => {
    await Promise.all(
      clientRows.map(async (row) => {
        const step = stepAt(row.plan, row.index, k);
        const record: FaultRecord = { k, atS, label: step.label, phases: {} };
        row.faults.push(record);
        const deviceIds = row.config.identities.map((i) => i.deviceId);
        try {
          if (step.kind === 'inject') await hub.call({ op: 'inject', deviceIds, type: step.type, ...(step.durationSeconds === undefined ? {} : { durationSeconds: step.durationSeconds }) });
          else if (step.kind === 'network') await hub.call({ op: 'network', deviceIds, kind: step.network, ...(step.seconds === undefined ? {} : { seconds: step.seconds }), ...(step.delayMs === undefined ? {} : { delayMs: step.delayMs }) });
          else {
            await hub.call({ op: 'network', deviceIds, kind: 'refuse', seconds: step.seconds });
            await hub.call({ op: 'network', deviceIds, kind: 'reset' });
          }
        } catch (err) {
          record.error = errorText(err);
        }
      }),
    );
  };

  const c2dCounter = new Map<string, number>();
  const sendC2D = (row: Run, deviceId: string): void => {
    const n = c2dCounter.get(deviceId) ?? 0;
    c2dCounter.set(deviceId, n + 1);
    track(
      hub.call({ op: 'c2d', deviceId, messageId: `c2d:${n}` }).then(
        () => {
          row.c2dSent++;
          row.c2dSentIds.get(deviceId)!.push(n);
        },
        (err: unknown) => {
          const code = errorText(err);
          row.c2dErrors[code] = (row.c2dErrors[code] ?? 0) + 1;
        },
      ),
    );
  };
  const invoke = (row: Run, deviceId: string, n: number): void => {
    track(
      hub.call<{ status: number }>({ op: 'method', deviceId, methodName: 'ping', payload: n, timeoutSeconds: settings.methodTimeoutSeconds }, (settings.methodTimeoutSeconds + 20) * 1000).then(
        (result) => {
          if (result.status === 200) row.methodsOk++;
          else {
            row.methodsFailed++;
            row.methodErrors[`status ${result.status}`] = (row.methodErrors[`status ${result.status}`] ?? 0) + 1;
          }
        },
        (err: unknown) => {
          row.methodsFailed++;
          const code = errorText(err);
          row.methodErrors[code] = (row.methodErrors[code] ?? 0) + 1;
        },
      ),
    );
  };

  // One tick per second on an absolute schedule. Per identity, C2D and method calls are spread
  // over their periods, so the backend's calls do not all land in the same second.
  const faultSeconds = new Map(faultAt.map((t, k) => [Math.round(t), k]));
  let methodN = 0;
  for (let sec = 0; sec < durationS; sec++) {
    await sleep(t0 + sec * 1000 - Date.now());
    if (sec % settings.sampleEverySeconds === 0) syncProc();
    const k = faultSeconds.get(sec);
    if (k !== undefined) track(injectFault(k, sec));
    for (const row of clientRows) {
      for (const [i, { deviceId }] of row.config.identities.entries()) {
        const spread = (period: number): boolean => (sec + Math.floor((i * period) / row.config.identities.length) + row.index) % period === 0;
        if (sec > 0 && spread(settings.c2dEverySeconds)) sendC2D(row, deviceId);
        if (row.config.protocol !== 'https' && sec > 0 && spread(settings.methodEverySeconds)) invoke(row, deviceId, methodN++);
      }
    }
    if (sec > 0 && sec % 60 === 0) {
      requestStats();
      track(printMinute(sec));
    }
  }

  // ---- the end: drain, wait for C2D, close, count ---------------------------------------------------
  const loadEndS = (Date.now() - t0) / 1000;
  console.log('');
  console.log(`${clock(loadEndS)} load over: faults cleared, clients stop sending and drain (at most ${settings.drainMs / 1000} s)`);
  await hub.call({ op: 'clear' });
  const drainStarted = Date.now();
  for (const row of clientRows) row.process!.send(`STOP ${settings.drainMs}`);
  await Promise.all(
    clientRows.map(async (row) => {
      try {
        row.drained = await row.process!.expect<ClientStats>('DRAINED', settings.drainMs + 30_000);
        row.stats = row.drained;
      } catch (err) {
        row.failure ??= `drain: ${(err as Error).message}`;
      }
    }),
  );
  console.log(`drained in ${((Date.now() - drainStarted) / 1000).toFixed(1)} s; waiting for the method calls under way and for every C2D message sent (at most ${settings.c2dWaitMs / 1000} s)`);
  await Promise.all([...inflight]);
  const c2dStarted = Date.now();
  for (;;) {
    requestStats();
    const all = await Promise.all(clientRows.map((row) => row.process!.expect<ClientStats>('STATS', 15_000).catch(() => undefined)));
    all.forEach((s, i) => {
      if (s !== undefined) clientRows[i]!.stats = s;
    });
    const waiting = clientRows.filter((row) => (row.stats?.c2dReceived ?? 0) < row.c2dSent);
    if (waiting.length === 0 || Date.now() - c2dStarted > settings.c2dWaitMs) break;
    await sleep(2_000);
  }
  console.log(`C2D settled after ${((Date.now() - c2dStarted) / 1000).toFixed(1)} s`);
  syncProc();
  hubTrack.finish(hub.pid);
  for (const row of clientRows) {
    row.track.finish(row.process?.pid);
    row.proc = { start: row.track.start, max: row.track.max, last: row.track.last, end: row.track.end };
  }

  await Promise.all(
    clientRows.map(async (row) => {
      const proc = row.process!;
      proc.send('CLOSE', true);
      try {
        row.result = await proc.expect<ClientResult>('RESULT', 60_000);
        row.stats = row.result.stats;
      } catch (err) {
        row.failure ??= `close: ${(err as Error).message}`;
      }
      const exit = await proc.exitWithin(20_000);
      if (exit === undefined) {
        row.exit = `still running 20 s after close${proc.handles === undefined ? '' : `: ${proc.handles.join(', ')}`}`;
        proc.kill();
      } else if (exit.code !== 0) {
        row.exit = `exit ${exit.code ?? exit.signal}${proc.handles === undefined ? '' : ` (held by ${proc.handles.join(', ')})`}`;
      }
    }),
  );

  // What the hub saw, against what each identity issued and was refused.
  const devices: Record<string, { issued: number; rejected: number[] }> = {};
  // A client that crashed has no RESULT: its last STATS says what it had issued by then.
  const identitiesOf = (row: Run): ClientResult['identities'] => row.result?.identities ?? row.stats?.identities ?? [];
  for (const row of clientRows) for (const id of identitiesOf(row)) devices[id.deviceId] = { issued: id.issued, rejected: id.rejectedSeqs };
  const { reports, untracked } = await hub.call<{ reports: Record<string, TelemetryReport>; untracked: number }>({ op: 'telemetry', devices });
  for (const row of clientRows) {
    row.telemetry = {};
    let lost = 0;
    let duplicates = 0;
    let c2dReceived = 0;
    for (const id of identitiesOf(row)) {
      const report = reports[id.deviceId];
      if (report === undefined) continue;
      row.telemetry[id.deviceId] = report;
      lost += report.lostCount;
      duplicates += report.duplicates;
      const got = new Set(id.c2dReceived);
      c2dReceived += (row.c2dSentIds.get(id.deviceId) ?? []).filter((n) => got.has(n)).length;
    }
    row.final = { lost, duplicates, c2dReceived };
  }

  // Nothing left running at the hub: every identity's session gone once the clients closed.
  let leftAtHub: string[] = [];
  for (let i = 0; i < 20; i++) {
    leftAtHub = (await hub.call<{ connectedIdentities: string[] }>({ op: 'stats' })).connectedIdentities;
    if (leftAtHub.length === 0) break;
    await sleep(500);
  }

  // ---- the report ----------------------------------------------------------------------------------
  console.log('');
  console.log(`Soak result: git ${git}, ${settings.minutes} min, load average ${loadAtStart} at start, ${load()} at end; total ${((Date.now() - startedAt) / 60_000).toFixed(1)} min`);
  console.log('lost = issued, not refused to the caller, never seen at the hub after the final drain; dup@hub = copies beyond the first; RSS and fds from /proc/<pid> (start: load start, end: after the drain, before close); ELD = event-loop delay over the run');
  console.log(finalTable(clientRows));
  const hubProc = hubTrack;
  console.log(`hub process: RSS ${hubProc.start?.rssMB.toFixed(0)}/${hubProc.max?.rssMB.toFixed(0)}/${hubProc.end?.rssMB.toFixed(0)} MB, fds ${hubProc.start?.fds}/${hubProc.max?.fds}/${hubProc.end?.fds} (start/max/end); telemetry without a soak id: ${untracked}`);
  console.log('faults injected (time: fault (what the hub did)):');
  for (const line of faultLines(clientRows)) console.log(line);

  for (const row of clientRows) {
    const s = row.stats;
    const notes: string[] = [];
    const lostIds = Object.entries(row.telemetry ?? {}).filter(([, r]) => r.lostCount > 0);
    for (const [deviceId, r] of lostIds) {
      // Sent on an absolute schedule from READY: seq / rate places each lost message in time.
      const when = r.lost.slice(0, 10).map((seq) => `${seq}@${clock((row.sendStartedAt! - t0) / 1000 + seq / row.config.ratePerIdentity)}`);
      problems.push(`${row.name}: ${r.lostCount} message(s) of ${deviceId} never reached the hub: seq@≈time ${when.join(', ')}${r.lostCount > 10 ? ', …' : ''}`);
    }
    for (const [deviceId, r] of Object.entries(row.telemetry ?? {})) if (r.beyond > 0) problems.push(`${row.name}: the hub saw ${r.beyond} number(s) ${deviceId} never issued`);
    if (row.final !== undefined && row.final.c2dReceived < row.c2dSent) {
      const missing = [...row.c2dSentIds].flatMap(([deviceId, sent]) => {
        const got = new Set(identitiesOf(row).find((i) => i.deviceId === deviceId)?.c2dReceived ?? []);
        return sent.filter((n) => !got.has(n)).map((n) => `${deviceId}:c2d:${n}`);
      });
      problems.push(`${row.name}: ${row.c2dSent - row.final.c2dReceived} C2D message(s) accepted by the hub never reached the client: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`);
    }
    if (row.failure !== undefined) problems.push(`${row.name}: ${row.failure}`);
    const crashes = row.events.filter((e) => e.what === 'crash');
    for (const crash of crashes.slice(0, 3)) problems.push(`${row.name}: uncaught exception (would have crashed the process; the soak kept it running) at ${clock(((crash.seenAt ?? t0) - t0) / 1000)}: ${crash.detail}`);
    if (crashes.length > 3) problems.push(`${row.name}: ${crashes.length - 3} more uncaught exception(s)`);
    if (row.result === undefined && row.stats !== undefined) notes.push(`no RESULT: counts from its last STATS (${clock(row.stats.at / 1000)} after its start)`);
    if (row.exit !== undefined) problems.push(`${row.name}: left running or failed at exit: ${row.exit}`);
    if (row.result?.closeError !== undefined) problems.push(`${row.name}: close failed: ${row.result.closeError}`);
    if (row.result !== undefined && !row.result.drained) problems.push(`${row.name}: the outbox did not drain within ${settings.drainMs / 1000} s (depth ${row.drained?.depth})`);
    if (s !== undefined && s.rejected > 0) notes.push(`${s.rejected} send(s) refused to the caller: ${JSON.stringify(Object.fromEntries(Object.entries(s.errors).filter(([k]) => k.startsWith('send '))))}`);
    if (s !== undefined && s.callerTimeouts > 0) notes.push(`${s.callerTimeouts} caller deadline(s) of ${settings.ackTimeoutMs / 60_000} min passed while queued`);
    const dropped = Object.entries(s?.dropped ?? {});
    if (dropped.length > 0) notes.push(`outbox dropped ${JSON.stringify(Object.fromEntries(dropped))}`);
    const { start, end } = row.proc;
    if (start !== undefined && end !== undefined && end.fds > start.fds + 2) notes.push(`fds grew ${start.fds} → ${end.fds}`);
    if (start !== undefined && end !== undefined && end.rssMB > start.rssMB * 1.25 && end.rssMB - start.rssMB > 20) notes.push(`RSS grew ${start.rssMB.toFixed(0)} → ${end.rssMB.toFixed(0)} MB`);
    if (Object.keys(row.methodErrors).length > 0) notes.push(`methods failed: ${JSON.stringify(row.methodErrors)}`);
    if (Object.keys(row.c2dErrors).length > 0) notes.push(`C2D refused by the hub: ${JSON.stringify(row.c2dErrors)}`);
    const errors = Object.entries(s?.errors ?? {}).filter(([k]) => !k.startsWith('send '));
    if (errors.length > 0) notes.push(`client 'error' events: ${JSON.stringify(Object.fromEntries(errors))}`);
    if ((s?.c2dSettleFailed ?? 0) > 0) notes.push(`${s!.c2dSettleFailed} C2D complete() failed (the hub delivers again), ${s!.c2dDuplicates} C2D duplicate(s) received`);
    if ((s?.warnings ?? 0) > 0) notes.push(`${s!.warnings} warning(s)`);
    notes.push(`${s?.disconnects ?? 0} disconnect(s), ${s?.reconnects ?? 0} reconnect(s); drain ${row.result?.drainMs ?? '-'} ms, close ${row.result?.closeMs ?? '-'} ms`);
    console.log(`  ${row.name}: ${notes.join('; ')}`);
  }
  if (leftAtHub.length > 0) problems.push(`sessions still at the hub after every client closed: ${leftAtHub.join(', ')}`);

  if (flags.json !== undefined) {
    const json = {
      git,
      node: process.version,
      cores: cpus().length,
      loadAtStart,
      loadAtEnd: load(),
      settings: { ...settings, protocols, fromSource: flags['from-source'] },
      faultTimes: faultAt,
      minutes,
      clients: clientRows.map(({ process: _p, track: _t, c2dSentIds, ...rest }) => ({ ...rest, c2dSentIds: Object.fromEntries(c2dSentIds) })),
      hub: { proc: { start: hubProc.start, max: hubProc.max, end: hubProc.end }, faultEvents: hubEvents, untracked, leftAtHub },
      problems,
    };
    writeFileSync(flags.json, JSON.stringify(json, null, 2));
    console.log(`Wrote ${flags.json}.`);
  }
} catch (err) {
  problems.push(`soak aborted: ${(err as Error).stack ?? String(err)}`);
} finally {
  for (const row of clientRows) row.process?.kill();
  await hub.stop();
  installed?.remove();
}

if (problems.length > 0) {
  exitCode = 1;
  console.log('');
  console.log(`FAILED (${problems.length}); logs kept in ${runDir}:`);
  for (const p of problems) console.log(`  ${p}`);
} else {
  console.log('');
  console.log('Nothing lost, nothing left running.');
  if (!flags.keep) rmSync(runDir, { recursive: true, force: true });
}
process.exit(exitCode);
