// Socket-level fuzzing of one front-end at three stages: the TLS handshake (raw TCP, mutated
// ClientHellos), before authentication and after it (verified TLS, mutated protocol units after
// an optional valid prefix). Cases are mutations of real protocol units from seeded randomness
// (FUZZ_SEED reproduces a run), run a few at a time for FUZZ_SECONDS per front-end (3 by default,
// shared by its stages). Meanwhile a well-behaved Azure SDK device keeps sending telemetry; one
// unacknowledged message, or the hub's process exiting, fails the run.
import { connect as netConnect, createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Client } from 'azure-iot-device';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azureClient, type TransportName } from './azure-clients.ts';
import { sendTelemetry, startChildHub, within, type AttackerPipe, type ChildHub, type ChildHubInfo } from './hardening.ts';

export const FUZZ_SECONDS = Number(process.env['FUZZ_SECONDS'] ?? '') > 0 ? Number(process.env['FUZZ_SECONDS']) : 3;
const CONCURRENCY = 4;
const CASE_CLOSE_MS = 3_000;

/** mulberry32: small, seedable, good enough to pick mutations. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x40, 0xf0, 0xe0, 0xd0, 0xc0, 0xa1, 0xb1, 0x53, 0x00];

/** One mutated copy of `seed` (or of a splice of two seeds); `repair` re-frames it afterwards when given. */
export function mutate(rand: () => number, seeds: Buffer[], repair?: (b: Buffer) => Buffer): Buffer {
  const pick = (): Buffer => seeds[Math.floor(rand() * seeds.length)]!;
  let buf = Buffer.from(pick());
  const ops = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < ops; i++) {
    const at = buf.length === 0 ? 0 : Math.floor(rand() * buf.length);
    switch (Math.floor(rand() * 8)) {
      case 0: if (buf.length) buf[at] = buf[at]! ^ (1 << Math.floor(rand() * 8)); break;
      case 1: if (buf.length) buf[at] = INTERESTING[Math.floor(rand() * INTERESTING.length)]!; break;
      case 2: buf = Buffer.concat([buf.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256))), buf.subarray(at)]); break;
      case 3: buf = Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + 1 + Math.floor(rand() * 16)))]); break;
      case 4: buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at, Math.min(buf.length, at + 32)), buf.subarray(at)]); break;
      case 5: { const other = pick(); buf = Buffer.concat([buf.subarray(0, at), other.subarray(Math.floor(rand() * other.length))]); break; }
      case 6: if (buf.length >= at + 4) buf.writeUInt32BE([0, 1, 0x7fffffff, 0xffffffff, Math.floor(rand() * 2 ** 32)][Math.floor(rand() * 5)]!, at); break;
      default: buf = buf.subarray(0, at); break;
    }
  }
  return repair && rand() < 0.7 ? repair(buf) : buf;
}

export interface FuzzStage {
  name: 'tls-handshake' | 'pre-auth' | 'post-auth';
  open(): Promise<AttackerPipe>;
  /** Sent unmutated first on every connection (a valid CONNECT, put-token, upgrade ...). */
  prefix?: () => Buffer[];
  seeds: Buffer[];
  repair?: (b: Buffer) => Buffer;
  /** Units per case. */
  maxUnits?: number;
}

export interface StageFigures { stage: string; cases: number; openFailures: number; closedByHub: number }
export interface FuzzReport {
  frontEnd: string;
  seed: number;
  seconds: number;
  stages: StageFigures[];
  deviceMessages: number;
  crashed: boolean;
  rssBeforeMiB: number | undefined;
  rssAfterMiB: number | undefined;
}

/** A raw TCP pipe, for the handshake stage. */
export function tcpPipe(host: string, port: number): Promise<AttackerPipe> {
  const socket = netConnect({ host, port });
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  let isClosed = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => { isClosed = true; resolve(); }));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({
      closed,
      get isClosed() { return isClosed || socket.destroyed; },
      write: (data) => new Promise<void>((done) => { if (socket.destroyed) done(); else socket.write(data, () => done()); }),
      onData: (fn) => socket.on('data', fn),
      end: () => socket.end(),
      destroy: () => socket.destroy(),
    }));
    socket.once('close', () => reject(new Error('closed before connect')));
  });
}

