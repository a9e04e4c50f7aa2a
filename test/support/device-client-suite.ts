// One behavioural suite for every DeviceClient Switchyard hands out: connect() over each of the
// five protocols, and each gateway engine's identity clients. Whatever makes the client, the
// same calls must do the same things against the local hub (real transports, real TLS on
// loopback, the hub's CA passed as `ca`). Waits are for hub events or bounded polls of hub state,
// never for a length of time.
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { LocalHub } from '@switchyard/local-hub';
import type { DeviceClient, PollEvent, StateChange } from '@switchyard/device';
import type { Protocol } from '@switchyard/profile';
import { nextWithin, waitFor } from './waits.ts';

export interface SuiteCapabilities {
  protocol: Protocol;
  twin: boolean;
  methods: boolean;
  /** abandon/reject exist on the wire (AMQP, HTTPS); over MQTT they are FEATURE_UNSUPPORTED. */
  rejectAbandon: boolean;
  /** C2D arrives by polling (HTTPS in development mode), so poll events are seen. */
  polls: boolean;
}

export interface MadeClient {
  client: DeviceClient;
  deviceId: string;
}

export interface SuiteContext {
  hub(): LocalHub;
  /** A fresh device on the hub and a connected client for it; the suite closes nothing itself. */
  makeClient(options?: { tokenRenewal?: { tokenValidTimeInSeconds: number; tokenRenewalMarginInSeconds: number } }): Promise<MadeClient>;
}

