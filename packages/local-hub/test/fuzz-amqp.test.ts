// Socket-level fuzzing of the AMQP port (FUZZ_SECONDS, default 3; FUZZ_SEED reproduces a run).
import { captureClientHello, fuzzSuite, tcpPipe } from './support/fuzz-harness.ts';
import { recordAmqp, repairAmqp } from './support/fuzz-seeds.ts';
import { tlsPipe } from './support/hardening.ts';

fuzzSuite('amqp', async (hub) => {
  const recording = await recordAmqp(hub);
  return [
    { name: 'tls-handshake', open: () => tcpPipe(hub.address, hub.ports.amqp), seeds: [await captureClientHello('localhost')] },
    { name: 'pre-auth', open: () => tlsPipe(hub, hub.ports.amqp), seeds: recording.preAuthSeeds, repair: repairAmqp, maxUnits: 8 },
    { name: 'post-auth', open: () => tlsPipe(hub, hub.ports.amqp), prefix: () => recording.postAuthPrefix, seeds: recording.postAuthSeeds, repair: repairAmqp, maxUnits: 8 },
  ];
});
