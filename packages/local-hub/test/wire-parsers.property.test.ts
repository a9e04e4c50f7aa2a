// Property tests for the parsers that read untrusted bytes before any authentication: MQTT
// property bags, topics and user names, and SAS tokens. Each must round-trip what the SDKs
// produce and must never throw on anything else. Time-boxed, as undici does for its fuzzing.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSasToken, parseSasToken, signatureMatches } from '../src/core/sas.ts';
import { parseUsername } from '../src/mqtt/connect.ts';
import { classifyPublishTopic, formatPropertyBag, parsePropertyBag, telemetryProperties } from '../src/mqtt/topics.ts';

const budget = { numRuns: 2_000, interruptAfterTimeLimit: 3_000 } as const;
const anyText = fc.string({ unit: 'binary', maxLength: 200 });

describe('MQTT property bags', () => {
  it('round-trip any keys and values the SDK can encode', () => {
    const entry = fc.tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 60 }));
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), (entries) => {
        expect(parsePropertyBag(formatPropertyBag(entries))).toEqual(entries);
      }),
      budget,
    );
  });

  it('never throw on arbitrary input: a bag is decoded or refused', () => {
    fc.assert(
      fc.property(anyText, (bag) => {
        const parsed = parsePropertyBag(bag);
        if (parsed !== undefined) expect(() => telemetryProperties(parsed)).not.toThrow();
      }),
      budget,
    );
  });
});

describe('MQTT topics and user names', () => {
  it('never throw on arbitrary topics, and never accept another device’s topic', () => {
    fc.assert(
      fc.property(anyText, (suffix) => {
        expect(() => classifyPublishTopic('dev-1', suffix)).not.toThrow();
        expect(classifyPublishTopic('dev-1', `devices/dev-2/messages/events/${suffix}`).kind).toBe('forbidden');
        // The positive side, so the check above cannot pass by classifying nothing.
        if (!suffix.includes('/')) expect(classifyPublishTopic('dev-1', `devices/dev-1/messages/events/${suffix}`).kind).toBe('telemetry');
      }),
      budget,
    );
  });

  it('never throw on arbitrary user names', () => {
    fc.assert(fc.property(anyText, (name) => void parseUsername(name)), budget);
  });
});

describe('SAS tokens', () => {
  const key = randomBytes(32).toString('base64');

  it('accept every token minted the SDK way, for any resource and expiry, and refuse a tampered one', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }), fc.integer({ min: 0, max: 2 ** 35 }), (resource, expiry) => {
        const parsed = parseSasToken(createSasToken(resource, key, expiry));
        expect(parsed).toMatchObject({ resource, expiry });
        expect(signatureMatches(parsed!, key)).toBe(true);
        expect(signatureMatches({ ...parsed!, expiry: expiry + 1 }, key)).toBe(false);
      }),
      budget,
    );
  });

  it('never throw on arbitrary tokens', () => {
    fc.assert(fc.property(anyText, (text) => void parseSasToken(`SharedAccessSignature ${text}`)), budget);
    fc.assert(fc.property(anyText, (text) => void parseSasToken(text)), budget);
  });
});
