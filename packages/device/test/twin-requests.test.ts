// Twin requests over an AMQP Azure client whose connection drops while they are in flight, without
// sockets: azure-iot-device-amqp's AmqpTwinClient never answers a request its links took down with
// them, so the link sends it again on the reconnected transport (links/azure-client-link.ts,
// #twinRequest). Every wait is for an event or a turn of the event loop, never for a time.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Protocol } from '@switchyard/profile';
import { AzureClientLink } from '../src/internal.ts';

type Callback = (err?: Error | null) => void;

/** An Azure client and transport whose reported-properties updates wait for the test to answer. */
function standIn(protocol: Protocol) {
  const updates: Callback[] = [];
  const sent: Array<() => void> = [];
  const twin = {
    properties: { desired: {}, reported: { update: (_patch: unknown, done: Callback) => { updates.push(done); sent.shift()?.(); } } },
    get: () => Promise.resolve(twin),
    on: () => twin,
  };
  const azure = Object.assign(new EventEmitter(), { getTwin: () => Promise.resolve(twin), close: () => Promise.resolve() });
  const transport = new EventEmitter();
  const link = new AzureClientLink({ protocol, deviceId: 'd', azure: azure as never, transport });
  const ignore = (): void => undefined;
  link.bind({ linkUp: ignore, linkDown: ignore, linkMessage: ignore, linkDesired: ignore, linkMethod: ignore, linkFault: ignore });
  /** Resolves when the next update reaches the SDK. */
  const nextSent = (): Promise<void> => new Promise((resolve) => sent.push(resolve));
  return { link, transport, updates, nextSent };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('twin requests when the AMQP connection drops under them', () => {
  it('a request the SDK forgot in the drop is sent again and answered; its late answer changes nothing', async () => {
    const { link, transport, updates, nextSent } = standIn('amqp');
    const first = nextSent();
    const done = link.updateReported({ after: 'drop' });
    await first;
    const second = nextSent();
    transport.emit('disconnect', Object.assign(new Error('detach-forced'), { name: 'ServiceUnavailableError' }));
    await second;
    updates[1]!();
    await expect(done).resolves.toBeUndefined();
    expect(() => updates[0]!(new Error('too late'))).not.toThrow();
    expect(updates).toHaveLength(2);
  });

  it('a request answered before any drop goes out once; drops go on being answered at most three times', async () => {
    const { link, transport, updates, nextSent } = standIn('amqp');
    const sent = nextSent();
    const answered = link.updateReported({ once: true });
    await sent;
    updates[0]!();
    await answered;
    transport.emit('disconnect', new Error('later'));
    await turn();
    expect(updates).toHaveLength(1);

    const pending = link.updateReported({ again: true });
    for (let attempt = 2; attempt <= 4; attempt++) {
      const next = nextSent();
      if (attempt > 2) transport.emit('disconnect', new Error(`drop ${attempt}`));
      if (attempt < 4) await next;
    }
    // The third attempt's answer decides, however many drops follow.
    transport.emit('disconnect', new Error('drop 5'));
    await turn();
    expect(updates).toHaveLength(4);
    updates[3]!(new Error('refused'));
    await expect(pending).rejects.toThrow('refused');
  });

  it('over MQTT the request is the SDK\'s alone: a drop sends nothing again', async () => {
    const { link, transport, updates, nextSent } = standIn('mqtt');
    const sent = nextSent();
    const pending = link.updateReported({ mqtt: true });
    await sent;
    transport.emit('disconnect', new Error('drop'));
    await turn();
    expect(updates).toHaveLength(1);
    updates[0]!();
    await expect(pending).resolves.toBeUndefined();
  });
});
