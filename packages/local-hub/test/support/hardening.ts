// Shared by the hardening and fuzz suites: a hub in a child process (so an attack that would kill
// the hub's process cannot kill the test), raw attacker transports over verified TLS, and the
// well-behaved device's telemetry round trip.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import azureDevice, { type Client } from 'azure-iot-device';
import type { HubAddress } from './azure-clients.ts';
import { within } from './amqp-harness.ts';

export { within };

export interface ChildHubInfo extends HubAddress {
  keys: Record<string, string>;
  pid: number;
}

export interface ChildHub {
  info: ChildHubInfo;
  /** Resident set size of the hub's process, in MiB; undefined once it has exited. */
  rssMiB(): number | undefined;
  readonly exited: boolean;
  readonly stderrTail: string;
  stop(): Promise<void>;
}

const fixture = fileURLToPath(new URL('../fixtures/hub-child.ts', import.meta.url));

/**
 * Starts the hub in a child with a small heap, so an unbounded decode fails there within seconds
 * instead of growing for most of a minute.
 */
export async function startChildHub(limits?: Record<string, number>): Promise<ChildHub> {
  const args = ['--max-old-space-size=384', '--import', 'tsx', fixture, ...(limits ? [JSON.stringify(limits)] : [])];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  // The tail of the hub's stderr says why it died, when it does.
  let stderrTail = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderrTail = (stderrTail + chunk.toString('utf8')).slice(-4000); });
  const line = await within(new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline >= 0) resolve(buffered.slice(0, newline));
    });
    child.once('exit', (code) => reject(new Error(`hub child exited with ${String(code)} before it was ready`)));
  }), 60_000, 'hub child ready');
  const info = JSON.parse(line) as ChildHubInfo;
  return {
    info,
    get exited() { return exited; },
    get stderrTail() { return stderrTail; },
    rssMiB() {
      if (exited) return undefined;
      try {
        const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${info.pid}/status`, 'utf8'))?.[1];
        return kb === undefined ? undefined : Math.round(Number(kb) / 1024);
      } catch {
        return undefined;
      }
    },
    async stop() {
      if (exited) return;
      child.stdin?.end();
      try {
        await within(exit, 10_000, 'hub child exit');
      } catch {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
}

/** A byte pipe to one of the hub's front-ends, as an attacker holds it. */
export interface AttackerPipe {
  write(data: Buffer): Promise<void>;
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
  onData(fn: (chunk: Buffer) => void): void;
  /** Done talking: FIN for a socket, a close frame for a WebSocket. */
  end(): void;
  destroy(): void;
}

export async function tlsPipe(hub: HubAddress, port: number, opts: { localAddress?: string } = {}): Promise<AttackerPipe> {
  const socket: TLSSocket = tlsConnect({ host: hub.address, port, ca: hub.ca, servername: 'localhost', ...opts });
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  let isClosed = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => { isClosed = true; resolve(); }));
  await within(new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('close', () => reject(new Error('closed before the TLS handshake finished')));
  }), 10_000, 'attacker TLS handshake');
  return {
    closed,
    get isClosed() { return isClosed || socket.destroyed; },
    write: (data) => new Promise<void>((resolve) => {
      if (isClosed || socket.destroyed) return resolve();
      if (socket.write(data)) return resolve();
      const done = (): void => { socket.off('drain', done); socket.off('close', done); resolve(); };
      socket.once('drain', done);
      socket.once('close', done);
    }),
    onData: (fn) => socket.on('data', fn),
    end: () => socket.end(),
    destroy: () => socket.destroy(),
  };
}

export async function wsPipe(hub: HubAddress, protocol: 'AMQPWSB10' | 'mqtt'): Promise<AttackerPipe> {
  const ws = new WebSocket(`wss://${hub.address}:${hub.ports.https}/$iothub/websocket`, protocol, { ca: hub.ca });
  ws.on('error', () => undefined);
  let isClosed = false;
  const closed = new Promise<void>((resolve) => ws.once('close', () => { isClosed = true; resolve(); }));
  await within(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', () => reject(new Error('closed before the WebSocket opened')));
  }), 10_000, 'attacker WebSocket open');
  return {
    closed,
    // CLOSING counts: a send then completes at once, and a loop on it would never yield to 'close'.
    get isClosed() { return isClosed || ws.readyState !== ws.OPEN; },
    write: (data) => new Promise<void>((resolve) => {
      if (isClosed || ws.readyState !== ws.OPEN) return resolve();
      ws.send(data, { binary: true }, () => resolve());
    }),
    onData: (fn) => ws.on('message', (data: Buffer) => fn(data)),
    end: () => ws.close(),
    destroy: () => ws.terminate(),
  };
}

/** One telemetry message from the well-behaved device, acknowledged by the hub. */
export async function sendTelemetry(client: Client, body: string, ms = 15_000): Promise<void> {
  await within(client.sendEvent(new azureDevice.Message(body)), ms, `telemetry '${body}' acknowledged`);
}
