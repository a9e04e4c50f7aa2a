// Socket-level fuzzing of MQTT over WebSocket on the HTTPS port (FUZZ_SECONDS, FUZZ_SEED).
import { captureClientHello, fuzzSuite, tcpPipe } from './support/fuzz-harness.ts';
import { deviceToken, httpsSeeds, mqttConnect, mqttSeeds, repairMqtt } from './support/fuzz-seeds.ts';
import { tlsPipe, wsPipe } from './support/hardening.ts';

fuzzSuite('mqtt-ws', async (hub) => {
  const seeds = mqttSeeds(hub);
  const upgrade = httpsSeeds(undefined).filter((s) => s.includes('Upgrade: websocket'));
  return [
    { name: 'tls-handshake', open: () => tcpPipe(hub.address, hub.ports.https), seeds: [await captureClientHello('localhost')] },
    // Before authentication: mutated upgrade requests, then mutated MQTT inside a real upgrade.
    { name: 'pre-auth', open: () => tlsPipe(hub, hub.ports.https), seeds: upgrade, maxUnits: 2 },
    { name: 'pre-auth', open: () => wsPipe(hub, 'mqtt'), seeds: seeds.preAuth, repair: repairMqtt },
    { name: 'post-auth', open: () => wsPipe(hub, 'mqtt'), prefix: () => [mqttConnect(hub, deviceToken(hub))], seeds: seeds.postAuth, repair: repairMqtt, maxUnits: 6 },
  ];
});
