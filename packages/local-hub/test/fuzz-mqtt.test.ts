// Socket-level fuzzing of the MQTT port (FUZZ_SECONDS, default 3; FUZZ_SEED reproduces a run).
import { captureClientHello, fuzzSuite, tcpPipe } from './support/fuzz-harness.ts';
import { deviceToken, mqttConnect, mqttSeeds, repairMqtt } from './support/fuzz-seeds.ts';
import { tlsPipe } from './support/hardening.ts';

fuzzSuite('mqtt', async (hub) => {
  const seeds = mqttSeeds(hub);
  return [
    { name: 'tls-handshake', open: () => tcpPipe(hub.address, hub.ports.mqtt), seeds: [await captureClientHello('localhost')] },
    { name: 'pre-auth', open: () => tlsPipe(hub, hub.ports.mqtt), seeds: seeds.preAuth, repair: repairMqtt },
    { name: 'post-auth', open: () => tlsPipe(hub, hub.ports.mqtt), prefix: () => [mqttConnect(hub, deviceToken(hub))], seeds: seeds.postAuth, repair: repairMqtt, maxUnits: 6 },
  ];
});
