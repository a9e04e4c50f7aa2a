// Reads a peer's AMQP byte stream ahead of rhea and lets through only whole, checked units: a
// protocol header or a complete frame. rhea itself buffers a frame until the size its first four
// bytes declare has arrived (up to 4 GiB) and decodes without bounds, so the hub refuses first:
// a frame larger than maxFrameBytes as soon as its size is known, an encoding rhea could not
// decode in bounded time (see encoding-scan.ts) before rhea reads it, and a message whose
// transfer frames add up past maxMessageBytes.
//
// Framing follows rhea's server transports exactly: one header selects SASL (protocol id 3) or
// plain AMQP (0); after SASL, a second header (0) is due only once the hub has sent a successful
// sasl-outcome, which the guard learns by watching rhea's outbound frames.
import { EncodingViolation, scanBudget, scanMessage, scanValue } from './encoding-scan.ts';
import { readFrame } from './rhea-frames.ts';

export interface FrameGuardLimits {
  maxFrameBytes: number;
  maxMessageBytes: number;
  maxArrayElements: number;
}

export type GuardCondition = 'amqp:connection:framing-error' | 'amqp:decode-error' | 'amqp:resource-limit-exceeded' | 'amqp:link:message-size-exceeded';

export interface GuardViolation {
  condition: GuardCondition;
  description: string;
}

export type GuardStep =
  | { kind: 'unit'; bytes: Buffer }
  /** More bytes are needed before the next unit is complete. */
  | { kind: 'need-more' }
  /** A header may follow a SASL exchange whose outcome rhea has not written yet: try again later. */
  | { kind: 'wait' }
  | { kind: 'refuse'; violation: GuardViolation };

const MAGIC = 0x414d5150; // "AMQP"
const SASL_PROTOCOL = 3;
const AMQP_PROTOCOL = 0;
const TYPE_AMQP = 0;
const TYPE_SASL = 1;
export const BATCH_FORMAT = 0x80013700;
// Several links may each have a delivery half-sent; together they are still bounded.
const INCOMPLETE_FACTOR = 2;

type Phase = 'first-header' | 'sasl' | 'amqp-header' | 'amqp';

interface Incomplete {
  parts: Buffer[];
  bytes: number;
  format: number | undefined;
}

export class AmqpFrameGuard {
  private phase: Phase = 'first-header';
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** The peer sent sasl-init/response; the outcome decides whether a header comes next. */
  private awaitingOutcome = false;
  private readonly incomplete = new Map<string, Incomplete>();
  private incompleteBytes = 0;
  private refused: GuardViolation | undefined;

  constructor(private readonly limits: FrameGuardLimits) {}