export function freshDeviceId(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export function deviceClientSuite(context: SuiteContext, caps: SuiteCapabilities): void {
  const { protocol } = caps;

  it('sends one message and a batch, with properties and system properties', async () => {
    const { client, deviceId } = await context.makeClient();
    const hub = context.hub();
    expect(client.protocol).toBe(protocol);
    expect(client.state).toBe('connected');
    await client.sendEvent({ body: { t: 21.5 }, properties: { kind: 'single' }, messageId: 'm-1' });
    await client.sendEventBatch([{ body: 'a', properties: { kind: 'batch' } }, { body: 'b', properties: { kind: 'batch' } }, Buffer.from('c')]);
    const records = await waitFor('4 telemetry records', () => {
      const r = hub.telemetry({ deviceId });
      return r.length >= 4 ? r : undefined;
    });
    expect(records).toHaveLength(4);
    expect(JSON.parse(records[0]!.body.toString())).toEqual({ t: 21.5 });
    expect(records[0]!.properties.kind).toBe('single');
    expect(records[0]!.systemProperties.messageId).toBe('m-1');
    expect(records.map((r) => r.body.toString()).slice(1).sort()).toEqual(['a', 'b', 'c']);
    expect(records.filter((r) => r.properties.kind === 'batch')).toHaveLength(2);
  });

  it('receives C2D as normalized messages and settles them as the protocol allows', async () => {
    const { client, deviceId } = await context.makeClient();
    const hub = context.hub();
    const iterator = client.messages();
    hub.sendC2D(deviceId, { body: Buffer.from('hello'), properties: { color: 'red' }, messageId: 'c-1', correlationId: 'corr-1' });
    const first = await nextWithin(iterator, 'the first C2D message', 15_000);
    expect(first.body.toString()).toBe('hello');
    expect(first.properties).toEqual(expect.objectContaining({ color: 'red' }));
    expect(Object.keys(first.properties).some((k) => k.startsWith('iothub-app-'))).toBe(false);
    expect(first.messageId).toBe('c-1');
    expect(first.correlationId).toBe('corr-1');
    expect(first.protocol).toBe(protocol);
    await first.complete();
    await waitFor('completion recorded', () => hub.counters(deviceId).c2dCompleted >= 1 || undefined);

    hub.sendC2D(deviceId, { body: Buffer.from('again'), messageId: 'c-2' });
    const second = await nextWithin(iterator, 'the second C2D message', 15_000);
    if (caps.rejectAbandon) {
      await second.abandon();
      const redelivered = await nextWithin(iterator, 'the abandoned message again', 15_000);
      expect(redelivered.messageId).toBe('c-2');
      await redelivered.reject();
      await waitFor('abandon and reject recorded', () => {
        const c = hub.counters(deviceId);
        return c.c2dAbandoned >= 1 && c.c2dRejected >= 1 ? c : undefined;
      });
    } else {
      await expect(second.abandon()).rejects.toMatchObject({ code: 'FEATURE_UNSUPPORTED', details: { protocol, feature: 'c2d-reject-abandon' } });
      await expect(second.reject()).rejects.toMatchObject({ code: 'FEATURE_UNSUPPORTED' });
      await second.complete();
    }
    await iterator.return?.();
  });

  if (caps.polls) {
    it('polls for C2D on the scheduler and reports each poll', async () => {
      const { client } = await context.makeClient();
      const polls: PollEvent[] = [];
      client.on('poll', (e) => polls.push(e));
      client.on('message', (m) => void m.complete());
      await waitFor('two polls', () => polls.length >= 2 || undefined, 15_000);
      expect(polls[1]!.startedAt.getTime() - polls[0]!.startedAt.getTime()).toBeGreaterThanOrEqual(1000);
    });
  }

  if (caps.twin) {
    it('reads the twin, patches reported properties and receives desired changes', async () => {
      const { client, deviceId } = await context.makeClient();
      const hub = context.hub();
      const desired: Array<Record<string, unknown>> = [];
      client.on('desired', (patch) => desired.push(patch));
      const twin = await client.getTwin();
      expect(twin.desired).toHaveProperty('$version');
      await client.updateReported({ firmware: '1.2.3' });
      expect(hub.readTwin(deviceId).reported.firmware).toBe('1.2.3');
      // The desired subscription is fire-and-forget in the SDK; repeat the patch until it arrives.
      await waitFor(
        'a desired patch',
        () => {
          if (desired.some((d) => d.interval === 30)) return true;
          hub.updateDesired(deviceId, { interval: 30 });
          return undefined;
        },
        15_000,
        500,
      );
      expect((await client.getTwin()).reported.firmware).toBe('1.2.3');
    });
  } else {
    it('refuses the twin with FEATURE_UNSUPPORTED naming protocol and feature', async () => {
      const { client } = await context.makeClient();
      await expect(client.getTwin()).rejects.toMatchObject({ code: 'FEATURE_UNSUPPORTED', details: { protocol, feature: 'twin' } });
    });
  }

  if (caps.methods) {
    it('serves direct methods with async handlers; a throwing handler answers 500', async () => {
      const { client, deviceId } = await context.makeClient();
      const hub = context.hub();
      client.onMethod('reboot', async (req) => {
        await Promise.resolve();
        return { status: 200, payload: { delayed: (req.payload as { delay: number }).delay } };
      });
      client.onMethod('fail', () => {
        throw new Error('nope');
      });
      // The method subscription is fire-and-forget; retry while the hub says the device is offline.
      const result = await waitFor(
        'a method answer',
        async () => hub.invokeMethod(deviceId, { methodName: 'reboot', payload: { delay: 5 }, responseTimeoutInSeconds: 5 }).catch(() => undefined),
        15_000,
        200,
      );
      expect(result).toEqual({ status: 200, payload: { delayed: 5 } });
      const failed = await hub.invokeMethod(deviceId, { methodName: 'fail', payload: {}, responseTimeoutInSeconds: 5 });
      expect(failed.status).toBe(500);
    });
  } else {
    it('refuses methods with FEATURE_UNSUPPORTED', async () => {
      const { client } = await context.makeClient();
      expect(() => client.onMethod('reboot', () => ({ status: 200 }))).toThrow(expect.objectContaining({ code: 'FEATURE_UNSUPPORTED' }));
    });
  }

  it('renews its SAS token on a short lifetime without losing a message', async () => {
    const { client, deviceId } = await context.makeClient({ tokenRenewal: { tokenValidTimeInSeconds: 4, tokenRenewalMarginInSeconds: 2 } });
    const hub = context.hub();
    const sent: string[] = [];
    // Past two token lifetimes, so the hub would refuse a token that was not renewed. The count of
    // messages sent in that time is not asserted: a loaded machine sends fewer, never fewer right.
    const until = Date.now() + 9_000;
    for (let i = 0; i < 200 && Date.now() < until; i++) {
      const messageId = `r-${i}`;
      await client.sendEvent({ body: `n${i}`, messageId });
      sent.push(messageId);
      await new Promise((r) => setTimeout(r, 200));
    }
    const received = await waitFor('all messages across renewals', () => {
      const ids = new Set(hub.telemetry({ deviceId }).map((r) => r.systemProperties.messageId));
      return sent.every((m) => ids.has(m)) ? ids : undefined;
    });
    expect(sent.every((m) => received.has(m))).toBe(true);
    const iterator = client.messages();
    hub.sendC2D(deviceId, { body: Buffer.from('after-renewal'), messageId: 'after' });
    const after = await nextWithin(iterator, 'C2D after renewals', 15_000);
    expect(after.messageId).toBe('after');
    await after.complete();
    await iterator.return?.();
  }, 40_000);

  it('send during reconnect: a message sent while the hub has dropped the connection arrives once it is back', async () => {
    const { client, deviceId } = await context.makeClient();
    const hub = context.hub();
    // Something must hold the connection open for the SDK to re-open it by itself (it re-opens
    // only with a feature in use); a C2D listener is what a real device would have.
    client.on('message', (m) => void m.complete().catch(() => undefined));
    await client.sendEvent('before');
    const states: StateChange[] = [];
    client.on('state', (change) => states.push(change));
    const down = new Promise<void>((resolve) => client.once('disconnected', () => resolve()));
    // KillTcp: the hub cuts the device's socket, as a NAT timeout or a hub restart would.
    hub.faults.inject(deviceId, { type: 'KillTcp' });
    if (protocol !== 'https') await down;
    await client.sendEvent({ body: 'during', messageId: 'during-1' });
    await waitFor('the message sent during the reconnect', () => hub.telemetry({ deviceId }).some((r) => r.systemProperties.messageId === 'during-1') || undefined, 20_000);
    await waitFor('connected again', () => client.state === 'connected' || undefined, 20_000);
    if (protocol !== 'https') expect(states.map((s) => s.to)).toContain('connected');
  }, 45_000);

  it('close ends every reader, refuses later calls as never sent, and is idempotent', async () => {
    const { client } = await context.makeClient();
    const iterator = client.messages();
    const ended = iterator.next();
    const closing = client.close();
    expect(client.close()).toBe(closing);
    await closing;
    await expect(ended).resolves.toEqual({ value: undefined, done: true });
    expect(client.state).toBe('closed');
    await expect(client.sendEvent('late')).rejects.toMatchObject({ code: 'NOT_CONNECTED', details: { delivered: 'no' } });
  });
}
