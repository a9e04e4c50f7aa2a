// Walks AMQP 1.0 type-system encodings without building any value, to prove that rhea can decode
// them in bounded time and memory. rhea decodes a list, map or array by looping over the count its
// header declares, so an array of 2^32 zero-width elements (nulls, `true`, uint0, ...) in a
// 26-byte frame keeps it busy until the process dies. Every count here is checked against the
// bytes actually present and against a budget before rhea sees the bytes.
//
// The walk mirrors rhea 3's Reader: a constructor (with any chain of 0x00 descriptors), then the
// value; compound and array values are read item by item from just after their header. Sizes are
// required to match what the items occupy exactly, so the two readers can never disagree about
// where a value ends.

export class EncodingViolation extends Error {
  override readonly name = 'EncodingViolation';
  constructor(readonly condition: 'amqp:decode-error' | 'amqp:resource-limit-exceeded', message: string) {
    super(message);
  }
}

/** Mutable per-frame (or per-message) allowance; every value visited costs one. */
export interface ScanBudget {
  values: number;
  /** Largest count one list, map or array may declare. */
  readonly maxCount: number;
}

export function scanBudget(maxArrayElements: number): ScanBudget {
  return { values: maxArrayElements, maxCount: maxArrayElements };
}

/** rhea recurses once per nesting level; no IoT Hub message comes near this. */
export const MAX_NESTING = 32;

type Kind = { kind: 'fixed'; width: number } | { kind: 'variable' | 'compound' | 'array'; width: 1 | 4 };

const KINDS = new Map<number, Kind>();
for (const code of [0x40, 0x41, 0x42, 0x43, 0x44, 0x45]) KINDS.set(code, { kind: 'fixed', width: 0 });
for (const code of [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56]) KINDS.set(code, { kind: 'fixed', width: 1 });
for (const code of [0x60, 0x61]) KINDS.set(code, { kind: 'fixed', width: 2 });
for (const code of [0x70, 0x71, 0x72, 0x73, 0x74]) KINDS.set(code, { kind: 'fixed', width: 4 });
for (const code of [0x80, 0x81, 0x82, 0x83, 0x84]) KINDS.set(code, { kind: 'fixed', width: 8 });
for (const code of [0x94, 0x98]) KINDS.set(code, { kind: 'fixed', width: 16 });
for (const code of [0xa0, 0xa1, 0xa3]) KINDS.set(code, { kind: 'variable', width: 1 });
for (const code of [0xb0, 0xb1, 0xb3]) KINDS.set(code, { kind: 'variable', width: 4 });
for (const code of [0xc0, 0xc1]) KINDS.set(code, { kind: 'compound', width: 1 });
for (const code of [0xd0, 0xd1]) KINDS.set(code, { kind: 'compound', width: 4 });
KINDS.set(0xe0, { kind: 'array', width: 1 });
KINDS.set(0xf0, { kind: 'array', width: 4 });

function decodeError(message: string): EncodingViolation {
  return new EncodingViolation('amqp:decode-error', message);
}

function spend(budget: ScanBudget, n: number): void {
  budget.values -= n;
  if (budget.values < 0) throw new EncodingViolation('amqp:resource-limit-exceeded', `more than ${budget.maxCount} AMQP values in one frame or message`);
}

function readWidth(buf: Buffer, pos: number, end: number, width: 1 | 4): number {
  if (pos + width > end) throw decodeError('truncated size or count');
  return width === 1 ? buf[pos]! : buf.readUInt32BE(pos);
}

export interface Constructor {
  code: number;
  /** Where the value (after the constructor) starts. */
  pos: number;
  /** Position of the first descriptor's value, when the constructor is described. */
  descriptorAt: number | undefined;
}

export function scanConstructor(buf: Buffer, pos: number, end: number, budget: ScanBudget, depth: number): Constructor {
  let descriptorAt: number | undefined;
  let p = pos;
  for (let level = depth; ; level++) {
    if (level > MAX_NESTING) throw new EncodingViolation('amqp:resource-limit-exceeded', `AMQP values nested deeper than ${MAX_NESTING}`);
    if (p >= end) throw decodeError('truncated constructor');
    const code = buf[p]!;
    if (code !== 0x00) {
      if (!KINDS.has(code)) throw decodeError(`unknown AMQP type code 0x${code.toString(16)}`);
      return { code, pos: p + 1, descriptorAt };
    }
    descriptorAt ??= p + 1;
    p = scanValue(buf, p + 1, end, budget, level + 1);
  }
}

