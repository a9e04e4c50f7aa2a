// The AMQP heartbeat writer on the SDK's real transport (azure-iot-device-amqp and its rhea) over a
// real TLS connection to the local hub, which advertises IoT Hub's 240 s idle timeout. Time is a
// ManualClock given to the writer, so the 60 s looks are stepped, not waited for.
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { ManualClock } from '@switchyard/time';
import { requestAmqpHeartbeats } from '../src/links/amqp-heartbeats.ts';

const requireHere = createRequire(import.meta.url);
const device = requireHere('azure-iot-device') as {
  Client: { fromConnectionString(cs: string, transport: unknown): SdkClient };
  Message: new (body: unknown) => unknown;
};
const { Amqp, AmqpWs } = requireHere('azure-iot-device-amqp') as Record<'Amqp' | 'AmqpWs', new (auth: unknown) => unknown>;

interface SdkClient {
  setOptions(options: Record<string, unknown>): Promise<unknown>;
  open(): Promise<unknown>;
  close(): Promise<unknown>;
  sendEvent(message: unknown): Promise<unknown>;
  on(event: string, listener: () => void): void;
}
interface RheaConnection {
  heartbeat_out?: unknown;
  remote: { open: { idle_time_out?: number } };
  socket: { write(chunk: Buffer, ...rest: unknown[]): boolean };
}

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true });
});
afterAll(async () => {
  await hub?.close();
});

// An empty AMQP frame: size 8, data offset 2, type 0, channel 0.
const EMPTY_FRAME = Buffer.from([0, 0, 0, 8, 2, 0, 0, 0]);

describe.each(['amqp', 'amqp-ws'] as const)('the AMQP heartbeat writer over %s', (protocol) => {
  it('leaves rhea no timer to re-arm per frame, and keeps the hub hearing from the device in silence', async () => {
    const deviceId = `heartbeats-${protocol}`;
    hub.createDevice(deviceId);
    const clock = new ManualClock(0);
    let transport: { _amqp: { _rheaConnection: RheaConnection } } | undefined;
    const Transport = protocol === 'amqp' ? Amqp : AmqpWs;
    function CapturingTransport(this: unknown, auth: unknown): unknown {
      transport = new Transport(auth) as typeof transport;
      // The read side's bound far away: only the writer is under test here.
      requestAmqpHeartbeats(transport, 1e9, clock);
      return transport;
    }
    const client = device.Client.fromConnectionString(hub.deviceConnectionString(deviceId, { protocol }), CapturingTransport);
    client.on('error', () => undefined);
    const agent = hub.redirectAgent();
    await client.setOptions({ ca: hub.ca, ...(protocol === 'amqp-ws' ? { amqp: { webSocketAgent: agent } } : {}) });
    try {
      await client.open();
      const rhea = transport!._amqp._rheaConnection;
      // The hub's 240 s is hidden from rhea; a look every 60 s takes its place (beside the read side's one timer).
      expect(rhea.remote.open.idle_time_out).toBeUndefined();
      expect(clock.pending()).toBe(2);
      for (let i = 0; i < 3; i++) await client.sendEvent(new device.Message(`m${i}`));
      // Before: rhea cleared and re-armed a 120 s Timeout on every write, so one was always set.
      expect(rhea.heartbeat_out).toBeUndefined();

      const empties: Buffer[] = [];
      const write = rhea.socket.write;
      rhea.socket.write = function (this: unknown, chunk: Buffer, ...rest: unknown[]) {
        if (Buffer.isBuffer(chunk) && chunk.equals(EMPTY_FRAME)) empties.push(chunk);
        return write.call(this, chunk, ...rest);
      };
      // The sends were written since the last look: nothing is due yet.
      clock.advance(60_000);
      expect(empties).toHaveLength(0);
      // 60 s more without a frame: the heartbeat goes out, at most 120 s (half of 240) after the last write.
      clock.advance(60_000);
      expect(empties).toHaveLength(1);
      // The hub read it as a frame: the connection carries telemetry on.
      await client.sendEvent(new device.Message('after the heartbeat'));
      expect(hub.telemetry({ deviceId }).length).toBe(4);
      // Closed in order, the connection gets nothing more: rhea leaves socket_ready set then.
      await client.close();
      clock.advance(240_000);
      expect(empties).toHaveLength(1);
      // And the writer's timer is gone with it (only the read side's, a 1e9 ms one here, is left):
      // kept, it held the closed connection, its sessions and links, for as long as the process ran.
      expect(clock.pending()).toBe(1);
    } finally {
      await client.close();
      agent.destroy();
    }
  });
});
