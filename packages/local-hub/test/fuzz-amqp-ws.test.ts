// Socket-level fuzzing of AMQP over WebSocket on the HTTPS port (FUZZ_SECONDS, FUZZ_SEED).
import { captureClientHello, fuzzSuite, tcpPipe } from './support/fuzz-harness.ts';
import { httpsSeeds, recordAmqp, repairAmqp } from './support/fuzz-seeds.ts';
import { tlsPipe, wsPipe } from './support/hardening.ts';

fuzzSuite('amqp-ws', async (hub) => {
  const recording = await recordAmqp(hub);
  const upgrade = httpsSeeds(undefined).filter((s) => s.includes('Upgrade: websocket')).map((s) => Buffer.from(s.toString('utf8').replace('Protocol: mqtt', 'Protocol: AMQPWSB10')));
  return [
    { name: 'tls-handshake', open: () => tcpPipe(hub.address, hub.ports.https), seeds: [await captureClientHello('localhost')] },
    { name: 'pre-auth', open: () => tlsPipe(hub, hub.ports.https), seeds: upgrade, maxUnits: 2 },
    { name: 'pre-auth', open: () => wsPipe(hub, 'AMQPWSB10'), seeds: recording.preAuthSeeds, repair: repairAmqp, maxUnits: 8 },
    { name: 'post-auth', open: () => wsPipe(hub, 'AMQPWSB10'), prefix: () => recording.postAuthPrefix, seeds: recording.postAuthSeeds, repair: repairAmqp, maxUnits: 8 },
  ];
});
