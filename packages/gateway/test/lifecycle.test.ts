// Token renewal on the live connection, recovery after a network drop, and the connection pool.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHub, silentLogger, type LocalHub } from '@switchyard/local-hub';
import azureCommon, { type Message } from 'azure-iot-common';
import { createGateway, type Gateway, type GatewayEngine } from '../src/index.ts';
import { inBatches, startRelay, waitFor, type Relay } from './helpers.ts';

// Every scenario on both engines (the Azure Client per identity, and the lean one), each with its own hub.
describe.each<GatewayEngine>(['azure-client', 'lean'])('engine %s', (engine) => {
  let hub: LocalHub;

  // Token renewals the hub accepted, per identity (the hub logs each put-token it takes).
  const renewals = new Map<string, number>();
  beforeAll(async () => {
    hub = await startLocalHub({
      inMemory: true,
      logger: {
        ...silentLogger,
        info: (message: string, fields?: Record<string, unknown>) => {
          if (message === 'amqp put-token accepted' && fields?.renewal === true && typeof fields.deviceId === 'string') renewals.set(fields.deviceId, (renewals.get(fields.deviceId) ?? 0) + 1);
        },
      },
    });
  });

  afterAll(async () => {
    await hub?.close();
  });

  function identities(prefix: string, count: number): Array<{ deviceId: string; connectionString: string }> {
    return Array.from({ length: count }, (_, i) => {
      const deviceId = `${prefix}-${i}`;
      hub.createDevice(deviceId);
      return { deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp' }) };
    });
  }

  describe('token renewal', () => {
    let gw: Gateway;
    afterAll(async () => {
      await gw?.close();
    });

    it('renews every identity with put-tokens on the live connection, past the first token\'s expiry', async () => {
      const list = identities('renew', 5);
      // 6 s tokens renewed 3 s before expiry: renewals at 3 s and 6 s. The hub revokes an identity
      // whose token expires, so being connected after the second renewal, past the first token's
      // expiry, proves the renewals were accepted.
      gw = await createGateway({ engine,
        ca: hub.ca,
        endpoint: { host: hub.address, port: hub.ports.amqp },
        identities: list,
        tokenRenewal: { tokenValidTimeInSeconds: 6, tokenRenewalMarginInSeconds: 3 },
      });
      const lost: string[] = [];
      const dropped: string[] = [];
      const connected: string[] = [];
      gw.on('connection-lost', ({ connectionId }) => lost.push(connectionId));
      gw.on('identity-disconnected', ({ deviceId }) => dropped.push(deviceId));
      const summary = await gw.open();
      expect(summary.failed).toEqual([]);
      gw.on('identity-connected', ({ deviceId }) => connected.push(deviceId));
      const connectionBefore = hub.stats().connectedIdentities.find((s) => s.deviceId === 'renew-0')?.connectionId;
      for (const { deviceId } of list) await gw.get(deviceId)!.device.sendEvent('t0');

      await waitFor(() => list.every(({ deviceId }) => (renewals.get(deviceId) ?? 0) >= 2), 'two accepted renewals per identity', 25_000);

      for (const { deviceId } of list) await gw.get(deviceId)!.device.sendEvent('t12');
      expect(lost).toEqual([]);
      expect(dropped).toEqual([]);
      expect(connected).toEqual([]);
      const sessions = hub.stats().connectedIdentities.filter((s) => s.deviceId.startsWith('renew-'));
      expect(sessions).toHaveLength(5);
      expect(new Set(sessions.map((s) => s.connectionId))).toEqual(new Set([connectionBefore]));
      for (const { deviceId } of list) {
        expect(hub.telemetry({ deviceId }).map((r) => r.body.toString())).toEqual(['t0', 't12']);
      }
    }, 30_000);
  });

  describe('recovery after the connection drops', () => {
    let gw: Gateway;
    let relay: Relay;
    const list: Array<{ deviceId: string; connectionString: string }> = [];
    afterAll(async () => {
      await gw?.close();
      await relay?.close();
    });

    it('brings every identity back with its C2D listener and method handler', async () => {
      list.push(...identities('drop', 30));
      relay = await startRelay(hub.address, hub.ports.amqp);
      gw = await createGateway({ engine, ca: hub.ca, endpoint: { host: '127.0.0.1', port: relay.port }, identities: list });
      const lost: string[] = [];
      gw.on('connection-lost', ({ connectionId }) => lost.push(connectionId));
      expect((await gw.open()).failed).toEqual([]);

      const c2d: string[] = [];
      const listener = gw.get('drop-3')!;
      if (engine === 'azure-client') {
        // The raw Azure client here, so the SDK's own re-enabling after a drop is what is tested.
        listener.client!.on('message', (msg: Message) => {
          c2d.push(msg.getData().toString());
          void listener.client!.complete(msg);
        });
        gw.get('drop-4')!.client!.onDeviceMethod('ping', (_request, response) => {
          void response.send(200, 'pong');
        });
      } else {
        listener.device.on('message', (msg) => {
          c2d.push(msg.body.toString());
          void msg.complete();
        });
        gw.get('drop-4')!.device.onMethod('ping', () => ({ status: 200, payload: 'pong' }));
      }
      hub.sendC2D('drop-3', { body: Buffer.from('before the drop') });
      await waitFor(() => c2d.length === 1, 'the first C2D');

      const reconnected = new Set<string>();
      gw.on('identity-connected', ({ deviceId }) => reconnected.add(deviceId));
      relay.cut();

      await waitFor(() => lost.length === 1, 'the gateway to notice the drop');
      await waitFor(() => reconnected.size === list.length, 'every identity to reconnect', 20_000);
      expect(relay.connectionCount()).toBe(2);
      await waitFor(
        () => hub.stats().connectedIdentities.filter((s) => s.deviceId.startsWith('drop-')).length === list.length,
        'the hub to see every identity again',
      );
      expect(gw.connections()).toHaveLength(1);

      // Telemetry, C2D and methods all work again, on the new connection.
      await inBatches(list, 10, async ({ deviceId }) => {
        await gw.get(deviceId)!.device.sendEvent('after the drop');
      });
      for (const { deviceId } of list) expect(hub.telemetry({ deviceId }).at(-1)?.body.toString()).toBe('after the drop');
      hub.sendC2D('drop-3', { body: Buffer.from('after the drop') });
      await waitFor(() => c2d.length === 2, 'the C2D after the drop');
      expect(c2d).toEqual(['before the drop', 'after the drop']);
      let answer: unknown;
      const deadline = Date.now() + 10_000;
      while (answer === undefined && Date.now() < deadline) {
        answer = await hub.invokeMethod('drop-4', { methodName: 'ping', responseTimeoutInSeconds: 5 }).catch(() => undefined);
        if (answer === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(answer).toEqual({ status: 200, payload: 'pong' });
    }, 45_000);
  });

  describe('a hub unreachable for longer than the Azure client retries', () => {
    let gw: Gateway;
    let relay: Relay;
    afterAll(async () => {
      await gw?.close();
      await relay?.close();
    });

    it('keeps re-opening every identity with back-off until the hub answers again', async () => {
      const list = identities('outage', 10);
      relay = await startRelay(hub.address, hub.ports.amqp);
      // NoRetry makes the Azure client give up at once, standing in for its 240 s limit.
      gw = await createGateway({ engine,
        env: {},
        ca: hub.ca,
        endpoint: { host: '127.0.0.1', port: relay.port },
        identities: list,
        retryPolicy: () => new azureCommon.NoRetry(),
        reconnect: { initialDelayMs: 100, maxDelayMs: 400 },
      });
      expect((await gw.open()).failed).toEqual([]);
      const gaveUp: string[] = [];
      gw.on('identity-disconnected', ({ deviceId, willRetry }) => {
        if (!willRetry) gaveUp.push(deviceId);
      });
      const back = new Set<string>();
      gw.on('identity-connected', ({ deviceId }) => back.add(deviceId));
      relay.pause();
      relay.cut();
      await waitFor(() => list.every(({ deviceId }) => gw.get(deviceId)!.state === 'reconnecting'), 'every identity to be reconnecting');
      const acceptedBefore = relay.connectionCount();
      const refusedBefore = relay.refusedCount();
      // Several back-off rounds pass while the "hub" is down: each is a connection attempt refused.
      await waitFor(() => relay.refusedCount() >= refusedBefore + 3, 'three re-open attempts while the hub is down');
      expect(back.size).toBe(0);
      // A send that times out while the identity is down says whether it can be at the hub.
      const during = await gw.get(list[0]!.deviceId)!.device.sendEvent({ body: 'during the outage', messageId: 'out-1' }, { timeoutMs: 300 }).then(
        () => undefined,
        (err: unknown) => err as { code: string; details: { delivered?: string; messageId?: string } },
      );
      if (engine === 'lean') {
        // It waited for the re-open and never left the device: retrying it is safe.
        expect(during).toMatchObject({ code: 'TIMEOUT', details: { delivered: 'no', messageId: 'out-1' } });
      } else {
        // The Azure client takes it and fails it itself; if it times out here, it may have been sent.
        expect(['TIMEOUT', 'NOT_CONNECTED']).toContain(during?.code);
        if (during?.code === 'TIMEOUT') expect(during.details.delivered).toBe('unknown');
      }
      relay.resume();
      await waitFor(() => back.size === list.length, 'every identity to come back', 15_000);
      expect(gaveUp).toEqual([]);
      expect(relay.connectionCount()).toBe(acceptedBefore + 1);
      for (const { deviceId } of list) await gw.get(deviceId)!.device.sendEvent('after the outage');
      expect(list.every(({ deviceId }) => hub.telemetry({ deviceId }).at(-1)?.body.toString() === 'after the outage')).toBe(true);
    }, 30_000);
  });

  describe('lifecycle races', () => {
    it('close during add: the add in flight is refused and nothing stays connected at the hub', async () => {
      const [first, ...rest] = identities('race-add', 4);
      const gw = await createGateway({ engine, env: {}, ca: hub.ca, endpoint: { host: hub.address, port: hub.ports.amqp } });
      await gw.add(first!);
      // Three adds under way (sessions, put-tokens) when close() is called.
      const adding = rest.map((identity) => gw.add(identity).then(
        () => 'added',
        (err: unknown) => (err as { code?: string }).code ?? 'error',
      ));
      const closing = gw.close();
      const outcomes = await Promise.all(adding);
      await closing;
      // Each add either finished before the close took it down or was refused; none is left open.
      expect(outcomes.every((o) => o === 'added' || o === 'NOT_CONNECTED')).toBe(true);
      expect(gw.list()).toEqual([]);
      await waitFor(() => hub.stats().connectedIdentities.every((s) => !s.deviceId.startsWith('race-add-')), 'no race-add identity left on the hub');
      await expect(gw.add({ deviceId: 'race-add-x', connectionString: first!.connectionString })).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
    });
  });

  describe('connection pool', () => {
    let gw: Gateway;
    afterAll(async () => {
      await gw?.close();
    });

    it('spreads identities over connections of at most maxIdentitiesPerConnection and closes emptied ones', async () => {
      const list = identities('pool', 7);
      gw = await createGateway({ engine, ca: hub.ca, endpoint: { host: hub.address, port: hub.ports.amqp }, identities: list, maxIdentitiesPerConnection: 3, connectConcurrency: 7 });
      expect((await gw.open()).failed).toEqual([]);
      const loads = gw.connections().map((c) => c.identities.length);
      expect(loads).toEqual([3, 3, 1]);
      const onHub = hub.stats().connectedIdentities.filter((s) => s.deviceId.startsWith('pool-'));
      expect(new Set(onHub.map((s) => s.connectionId)).size).toBe(3);

      const last = gw.connections()[2]!;
      const closed: string[] = [];
      gw.on('connection-closed', ({ connectionId }) => closed.push(connectionId));
      await gw.remove(last.identities[0]!);
      expect(closed).toEqual([last.connectionId]);
      expect(gw.connections().map((c) => c.identities.length)).toEqual([3, 3]);
      // A freed place on a live connection is reused before a new socket is opened.
      await gw.remove('pool-0');
      const again = await gw.add(list[0]!);
      expect(again.connectionId).toBe(gw.connections()[0]!.connectionId);
      await again.device.sendEvent('reused');
      expect(hub.telemetry({ deviceId: 'pool-0' }).at(-1)?.body.toString()).toBe('reused');
    });
  });

  describe('recovery after the hub restarts', () => {
    let first: LocalHub | undefined;
    let second: LocalHub | undefined;
    let gw: Gateway | undefined;
    let stateDir: string | undefined;
    afterAll(async () => {
      await gw?.close();
      await first?.close();
      await second?.close();
      if (stateDir) await rm(stateDir, { recursive: true, force: true });
    });

    it('reconnects every identity, delivers what was sent while the hub was down, and C2D queued meanwhile', async () => {
      stateDir = await mkdtemp(join(tmpdir(), 'gateway-restart-'));
      first = await startLocalHub({ stateDir, logger: silentLogger });
      const list = Array.from({ length: 20 }, (_, i) => {
        const deviceId = `restart-${i}`;
        first!.createDevice(deviceId);
        return { deviceId, connectionString: first!.deviceConnectionString(deviceId, { protocol: 'amqp' }) };
      });
      const ports = { ...first.ports };
      gw = await createGateway({ engine, ca: first.ca, endpoint: { host: first.address, port: ports.amqp }, identities: list });
      expect((await gw.open()).failed).toEqual([]);
      const received: string[] = [];
      gw.get('restart-0')!.device.on('message', (msg) => {
        received.push(msg.body.toString());
        void msg.complete();
      });
      const reconnected = new Set<string>();
      gw.on('identity-connected', ({ deviceId }) => reconnected.add(deviceId));

      await first.close();
      first = undefined;
      // Sent while the hub is down: the client holds them and retries until the hub is back.
      const pending = list.slice(0, 5).map(({ deviceId }) => gw!.get(deviceId)!.device.sendEvent({ body: `while down ${deviceId}` }));

      second = await startLocalHub({ stateDir, logger: silentLogger, ports });
      second.sendC2D('restart-0', { body: Buffer.from('queued during the restart') });
      await Promise.all(pending);
      await waitFor(() => reconnected.size === list.length, 'every identity to reconnect', 30_000);
      await waitFor(() => received.length === 1, 'the C2D queued during the restart', 15_000);
      expect(received).toEqual(['queued during the restart']);
      for (const { deviceId } of list.slice(0, 5)) {
        expect(second.telemetry({ deviceId }).map((r) => r.body.toString())).toEqual([`while down ${deviceId}`]);
      }
      await waitFor(() => second!.stats().connectedIdentities.filter((s) => s.deviceId.startsWith('restart-')).length === list.length, 'the restarted hub to see every identity');
      expect(second.stats().connections.amqp).toBe(1);
    }, 60_000);
  });

  describe('swapped to MQTT by configuration', () => {
    let gw: Gateway;
    afterAll(async () => {
      await gw?.close();
    });

    it('runs the same gateway code over MQTT with one connection per identity', async () => {
      const list = identities('mqtt', 5);
      gw = await createGateway({ engine, env: { SWITCHYARD_PROTOCOL: 'mqtt' }, ca: hub.ca, endpoint: { host: hub.address, ports: { ...hub.ports } }, identities: list });
      expect(gw.multiplexed).toBe(false);
      expect((await gw.open()).failed).toEqual([]);
      expect(gw.connections()).toHaveLength(5);
      expect(hub.stats().connections.mqtt).toBe(5);
      await inBatches(list, 5, async ({ deviceId }) => {
        await gw.get(deviceId)!.device.sendEvent(`over mqtt from ${deviceId}`);
      });
      for (const { deviceId } of list) {
        expect(hub.telemetry({ deviceId }).map((r) => [r.protocol, r.body.toString()])).toEqual([['mqtt', `over mqtt from ${deviceId}`]]);
      }
      const got: string[] = [];
      gw.get('mqtt-1')!.device.on('message', (msg) => {
        got.push(msg.body.toString());
        void msg.complete();
      });
      hub.sendC2D('mqtt-1', { body: Buffer.from('to mqtt-1') });
      await waitFor(() => got.length === 1, 'the C2D over MQTT');
      expect(got).toEqual(['to mqtt-1']);
      await gw.remove('mqtt-0');
      await waitFor(() => hub.stats().connections.mqtt === 4, 'the removed identity\'s connection to close');
    });
  });

  describe.each(['mqtt-ws', 'https'] as const)('swapped to %s by configuration', (protocol) => {
    let gw: Gateway;
    afterAll(async () => {
      await gw?.close();
    });

    it('runs the same gateway code with one connection per identity', async () => {
      const list = identities(`swap-${protocol}`, 3);
      gw = await createGateway({ engine, env: { SWITCHYARD_PROTOCOL: protocol }, ca: hub.ca, endpoint: { host: hub.address, ports: { ...hub.ports } }, identities: list });
      expect(gw.multiplexed).toBe(false);
      expect(gw.decision.warnings.join('\n')).toMatch(/multiplexing lost/);
      expect((await gw.open()).failed).toEqual([]);
      expect(gw.connections()).toHaveLength(3);
      await inBatches(list, 3, async ({ deviceId }) => {
        await gw.get(deviceId)!.device.sendEvent(`over ${protocol} from ${deviceId}`);
      });
      for (const { deviceId } of list) {
        expect(hub.telemetry({ deviceId }).map((r) => [r.protocol, r.body.toString()])).toEqual([[protocol, `over ${protocol} from ${deviceId}`]]);
      }
    });
  });

  describe('AMQP-WS through a redirecting agent', () => {
    let gw: Gateway;
    afterAll(async () => {
      await gw?.close();
    });

    it('dials wss://<hub name>:443 as the SDK does, redirected by webSocketAgent, with the TLS name check on the hub name', async () => {
      const list = Array.from({ length: 3 }, (_, i) => {
        const deviceId = `ws-agent-${i}`;
        hub.createDevice(deviceId);
        return { deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp-ws' }) };
      });
      expect(list[0]!.connectionString).not.toMatch(/GatewayHostName/);
      gw = await createGateway({ engine, env: {}, protocol: 'amqp-ws', ca: hub.ca, webSocketAgent: hub.redirectAgent(), identities: list });
      expect((await gw.open()).failed).toEqual([]);
      expect(hub.stats().connectedIdentities.filter((s) => s.deviceId.startsWith('ws-agent-') && s.protocol === 'amqp-ws')).toHaveLength(3);
      await gw.get('ws-agent-1')!.device.sendEvent('through the agent');
      expect(hub.telemetry({ deviceId: 'ws-agent-1' }).at(-1)?.body.toString()).toBe('through the agent');
    });
  });
});
