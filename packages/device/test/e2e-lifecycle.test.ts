// Lifecycle against the local hub: reconnect after a hub restart, fallback when the MQTT port is
// closed, and the HTTPS production poll floor across device restarts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { isSwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';
import { ManualClock } from '@switchyard/time';
import { PRODUCTION_POLL_FLOOR_MS, connect, readPollState, writePollState, type C2DMessage, type DeviceClient, type FallbackEvent, type PollEvent } from '../src/internal.ts';
import { closedPort, nextWithin, waitFor } from '../../../test/support/waits.ts';
import { VirtualClock } from './virtual-clock.ts';

const dirs: string[] = [];
const hubs: LocalHub[] = [];
const clients: Array<{ close(): Promise<void> }> = [];

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  for (const h of hubs) await h.close().catch(() => undefined);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('reconnect after the hub restarts (same state directory and ports)', () => {
  const protocols: Protocol[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];
  let hub: LocalHub;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = await tempDir('sy-hub-');
    hub = await startLocalHub({ stateDir, logger: silentLogger, devices: protocols.map((p) => `restart-${p}`) });
    hubs.push(hub);
  });

  it('every protocol sends and receives C2D again after the hub comes back', async () => {
    const connected = new Map<Protocol, { client: DeviceClient; iterator: AsyncIterator<C2DMessage> }>();
    const drops = new Map<Protocol, number>();
    for (const protocol of protocols) {
      const { client } = await connect({
        connectionString: hub.deviceConnectionString(`restart-${protocol}`, { protocol }),
        ca: hub.ca,
        profile: protocol === 'https' ? { features: ['c2d'], environment: 'development', pollIntervalSeconds: 1 } : { features: ['c2d'] },
        forceProtocol: protocol,
        endpoint: { host: hub.address, ports: hub.ports },
        operationTimeoutMs: 5_000,
        reconnectAttempts: 20,
      });
      clients.push(client);
      client.on('disconnected', () => drops.set(protocol, (drops.get(protocol) ?? 0) + 1));
      client.on('error', () => undefined);
      connected.set(protocol, { client: client as DeviceClient, iterator: (client as DeviceClient).messages() });
      await client.sendEvent('before');
    }
    // Let the C2D subscriptions settle so the restart has something to restore.
    for (const protocol of protocols) {
      hub.sendC2D(`restart-${protocol}`, { body: Buffer.from('warm-up'), messageId: 'w' });
      const m = await nextWithin(connected.get(protocol)!.iterator, `${protocol} warm-up C2D`, 15_000);
      await m.complete();
    }

    const ports = hub.ports;
    await hub.close();
    hub = await startLocalHub({ stateDir, logger: silentLogger, ports });
    hubs.push(hub);

    for (const protocol of protocols) {
      const { client, iterator } = connected.get(protocol)!;
      // Sends connect on demand; the first may race the reconnect, so allow a bounded retry.
      await waitFor(`${protocol} send after restart`, () => client.sendEvent('after').then(() => true, () => undefined), 20_000, 300);
      hub.sendC2D(`restart-${protocol}`, { body: Buffer.from('after-restart'), messageId: 'a' });
      const m = await nextWithin(iterator, `${protocol} C2D after restart`, 20_000);
      expect(m.body.toString()).toBe('after-restart');
      await m.complete();
      expect(hub.telemetry({ deviceId: `restart-${protocol}` }).some((r) => r.body.toString() === 'after')).toBe(true);
    }
    // Connection-oriented protocols noticed the drop (HTTPS has no connection to lose).
    for (const protocol of ['mqtt', 'amqp'] as const) expect(drops.get(protocol) ?? 0).toBeGreaterThanOrEqual(1);
  }, 120_000);
});

