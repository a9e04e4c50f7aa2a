// While IoT Hub throttles or refuses a device over MQTT it accepts each connection and drops it on
// the next publish. azure-iot-device dials again at once after every drop (its disconnect handler
// re-enables methods; the retry policy only spaces attempts that fail), so the soak counted ten
// reconnects a second for the whole window. Here connect() runs the SDK's real Client and Mqtt
// transport over a stand-in for the MQTT base client (no socket) and a ManualClock: connections
// that drop as soon as they open must be dialled again only after a doubling wait, and one that
// lasted must be re-dialled at once.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import { connect, type DeviceClient } from '../src/index.ts';
import { waitFor } from '../../../test/support/waits.ts';

const require = createRequire(import.meta.url);
const { Mqtt } = require('azure-iot-device-mqtt') as { Mqtt: new (auth: unknown, base?: unknown) => object };
const { errors } = require('azure-iot-common') as { errors: { NotConnectedError: new (message: string) => Error } };

/** The MQTT base client, minus the network: every connect succeeds; drop() is the hub hanging up. */
class FakeMqttBase extends EventEmitter {
  dials = 0;
  /** Connected and not dropped since. */
  up = false;
  setOptions(_options: unknown, done?: (err?: Error) => void): void {
    done?.();
  }
  connect(_config: unknown, done: (err?: Error | null, result?: unknown) => void): void {
    this.dials++;
    setImmediate(() => {
      this.up = true;
      done(null, { cmd: 'connack' });
    });
  }
  disconnect(done: (err?: Error | null) => void): void {
    setImmediate(() => done());
  }
  publish(_topic: string, _payload: unknown, _options: unknown, done: (err?: Error | null, result?: unknown) => void): void {
    setImmediate(() => done(null, {}));
  }
  subscribe(_topic: string, _options: unknown, done: (err?: Error | null, result?: unknown) => void): void {
    setImmediate(() => done(null, [{ qos: 0 }]));
  }
  unsubscribe(_topic: string, done: (err?: Error | null) => void): void {
    setImmediate(() => done());
  }
  updateSharedAccessSignature(_sas: string, done: (err?: Error | null) => void): void {
    setImmediate(() => done());
  }
  drop(): void {
    this.up = false;
    this.emit('error', new errors.NotConnectedError('the hub closed the connection'));
  }
}

const clients: DeviceClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close().catch(() => undefined);
});

async function start(): Promise<{ base: FakeMqttBase; clock: ManualClock; client: DeviceClient }> {
  const base = new FakeMqttBase();
  const clock = new ManualClock(1_000_000);
  class StandInMqtt extends Mqtt {
    constructor(auth: unknown) {
      super(auth, base);
    }
  }
  const { client } = await connect(
    {
      connectionString: 'HostName=gate.example.net;DeviceId=gate;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      forceProtocol: 'mqtt',
      profile: { features: ['telemetry', 'methods'] },
      clock,
    },
    { importer: () => Promise.resolve({ Mqtt: StandInMqtt }) },
  );
  const device = client as DeviceClient;
  clients.push(device);
  // A method handler is what makes the SDK re-enable methods, and so dial, on every drop.
  device.onMethod('ping', () => ({ status: 200 }));
  await waitFor('connected', () => base.up && device.state === 'connected');
  return { base, clock, client: device };
}

/** Drops the connection and waits until the client either dialled again or armed a wait on the clock. */
async function dropAndSettle(base: FakeMqttBase, clock: ManualClock): Promise<{ dialledAtOnce: boolean; waitMs: number | undefined }> {
  const before = base.dials;
  base.drop();
  await waitFor('a re-dial or a wait before it', () => base.dials > before || clock.nextDueAt() !== undefined);
  const due = clock.nextDueAt();
  return { dialledAtOnce: base.dials > before, waitMs: due === undefined ? undefined : due - clock.now() };
}

describe('an MQTT client whose connections drop as soon as they open', () => {
  it('dials again after a wait that doubles, up to 5 s, instead of at once', async () => {
    const { base, clock, client } = await start();
    const waits: number[] = [];
    for (let drop = 0; drop < 8; drop++) {
      const dials = base.dials;
      const { dialledAtOnce, waitMs } = await dropAndSettle(base, clock);
      expect(dialledAtOnce, `drop ${drop + 1} was dialled again with no wait`).toBe(false);
      waits.push(waitMs!);
      clock.advance(waitMs! - 1);
      expect(base.dials).toBe(dials);
      clock.advance(1);
      await waitFor('the re-dial', () => base.dials === dials + 1);
      await waitFor('connected again', () => base.up && client.state === 'connected');
    }
    expect(waits).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
  });

  it('dials again at once after a connection that lasted', async () => {
    const { base, clock, client } = await start();
    // Two quick drops build up the wait...
    for (let drop = 0; drop < 2; drop++) {
      const { waitMs } = await dropAndSettle(base, clock);
      const dials = base.dials;
      clock.advance(waitMs!);
      await waitFor('the re-dial', () => base.dials === dials + 1);
      await waitFor('connected again', () => base.up && client.state === 'connected');
    }
    // ...and a connection that stays up 10 s clears it.
    clock.advance(10_000);
    const { dialledAtOnce } = await dropAndSettle(base, clock);
    expect(dialledAtOnce).toBe(true);
  });

  it('closes while a re-dial waits, without dialling', async () => {
    const { base, clock, client } = await start();
    const { waitMs } = await dropAndSettle(base, clock);
    expect(waitMs).toBe(100);
    const dials = base.dials;
    await client.close();
    expect(client.state).toBe('closed');
    expect(clock.nextDueAt()).toBeUndefined();
    expect(base.dials).toBe(dials);
  });
});
