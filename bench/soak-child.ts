// One soak client in its own process, so its RSS and file descriptors are its own: a
// @switchyard/device client on one protocol, or a lean AMQP gateway with several identities, each
// identity with an outbox, used the way an application uses them: numbered telemetry at a steady
// rate, C2D completed as it arrives, a direct method answered, the reported twin patched now and
// then. Driven by bench/soak.ts over stdin/stdout (protocol in soak-types.ts). The client code is
// imported at run time, from the packed-and-installed packages next to this file's bundle or, with
// the `source` condition, from the workspace.
import { writeSync } from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type * as DeviceModule from '@switchyard/device';
import type { C2DMessage, DeviceClient, OutboxDroppedEvent, StateChange } from '@switchyard/device';
import type * as GatewayModule from '@switchyard/gateway';
import type { ClientEvent, ClientResult, ClientStats, IdentityResult, ReadyLine, SoakClientConfig } from './soak-types.ts';

const MB = 1024 * 1024;
const startedAt = performance.now();
const elapsed = (): number => Math.round(performance.now() - startedAt);

function say(tag: string, body: unknown): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${tag} ${JSON.stringify(body)}\n`, () => resolve()));
}

function redact(text: string): string {
  return text.replace(/(SharedAccessKey=|sig=|SharedAccessSignature=)[^;&\s]+/gi, '$1<redacted>');
}

const codeOf = (err: unknown): string => String((err as { code?: unknown })?.code ?? (err as Error)?.name ?? 'unknown');

class Identity {
  next = 0;
  readonly rejected: number[] = [];
  readonly c2d = new Set<number>();
  twinPending = false;
  everConnected = false;
  constructor(readonly deviceId: string, readonly device: DeviceClient) {}
}

class Tally {
  acknowledged = 0;
  callerTimeouts = 0;
  pendingCallers = 0;
  maxDepth = 0;
  maxDepthSinceLast = 0;
  dropped: Record<string, number> = {};
  c2dDuplicates = 0;
  c2dSettleFailed = 0;
  methodsAnswered = 0;
  twinOk = 0;
  twinFailed = 0;
  disconnects = 0;
  reconnects = 0;
  errors: Record<string, number> = {};
  warnings = 0;
}

function event(e: Omit<ClientEvent, 'at'>): void {
  void say('EVENT', { at: elapsed(), ...e, ...(e.detail === undefined ? {} : { detail: redact(e.detail) }) });
}

async function open(config: SoakClientConfig): Promise<{ identities: Identity[]; close: () => Promise<void>; protocol: string }> {
  const { hub } = config;
  const connectionString = (deviceId: string, key: string): string => `HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${key}`;
  const outbox = config.outboxDir === undefined ? {} : { dir: config.outboxDir };
  if (config.kind === 'gateway') {
    const { createGateway } = (await import('@switchyard/gateway')) as typeof GatewayModule;
    const gateway = await createGateway({
      protocol: config.protocol,
      env: {},
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      outbox,
      identities: config.identities.map(({ deviceId, key }) => ({ deviceId, connectionString: connectionString(deviceId, key) })),
    });
    const { failed } = await gateway.open();
    if (failed.length > 0) throw new Error(`gateway: ${failed.length} identities failed to open`);
    const identities = config.identities.map(({ deviceId }) => new Identity(deviceId, gateway.get(deviceId)!.device));
    return { identities, close: () => gateway.close(), protocol: gateway.protocol };
  }
  const { connect } = (await import('@switchyard/device')) as typeof DeviceModule;
  const only = config.identities[0];
  if (only === undefined || config.identities.length !== 1) throw new Error('a device client has exactly one identity');
  const https = config.protocol === 'https';
  const { client, decision } = await connect({
    connectionString: connectionString(only.deviceId, only.key),
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    forceProtocol: config.protocol,
    profile: https
      ? { features: ['telemetry', 'c2d'], environment: 'development', pollIntervalSeconds: config.pollIntervalSeconds }
      : { features: ['telemetry', 'c2d', 'twin', 'methods'] },
    outbox,
    // A throttled poll waits 60 s, then doubles, by default; a development device polling every
    // few seconds would rather come back within a minute.
    ...(https ? { poll: { backoffBaseMs: 10_000, backoffMaxMs: 60_000 } } : {}),
  });
  const device = client as unknown as DeviceClient;
  return { identities: [new Identity(only.deviceId, device)], close: () => device.close(), protocol: decision.protocol };
}

function listen(config: SoakClientConfig, identity: Identity, tally: Tally): void {
  const { device, deviceId } = identity;
  identity.everConnected = device.state === 'connected';
  device.on('state', (change: StateChange) => {
    if (change.from === 'connected' && change.to !== 'connected') tally.disconnects++;
    if (change.to === 'connected') {
      if (identity.everConnected) tally.reconnects++;
      identity.everConnected = true;
    }
    event({ deviceId, what: 'state', detail: `${change.from} -> ${change.to}: ${change.reason}${change.error === undefined ? '' : ` (${codeOf(change.error)})`}` });
  });
  device.on('error', (err: unknown) => {
    const code = codeOf(err);
    tally.errors[code] = (tally.errors[code] ?? 0) + 1;
    event({ deviceId, what: 'error', detail: `${code}: ${String((err as Error)?.message ?? err)}` });
  });
  device.on('warning', (text: string) => {
    tally.warnings++;
    event({ deviceId, what: 'warning', detail: text });
  });
  device.on('outbox-dropped', (e: OutboxDroppedEvent) => {
    tally.dropped[e.reason] = (tally.dropped[e.reason] ?? 0) + e.messageIds.length;
    event({ deviceId, what: 'outbox-dropped', detail: `${e.reason}: ${e.messageIds.length}` });
  });
  device.on('message', (message: C2DMessage) => {
    const text = message.messageId ?? message.body.toString();
    const n = Number(/^c2d:(\d+)$/.exec(text)?.[1] ?? Number.NaN);
    if (Number.isSafeInteger(n)) {
      if (identity.c2d.has(n)) tally.c2dDuplicates++;
      identity.c2d.add(n);
    }
    message.complete().catch((err: unknown) => {
      tally.c2dSettleFailed++;
      event({ deviceId, what: 'c2d-complete-failed', detail: `${text}: ${codeOf(err)}` });
    });
  });
  if (config.protocol !== 'https') {
    device.onMethod('ping', (request) => {
      tally.methodsAnswered++;
      return { status: 200, payload: { pong: request.payload } };
    });
  }
}

function send(config: SoakClientConfig, identity: Identity, tally: Tally, body: Buffer): void {
  const seq = identity.next++;
  tally.pendingCallers++;
  const message = { body: Buffer.concat([Buffer.from(`{"seq":${seq},"at":${Date.now()},"pad":"`), body, Buffer.from('"}')]), messageId: `${identity.deviceId}:${seq}`, contentType: 'application/json' };
  identity.device.sendEvent(message, { until: config.until, timeoutMs: config.ackTimeoutMs }).then(
    () => {
      tally.pendingCallers--;
      if (config.until === 'acknowledged') tally.acknowledged++;
    },
    (err: unknown) => {
      tally.pendingCallers--;
      const code = codeOf(err);
      const details = (err as { details?: { queued?: unknown } }).details;
      // Still queued: the outbox goes on sending it, so it is not refused, only no longer awaited.
      if (details?.queued === true) {
        if (code === 'TIMEOUT') tally.callerTimeouts++;
        return;
      }
      identity.rejected.push(seq);
      tally.errors[`send ${code}`] = (tally.errors[`send ${code}`] ?? 0) + 1;
    },
  );
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  const commands = lines[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const { value, done } = await commands.next();
    if (done === true) throw new Error('stdin closed before CLOSE');
    return value as string;
  };
  const config = JSON.parse(await next()) as SoakClientConfig;
  const eldRun = monitorEventLoopDelay({ resolution: 10 });
  const eldInterval: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  eldRun.enable();
  eldInterval.enable();

  const connectStarted = performance.now();
  const { identities, close, protocol } = await open(config);
  const tally = new Tally();
  for (const identity of identities) listen(config, identity, tally);
  await say('READY', { connectMs: Math.round(performance.now() - connectStarted), protocol, identities: identities.length } satisfies ReadyLine);

  const pad = Buffer.alloc(Math.max(0, config.payloadBytes - 48), 'x');
  const depth = (): number => identities.reduce((sum, i) => sum + (i.device.outbox?.depth ?? 0), 0);
  const sampler = setInterval(() => {
    const d = depth();
    if (d > tally.maxDepth) tally.maxDepth = d;
    if (d > tally.maxDepthSinceLast) tally.maxDepthSinceLast = d;
  }, 200);

  // Telemetry on an absolute schedule, identities in turn: a stalled loop catches up (boundedly)
  // instead of drifting to a lower rate.
  const intervalMs = 1000 / (config.ratePerIdentity * identities.length);
  let nextAt = performance.now();
  let turn = 0;
  let sendTimer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const now = performance.now();
    for (let burst = 0; nextAt <= now && burst < 100; burst++) {
      send(config, identities[turn++ % identities.length]!, tally, pad);
      nextAt += intervalMs;
    }
    if (nextAt <= now) nextAt = now + intervalMs;
    sendTimer = setTimeout(tick, nextAt - now);
  };
  tick();

  // Reported twin, identities in turn, one request at a time per identity.
  let twinTurn = 0;
  let twinN = 0;
  const twinTimer =
    config.protocol === 'https'
      ? undefined
      : setInterval(() => {
          const identity = identities[twinTurn++ % identities.length]!;
          if (identity.twinPending) return;
          identity.twinPending = true;
          identity.device.updateReported({ soak: { n: twinN++, at: new Date().toISOString() } }).then(
            () => {
              identity.twinPending = false;
              tally.twinOk++;
            },
            (err: unknown) => {
              identity.twinPending = false;
              tally.twinFailed++;
              event({ deviceId: identity.deviceId, what: 'twin-failed', detail: codeOf(err) });
            },
          );
        }, (config.twinEverySeconds * 1000) / identities.length);

  const stats = (): ClientStats => {
    const issued = identities.reduce((sum, i) => sum + i.next, 0);
    const rejected = identities.reduce((sum, i) => sum + i.rejected.length, 0);
    const dropped = Object.values(tally.dropped).reduce((a, b) => a + b, 0);
    const d = depth();
    const states: Record<string, number> = {};
    for (const i of identities) states[i.device.state] = (states[i.device.state] ?? 0) + 1;
    const s: ClientStats = {
      at: elapsed(),
      issued,
      // 'queued' sends resolve before the hub has them: what left the outbox undropped was acknowledged.
      acknowledged: config.until === 'acknowledged' ? tally.acknowledged : Math.max(0, issued - rejected - dropped - d),
      rejected,
      callerTimeouts: tally.callerTimeouts,
      pendingCallers: tally.pendingCallers,
      depth: d,
      maxDepth: Math.max(tally.maxDepth, d),
      maxDepthSinceLast: Math.max(tally.maxDepthSinceLast, d),
      dropped: { ...tally.dropped },
      c2dReceived: identities.reduce((sum, i) => sum + i.c2d.size, 0),
      c2dDuplicates: tally.c2dDuplicates,
      c2dSettleFailed: tally.c2dSettleFailed,
      methodsAnswered: tally.methodsAnswered,
      twinOk: tally.twinOk,
      twinFailed: tally.twinFailed,
      disconnects: tally.disconnects,
      reconnects: tally.reconnects,
      states,
      errors: { ...tally.errors },
      warnings: tally.warnings,
      heapUsedMB: process.memoryUsage().heapUsed / MB,
      eldP99Ms: eldInterval.percentile(99) / 1e6,
      eldMaxMs: eldInterval.max / 1e6,
      eldRunP99Ms: eldRun.percentile(99) / 1e6,
      eldRunMaxMs: eldRun.max / 1e6,
      identities: identities.map((i): IdentityResult => ({ deviceId: i.deviceId, issued: i.next, rejectedSeqs: i.rejected, c2dReceived: [...i.c2d].sort((a, b) => a - b) })),
    };
    tally.maxDepthSinceLast = 0;
    eldInterval.reset();
    return s;
  };

  let drained = false;
  let drainMs = 0;
  for (;;) {
    const [command, arg] = (await next()).trim().split(' ');
    if (command === 'STATS') {
      await say('STATS', stats());
    } else if (command === 'STOP') {
      clearTimeout(sendTimer);
      if (twinTimer !== undefined) clearInterval(twinTimer);
      const bound = Number(arg ?? '180000');
      const t0 = performance.now();
      let timer: NodeJS.Timeout | undefined;
      drained = await Promise.race([
        Promise.all(identities.map((i) => i.device.outbox?.drain())).then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), bound))),
      ]);
      clearTimeout(timer);
      drainMs = Math.round(performance.now() - t0);
      await say('DRAINED', stats());
    } else if (command === 'CLOSE') {
      break;
    } else {
      throw new Error(`unknown command ${JSON.stringify(command)}`);
    }
  }

  const t0 = performance.now();
  let closeError: string | undefined;
  try {
    await close();
  } catch (err) {
    closeError = redact(`${codeOf(err)}: ${String((err as Error)?.message ?? err)}`);
  }
  const closeMs = Math.round(performance.now() - t0);
  clearInterval(sampler);
  const final = stats();
  eldRun.disable();
  eldInterval.disable();
  const result: ClientResult = {
    stats: final,
    identities: final.identities,
    drained,
    drainMs,
    closeMs,
    ...(closeError === undefined ? {} : { closeError }),
  };
  await say('RESULT', result);
  lines.close();
  // Nothing of the client may keep the process alive now: it exits by itself. If it has not after
  // 15 s, say what holds it (the soak reports it as left running) and go.
  setTimeout(() => {
    void say('HANDLES', [...process.getActiveResourcesInfo(), ...describeTimers()]).then(() => process.exit(3));
  }, 15_000).unref();
}

