// Twin $metadata bookkeeping, without sockets: which nodes a patch stamps and which it drops.
import { describe, expect, it } from 'vitest';
import { emptyMetadata, touchMetadata } from '../src/core/twin-metadata.ts';

const T0 = { at: '2026-01-01T00:00:00.000Z', version: 1 };
const T1 = { at: '2026-01-01T00:01:00.000Z', version: 2 };
const T2 = { at: '2026-01-01T00:02:00.000Z', version: 3 };

describe('touchMetadata', () => {
  it('stamps every written leaf and its ancestors, leaving untouched siblings as they were', () => {
    const first = touchMetadata(emptyMetadata(T0), { a: { b: 1, c: 2 }, d: 'x' }, T1);
    expect(first).toEqual({
      $lastUpdated: T1.at, $lastUpdatedVersion: 2,
      a: { $lastUpdated: T1.at, $lastUpdatedVersion: 2, b: { $lastUpdated: T1.at, $lastUpdatedVersion: 2 }, c: { $lastUpdated: T1.at, $lastUpdatedVersion: 2 } },
      d: { $lastUpdated: T1.at, $lastUpdatedVersion: 2 },
    });
    const second = touchMetadata(first, { a: { c: 3 } }, T2);
    expect(second.a).toMatchObject({ $lastUpdated: T2.at, b: { $lastUpdated: T1.at }, c: { $lastUpdated: T2.at, $lastUpdatedVersion: 3 } });
    expect(second.d).toEqual({ $lastUpdated: T1.at, $lastUpdatedVersion: 2 });
    // The input is not changed.
    expect((first.a as { c: { $lastUpdated: string } }).c.$lastUpdated).toBe(T1.at);
  });

  it('drops what null deletes, and the children of an object a value replaces', () => {
    const base = touchMetadata(emptyMetadata(T0), { a: { b: 1 }, gone: 1 }, T1);
    const next = touchMetadata(base, { a: 5, gone: null }, T2);
    expect(next).toEqual({ $lastUpdated: T2.at, $lastUpdatedVersion: 3, a: { $lastUpdated: T2.at, $lastUpdatedVersion: 3 } });
  });

  it('has no $lastUpdatedVersion without a version (reported properties)', () => {
    expect(touchMetadata(emptyMetadata({ at: T0.at }), { x: 1 }, { at: T1.at })).toEqual({ $lastUpdated: T1.at, x: { $lastUpdated: T1.at } });
  });
});
