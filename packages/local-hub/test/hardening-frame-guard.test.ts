// The AMQP frame guard and encoding scan as pure logic: what rhea encodes passes, what would make
// rhea decode without bounds is refused, and whatever the scan accepts rhea decodes to the same
// end position (the two readers never disagree about where a value stops).
import { createRequire } from 'node:module';
import fc from 'fast-check';
import rhea from 'rhea';
import { describe, expect, it } from 'vitest';
import { EncodingViolation, MAX_NESTING, scanBudget, scanMessage, scanValue } from '../src/amqp/encoding-scan.ts';
import { AmqpFrameGuard, type GuardStep } from '../src/amqp/frame-guard.ts';
import { DEFAULT_LIMITS } from '../src/limits.ts';

interface RheaFrames {
  write_frame(frame: unknown): Buffer;
  amqp_frame(channel: number, performative: unknown, payload?: Buffer): unknown;
  sasl_frame(performative: unknown): unknown;
  open(fields: Record<string, unknown>): unknown;
  attach(fields: Record<string, unknown>): unknown;
  transfer(fields: Record<string, unknown>): unknown;
  sasl_init(fields: Record<string, unknown>): unknown;
  sasl_outcome(fields: Record<string, unknown>): unknown;
}
interface RheaReader { read(): unknown; position: number }
const frames = createRequire(import.meta.url)('rhea/lib/frames.js') as RheaFrames;
const types = createRequire(import.meta.url)('rhea/lib/types.js') as { Reader: new (b: Buffer) => RheaReader };

const LIMITS = { maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes, maxMessageBytes: 64 * 1024, maxArrayElements: 1_000 };
const AMQP_HEADER = Buffer.from('414d515000010000', 'hex');
const SASL_HEADER = Buffer.from('414d515003010000', 'hex');
const budget = { numRuns: 500, interruptAfterTimeLimit: 3_000 } as const;

function drain(guard: AmqpFrameGuard, mayWait = true): GuardStep[] {
  const steps: GuardStep[] = [];
  for (let i = 0; i < 10_000; i++) {
    const step = guard.next(mayWait);
    steps.push(step);
    if (step.kind !== 'unit') return steps;
  }
  throw new Error('guard produced too many units');
}

const last = (steps: GuardStep[]): GuardStep => steps[steps.length - 1]!;

describe('AMQP frame guard', () => {
  it('refuses issue 12\'s 26-byte array of 2^32 nulls before rhea sees the frame', () => {
    const guard = new AmqpFrameGuard(DEFAULT_LIMITS);
    guard.push(Buffer.from('414d5150000100000000001202000000f000000005ffffffff40', 'hex'));
    const steps = drain(guard);
    expect(steps.map((s) => s.kind)).toEqual(['unit', 'refuse']);
    expect(last(steps)).toMatchObject({ violation: { condition: 'amqp:resource-limit-exceeded' } });
  });

  it('refuses a frame declaring ~4 GiB as soon as its four size bytes arrive', () => {
    const guard = new AmqpFrameGuard(DEFAULT_LIMITS);
    guard.push(Buffer.concat([AMQP_HEADER, Buffer.from('fffffff0', 'hex')]));
    expect(drain(guard).map((s) => s.kind)).toEqual(['unit', 'refuse']);
    expect(guard.bufferedBytes).toBe(0);
  });

  it('passes what rhea writes for a SASL ANONYMOUS exchange, waiting for the outcome before the second header', () => {
    const guard = new AmqpFrameGuard(DEFAULT_LIMITS);
    const init = frames.write_frame(frames.sasl_frame(frames.sasl_init({ mechanism: 'ANONYMOUS' })));
    const open = frames.write_frame(frames.amqp_frame(0, frames.open({ container_id: 'device', max_frame_size: 65536 })));
    // A peer that pipelines everything in one write, as a fuzzer would.
    guard.push(Buffer.concat([SASL_HEADER, init, AMQP_HEADER, open]));
    expect(drain(guard).map((s) => s.kind)).toEqual(['unit', 'unit', 'wait']);
    guard.observeOutbound(frames.write_frame(frames.sasl_frame(frames.sasl_outcome({ code: 0 }))));
    expect(drain(guard).map((s) => s.kind)).toEqual(['unit', 'unit', 'need-more']);
  });

  it('reads a header after a failed SASL outcome as rhea would: a frame far too large', () => {
    const guard = new AmqpFrameGuard(DEFAULT_LIMITS);
    guard.push(Buffer.concat([SASL_HEADER, frames.write_frame(frames.sasl_frame(frames.sasl_init({ mechanism: 'PLAIN' }))), AMQP_HEADER]));
    expect(last(drain(guard)).kind).toBe('wait');
    guard.observeOutbound(frames.write_frame(frames.sasl_frame(frames.sasl_outcome({ code: 1 }))));
    expect(last(drain(guard))).toMatchObject({ kind: 'refuse', violation: { condition: 'amqp:connection:framing-error' } });
  });

  it('refuses an array bomb inside a message split over transfer frames', () => {
    const guard = new AmqpFrameGuard(LIMITS);
    // application-properties section whose map holds an array of 2^32-1 nulls.
    const bomb = Buffer.from('005374c10e02a1016bf000000005ffffffff40', 'hex');
    const transfer = (more: boolean, payload: Buffer): Buffer => frames.write_frame(frames.amqp_frame(0, frames.transfer({ handle: 0, delivery_id: 0, delivery_tag: Buffer.from('t'), message_format: 0, more }), payload));
    guard.push(Buffer.concat([AMQP_HEADER, transfer(true, bomb.subarray(0, 7)), transfer(false, bomb.subarray(7))]));
    expect(last(drain(guard))).toMatchObject({ kind: 'refuse', violation: { condition: 'amqp:resource-limit-exceeded' } });
  });

  it('refuses a delivery whose transfer frames add up past maxMessageBytes', () => {
    const guard = new AmqpFrameGuard(LIMITS);
    const part = frames.write_frame(frames.amqp_frame(0, frames.transfer({ handle: 0, delivery_id: 0, delivery_tag: Buffer.from('t'), message_format: 0, more: true }), Buffer.alloc(16 * 1024)));
    guard.push(AMQP_HEADER);
    for (let i = 0; i < 5; i++) guard.push(part);
    expect(last(drain(guard))).toMatchObject({ kind: 'refuse', violation: { condition: 'amqp:link:message-size-exceeded' } });
  });

  it('finds a transfer whatever descriptor encoding rhea would accept for it', () => {
    const guard = new AmqpFrameGuard(LIMITS);
    const bomb = Buffer.from('005374c10e02a1016bf000000005ffffffff40', 'hex');
    const honest = frames.write_frame(frames.amqp_frame(0, frames.transfer({ handle: 0, delivery_id: 0, delivery_tag: Buffer.from('t'), message_format: 0 }), bomb));
    // Swap the descriptor 0x53 0x14 (smallulong 20) for str8 "20", which rhea's lookup coerces to the same key.
    const at = honest.indexOf(Buffer.from('005314', 'hex'));
    const disguised = Buffer.concat([honest.subarray(0, at), Buffer.from('00a1023230', 'hex'), honest.subarray(at + 3)]);
    disguised.writeUInt32BE(disguised.length, 0);
    guard.push(Buffer.concat([AMQP_HEADER, disguised]));
    expect(last(drain(guard))).toMatchObject({ kind: 'refuse', violation: { condition: 'amqp:resource-limit-exceeded' } });
  });

  it('never throws and never buffers more than a frame, whatever bytes arrive in whatever chunks', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (chunks) => {
      const guard = new AmqpFrameGuard(LIMITS);
      guard.push(AMQP_HEADER);
      for (const chunk of chunks) {
        guard.push(Buffer.from(chunk));
        drain(guard, false);
        expect(guard.bufferedBytes).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
      }
    }), budget);
  });
});