/** What each pending timer would run: enough to find its owner. Node's own handle list, undocumented but stable. */
function describeTimers(): string[] {
  const handles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? [];
  return handles.flatMap((h) => {
    const t = h as { constructor?: { name?: string }; _idleTimeout?: number; _onTimeout?: { name?: string; toString(): string }; hasRef?: () => boolean };
    if (t.constructor?.name !== 'Timeout' || t.hasRef?.() === false) return [];
    return [`timer ${t._idleTimeout} ms ${t._onTimeout?.name || '(anonymous)'}: ${String(t._onTimeout).replace(/\s+/g, ' ').slice(0, 160)}`];
  });
}

// An exception nobody caught would end the process, as it would a user's. The soak reports it as a
// crash (and fails), but the client goes on running so the rest of the run still measures loss and
// growth: a soak that stops at the first defect finds only one.
process.on('uncaughtException', (err) => {
  writeSync(1, `EVENT ${JSON.stringify({ at: elapsed(), what: 'crash', detail: redact(String(err?.stack ?? err)).split('\n').slice(0, 6).join(' | ') })}\n`);
  process.stderr.write(`soak-child: uncaught exception (kept running): ${redact(String(err?.stack ?? err))}\n`);
});

main().catch((err: unknown) => {
  process.stderr.write(`soak-child failed: ${redact(String((err as Error)?.stack ?? err))}\n`);
  process.exit(1);
});