  /** Bytes from the peer. */
  push(chunk: Buffer): void {
    if (this.refused || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes rhea writes to the peer (whole headers and frames): only the SASL outcome matters. */
  observeOutbound(buf: Buffer): void {
    if (this.phase !== 'sasl' || !this.awaitingOutcome) return;
    let p = buf.length >= 8 && buf.readUInt32BE(0) === MAGIC ? 8 : 0;
    while (p + 8 <= buf.length) {
      const size = buf.readUInt32BE(p);
      if (size < 8 || p + size > buf.length) return;
      if (buf[p + 5] === TYPE_SASL) {
        try {
          const frame = readFrame(buf.subarray(p, p + size));
          if (frame.kind === 'saslOutcome') {
            this.awaitingOutcome = false;
            if (frame.performative?.code === 0) this.phase = 'amqp-header';
            return;
          }
        } catch {
          return;
        }
      }
      p += size;
    }
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * The next step. `mayWait` false means the caller already waited once for a SASL outcome: the
   * bytes are then read as rhea would read them, a SASL frame.
   */
  next(mayWait = true): GuardStep {
    if (this.refused) return { kind: 'refuse', violation: this.refused };
    try {
      return this.step(mayWait);
    } catch (error) {
      if (error instanceof EncodingViolation) return this.refuse(error.condition, error.message);
      throw error;
    }
  }

  private refuse(condition: GuardCondition, description: string): GuardStep {
    this.refused = { condition, description };
    this.chunks.length = 0;
    this.buffered = 0;
    this.incomplete.clear();
    return { kind: 'refuse', violation: this.refused };
  }

  private step(mayWait: boolean): GuardStep {
    if (this.phase === 'first-header' || this.phase === 'amqp-header') {
      if (this.buffered < 8) return this.startsWithMagic() === false ? this.refuse('amqp:connection:framing-error', 'not an AMQP protocol header') : { kind: 'need-more' };
      const header = this.take(8);
      if (header.readUInt32BE(0) !== MAGIC) return this.refuse('amqp:connection:framing-error', 'not an AMQP protocol header');
      const protocol = header[4];
      if (this.phase === 'first-header' && protocol === SASL_PROTOCOL) this.phase = 'sasl';
      else if (protocol === AMQP_PROTOCOL) this.phase = 'amqp';
      else return this.refuse('amqp:connection:framing-error', `unsupported AMQP protocol id ${String(protocol)}`);
      return { kind: 'unit', bytes: header };
    }
    if (this.buffered < 4) return { kind: 'need-more' };
    const size = this.peekUInt32();
    if (this.phase === 'sasl' && this.awaitingOutcome && size === MAGIC && mayWait) return { kind: 'wait' };
    if (size > this.limits.maxFrameBytes) return this.refuse('amqp:connection:framing-error', `frame of ${size} bytes exceeds max-frame-size ${this.limits.maxFrameBytes}`);
    if (size < 8) return this.refuse('amqp:connection:framing-error', `frame size ${size} is below the 8-byte frame header`);
    if (this.buffered < size) return { kind: 'need-more' };
    const frame = this.take(size);
    const violation = this.check(frame);
    if (violation) return this.refuse(violation.condition, violation.description);
    return { kind: 'unit', bytes: frame };
  }

  private check(frame: Buffer): GuardViolation | undefined {
    const doff = frame[4]!;
    const type = frame[5]!;
    const expected = this.phase === 'sasl' ? TYPE_SASL : TYPE_AMQP;
    if (type !== expected) return { condition: 'amqp:connection:framing-error', description: `frame type ${type} where ${expected} is due` };
    if (doff < 2 || doff * 4 > frame.length) return { condition: 'amqp:connection:framing-error', description: `data offset ${doff} does not fit a ${frame.length}-byte frame` };
    const body = doff * 4;
    if (body === frame.length) return undefined;
    // Bounded first, then read by rhea's own reader, exactly as its transport will read it.
    scanValue(frame, body, frame.length, scanBudget(this.limits.maxArrayElements));
    let read: ReturnType<typeof readFrame>;
    try {
      read = readFrame(frame);
    } catch (error) {
      return { condition: 'amqp:decode-error', description: `undecodable frame: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (this.phase === 'sasl') {
      if (read.kind === 'saslInit' || read.kind === 'saslResponse') this.awaitingOutcome = true;
      return undefined;
    }
    if (read.kind === 'transfer') return this.onTransfer(frame.readUInt16BE(6), read.performative!, read.payload ?? Buffer.alloc(0));
    return undefined;
  }

  /** rhea gathers a delivery's frames per link and decodes the message once the last arrives. */
  private onTransfer(channel: number, transfer: { handle?: unknown; more?: unknown; message_format?: unknown }, payload: Buffer): GuardViolation | undefined {
    // The same truthiness and key coercion rhea applies (receiver._incomplete, remote.handles[handle]).
    const more = Boolean(transfer.more);
    const format = typeof transfer.message_format === 'number' ? transfer.message_format : undefined;
    const key = `${channel}:${String(transfer.handle)}`;
    let pending = this.incomplete.get(key);
    if (!pending && !more) return this.checkMessage(payload, format);
    if (!pending) {
      pending = { parts: [], bytes: 0, format };
      this.incomplete.set(key, pending);
    }
    pending.parts.push(Buffer.from(payload));
    pending.bytes += payload.length;
    this.incompleteBytes += payload.length;
    if (pending.bytes > this.limits.maxMessageBytes || this.incompleteBytes > INCOMPLETE_FACTOR * this.limits.maxMessageBytes) {
      return { condition: 'amqp:link:message-size-exceeded', description: `message exceeds ${this.limits.maxMessageBytes} bytes` };
    }
    if (more) return undefined;
    this.incomplete.delete(key);
    this.incompleteBytes -= pending.bytes;
    return this.checkMessage(Buffer.concat(pending.parts, pending.bytes), pending.format);
  }

  private checkMessage(payload: Buffer, format: number | undefined): GuardViolation | undefined {
    if (payload.length > this.limits.maxMessageBytes) return { condition: 'amqp:link:message-size-exceeded', description: `message of ${payload.length} bytes exceeds ${this.limits.maxMessageBytes}` };
    // rhea decodes format 0 itself; the hub decodes IoT Hub batches with rhea too. Other formats
    // reach the hub as opaque bytes and are rejected there.
    if (format !== 0 && format !== BATCH_FORMAT) return undefined;
    scanMessage(payload, scanBudget(this.limits.maxArrayElements));
    return undefined;
  }

  /** undefined while fewer than four bytes are buffered. */
  private startsWithMagic(): boolean | undefined {
    if (this.buffered < 4) {
      const head = Buffer.concat(this.chunks, this.buffered);
      return Buffer.from('AMQP').subarray(0, head.length).equals(head) ? undefined : false;
    }
    return this.peekUInt32() === MAGIC;
  }

  private peekUInt32(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    return Buffer.concat(this.chunks, this.buffered).readUInt32BE(0);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length === n) {
      this.chunks.shift();
      out = first;
    } else if (first.length > n) {
      out = first.subarray(0, n);
      this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.chunks[0]!;
        const want = Math.min(n - filled, chunk.length);
        chunk.copy(out, filled, 0, want);
        filled += want;
        if (want === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(want);
      }
    }
    this.buffered -= n;
    return out;
  }
}
