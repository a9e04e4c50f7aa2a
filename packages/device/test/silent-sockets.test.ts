// The HTTPS silent-socket watch on the injected clock, over stand-in sockets that count bytes as
// net.Socket does (the e2e over a real blackholed keep-alive socket is https-silent-socket.test.ts).
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import { SilentSocketWatch } from '../src/links/silent-sockets.ts';

class CountingSocket extends EventEmitter {
  bytesRead = 0;
  bytesWritten = 0;
  destroyedWith: Error | undefined;
  destroyed = false;
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.destroyedWith = err;
    this.emit('close');
    return this;
  }
}

const SILENT_MS = 1_000;
const reason = (ms: number): Error => Object.assign(new Error(`no answer within ${ms} ms`), { code: 'ECONNABORTED' });

function setup(): { clock: ManualClock; watch: SilentSocketWatch; socket: () => CountingSocket } {
  const clock = new ManualClock(5_000);
  const watch = new SilentSocketWatch(SILENT_MS, reason, clock);
  return {
    clock,
    watch,
    socket: () => {
      const s = new CountingSocket();
      watch.add(s as unknown as Duplex);
      return s;
    },
  };
}

describe('SilentSocketWatch', () => {
  it('destroys a socket that passes no byte for silentMs, with the reason, before 1.25 x silentMs', () => {
    const { clock, socket } = setup();
    const s = socket();
    clock.advance(SILENT_MS - 1);
    expect(s.destroyed).toBe(false);
    clock.advance(SILENT_MS / 4 + 1);
    expect(s.destroyed).toBe(true);
    expect(s.destroyedWith?.message).toBe('no answer within 1000 ms');
    expect((s.destroyedWith as Error & { code?: string }).code).toBe('ECONNABORTED');
  });

  it('keeps a socket whose counters keep moving, and counts silence from its last byte', () => {
    const { clock, socket } = setup();
    const busy = socket();
    for (let i = 0; i < 40; i++) {
      busy.bytesWritten += 100;
      clock.advance(SILENT_MS / 2);
      if (i % 2 === 0) busy.bytesRead += 50;
    }
    expect(busy.destroyed).toBe(false);
    // A request written now and never answered.
    busy.bytesWritten += 600;
    clock.advance(SILENT_MS / 4);
    clock.advance(SILENT_MS - 1);
    expect(busy.destroyed).toBe(false);
    clock.advance(SILENT_MS / 4 + 1);
    expect(busy.destroyed).toBe(true);
  });

  it('judges each socket by its own bytes', () => {
    const { clock, socket } = setup();
    const quiet = socket();
    const talking = socket();
    for (let i = 0; i < 8; i++) {
      talking.bytesRead += 10;
      clock.advance(SILENT_MS / 4);
    }
    expect(quiet.destroyed).toBe(true);
    expect(talking.destroyed).toBe(false);
  });

  it('arms one unref-ed timer while it has sockets and none once they closed', () => {
    const { clock, watch, socket } = setup();
    const a = socket();
    const b = socket();
    expect(clock.pending()).toBe(1);
    expect(clock.pending({ refed: true })).toBe(0);
    a.destroy();
    b.destroy();
    expect(watch.size).toBe(0);
    clock.advance(SILENT_MS);
    expect(clock.pending()).toBe(0);
    // A socket added later starts the watch again.
    const c = socket();
    expect(clock.pending()).toBe(1);
    clock.advance(2 * SILENT_MS);
    expect(c.destroyed).toBe(true);
    expect(clock.pending()).toBe(0);
  });
});
