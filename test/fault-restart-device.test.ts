// "Nothing lost" through a process restart (issue 13), over each of the five protocols: a device
// process with a durable outbox streams numbered telemetry, is SIGKILLed mid-stream (messages
// queued, some on the wire), and is started again on the same directory. Every message reaches
// the hub, in order once copies are dropped by message id; the only copies are of messages the
// hub accepted whose acknowledgement the dead process never recorded, so at most the outbox's
// in-flight window; a C2D message sent while the device was down arrives after the restart.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTBOX_WINDOW } from '@switchyard/device/internal';
import { silentLogger, startLocalHub, type LocalHub, type TelemetryRecord } from '@switchyard/local-hub';
import type { Protocol } from '@switchyard/profile';
import { waitFor } from './support/waits.ts';

/** The device process of packages/device's own restart test, which takes the protocol too. */
const fixture = fileURLToPath(new URL('../packages/device/test/outbox-child.ts', import.meta.url));
const MESSAGES = 600;
// Past the widest in-flight window (64), so the kill finds the whole stream in the log (the first
// window's acknowledgements are read only after the log write) and acknowledged messages behind it.
const KILL_AT = 150;
const PROTOCOLS: Protocol[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];

let hub: LocalHub;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-fault-restart-'));
const children = new Set<ChildProcessWithoutNullStreams>();
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Child {
  child: ChildProcessWithoutNullStreams;
  /** The first stdout match of `re`, waiting for it; rejects if the process exits first. */
  line(re: RegExp): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

/** The fixture as a process, killed after `boundMs` whatever it is doing, so no case can hang. */
function start(args: string[], boundMs: number): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  const guard = setTimeout(() => child.kill('SIGKILL'), boundMs);
  let out = '';
  let err = '';
  const waiting = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    for (const check of [...waiting]) check();
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(guard);
      children.delete(child);
      for (const check of [...waiting]) check();
      resolve({ code, signal });
    }),
  );
  const output = (): string => `stdout:\n${out}\nstderr:\n${err}`;
  const line = (re: RegExp): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const match = re.exec(out);
        if (match) {
          waiting.delete(check);
          resolve(match[0]);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          waiting.delete(check);
          reject(new Error(`the device process ended before printing ${re}\n${output()}`));
        }
      };
      waiting.add(check);
      check();
    });
  return { child, line, exited, output };
}

describe.each(PROTOCOLS)('a device process over %s with outbox.dir, SIGKILLed mid-stream and restarted', (protocol) => {
  it('delivers every message, in order after de-duplication, copying at most what was in flight; the C2D sent while it was down arrives', async () => {
    const deviceId = `restart-${protocol}`;
    hub.createDevice(deviceId);
    const args = [hub.deviceConnectionString(deviceId, { protocol }), hub.ca, hub.address, JSON.stringify(hub.ports), join(dir, protocol)];
    const got: TelemetryRecord[] = [];
    const first = start([...args, 'queue', String(MESSAGES), protocol], 40_000);
    let killedAfter = 0;
    // Killed from inside the hub's acceptance of a message, before the hub acknowledges it: that
    // message, and any the hub reads after it from the same connection, are on the wire for the
    // device and are what it sends again.
    const stop = hub.onTelemetry((record) => {
      if (record.deviceId !== deviceId) return;
      got.push(record);
      if (got.length === KILL_AT) {
        first.child.kill('SIGKILL');
        killedAfter = got.length;
      }
    });
    try {
      await first.line(/connected/);
      first.child.stdin.write('go\n');
      const killed = await first.exited;
      // Killed by the test, not ended by a failed send.
      expect(killed, first.output()).toEqual({ code: null, signal: 'SIGKILL' });
      expect(killedAfter).toBe(KILL_AT);
      // What the dead process's connection still delivers has been read once the hub closes it.
      await waitFor(`the hub to close the killed ${protocol} connection`, () => hub.stats().connections[protocol] === 0, 15_000);
      const atKill = new Set(got.map((r) => String(r.systemProperties.messageId))).size;

      hub.sendC2D(deviceId, { body: Buffer.from('sent while down'), messageId: `${deviceId}-c2d` });
      const second = start([...args, 'deliver', '1', protocol], 40_000);
      const recovered = Number((await second.line(/recovered \d+/)).split(' ')[1]);
      expect(await second.line(/c2d \S+/)).toBe(`c2d ${deviceId}-c2d`);
      const ended = await second.exited;
      expect(ended, second.output()).toEqual({ code: 0, signal: null });
      expect(second.output()).not.toMatch(/dropped|c2d-complete-failed/);

      // Every message, each under one id, in the order sent once copies are dropped.
      const firstCopies: string[] = [];
      const bodyOf = new Map<string, string>();
      for (const record of got) {
        const id = String(record.systemProperties.messageId);
        const body = record.body.toString();
        if (!bodyOf.has(id)) {
          bodyOf.set(id, body);
          firstCopies.push(body);
        } else expect(bodyOf.get(id), `copies of ${id} carry one body`).toBe(body);
      }
      expect(firstCopies).toEqual(Array.from({ length: MESSAGES }, (_, i) => `n-${i}`));
      const duplicates = got.length - MESSAGES;
      // The restarted process sent again exactly what its log still held: the hub had
      // `atKill + recovered - MESSAGES` of those (accepted, acknowledgement never recorded).
      expect(duplicates).toBe(atKill + recovered - MESSAGES);
      // The message the kill interrupted is one of them. At most the window: an acknowledged
      // message keeps its place in it until its ack is in the log.
      expect(duplicates).toBeGreaterThanOrEqual(1);
      // At most the messages on the wire: over HTTPS one request, but a batch of up to the window.
      expect(duplicates).toBeLessThanOrEqual(OUTBOX_WINDOW);
      // Mid-stream: messages the first process had queued and never sent.
      expect(recovered - duplicates).toBeGreaterThan(0);
      console.log(`${protocol}: killed after ${KILL_AT} accepted, ${atKill} at the hub at the kill, ${recovered} recovered, ${duplicates} duplicated (window ${OUTBOX_WINDOW})`);

      // Nothing left running: both processes are gone and the hub holds no connection of the device.
      await waitFor(`no ${protocol} connection left`, () => hub.stats().connections[protocol] === 0 && hub.stats().connectedIdentities.every((s) => s.deviceId !== deviceId), 10_000);
    } finally {
      stop();
    }
  }, 60_000);
});
