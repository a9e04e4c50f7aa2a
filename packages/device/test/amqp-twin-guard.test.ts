// azure-iot-device-amqp's own AmqpTwinClient over a stand-in for its base client that answers as
// azure-iot-amqp-base does: an attach waits for the test, a detach of a link still attaching fails
// that attach at once and calls back on the next tick (amqp.js _safeCallback). Detached while its
// first attach is under way, the unguarded twin client threw an uncaught TypeError from that tick
// and never called the detach back (links/amqp-twin-guard.ts). Waits are turns of the event loop.
import { EventEmitter } from 'node:events';
import twinClientModule from 'azure-iot-device-amqp/dist/amqp_twin_client.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { guardTransportTwin, guardTwinClient } from '../src/internal.ts';

type Callback = (err?: Error | null, result?: unknown) => void;
const { AmqpTwinClient } = twinClientModule as unknown as { AmqpTwinClient: new (auth: unknown, base: unknown) => TwinClient };
interface TwinClient extends EventEmitter {
  getTwin(done: Callback): void;
  detach(done: Callback): void;
}

/** The part of azure-iot-amqp-base's Amqp the twin client calls, with attaches the test answers. */
function baseClient() {
  const attaching = new Map<string, Callback>();
  const attach = (kind: string) => (endpoint: string, _options: unknown, done: Callback) => attaching.set(`${kind} ${endpoint}`, done);
  const detach = (kind: string) => (endpoint: string, done: Callback) => {
    const pending = attaching.get(`${kind} ${endpoint}`);
    attaching.delete(`${kind} ${endpoint}`);
    pending?.(new Error('Unexpected link detach while attaching'));
    process.nextTick(() => done());
  };
  const base = { attachSenderLink: attach('sender'), attachReceiverLink: attach('receiver'), detachSenderLink: detach('sender'), detachReceiverLink: detach('receiver') };
  /** Completes the attach of the `kind` link under way with `link`. */
  const attached = (kind: 'sender' | 'receiver', link: EventEmitter): void => {
    const key = [...attaching.keys()].find((k) => k.startsWith(kind));
    if (key === undefined) throw new Error(`no ${kind} attach under way`);
    const done = attaching.get(key)!;
    attaching.delete(key);
    done(null, link);
  };
  return { base, attaching, attached };
}

const auth = { getDeviceCredentials: (done: Callback) => done(null, { deviceId: 'guarded', host: 'hub.local' }) };
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

const uncaught: unknown[] = [];
const record = (err: unknown): void => void uncaught.push(err);
beforeEach(() => {
  uncaught.length = 0;
  process.on('uncaughtException', record);
});
afterEach(() => {
  process.off('uncaughtException', record);
});

describe('the AMQP twin client detached while its first attach is under way', () => {
  it('a detach (the connection closing) before the sender link attached calls back and throws nothing', async () => {
    const { base, attaching } = baseClient();
    const twin = new AmqpTwinClient(auth, base);
    twin.on('error', () => undefined);
    guardTwinClient(twin);
    const got: Array<Error | null | undefined> = [];
    twin.getTwin((err) => got.push(err));
    expect([...attaching.keys()]).toEqual(['sender /devices/guarded/twin']);

    const detached: Array<Error | null | undefined> = [];
    twin.detach((err) => detached.push(err));
    await turns(5);
    expect(uncaught).toEqual([]);
    expect(detached).toHaveLength(1);
    expect(got).toHaveLength(1);
    expect(got[0]).toBeInstanceOf(Error);
  });

  it('a link error while the receiver link attaches detaches without throwing', async () => {
    const { base, attached } = baseClient();
    const twin = new AmqpTwinClient(auth, base);
    twin.on('error', () => undefined);
    guardTransportTwin({ _twinClient: twin });
    const got: Array<Error | null | undefined> = [];
    twin.getTwin((err) => got.push(err));
    const sender = new EventEmitter();
    attached('sender', sender);

    sender.emit('error', new Error('detach-forced'));
    await turns(5);
    expect(uncaught).toEqual([]);
    expect(got).toHaveLength(1);
    expect(got[0]).toBeInstanceOf(Error);
    // The twin client is usable afterwards: the next request attaches again.
    const again: Array<Error | null | undefined> = [];
    twin.getTwin((err) => again.push(err));
    const detached: Array<Error | null | undefined> = [];
    twin.detach((err) => detached.push(err));
    await turns(5);
    expect(uncaught).toEqual([]);
    expect(detached).toHaveLength(1);
    expect(again).toHaveLength(1);
  });

  it('a detach once attached goes the SDK\'s own way and is called back once', async () => {
    const { base, attached } = baseClient();
    const twin = new AmqpTwinClient(auth, base);
    guardTwinClient(twin);
    guardTwinClient(twin);
    const ready: Array<Error | null | undefined> = [];
    (twin as unknown as { enableTwinDesiredPropertiesUpdates(done: Callback): void }).enableTwinDesiredPropertiesUpdates((err) => ready.push(err));
    const sender = Object.assign(new EventEmitter(), { send: (_m: unknown, done: Callback) => done() });
    attached('sender', sender);
    attached('receiver', new EventEmitter());
    expect(sender.listenerCount('error')).toBe(1);

    const detached: Array<Error | null | undefined> = [];
    twin.detach((err) => detached.push(err));
    await turns(5);
    expect(detached).toEqual([undefined]);
    expect(sender.listenerCount('error')).toBe(0);
    expect(uncaught).toEqual([]);
  });

  it('leaves alone what is not a twin client', () => {
    expect(() => guardTwinClient(undefined)).not.toThrow();
    expect(() => guardTransportTwin({})).not.toThrow();
    const notTwin = { detach: () => undefined };
    guardTwinClient(notTwin);
    expect(notTwin.detach).toBeTypeOf('function');
    expect(Object.keys(notTwin)).toEqual(['detach']);
  });
});
