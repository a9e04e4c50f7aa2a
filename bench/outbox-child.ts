// One variant of the outbox bench (bench/outbox.ts) in a process of its own: our client over MQTT
// or AMQP, plain, with caller-given message ids, or with the outbox in memory or on disk. Driven
// over stdin/stdout like bench/overhead-child.ts ("RUN <window> <ms>" answered by "SLICE <json>",
// then "END" answered by "RESULT <json>"), so the parent can run one slice on every variant at
// once on one CPU and compare them per slice set.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import type * as DeviceModule from '@switchyard/device';
import { commandLines, say, threadTimes } from './child-io.ts';
import type { OutboxChildConfig, OutboxChildResult } from './outbox-types.ts';
import type { SliceResult } from './overhead-types.ts';

type Send = () => Promise<unknown>;

/** Sends with `window` in flight until `ms` pass or `maxMessages` were issued (the loop of bench/overhead-child.ts). */
async function runSlice(send: Send, window: number, ms: number, maxMessages: number): Promise<SliceResult> {
  let issued = 0;
  let done = 0;
  let stop = false;
  const timer = setTimeout(() => { stop = true; }, ms);
  const before = threadTimes();
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (!stop && issued < maxMessages) {
      issued++;
      await send();
      done++;
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  const after = threadTimes();
  clearTimeout(timer);
  return {
    window,
    messages: done,
    seconds,
    cpuUs: cpu.user + cpu.system,
    systemUs: cpu.system,
    gcCount: 0,
    gcMs: 0,
    ...(before === undefined || after === undefined ? {} : { threads: { mainNs: after.mainNs - before.mainNs, otherNs: after.otherNs - before.otherNs, voluntarySwitches: after.voluntarySwitches - before.voluntarySwitches, involuntarySwitches: after.involuntarySwitches - before.involuntarySwitches } }),
  };
}

async function main(): Promise<void> {
  const next = commandLines();
  const config = JSON.parse(await next()) as OutboxChildConfig;
  const { connect } = (config.module === undefined ? await import('@switchyard/device') : await import(config.module)) as typeof DeviceModule;
  const { hub, protocol, variant } = config;
  const { client, decision } = await connect({
    connectionString: `HostName=${hub.hostName};DeviceId=${config.deviceId};SharedAccessKey=${config.key}`,
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    profile: { protocols: [protocol], features: ['telemetry'], c2d: 'none' },
    forceProtocol: protocol,
    ...(variant === 'memory' ? { outbox: {} } : variant === 'durable' ? { outbox: { dir: config.dir! } } : {}),
  });
  if (decision.protocol !== protocol) throw new Error(`chose ${decision.protocol} instead of ${protocol}`);
  const payload = Buffer.alloc(config.payloadBytes, 'x');
  // 'ids': the caller gives every message a fresh id, as the outbox does for it.
  const send: Send = variant === 'ids' ? () => client.sendEvent({ body: payload, messageId: randomUUID() }) : () => client.sendEvent(payload);

  // Warm-up counted in messages, not time: V8 keeps optimizing for thousands of sends (see
  // bench/main.ts). A sixth one at a time, the rest 16 in flight.
  await send();
  const sequential = Math.ceil(config.warmup / 6);
  const first = await runSlice(send, 1, config.warmupMaxMs, sequential);
  const second = await runSlice(send, 16, config.warmupMaxMs, config.warmup - sequential);
  let messages = 1 + first.messages + second.messages;
  await say('READY {}');

  let profiler: Session | undefined;
  const profiles: object[] = [];
  if (config.cpuProfile !== undefined) {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
  }
  const slices: SliceResult[] = [];
  // Bounded: the parent sends a fixed number of RUNs and then END; a closed stdin also ends it.
  for (;;) {
    const command = (await next()).trim().split(' ');
    if (command[0] === 'END') break;
    if (command[0] !== 'RUN') throw new Error(`unknown command ${JSON.stringify(command[0])}`);
    if (profiler !== undefined) await profiler.post('Profiler.start');
    const slice = await runSlice(send, Number(command[1]), Number(command[2]), config.maxMessagesPerSlice);
    if (profiler !== undefined) profiles.push((await profiler.post('Profiler.stop')).profile);
    slices.push(slice);
    messages += slice.messages;
    await say(`SLICE ${JSON.stringify(slice)}`);
  }
  if (profiler !== undefined && config.cpuProfile !== undefined) {
    profiler.disconnect();
    // Written only now: a write between slices would run while the others are measured.
    mkdirSync(config.cpuProfile, { recursive: true });
    profiles.forEach((profile, i) => writeFileSync(join(config.cpuProfile!, `slice-${String(i).padStart(3, '0')}-w${slices[i]!.window}.cpuprofile`), JSON.stringify(profile)));
    writeFileSync(join(config.cpuProfile, 'slices.json'), JSON.stringify(slices));
  }
  const file = (client as unknown as { outbox?: { file?: OutboxChildResult['durableLog'] } }).outbox?.file;
  await client.close();
  const result: OutboxChildResult = { variant, messages, ...(file === undefined ? {} : { durableLog: file }) };
  await say(`RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`outbox-child failed: ${String((err as Error)?.stack ?? err).replace(/(SharedAccessKey=|sig=)[^;&\s]+/gi, '$1<redacted>')}\n`);
  process.exit(1);
});