/** Scans one encoded value (constructor and body) starting at `pos`; returns where it ends. */
export function scanValue(buf: Buffer, pos: number, end: number, budget: ScanBudget, depth = 0): number {
  spend(budget, 1);
  const ctor = scanConstructor(buf, pos, end, budget, depth);
  return scanBody(ctor.code, buf, ctor.pos, end, budget, depth);
}

/** Scans the body of a value whose constructor has `code` (as array elements are encoded). */
function scanBody(code: number, buf: Buffer, pos: number, end: number, budget: ScanBudget, depth: number): number {
  const kind = KINDS.get(code)!;
  if (kind.kind === 'fixed') {
    if (pos + kind.width > end) throw decodeError('truncated fixed-width value');
    return pos + kind.width;
  }
  const size = readWidth(buf, pos, end, kind.width);
  const start = pos + kind.width;
  const stop = start + size;
  if (stop > end) throw decodeError(`value declares ${size} bytes; ${end - start} remain`);
  if (kind.kind === 'variable') return stop;
  if (depth + 1 > MAX_NESTING) throw new EncodingViolation('amqp:resource-limit-exceeded', `AMQP values nested deeper than ${MAX_NESTING}`);
  const count = readWidth(buf, start, stop, kind.width);
  if (count > budget.maxCount) throw new EncodingViolation('amqp:resource-limit-exceeded', `a ${kind.kind} declares ${count} elements; the limit is ${budget.maxCount}`);
  let p = start + kind.width;
  if (kind.kind === 'compound') {
    for (let i = 0; i < count; i++) p = scanValue(buf, p, stop, budget, depth + 1);
  } else {
    const element = scanConstructor(buf, p, stop, budget, depth + 1);
    p = element.pos;
    const elementKind = KINDS.get(element.code)!;
    if (elementKind.kind === 'fixed') {
      // Zero-width elements occupy no bytes, so only the budget bounds them.
      spend(budget, count);
      const bytes = count * elementKind.width;
      if (p + bytes > stop) throw decodeError(`array of ${count} elements needs ${bytes} bytes; ${stop - p} remain`);
      p += bytes;
    } else {
      spend(budget, count);
      for (let i = 0; i < count; i++) p = scanBody(element.code, buf, p, stop, budget, depth + 1);
    }
  }
  if (p !== stop) throw decodeError(`${kind.kind} declares ${size} bytes but its elements occupy ${p - start}`);
  return stop;
}

/** The numeric descriptor of a described value at `pos`, when it is a (small)ulong; else undefined. */
export function numericDescriptor(buf: Buffer, pos: number, end: number): number | undefined {
  if (pos + 2 > end || buf[pos] !== 0x00) return undefined;
  const code = buf[pos + 1];
  if (code === 0x53 && pos + 3 <= end) return buf[pos + 2];
  if (code === 0x44) return 0;
  if (code === 0x80 && pos + 10 <= end) {
    const high = buf.readUInt32BE(pos + 2);
    return high === 0 ? buf.readUInt32BE(pos + 6) : undefined;
  }
  return undefined;
}

const SECTION_FIRST = 0x70;
const SECTION_LAST = 0x78;

/**
 * Checks an encoded message (what rhea's message.decode reads): a sequence of described sections
 * with IoT Hub's numeric descriptors (header 0x70 … footer 0x78). rhea prints anything else to
 * stderr verbatim, so that is refused too.
 */
export function scanMessage(payload: Buffer, budget: ScanBudget): void {
  let p = 0;
  while (p < payload.length) {
    const descriptor = numericDescriptor(payload, p, payload.length);
    if (descriptor === undefined || descriptor < SECTION_FIRST || descriptor > SECTION_LAST) throw decodeError('message section is not a described AMQP section');
    p = scanValue(payload, p, payload.length, budget);
  }
}

/** Throws EncodingViolation unless rhea can decode `payload` as a message within `maxArrayElements`. */
export function assertDecodableMessage(payload: Buffer, maxArrayElements: number): void {
  scanMessage(payload, scanBudget(maxArrayElements));
}
