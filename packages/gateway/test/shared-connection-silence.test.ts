// When an identity's operation runs out of its deadline, the shared connection is replaced only if
// nothing at all came in on it for that long: then no identity is being answered (a black hole).
// A connection that was heard from more recently, or a deadline too short to say anything, keeps
// the connection for every identity on it. The connection is real (TLS to the local hub); only the
// silence watch's clock is stepped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { ManualClock } from '@switchyard/time';
import { MIN_SILENT_TIMEOUT_MS, SharedAmqpConnection } from '../src/amqp/connection.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

describe('a shared connection told that an operation timed out', () => {
  it('is replaced only when it read nothing for the whole deadline', async () => {
    const clock = new ManualClock(0);
    const connection = new SharedAmqpConnection('silence-0', { transport: 'tls', host: hub.address, port: hub.ports.amqp, hubHostName: hub.hostName, ca: hub.ca }, {
      userAgent: 'switchyard-test',
      openTimeoutMs: 10_000,
      closeTimeoutMs: 2_000,
      idleTimeoutMs: 120_000,
      clock,
    });
    const lost: Error[] = [];
    connection.on('lost', (error) => lost.push(error));
    try {
      await connection.open();
      clock.advance(5_000);
      // Heard from 5 s ago: a 30 s deadline ran out while the hub was still talking.
      expect(connection.operationTimedOut(30_000)).toBe(false);
      // Silent long enough, but a deadline this short says nothing about the connection.
      expect(connection.operationTimedOut(MIN_SILENT_TIMEOUT_MS - 1)).toBe(false);
      expect(connection.state).toBe('connected');
      expect(lost).toEqual([]);

      clock.advance(25_000);
      expect(connection.operationTimedOut(30_000)).toBe(true);
      expect(connection.state).toBe('disconnected');
      expect(lost).toHaveLength(1);
      expect(lost[0]!.message).toMatch(/read nothing for 30000 ms while an operation waited 30000 ms/);
      // Once dropped, later timeouts of the same round do nothing more.
      expect(connection.operationTimedOut(30_000)).toBe(false);
      expect(lost).toHaveLength(1);
    } finally {
      await connection.close();
    }
  }, 20_000);
});
