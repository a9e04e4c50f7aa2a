// Regression from issue 12: a chunked body sent to a device route without valid credentials was
// answered 401 and then read on and on (512 MiB in the report). A refused request's body is now
// never read: the hub answers and closes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { tlsPipe, within } from './support/hardening.ts';

const CAP_BYTES = 64 * 1024 * 1024;

describe('HTTPS refusals do not read the rest of the body', () => {
  let hub: LocalHub;

  beforeAll(async () => {
    hub = await startLocalHub({ inMemory: true, logger: createMemoryLogger(), devices: ['target'] });
  });
  afterAll(async () => {
    await hub?.close();
  });

  for (const auth of ['SharedAccessSignature sr=x&sig=forged&se=9999999999', undefined]) {
    it(`answers 401 to a chunked telemetry post ${auth ? 'with a forged token' : 'without credentials'} and closes before ${CAP_BYTES / 1024 / 1024} MiB`, async () => {
      // A raw socket, as an attacker writes it: HTTP/1.1 keep-alive, so only the hub can end it.
      const pipe = await tlsPipe(hub, hub.ports.https);
      let response = '';
      pipe.onData((chunk) => { response += chunk.toString('latin1'); });
      const head = [
        'POST /devices/target/messages/events?api-version=2021-04-12 HTTP/1.1',
        'Host: localhost',
        'Transfer-Encoding: chunked',
        'Content-Type: application/octet-stream',
        ...(auth ? [`Authorization: ${auth}`] : []),
        '', '',
      ].join('\r\n');
      await pipe.write(Buffer.from(head, 'latin1'));
      const body = Buffer.alloc(64 * 1024, 0x61);
      const chunk = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1'), body, Buffer.from('\r\n', 'latin1')]);
      let sent = 0;
      // Bounded by the cap: unfixed, the hub keeps reading and the loop reaches it.
      while (!pipe.isClosed && sent < CAP_BYTES) {
        await pipe.write(chunk);
        sent += body.length;
      }
      const closed = pipe.closed;
      await within(closed, 10_000, 'hub closes the connection');
      expect(response).toMatch(/^HTTP\/1\.1 401 /);
      expect(sent).toBeLessThan(CAP_BYTES);
    });
  }
});
