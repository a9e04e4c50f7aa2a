import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHub, type LocalHub } from '../src/index.ts';
import { faultClient, faultMessage, nextFault, once, sendEvent, Message } from './support/faults.ts';

let hub: LocalHub;
beforeAll(async () => { hub = await startLocalHub({ inMemory: true }); });
afterAll(async () => { await hub?.close(); });

describe('probe', () => {
  for (const fault of ['KillTcp', 'KillAmqpConnection', 'ShutDownAmqp']) {
    it(fault, async () => {
      const id = `probe-${fault}`;
      const c = await faultClient(hub, 'amqp', id, { noRetry: true });
      await c.client.open();
      const events: string[] = [];
      c.client.on('disconnect', (e: unknown) => events.push(`client disconnect ${String((e as {reason?: unknown})?.reason ?? e)}`));
      c.transport.on('error', (e: Error) => events.push(`transport error ${e.name} ${e.message}`));
      c.transport.on('disconnect', (e: Error) => events.push(`transport disconnect ${e?.name}`));
      const started = nextFault(hub, id, fault);
      const t0 = Date.now();
      expect(await sendEvent(c.client, faultMessage(fault))).toBeUndefined();
      const ev = await started;
      await new Promise((r) => setTimeout(r, 1500));
      const t1 = Date.now();
      const err = await Promise.race([sendEvent(c.client, new Message('after')), new Promise((r) => setTimeout(() => r('hang'), 8000))]);
      console.log(fault, ev.detail, JSON.stringify(events), 'send after:', String(err), Date.now() - t1, 'ms');
      await c.close();
    }, 20000);
  }
});
