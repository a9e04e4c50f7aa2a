import { mkdtempSync } from 'node:fs';
import { silentLogger, startLocalHub } from '@switchyard/local-hub';
import { connect } from '/work/main/packages/device/src/index.ts';
const stateDir = mkdtempSync('/tmp/devsmoke/hub-');
let hub = await startLocalHub({ stateDir, logger: silentLogger, devices: ['a1'] });
const { client } = await connect({ connectionString: hub.deviceConnectionString('a1', { protocol: 'amqp' }), ca: hub.ca, profile: { features: ['c2d'] }, forceProtocol: 'amqp', endpoint: { host: hub.address, ports: hub.ports }, operationTimeoutMs: 5000 });
client.on('disconnected', (e) => console.log('disconnected', e.willRetry, e.reason));
client.on('connected', () => console.log('connected'));
client.on('error', (e) => console.log('error', e.code, e.message));
const it = client.messages();
await client.sendEvent('before');
const ports = hub.ports;
await hub.close();
console.log('hub closed');
hub = await startLocalHub({ stateDir, logger: silentLogger, ports });
console.log('hub started');
for (let i = 0; i < 5; i++) {
  try { await client.sendEvent('after'); console.log('sent'); break; } catch (e) { console.log('send fail', (e as any).code, (e as any).message, (e as any).cause?.name); }
  await new Promise((r) => setTimeout(r, 1000));
}
await client.close(); await hub.close();
void it;
