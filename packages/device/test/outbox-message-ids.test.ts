import { describe, expect, it } from 'vitest';
import { messageIdSource } from '../src/outbox/message-ids.ts';

describe('outbox message ids', () => {
  it('are distinct within one source and between sources, and URL-safe', () => {
    const sources = Array.from({ length: 50 }, () => messageIdSource());
    const ids = sources.flatMap((next) => Array.from({ length: 200 }, () => next()));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{13,14}$/);
  });

  it('keep one prefix per source and count on after it', () => {
    const next = messageIdSource();
    const a = next();
    const b = next();
    expect(a.slice(0, 12)).toBe(b.slice(0, 12));
    expect(parseInt(b.slice(12), 36)).toBe(parseInt(a.slice(12), 36) + 1);
  });
});
