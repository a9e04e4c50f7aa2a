// An outbox lets go of a message once the hub acknowledged it. It kept the acknowledged prefix of
// its queue until that reached 1024 entries: a gateway identity sending 0.5 msg/s held every
// message, its waiter and its promise for half an hour (the soak's gateway grew 72 -> 108 MB over
// 30 minutes, 20 identities). Checked with weak references and a forced collection, no sockets.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import type { DeviceMessage } from '../src/index.ts';
import { Outbox, type OutboxHost } from '../src/internal.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

class AckingHost implements OutboxHost {
  readonly protocol = 'mqtt' as const;
  readonly identity = undefined;
  readonly clock = new ManualClock(1_000_000);
  attempt(_message: DeviceMessage, done: (err?: unknown) => void): void {
    queueMicrotask(() => done());
  }
  dropped(): void {}
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('an outbox sending one message at a time', () => {
  it('holds none of the messages the hub acknowledged', async () => {
    const outbox = (await Outbox.open({})).bind(new AckingHost());
    outbox.resume();
    const bodies: Array<WeakRef<Buffer>> = [];
    const sendOne = (i: number): Promise<void> => {
      const body = Buffer.from(`message ${i}`);
      bodies.push(new WeakRef(body));
      return outbox.send('sendEvent', [{ body, messageId: `m${i}` }], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' });
    };
    for (let i = 0; i < 50; i++) await sendOne(i);
    // One more, not watched: whatever still points at the latest message (this frame, a register)
    // then points at that one.
    await outbox.send('sendEvent', [{ body: Buffer.from('last'), messageId: 'last' }], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' });
    expect(outbox.depth).toBe(0);
    await turn();
    gc();
    await turn();
    gc();
    expect(bodies.flatMap((ref, i) => (ref.deref() === undefined ? [] : [i]))).toEqual([]);
    await outbox.close();
  });
});