describe('fallback', () => {
  let hub: LocalHub;
  beforeAll(async () => {
    hub = await startLocalHub({ inMemory: true, logger: silentLogger, devices: ['fb-1', 'fb-2', 'fb-3'] });
    hubs.push(hub);
  });

  it('falls back from a closed MQTT port to MQTT over WebSockets and says why', async () => {
    const dead = await closedPort();
    const seen: FallbackEvent[] = [];
    const { client, decision, fallbacks } = await connect({
      connectionString: hub.deviceConnectionString('fb-1', { protocol: 'mqtt' }),
      ca: hub.ca,
      profile: { protocols: ['mqtt', 'mqtt-ws'], features: ['telemetry', 'twin'] },
      endpoint: { host: hub.address, ports: { ...hub.ports, mqtt: dead } },
      fallback: true,
      onFallback: (e) => seen.push(e),
    });
    clients.push(client);
    const replayed: FallbackEvent[] = [];
    client.on('fallback', (e) => replayed.push(e));
    expect(client.protocol).toBe('mqtt-ws');
    expect(decision.protocol).toBe('mqtt-ws');
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]).toMatchObject({ from: 'mqtt', to: 'mqtt-ws' });
    expect(fallbacks[0]!.reason).toMatch(/ECONNREFUSED/);
    expect(seen).toEqual(fallbacks);
    await waitFor('the replayed fallback event', () => replayed.length === 1 || undefined);
    expect(replayed).toEqual(fallbacks);
    await client.sendEvent('via websocket');
    await waitFor('telemetry over mqtt-ws', () => hub.telemetry({ deviceId: 'fb-1' }).find((r) => r.protocol === 'mqtt-ws'));
    await client.close();
  });

  it('does not fall back without fallback: true, and reports CONNECT_FAILED', async () => {
    const dead = await closedPort();
    const error = await connect({
      connectionString: hub.deviceConnectionString('fb-2', { protocol: 'mqtt' }),
      ca: hub.ca,
      profile: { protocols: ['mqtt', 'mqtt-ws'] },
      endpoint: { host: hub.address, ports: { ...hub.ports, mqtt: dead } },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSwitchyardError(error, 'CONNECT_FAILED')).toBe(true);
    expect((error as { details: Record<string, unknown> }).details).toMatchObject({ protocol: 'mqtt', failure: 'network' });
  });

  it('falls back from a closed AMQP port to AMQP over WebSockets', async () => {
    const dead = await closedPort();
    const { client, fallbacks } = await connect({
      connectionString: hub.deviceConnectionString('fb-3', { protocol: 'amqp' }),
      ca: hub.ca,
      profile: { protocols: ['amqp', 'amqp-ws'], identities: 1, features: ['c2d-reject-abandon'] },
      forceProtocol: 'amqp',
      endpoint: { host: hub.address, ports: { ...hub.ports, amqp: dead } },
      fallback: true,
      connectTimeoutMs: 10_000,
    });
    clients.push(client);
    expect(client.protocol).toBe('amqp-ws');
    expect(fallbacks[0]).toMatchObject({ from: 'amqp', to: 'amqp-ws' });
    await client.close();
  });
});

