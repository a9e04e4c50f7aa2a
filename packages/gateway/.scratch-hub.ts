import { startLocalHub, silentLogger } from '@switchyard/local-hub';
const N = Number(process.argv[2]);
const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
const ids = Array.from({ length: N }, (_, i) => `m-${i}`);
for (const id of ids) hub.createDevice(id);
process.send!({ ca: hub.ca, address: hub.address, ports: hub.ports, css: ids.map((id) => [id, hub.deviceConnectionString(id, { protocol: 'amqp' })]) });
process.on('message', async (m) => { if (m === 'stats') process.send!({ stats: { conns: hub.stats().connections, ids: hub.stats().connectedIdentities.length } }); if (m === 'close') { await hub.close(); process.exit(0); } });
