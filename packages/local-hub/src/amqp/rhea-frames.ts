// rhea's own frame reader, for the frame guard. Which performative a frame carries, and a
// transfer's handle, more-flag and message format, are read exactly as rhea's transport will read
// them (rhea matches descriptors by JavaScript key coercion, which no second parser would mirror);
// the guard only calls this after encoding-scan.ts has proved the performative decodes in bounds.
// rhea publishes no typings for lib/frames.js; this is the one place that reaches into it.
import { createRequire } from 'node:module';

interface RheaPerformative {
  readonly handle?: unknown;
  readonly more?: unknown;
  readonly message_format?: unknown;
  readonly code?: unknown;
}

interface RheaFramesModule {
  read_frame(buffer: Buffer): { type: number; channel: number; performative?: RheaPerformative; payload?: Buffer } | null;
  transfer(fields: Record<string, unknown>): object;
  sasl_init(fields: Record<string, unknown>): object;
  sasl_response(fields: Record<string, unknown>): object;
  sasl_outcome(fields: Record<string, unknown>): object;
}

const frames = createRequire(import.meta.url)('rhea/lib/frames.js') as RheaFramesModule;

const PROTOTYPES = {
  transfer: Object.getPrototypeOf(frames.transfer({})) as object,
  saslInit: Object.getPrototypeOf(frames.sasl_init({})) as object,
  saslResponse: Object.getPrototypeOf(frames.sasl_response({})) as object,
  saslOutcome: Object.getPrototypeOf(frames.sasl_outcome({})) as object,
};

export type PerformativeKind = keyof typeof PROTOTYPES | 'other' | 'none';

export interface ReadFrame {
  kind: PerformativeKind;
  performative: RheaPerformative | undefined;
  payload: Buffer | undefined;
}

/** Reads one whole frame with rhea; throws whatever rhea would throw on it. */
export function readFrame(frame: Buffer): ReadFrame {
  const read = frames.read_frame(frame);
  const performative = read?.performative;
  if (performative === undefined) return { kind: 'none', performative: undefined, payload: read?.payload };
  const proto = Object.getPrototypeOf(performative) as object;
  const kind = (Object.keys(PROTOTYPES) as Array<keyof typeof PROTOTYPES>).find((k) => PROTOTYPES[k] === proto) ?? 'other';
  return { kind, performative, payload: read?.payload };
}