describe('AMQP encoding scan', () => {
  const json = fc.letrec((tie) => ({
    // rhea cannot encode integers beyond 32 bits from plain numbers, so none are generated.
    value: fc.oneof({ depthSize: 'small' }, fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.double({ noNaN: true, min: -1e6, max: 1e6 }).filter((d) => !Number.isInteger(d)), fc.array(tie('value'), { maxLength: 5 }), fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 5 })),
  })).value;

  it('accepts every message rhea encodes, within the budget', () => {
    fc.assert(fc.property(fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(fc.string(), fc.integer(), fc.boolean())), json, (props, body) => {
      const encoded = rhea.message.encode({ application_properties: props, body, message_id: 'm' } as unknown as rhea.Message);
      expect(() => scanMessage(encoded, scanBudget(DEFAULT_LIMITS.maxArrayElements))).not.toThrow();
    }), budget);
  });

  it('whatever it accepts, rhea decodes to exactly the same end', () => {
    // Mutations of valid encodings reach far deeper into the type system than random bytes.
    const encoded = fc.tuple(json, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 })).map(([value, flips]) => {
      const buf = Buffer.from(rhea.message.encode({ body: value } as unknown as rhea.Message));
      for (const [at, byte] of flips) if (buf.length > 0) buf[at % buf.length] = byte;
      return buf;
    });
    fc.assert(fc.property(encoded, (buf) => {
      let end: number;
      try {
        end = scanValue(buf, 0, buf.length, scanBudget(1_000));
      } catch (error) {
        expect(error).toBeInstanceOf(EncodingViolation);
        return;
      }
      const reader = new types.Reader(buf);
      reader.read();
      expect(reader.position).toBe(end);
    }), { numRuns: 2_000, interruptAfterTimeLimit: 3_000 });
  });

  it('bounds zero-width arrays, nesting and declared sizes', () => {
    const nulls = (count: number): Buffer => Buffer.concat([Buffer.from([0xf0, 0, 0, 0, 5]), Buffer.from([count >>> 24, (count >>> 16) & 255, (count >>> 8) & 255, count & 255]), Buffer.from([0x40])]);
    // The array itself is one of the budget's values.
    expect(scanValue(nulls(999), 0, 10, scanBudget(1_000))).toBe(10);
    expect(() => scanValue(nulls(1_001), 0, 10, scanBudget(1_000))).toThrow(/limit is 1000/);
    let nested = Buffer.from([0x40]);
    for (let i = 0; i < MAX_NESTING + 2; i++) nested = Buffer.concat([Buffer.from([0xc0, nested.length + 1, 1]), nested]);
    expect(() => scanValue(nested, 0, nested.length, scanBudget(1_000))).toThrow(/nested deeper/);
    expect(() => scanValue(Buffer.from('b0ffffff00', 'hex'), 0, 5, scanBudget(1_000))).toThrow(/declares/);
  });
});
