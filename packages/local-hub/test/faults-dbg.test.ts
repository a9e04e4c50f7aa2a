import { it, expect } from 'vitest';
import { startLocalHub } from '../src/index.ts';
import { faultClient, faultMessage, nextConnect, once, sendEvent } from './support/faults.ts';
it('dbg', async () => {
  const hub = await startLocalHub({ inMemory: true });
  hub.on('connected', (s) => console.log('connected', s.connectionId));
  hub.on('disconnected', (s) => console.log('disconnected', s.connectionId, s.reason));
  const c = await faultClient(hub, 'amqp', 'd1');
  await c.client.open();
  c.client.onDeviceMethod('ping', (_q, r) => { console.log('method called'); r.send(200, 'pong', (e) => console.log('sent', e)); });
  await new Promise((r) => setTimeout(r, 300));
  console.log('before', JSON.stringify(hub.stats().connectedIdentities));
  const d = once(c.transport, 'disconnect');
  const rc = nextConnect(hub, 'd1');
  await sendEvent(c.client, faultMessage('KillTcp'));
  await d; await rc;
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 700));
    console.log('after', JSON.stringify(hub.stats().connectedIdentities));
    console.log(await hub.invokeMethod('d1', { methodName: 'ping', responseTimeoutInSeconds: 2 }).then((r) => r.status, (e) => String(e)));
  }
  await c.close(); await hub.close();
}, 30000);
