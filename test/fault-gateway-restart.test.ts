// "Nothing lost" for a gateway (issue 13): 200 identities on one shared AMQP connection, each
// with a durable outbox, send numbered telemetry through (a) the hub killing the shared
// connection (KillAmqpConnection on one identity ends the connection that carries all of them)
// and (b) the hub restarted on the same ports and state directory. Every message of every
// identity reaches the hub (counted once by message id), no send is rejected, and every identity
// is 'connected' again within the fault's duration + 10 s; the measured times are printed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway, type GatewayEngine } from '@switchyard/gateway';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { waitFor } from './support/waits.ts';

const IDENTITIES = 200;
/** Rounds of one message per identity: before the faults, under the kill, while the hub is down, after it is back. */
const ROUNDS = 4;
/**
 * Every identity connected and every outbox drained this long after the fault ends (the kill:
 * when it is injected; the restart: when the hub listens again). It holds for 200 identities on a
 * loaded 2-core machine because the gateway re-opens every identity at once after a drop (the
 * pool coalesces them into one connection), and the hub is down for well under a second here, so
 * the re-open back-off (1 s doubling, jittered down to half) has not grown past 2 s when it comes
 * back; 200 put-tokens and link attaches on one connection then take 1-2.5 s (measured: printed).
 */
const RECOVERY_MS = 10_000;

const hubs = new Set<LocalHub>();
const gateways = new Set<Gateway>();
const dirs: string[] = [];
afterAll(async () => {
  for (const gateway of gateways) await gateway.close().catch(() => undefined);
  for (const hub of hubs) await hub.close().catch(() => undefined);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** `promise`, or a failure naming `what` once `deadline` (epoch ms) passes. */
async function by<T>(deadline: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within the bound`)), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

describe.each<GatewayEngine>(['lean', 'azure-client'])(`a gateway of ${IDENTITIES} identities over AMQP (engine %s)`, (engine) => {
  it('loses nothing through a kill of the shared connection and a hub restart, and every identity comes back within the bound', async () => {
    const stateDir = tempDir('switchyard-gw-fault-hub-');
    let hub = await startLocalHub({ stateDir, logger: silentLogger });
    hubs.add(hub);
    const ids = Array.from({ length: IDENTITIES }, (_, i) => `gwf-${engine}-${String(i).padStart(3, '0')}`);
    for (const id of ids) hub.createDevice(id);
    const ports = { ...hub.ports };

    // What both hubs accepted: message ids of each identity, and copies.
    const seen = new Map<string, Set<string>>(ids.map((id) => [id, new Set<string>()]));
    let accepted = 0;
    const record = (h: LocalHub): void => {
      h.onTelemetry((r) => {
        const set = seen.get(r.deviceId);
        if (set === undefined) return;
        set.add(String(r.systemProperties.messageId));
        accepted++;
      });
    };
    record(hub);

    const gateway = await createGateway({
      engine,
      protocol: 'amqp',
      env: {},
      ca: hub.ca,
      endpoint: { host: hub.address, port: ports.amqp },
      outbox: { dir: tempDir('switchyard-gw-fault-outbox-') },
      identities: ids.map((deviceId) => ({ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp' }) })),
    });
    gateways.add(gateway);
    const opened = await gateway.open();
    expect(opened.failed).toEqual([]);
    expect(gateway.connections()).toHaveLength(1);

    const rejected: Array<{ id: string; error: unknown }> = [];
    const sendRound = (round: number): void => {
      for (const id of ids) {
        const messageId = `${id}-${round}`;
        gateway.get(id)!.device.sendEvent({ body: messageId, messageId }).catch((error: unknown) => rejected.push({ id: messageId, error }));
      }
    };
    const drained = (): Promise<unknown> => Promise.all(ids.map((id) => gateway.get(id)!.device.outbox!.drain()));
    const allConnected = (): boolean => ids.every((id) => gateway.get(id)!.state === 'connected');
    const dropped = new Set<string>();
    gateway.on('identity-disconnected', ({ deviceId }) => dropped.add(deviceId));

    sendRound(0);
    await drained();

    // (a) The hub ends the shared connection: one identity's fault, every identity's connection.
    const lost = new Promise<void>((resolve) => gateway.once('connection-lost', () => resolve()));
    const killStarted = Date.now();
    hub.faults.inject(ids[0]!, { type: 'KillAmqpConnection' });
    // Sent as the kill lands: some on the wire when it is cut, the rest queued behind them.
    sendRound(1);
    await lost;
    // A kill acts once: its duration is 0, so the bound is RECOVERY_MS from the kill.
    const killDeadline = killStarted + RECOVERY_MS;
    await waitFor('every identity to notice the killed connection', () => dropped.size === IDENTITIES || undefined, killDeadline - Date.now());
    await waitFor('every identity connected again after the kill', () => allConnected() || undefined, killDeadline - Date.now(), 100);
    await by(killDeadline, 'every outbox drained after the kill', drained());
    const afterKillMs = Date.now() - killStarted;
    expect(afterKillMs).toBeLessThanOrEqual(RECOVERY_MS);
    // The hub closed cleanly: it acknowledged, ahead of its end frames, everything it accepted, so
    // nothing came twice. (It once took transfers arriving after it had ended the sessions and
    // settled them on channels already ended: one copy per identity.)
    expect(accepted, 'copies after the kill').toBe(IDENTITIES * 2);

    // (b) The hub process goes away and comes back on the same ports and state directory.
    dropped.clear();
    const downAt = Date.now();
    await hub.close();
    hubs.delete(hub);
    sendRound(2);
    await waitFor('every identity to notice the hub is gone', () => dropped.size === IDENTITIES || undefined, RECOVERY_MS);
    hub = await startLocalHub({ stateDir, logger: silentLogger, ports });
    hubs.add(hub);
    record(hub);
    const upAt = Date.now();
    sendRound(3);
    // The fault lasted from downAt to upAt; the bound is RECOVERY_MS after it ended.
    await waitFor('every identity connected again after the hub restart', () => allConnected() || undefined, upAt + RECOVERY_MS - Date.now(), 100);
    await by(upAt + RECOVERY_MS, 'every outbox drained after the hub restart', drained());
    const afterRestartMs = Date.now() - upAt;
    expect(afterRestartMs).toBeLessThanOrEqual(RECOVERY_MS);

    for (const id of ids) expect([...seen.get(id)!].sort(), id).toEqual(Array.from({ length: ROUNDS }, (_, round) => `${id}-${round}`));
    expect(rejected).toEqual([]);
    console.log(
      `${engine}: ${IDENTITIES} identities, ${IDENTITIES * ROUNDS} messages, ${accepted - IDENTITIES * ROUNDS} copies; ` +
        `connected and drained ${afterKillMs} ms after the kill, ${afterRestartMs} ms after the hub came back (down ${upAt - downAt} ms)`,
    );

    // Nothing left running: the gateway closes every identity and the hub sees none of them.
    await gateway.close();
    gateways.delete(gateway);
    await waitFor('no identity of the gateway left at the hub', () => hub.stats().connectedIdentities.length === 0 || undefined, 10_000);
    await hub.close();
    hubs.delete(hub);
  }, 90_000);
});
