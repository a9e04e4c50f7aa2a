// Telemetry over AMQP straight to the attached D2C link (links/amqp-direct-send.ts), on the SDK's
// real transports over TLS to the local hub. The transport class is the SDK's own, subclassed only
// to keep a reference to each instance, so the test can count what went through its state machine.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHub, type LocalHub, type TelemetryRecord } from '@switchyard/local-hub';
import { connect, type ConnectOptions, type DeviceClient } from '../src/index.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true });
});
afterAll(async () => {
  await hub?.close();
});

interface CapturedTransport {
  _fsm: { handle(input: string, ...rest: unknown[]): unknown };
}

/** connect() with the SDK's AMQP transports, each instance kept and its state machine's inputs counted. */
async function connectCounting(protocol: 'amqp' | 'amqp-ws', deviceId: string, extra: Partial<ConnectOptions> = {}): Promise<{ client: DeviceClient; sendEvents: () => number }> {
  const transports: CapturedTransport[] = [];
  let sendEvents = 0;
  const importer = async (specifier: string): Promise<unknown> => {
    const mod = (await import(specifier)) as Record<string, unknown> & { default?: Record<string, unknown> };
    if (specifier !== 'azure-iot-device-amqp') return mod;
    const name = protocol === 'amqp' ? 'Amqp' : 'AmqpWs';
    const Base = (mod[name] ?? mod.default?.[name]) as new (...args: unknown[]) => CapturedTransport;
    class Counted extends Base {
      constructor(...args: unknown[]) {
        super(...args);
        transports.push(this);
        const fsm = this._fsm;
        const handle = fsm.handle.bind(fsm);
        fsm.handle = (input: string, ...rest: unknown[]) => {
          if (input === 'sendEvent') sendEvents++;
          return handle(input, ...rest);
        };
      }
    }
    return { [name]: Counted };
  };
  const { client } = await connect(
    {
      connectionString: hub.deviceConnectionString(deviceId, { protocol }),
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      forceProtocol: protocol,
      profile: { features: ['telemetry'] },
      ...extra,
    } as ConnectOptions,
    { importer },
  );
  expect(transports.length).toBeGreaterThan(0);
  return { client: client as DeviceClient, sendEvents: () => sendEvents };
}

function received(deviceId: string): TelemetryRecord[] {
  return hub.telemetry({ deviceId });
}

describe.each(['amqp', 'amqp-ws'] as const)('%s telemetry straight to the attached D2C link', (protocol) => {
  it("skips the transport's state machine once the link is attached, and the hub gets every message as the SDK's path sends it", async () => {
    const deviceId = `direct-${protocol}-${randomUUID().slice(0, 8)}`;
    hub.createDevice(deviceId);
    const { client, sendEvents } = await connectCounting(protocol, deviceId);
    try {
      const message = (i: number) => ({ body: { n: i }, messageId: `${deviceId}-${i}`, correlationId: `c-${i}`, properties: { seq: String(i), kind: 'reading' } });
      // The first send attaches the D2C link, through the SDK.
      await client.sendEvent(message(0));
      expect(sendEvents()).toBe(1);
      for (let batch = 0; batch < 4; batch++) {
        await Promise.all(Array.from({ length: 10 }, (_, j) => client.sendEvent(message(1 + batch * 10 + j))));
      }
      // Before the direct path: one 'sendEvent' through the transport's state machine per message (41).
      expect(sendEvents()).toBe(1);
      const records = received(deviceId);
      expect(records.map((r) => r.systemProperties.messageId).sort()).toEqual(Array.from({ length: 41 }, (_, i) => `${deviceId}-${i}`).sort());
      // The message the SDK's path sent and one sent directly carry the same fields.
      const shape = (r: TelemetryRecord, i: number) => ({ body: JSON.parse(r.body.toString('utf8')) as unknown, properties: r.properties, correlationId: r.systemProperties.correlationId, contentType: r.systemProperties.contentType, i });
      const first = records.find((r) => r.systemProperties.messageId === `${deviceId}-0`)!;
      const later = records.find((r) => r.systemProperties.messageId === `${deviceId}-7`)!;
      expect(shape(first, 0)).toEqual({ body: { n: 0 }, properties: { seq: '0', kind: 'reading' }, correlationId: 'c-0', contentType: 'application/json', i: 0 });
      expect(shape(later, 7)).toEqual({ body: { n: 7 }, properties: { seq: '7', kind: 'reading' }, correlationId: 'c-7', contentType: 'application/json', i: 7 });
    } finally {
      await client.close();
    }
  });

  it('sends in flight when the connection drops are retried through the client, and all arrive', async () => {
    const deviceId = `direct-reset-${protocol}-${randomUUID().slice(0, 8)}`;
    hub.createDevice(deviceId);
    const { client, sendEvents } = await connectCounting(protocol, deviceId, { operationTimeoutMs: 10_000 });
    try {
      await client.sendEvent({ body: 'attach', messageId: `${deviceId}-a` });
      // The hub reads nothing more, so the sends below are on the wire, unanswered, when the reset comes.
      hub.faults.network(deviceId, { kind: 'blackhole', seconds: 120 });
      const sends = Array.from({ length: 8 }, (_, i) => client.sendEvent({ body: `n${i}`, messageId: `${deviceId}-${i}` }));
      expect(sendEvents()).toBe(1);
      hub.faults.network(deviceId, { kind: 'reset' });
      hub.faults.clear(deviceId);
      const outcomes = await Promise.allSettled(sends);
      expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
      // The link failed them as it went down; each went through the client again (its state machine counts it).
      expect(sendEvents()).toBeGreaterThanOrEqual(1 + 8);
      const ids = new Set(received(deviceId).map((r) => r.systemProperties.messageId));
      for (let i = 0; i < 8; i++) expect(ids.has(`${deviceId}-${i}`), `${deviceId}-${i} at the hub`).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('a message the hub refuses fails with the error the SDK path gives it', async () => {
    const deviceId = `direct-auth-${protocol}-${randomUUID().slice(0, 8)}`;
    hub.createDevice(deviceId);
    const { client, sendEvents } = await connectCounting(protocol, deviceId, { operationTimeoutMs: 10_000 });
    try {
      await client.sendEvent({ body: 'attach', messageId: `${deviceId}-a` });
      hub.faults.inject(deviceId, { type: 'InvokeAuthError', durationSeconds: 1 });
      const error = await client.sendEvent({ body: 'refused', messageId: `${deviceId}-r` }).then(
        () => undefined,
        (err: unknown) => err as { code?: string; retryable?: boolean },
      );
      expect(error?.code).toBe('AUTH_FAILED');
      expect(error?.retryable).toBe(false);
      // Not retried: the client's policy does not retry an auth failure.
      expect(sendEvents()).toBe(1);
    } finally {
      await client.close();
    }
  });
});
