// Property tests over generated profiles. The constraints are restated here from the issue and
// the guidance, independently of the selector's rule table, so a wrong rule cannot vouch for itself.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSwitchyardError } from '@switchyard/errors';
import { parseProfile, type CapabilityProfile, type Protocol } from '@switchyard/profile';
import { select, type Decision, type Rejection } from '@switchyard/selector';

const ALL: Protocol[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];
// From "Choose a device communication protocol", Port numbers.
const PORT: Record<Protocol, number> = { mqtt: 8883, 'mqtt-ws': 443, amqp: 5671, 'amqp-ws': 443, https: 443 };
const RUNS = { numRuns: 500 };

/** The rule ids that keep `protocol` from serving `p`, straight from the list. */
function violations(p: CapabilityProfile, protocol: Protocol): string[] {
  const v: string[] = [];
  const amqpFamily = protocol === 'amqp' || protocol === 'amqp-ws';
  const mqttFamily = protocol === 'mqtt' || protocol === 'mqtt-ws';
  const caNeedsPreview = p.auth === 'x509-ca' && !p.previewFeatures;
  if (!p.protocols.includes(protocol)) v.push('not-implemented-by-device');
  if (p.identities > 1 && !amqpFamily) v.push('multiplexing-needs-amqp');
  if (p.ramKiB !== undefined && p.ramKiB < 1024 && amqpFamily) v.push('ram-under-1mb');
  if (!p.outboundPorts.includes(PORT[protocol])) v.push('port-closed');
  if (p.c2d === 'latency-sensitive' && protocol === 'https') v.push('c2d-latency-needs-push');
  if (protocol === 'https' && p.features.includes('twin')) v.push('https-no-twin');
  if (protocol === 'https' && p.features.includes('methods')) v.push('https-no-methods');
  if (mqttFamily && p.features.includes('c2d-reject-abandon')) v.push('mqtt-no-reject-abandon');
  if (caNeedsPreview && (protocol === 'https' || protocol === 'mqtt-ws' || protocol === 'amqp-ws')) v.push('x509-ca-preview');
  if (caNeedsPreview && p.features.includes('file-upload')) v.push('file-upload-x509-ca-preview');
  return v.sort();
}

const eligibleOf = (p: CapabilityProfile): Protocol[] => ALL.filter((x) => violations(p, x).length === 0);

const profileInput = fc
  .record(
    {
      identities: fc.constantFrom(1, 1, 1, 2, 25),
      c2d: fc.constantFrom('none', 'occasional', 'latency-sensitive'),
      ramKiB: fc.constantFrom(64, 512, 1023, 1024, 4096, 262144),
      outboundPorts: fc.subarray([443, 5671, 8883, 80], { minLength: 1 }),
      protocols: fc.shuffledSubarray(ALL, { minLength: 1 }),
      auth: fc.constantFrom('sas', 'x509-thumbprint', 'x509-ca'),
      previewFeatures: fc.boolean(),
      features: fc.shuffledSubarray(['telemetry', 'batch', 'c2d', 'c2d-reject-abandon', 'twin', 'methods', 'file-upload']),
      payloadBytes: fc.integer({ min: 0, max: 262144 }),
      environment: fc.constantFrom('production', 'development'),
      pollIntervalSeconds: fc.integer({ min: 1, max: 7200 }),
    },
    { requiredKeys: [] },
  )
  .map((input) => {
    // Keep the generated profiles valid: the invalid ones are the validation tests' business.
    const out: Record<string, unknown> = { ...input };
    if (input.c2d === 'none' && input.features) out.features = input.features.filter((f) => f !== 'c2d' && f !== 'c2d-reject-abandon');
    if (input.pollIntervalSeconds !== undefined && input.pollIntervalSeconds < 1500 && input.environment !== 'development') {
      out.pollIntervalSeconds = input.pollIntervalSeconds + 1500;
    }
    return parseProfile(out);
  });

function attempt(p: CapabilityProfile, forceProtocol?: Protocol): Decision | { code: string; details: Record<string, unknown> } {
  try {
    return select(p, forceProtocol === undefined ? {} : { forceProtocol });
  } catch (err) {
    if (isSwitchyardError(err)) return err;
    throw err;
  }
}

