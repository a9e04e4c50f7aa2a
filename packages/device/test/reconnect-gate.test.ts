// The gate on the SDK's reconnect handlers, over a plain EventEmitter (no sockets): the handlers on
// the transport when it is installed hear one 'disconnect' per drop; listeners added later hear
// every one; a 'connected' ends the drop.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { oneReconnectPerDrop } from '../src/links/reconnect-gate.ts';

describe('oneReconnectPerDrop', () => {
  it('passes the SDK handlers one disconnect per drop and every other listener all of them', () => {
    const transport = new EventEmitter();
    const sdk: unknown[] = [];
    const sdkDevice: unknown[] = [];
    transport.on('disconnect', (err: unknown) => sdk.push(err));
    transport.on('disconnect', (err: unknown) => sdkDevice.push(err));
    oneReconnectPerDrop(transport);
    const ours: unknown[] = [];
    transport.on('disconnect', (err: unknown) => ours.push(err));
    let once = 0;
    transport.once('disconnect', () => once++);

    // A drop, then two failed dials of the SDK's own retry chains.
    transport.emit('disconnect', 'drop');
    transport.emit('disconnect', 'dial 1');
    transport.emit('disconnect', 'dial 2');
    expect(sdk).toEqual(['drop']);
    expect(sdkDevice).toEqual(['drop']);
    expect(ours).toEqual(['drop', 'dial 1', 'dial 2']);
    expect(once).toBe(1);

    // Connected again: the next drop is a new one.
    transport.emit('connected');
    transport.emit('disconnect', 'second drop');
    expect(sdk).toEqual(['drop', 'second drop']);
    expect(ours).toEqual(['drop', 'dial 1', 'dial 2', 'second drop']);
    // Other events pass untouched.
    const messages: unknown[] = [];
    transport.on('message', (m: unknown) => messages.push(m));
    expect(transport.emit('message', 'm')).toBe(true);
    expect(messages).toEqual(['m']);
  });

  it('is installed once per transport, and leaves what is not an EventEmitter alone', () => {
    const transport = new EventEmitter();
    const sdk: unknown[] = [];
    transport.on('disconnect', (err: unknown) => sdk.push(err));
    oneReconnectPerDrop(transport);
    const gatedEmit = transport.emit;
    oneReconnectPerDrop(transport);
    expect(transport.emit).toBe(gatedEmit);
    transport.emit('disconnect', 1);
    transport.emit('disconnect', 2);
    expect(sdk).toEqual([1]);
    expect(() => oneReconnectPerDrop(undefined)).not.toThrow();
    expect(() => oneReconnectPerDrop({ emit: 1 })).not.toThrow();
  });
});
