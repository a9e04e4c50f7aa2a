// Socket-level fuzzing of the HTTPS device API (FUZZ_SECONDS, default 3; FUZZ_SEED reproduces a run).
import { captureClientHello, fuzzSuite, tcpPipe } from './support/fuzz-harness.ts';
import { deviceToken, httpsSeeds } from './support/fuzz-seeds.ts';
import { tlsPipe } from './support/hardening.ts';

fuzzSuite('https', async (hub) => {
  const token = deviceToken(hub);
  const authed = httpsSeeds(token);
  return [
    { name: 'tls-handshake', open: () => tcpPipe(hub.address, hub.ports.https), seeds: [await captureClientHello('localhost')] },
    { name: 'pre-auth', open: () => tlsPipe(hub, hub.ports.https), seeds: httpsSeeds(undefined).concat(httpsSeeds('SharedAccessSignature sr=x&sig=forged&se=9999999999')) },
    // A valid request first on each keep-alive connection, then mutated ones carrying the same credential.
    { name: 'post-auth', open: () => tlsPipe(hub, hub.ports.https), prefix: () => [authed[0]!], seeds: authed, maxUnits: 4 },
  ];
});