describe('selector properties over generated profiles', () => {
  it('the generator reaches decisions of every protocol and profiles with no eligible protocol', () => {
    // Without this the properties below could pass vacuously on a generator that never decides.
    const seen = new Set<string>();
    for (const p of fc.sample(profileInput, { numRuns: 2000, seed: 42 })) {
      const out = attempt(p);
      seen.add('code' in out ? out.code : out.protocol);
    }
    expect([...seen].sort()).toEqual(['NO_ELIGIBLE_PROTOCOL', 'amqp', 'amqp-ws', 'https', 'mqtt', 'mqtt-ws']);
  });

  it('the choice and every fallback satisfy every constraint; rejections carry exactly the broken constraints', () => {
    fc.assert(
      fc.property(profileInput, (p) => {
        const out = attempt(p);
        if ('code' in out) return;
        expect(violations(p, out.protocol)).toEqual([]);
        expect(out.port).toBe(PORT[out.protocol]);
        for (const f of out.fallbacks) expect(violations(p, f)).toEqual([]);
        for (const r of out.rejected) {
          expect(r.reasons.length).toBeGreaterThanOrEqual(1);
          expect(r.reasons.map((x) => x.rule).sort()).toEqual(violations(p, r.protocol));
          for (const reason of r.reasons) expect(reason.message).not.toBe('');
        }
      }),
      RUNS,
    );
  });

  it('chosen, fallbacks and rejected partition the five protocols', () => {
    fc.assert(
      fc.property(profileInput, (p) => {
        const out = attempt(p);
        if ('code' in out) return;
        const all = [out.protocol, ...out.fallbacks, ...out.rejected.map((r) => r.protocol)];
        expect(all).toHaveLength(5);
        expect(new Set(all)).toEqual(new Set(ALL));
      }),
      RUNS,
    );
  });

  it('NO_ELIGIBLE_PROTOCOL exactly when no protocol satisfies every constraint, with every protocol explained', () => {
    fc.assert(
      fc.property(profileInput, (p) => {
        const out = attempt(p);
        const none = eligibleOf(p).length === 0;
        expect('code' in out).toBe(none);
        if ('code' in out) {
          expect(out.code).toBe('NO_ELIGIBLE_PROTOCOL');
          const rejected = out.details.rejected as Rejection[];
          expect(rejected.map((r) => r.protocol).sort()).toEqual([...ALL].sort());
          for (const r of rejected) expect(r.reasons.map((x) => x.rule).sort()).toEqual(violations(p, r.protocol));
        }
      }),
      RUNS,
    );
  });

  it('is deterministic and does not mutate the profile', () => {
    fc.assert(
      fc.property(profileInput, (p) => {
        const before = structuredClone(p);
        const a = attempt(p);
        const b = attempt(structuredClone(p));
        expect(p).toEqual(before);
        expect(JSON.stringify(a)).toBe(JSON.stringify(b));
      }),
      RUNS,
    );
  });

  it('does not depend on the order of the lists in the profile', () => {
    fc.assert(
      fc.property(profileInput, fc.integer(), (p, seed) => {
        const rotate = <T>(items: T[]): T[] => (items.length === 0 ? items : [...items.slice(Math.abs(seed) % items.length), ...items.slice(0, Math.abs(seed) % items.length)]);
        const shuffled = { ...p, protocols: rotate(p.protocols).reverse(), outboundPorts: rotate(p.outboundPorts).reverse(), features: rotate(p.features).reverse() };
        const a = attempt(p);
        const b = attempt(shuffled);
        if ('code' in a || 'code' in b) {
          expect('code' in a && a.code).toBe('code' in b && b.code);
          return;
        }
        expect({ ...b, profile: undefined }).toEqual({ ...a, profile: undefined });
      }),
      RUNS,
    );
  });

  it('ranks by the guidance: family default, direct before WebSocket, HTTPS last', () => {
    fc.assert(
      fc.property(profileInput, (p) => {
        const out = attempt(p);
        if ('code' in out) return;
        const eligible = eligibleOf(p);
        const preferred: Protocol[] = p.identities > 1 ? ['amqp', 'amqp-ws'] : ['mqtt', 'mqtt-ws'];
        if (eligible.some((x) => preferred.includes(x))) expect(preferred).toContain(out.protocol);
        if (out.protocol === 'https') expect(eligible).toEqual(['https']);
        if (out.protocol === 'mqtt-ws') expect(eligible).not.toContain('mqtt');
        if (out.protocol === 'amqp-ws') expect(eligible).not.toContain('amqp');
        if (out.fallbacks.includes('https')) expect(out.fallbacks.at(-1)).toBe('https');
        expect(out.multiplexed).toBe(p.identities > 1);
      }),
      RUNS,
    );
  });

  it('HTTPS decisions carry the effective poll interval, others none; small RAM always warns about Node.js', () => {
    fc.assert(
      fc.property(profileInput, (p) => {
        const out = attempt(p);
        if ('code' in out) return;
        expect(out.pollIntervalSeconds).toBe(out.protocol === 'https' ? (p.pollIntervalSeconds ?? 1500) : undefined);
        const small = p.ramKiB !== undefined && p.ramKiB < 1024;
        expect(out.warnings.some((w) => w.includes('Node.js'))).toBe(small);
      }),
      RUNS,
    );
  });

  it('a forced protocol is accepted exactly when it satisfies every constraint, and refused with those constraints', () => {
    fc.assert(
      fc.property(profileInput, fc.constantFrom(...ALL), (p, forced) => {
        const out = attempt(p, forced);
        const broken = violations(p, forced);
        if (broken.length === 0) {
          expect('code' in out).toBe(false);
          const d = out as Decision;
          expect(d.protocol).toBe(forced);
          expect(d.forced).toBe(true);
        } else {
          if (!('code' in out)) throw new Error(`forced ${forced} was accepted despite ${broken.join(', ')}`);
          expect(out.code).toBe('PROTOCOL_REFUSED');
          const reasons = out.details.reasons as Array<{ rule: string }>;
          expect(reasons.map((r) => r.rule).sort()).toEqual(broken);
        }
      }),
      RUNS,
    );
  });
});
