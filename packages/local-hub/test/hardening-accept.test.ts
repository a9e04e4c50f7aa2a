// Regression from issue 12: TCP connections that never start TLS used to stay open for minutes,
// and 1,100 of them exhausted the hub's file descriptors, locking every device out of all three
// ports. Against a small per-source cap: the excess is refused at once, a device from another
// loopback source still connects, and the idle ones are closed by the handshake deadline.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import azureDevice from 'azure-iot-device';
import azureMqtt from 'azure-iot-device-mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { connectionString } from './support/azure-clients.ts';
import { within } from './support/hardening.ts';

const IDLE_SOCKETS = 1_100;
const CAP = 50;
const HANDSHAKE_MS = 8_000;
const DEVICE_SOURCE = '127.0.0.2';

function openFileLimit(): number {
  try {
    return Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

// Client and hub share this process: each idle socket costs one descriptor here, each accepted
// one another, plus Node's and vitest's own.
const enoughDescriptors = openFileLimit() >= IDLE_SOCKETS + CAP + 400;

/** Sends the WebSocket transport to the hub's HTTPS port from another loopback address. */
class SourceAgent extends https.Agent {
  constructor(private readonly target: { host: string; port: number; localAddress: string }) {
    super({ keepAlive: true });
  }
  createConnection(options: Record<string, unknown>, callback?: unknown): Duplex {
    const base = https.Agent.prototype as unknown as { createConnection(o: Record<string, unknown>, cb?: unknown): Duplex };
    return base.createConnection.call(this, { ...options, host: this.target.host, port: this.target.port, localAddress: this.target.localAddress }, callback);
  }
}

describe.skipIf(!enoughDescriptors)(`${IDLE_SOCKETS} sockets that never start TLS (skipped when ulimit -n is below ${IDLE_SOCKETS + CAP + 400})`, () => {
  let hub: LocalHub;
  const logger = createMemoryLogger();

  beforeAll(async () => {
    hub = await startLocalHub({ inMemory: true, logger, devices: ['steady'], limits: { maxConnectionsPerSource: CAP, tlsHandshakeTimeoutMs: HANDSHAKE_MS } });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('refuses the excess at once, serves a device from another source, and closes the idle ones at the deadline', async () => {
    const ports = [hub.ports.mqtt, hub.ports.amqp, hub.ports.https];
    const sockets: Socket[] = [];
    let closedCount = 0;
    let onClosed: (() => void) | undefined;
    const closedAtLeast = (n: number): Promise<void> => new Promise((resolve) => {
      const check = (): void => {
        if (closedCount >= n) resolve();
        else onClosed = check;
      };
      check();
    });
    // In batches, so the listen backlog never drops a SYN (a dropped one is retried only after 1 s).
    for (let i = 0; i < IDLE_SOCKETS; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, IDLE_SOCKETS - i) }, (_, j) => new Promise<void>((resolve) => {
        const socket = connect({ host: hub.address, port: ports[(i + j) % ports.length]! });
        sockets.push(socket);
        socket.on('error', () => undefined);
        socket.once('connect', () => resolve());
        socket.once('close', () => {
          closedCount++;
          resolve();
          onClosed?.();
        });
      })));
    }

    // (a) Everything past the cap is closed by the hub without waiting for any deadline.
    await within(closedAtLeast(IDLE_SOCKETS - CAP), HANDSHAKE_MS / 2, 'the excess refused');
    const stillOpen = sockets.filter((s) => !s.destroyed);
    expect(stillOpen).toHaveLength(CAP);

    // (b) A device whose source is another loopback address connects while the cap is full.
    const key = hub.getDevice('steady')!.authentication;
    if (key.type !== 'sas') throw new Error('expected a SAS device');
    const client = azureDevice.Client.fromConnectionString(connectionString(hub, 'mqtt-ws', 'steady', key.primaryKey), azureMqtt.MqttWs);
    client.on('error', () => undefined);
    await client.setOptions({ ca: hub.ca, mqtt: { webSocketAgent: new SourceAgent({ host: hub.address, port: hub.ports.https, localAddress: DEVICE_SOURCE }) } } as Parameters<typeof client.setOptions>[0]);
    await within(client.open(), 15_000, 'device open from 127.0.0.2');
    await within(client.sendEvent(new azureDevice.Message('through the flood')), 10_000, 'telemetry acknowledged');
    expect(hub.telemetry({ deviceId: 'steady' }).map((r) => r.body.toString())).toEqual(['through the flood']);
    await client.close();

    // (c) The idle sockets that were let in are closed by the handshake deadline.
    await within(closedAtLeast(IDLE_SOCKETS), HANDSHAKE_MS * 4, 'idle sockets closed by the handshake deadline');
    expect(logger.entries.filter((e) => e.message === 'tls handshake not finished in time; connection closed')).toHaveLength(CAP);
  }, 90_000);
});