describe('HTTPS in production: the 1500 s poll floor across device restarts', () => {
  it('never polls twice within 1500 s, proven by the hub poll counter', async () => {
    const hub = await startLocalHub({ inMemory: true, logger: silentLogger, devices: ['poller'] });
    hubs.push(hub);
    const pollStateDir = await tempDir('sy-pollstate-');
    const clock = new VirtualClock(Date.UTC(2026, 0, 1));
    const start = clock.now();
    const boot = async (): Promise<DeviceClient> => {
      const { client, decision } = await connect({
        connectionString: hub.deviceConnectionString('poller', { protocol: 'https' }),
        ca: hub.ca,
        profile: { protocols: ['https'], features: ['telemetry', 'c2d'] },
        endpoint: { host: hub.address, ports: hub.ports },
        pollStateDir,
        clock,
      });
      expect(decision.protocol).toBe('https');
      expect(decision.profile.environment).toBe('production');
      clients.push(client);
      client.on('message', (m) => void m.complete());
      return client as DeviceClient;
    };
    const polls = (): number => hub.counters('poller').httpsC2DPolls;

    // First boot with an empty state directory polls at once.
    let client = await boot();
    await waitFor('the first poll timer', () => clock.timers.length > 0 || undefined);
    await clock.step(clock.now());
    await waitFor('the first poll', () => polls() === 1 || undefined);
    await waitFor('the next poll scheduled', () => clock.timers.length > 0 || undefined);

    // A crash loop: five restarts over the next 20 virtual minutes; none may poll.
    for (let i = 0; i < 5; i++) {
      await client.close();
      clock.crash(clock.owner);
      clock.advance(4 * 60_000);
      client = await boot();
      await waitFor('the restarted device to schedule its poll', () => clock.timers.length > 0 || undefined);
      const due = clock.timers[0]!.at;
      expect(due - start).toBeGreaterThanOrEqual(PRODUCTION_POLL_FLOOR_MS);
      // Fire anything due up to now: nothing is, so nothing polls.
      await clock.step(clock.now());
      expect(polls()).toBe(1);
    }
    const record = await readPollState(pollStateDir, 'poller');
    expect(record.lastPollStartedAt).toBe(start);

    // Once the floor (plus jitter) has passed, the device polls again, exactly once.
    await clock.step(start + 2 * PRODUCTION_POLL_FLOOR_MS);
    await waitFor('the second poll', () => polls() === 2 || undefined);
    const second = (await readPollState(pollStateDir, 'poller')).lastPollStartedAt!;
    expect(second - start).toBeGreaterThanOrEqual(PRODUCTION_POLL_FLOOR_MS);
    expect(polls()).toBe(2);
    await client.close();
  }, 60_000);
});

describe('HTTPS started with a poll record in the future', () => {
  it('waits for that poll, holding the process open meanwhile, and receives what was queued at it', async () => {
    const hub = await startLocalHub({ inMemory: true, logger: silentLogger, devices: ['later'] });
    hubs.push(hub);
    const pollStateDir = await tempDir('sy-pollrecord-');
    const clock = new ManualClock(Date.now());
    // The last poll was 10 minutes ago: the next may start in 15 (1500 s floor, no jitter recorded).
    await writePollState(pollStateDir, 'later', { lastPollStartedAt: clock.now() - 10 * 60_000, jitterMs: 0, throttles: 0 });
    const { client } = await connect({
      connectionString: hub.deviceConnectionString('later', { protocol: 'https' }),
      ca: hub.ca,
      profile: { protocols: ['https'], features: ['telemetry', 'c2d'] },
      endpoint: { host: hub.address, ports: hub.ports },
      pollStateDir,
      clock,
    });
    clients.push(client);
    const polls: PollEvent[] = [];
    client.on('poll', (e) => polls.push(e));
    const iterator = client.messages();
    hub.sendC2D('later', { body: Buffer.from('queued while waiting'), messageId: 'q-1' });
    await waitFor('the poll to be scheduled', () => clock.nextDueAt() !== undefined || undefined);
    // Nothing but that wait is pending, and it holds the process open (an unref'd one exited, code 13).
    expect(clock.pending({ refed: true })).toBeGreaterThanOrEqual(1);
    expect(clock.nextDueAt()! - clock.now()).toBe(15 * 60_000);
    await clock.advanceAsync(15 * 60_000 - 1);
    expect(polls).toHaveLength(0);
    expect(hub.counters('later').httpsC2DPolls).toBe(0);
    await clock.advanceAsync(1);
    const message = await nextWithin(iterator, 'the message queued before the poll', 15_000);
    expect(message.messageId).toBe('q-1');
    await message.complete();
    await waitFor('the poll event', () => polls.length >= 1 || undefined);
    expect(polls[0]!.outcome).toBe('message');
    await iterator.return?.();
    await client.close();
  }, 60_000);
});

