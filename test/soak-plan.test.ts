// The soak's pure parts (bench/soak-faults.ts, bench/soak-seq.ts): its fault plans cover the local
// hub's whole fault vocabulary, each fault only where it applies, and its count of lost messages
// is "issued, not refused, never seen".
import { describe, expect, it } from 'vitest';
import { KILL_FAULTS, NETWORK_FAULTS, WINDOW_FAULTS } from '@switchyard/local-hub';
import { PROTOCOLS } from '@switchyard/profile';
import { faultPlan, faultTimes, stepAt, type FaultStep } from '../bench/soak-faults.ts';
import { SeqTracker } from '../bench/soak-seq.ts';

const names = (plan: FaultStep[]): string[] => plan.map((s) => (s.kind === 'inject' ? s.type : s.kind === 'network' ? s.network : 'outage'));

describe('soak fault plans', () => {
  it('cover every kill and window fault of the hub, each only on the transports it acts on', () => {
    const all = new Set(PROTOCOLS.flatMap((p) => names(faultPlan(p))));
    for (const type of [...KILL_FAULTS, ...WINDOW_FAULTS]) expect(all.has(type), type).toBe(true);
    for (const p of PROTOCOLS) {
      const plan = names(faultPlan(p));
      const amqp = p === 'amqp' || p === 'amqp-ws';
      const mqtt = p === 'mqtt' || p === 'mqtt-ws';
      expect(plan.some((n) => n.startsWith('KillAmqp') || n === 'ShutDownAmqp'), p).toBe(amqp);
      expect(plan.includes('ShutDownMqtt'), p).toBe(mqtt);
      expect(plan.includes('throttle-https'), p).toBe(p === 'https');
      for (const kind of ['blackhole', 'delay', 'reset', 'outage']) expect(plan.includes(kind), `${p} ${kind}`).toBe(true);
    }
  });

  it('use every network fault kind, and the long black holes of a real outage', () => {
    const steps = PROTOCOLS.flatMap((p) => faultPlan(p));
    const kinds = new Set(steps.flatMap((s) => (s.kind === 'network' ? [s.network] : s.kind === 'outage' ? ['refuse', 'reset'] : [])));
    for (const kind of NETWORK_FAULTS) expect(kinds.has(kind), kind).toBe(true);
    const blackholes = steps.flatMap((s) => (s.kind === 'network' && s.network === 'blackhole' ? [s.seconds] : []));
    expect(new Set(blackholes)).toEqual(new Set([20, 60]));
  });

  it('rotates each client through its whole plan from its own offset', () => {
    const plan = faultPlan('amqp');
    for (const offset of [0, 3]) {
      const seen = new Set(Array.from({ length: plan.length }, (_, k) => stepAt(plan, offset, k).label));
      expect(seen.size).toBe(new Set(plan.map((s) => s.label)).size);
    }
    expect(stepAt(plan, 1, 0)).toBe(stepAt(plan, 0, 1));
  });

  it('fires a quarter period in, then every period, within the load', () => {
    expect(faultTimes(180, 60)).toEqual([15, 75, 135]);
    expect(faultTimes(1800, 60)).toHaveLength(30);
    expect(faultTimes(20, 8)).toEqual([2, 10, 18]);
  });
});

describe('SeqTracker', () => {
  it('counts lost as issued, not refused, never seen; copies as duplicates', () => {
    const t = new SeqTracker();
    for (const seq of [0, 1, 1, 3, 5]) t.record(seq);
    expect(t.report(6, [4, 5], 10)).toEqual({ unique: 4, duplicates: 1, lostCount: 1, lost: [2], rejectedSeen: 1, beyond: 0 });
  });

  it('grows past its first block, caps the listed ids, and reports numbers never issued', () => {
    const t = new SeqTracker();
    for (let seq = 0; seq < 5000; seq += 2) t.record(seq);
    t.record(7000);
    const r = t.report(5000, [], 3);
    expect(r.unique).toBe(2500);
    expect(r.lostCount).toBe(2500);
    expect(r.lost).toEqual([1, 3, 5]);
    expect(r.beyond).toBe(1);
  });

  it('saturates a count instead of wrapping', () => {
    const t = new SeqTracker();
    for (let i = 0; i < 300; i++) t.record(0);
    expect(t.report(1, [], 1)).toMatchObject({ unique: 1, duplicates: 254, lostCount: 0 });
  });
});