/** The ClientHello Node sends to the hub, as the handshake stage's seed. */
export async function captureClientHello(servername: string): Promise<Buffer> {
  const server = createServer();
  const hello = new Promise<Buffer>((resolve) => server.once('connection', (socket) => socket.once('data', (chunk: Buffer) => { resolve(chunk); socket.destroy(); })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const client = tlsConnect({ host: '127.0.0.1', port, servername });
  client.on('error', () => undefined);
  const chunk = await within(hello, 5_000, 'ClientHello');
  client.destroy();
  server.close();
  return chunk;
}

async function runCase(stage: FuzzStage, rand: () => number, figures: StageFigures): Promise<void> {
  let pipe: AttackerPipe;
  try {
    pipe = await stage.open();
  } catch {
    figures.openFailures++;
    return;
  }
  figures.cases++;
  try {
    for (const unit of stage.prefix?.() ?? []) await pipe.write(unit);
    const units = 1 + Math.floor(rand() * (stage.maxUnits ?? 3));
    for (let i = 0; i < units && !pipe.isClosed; i++) {
      const buf = mutate(rand, stage.seeds, stage.repair);
      // Split across writes now and then, so partial-unit paths run too.
      const cut = rand() < 0.3 && buf.length > 1 ? 1 + Math.floor(rand() * (buf.length - 1)) : buf.length;
      await pipe.write(buf.subarray(0, cut));
      if (cut < buf.length) await pipe.write(buf.subarray(cut));
    }
    // Done talking: the hub must let go of the connection, or the case ends it.
    pipe.end();
    await within(pipe.closed, CASE_CLOSE_MS, 'case close');
    figures.closedByHub++;
  } catch {
    // Not closing within the bound is allowed (the hub may wait for more); only the device and
    // the hub's process are judged.
  } finally {
    pipe.destroy();
  }
}

/** Runs `stages` for `seconds` in total while `device` keeps sending; throws on the first failure. */
export async function fuzzFrontEnd(options: { frontEnd: string; hub: ChildHub; device: Client; stages: FuzzStage[]; seconds?: number }): Promise<FuzzReport> {
  const seconds = options.seconds ?? FUZZ_SECONDS;
  const seed = Number(process.env['FUZZ_SEED'] ?? '') || Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  const rssBeforeMiB = options.hub.rssMiB();
  let stop = false;
  let deviceMessages = 0;
  let deviceError: unknown;
  const deviceLoop = (async () => {
    while (!stop) {
      try {
        await sendTelemetry(options.device, `steady-${options.frontEnd}-${deviceMessages}`);
        deviceMessages++;
      } catch (error) {
        deviceError = error;
        return;
      }
    }
  })();

  const stages: StageFigures[] = [];
  for (const stage of options.stages) {
    const figures: StageFigures = { stage: stage.name, cases: 0, openFailures: 0, closedByHub: 0 };
    stages.push(figures);
    const deadline = Date.now() + (seconds * 1000) / options.stages.length;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline && deviceError === undefined && !options.hub.exited) await runCase(stage, rand, figures);
    }));
  }
  stop = true;
  await deviceLoop;
  const report: FuzzReport = { frontEnd: options.frontEnd, seed, seconds, stages, deviceMessages, crashed: options.hub.exited, rssBeforeMiB, rssAfterMiB: options.hub.rssMiB() };
  // One line per run: the figures a longer FUZZ_SECONDS run is quoted from.
  console.log(`[fuzz] ${JSON.stringify(report)}`);
  if (report.crashed) console.log(`[fuzz] hub stderr (FUZZ_SEED=${seed}):\n${options.hub.stderrTail}`);
  if (deviceError !== undefined) throw new Error(`the well-behaved device failed during fuzzing (FUZZ_SEED=${seed}): ${String(deviceError)}`);
  return report;
}

/**
 * Registers one front-end's fuzz test: a hub in a child process, the real Azure SDK client of
 * that transport (TLS verification on) as the well-behaved device, then every stage in turn.
 */
export function fuzzSuite(frontEnd: TransportName, stagesFor: (hub: ChildHubInfo) => Promise<FuzzStage[]>): void {
  describe(`fuzz: ${frontEnd} front-end at the socket level`, () => {
    let hub: ChildHub;
    let device: Client;

    beforeAll(async () => {
      hub = await startChildHub();
      device = await azureClient(hub.info, frontEnd, `good-${frontEnd}`, hub.info.keys[`good-${frontEnd}`]!);
      if (frontEnd !== 'https') await within(device.open(), 20_000, 'device open');
    }, 90_000);

    afterAll(async () => {
      await device?.close().catch(() => undefined);
      await hub?.stop();
    });

    it(`survives ${FUZZ_SECONDS} s of mutated input at the TLS-handshake, pre-auth and post-auth stages while the device is served`, async () => {
      const stages = await stagesFor(hub.info);
      const report = await fuzzFrontEnd({ frontEnd, hub, device, stages });
      expect(report.crashed).toBe(false);
      for (const stage of report.stages) expect(stage.cases, `${stage.stage} cases`).toBeGreaterThan(0);
      expect(report.deviceMessages).toBeGreaterThan(0);
      await sendTelemetry(device, `after-fuzz-${frontEnd}`);
    }, FUZZ_SECONDS * 1000 + 120_000);
  });
}
