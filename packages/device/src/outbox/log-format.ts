// The bytes of the outbox's file (format 1). The file starts with "SYOB" and a u32 LE version;
// then come frames, each [u32 LE payload length][u32 LE CRC-32 of the payload][payload], and a
// payload is the records of one write, back to back:
//
//   add: u8 1 | u8 body kind (0 bytes, 1 UTF-8 text, 2 JSON) | u16 0 | u32 id length |
//        u32 meta length | u32 body length | f64 seq | f64 enqueuedAt | id | meta | body
//   ack: u8 2 | u32 count | f64 seq × count
//
// meta is JSON of what few messages carry (properties, correlation id, content type and encoding,
// expiry) and empty for the rest; the body is its own bytes, never base64 or JSON-escaped. Why
// binary and one checksum per write (bench/README.md, "Outbox"): the JSON format of before spent
// most of the log's CPU on base64, JSON.stringify and a CRC call per record.
//
// A write is one frame (or a few, past FRAME_TARGET), so a crash that tears the last write tears
// its last frame, whose checksum then fails: recovery keeps the frames before it.
import { crc32 } from 'node:zlib';
import type { DeviceMessage } from '../message.ts';

export const LOG_VERSION = 1;
const MAGIC = Buffer.from('SYOB', 'latin1');
export const FILE_HEADER_BYTES = 8;
const FRAME_HEADER = 8;
const ADD_HEADER = 32;
/** A frame's payload past this closes the frame; the next record opens another. */
const FRAME_TARGET = 1024 * 1024;
const ADD = 1;
const ACK = 2;
const BODY_BYTES = 0;
const BODY_TEXT = 1;
const BODY_JSON = 2;

export type StoredMessage = DeviceMessage & { messageId: string };

export interface AddRecord {
  seq: number;
  enqueuedAt: number;
  message: StoredMessage;
  /**
   * Its framed size in the log's current file, kept by the log (0 once removed): the size goes
   * with the record, not into a table keyed by seq that grows and shrinks with every message.
   */
  logBytes?: number;
}
export interface AckRecord {
  acks: readonly number[];
}
export type LogRecord = AddRecord | AckRecord;
/** An add as read back, with its size in the file (for the compaction bound). */
export type DecodedAdd = AddRecord & { size: number };
export type DecodedRecord = DecodedAdd | AckRecord;

/** The first bytes of every log file of this format. */
export function fileHeader(): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(LOG_VERSION, 4);
  return header;
}

interface Meta {
  p?: Record<string, string>;
  c?: string;
  ct?: string;
  ce?: string;
  x?: number;
}

function metaOf(message: StoredMessage): string {
  if (message.properties === undefined && message.correlationId === undefined && message.contentType === undefined && message.contentEncoding === undefined && message.expiresAt === undefined) return '';
  const meta: Meta = {};
  if (message.properties !== undefined) meta.p = message.properties;
  if (message.correlationId !== undefined) meta.c = message.correlationId;
  if (message.contentType !== undefined) meta.ct = message.contentType;
  if (message.contentEncoding !== undefined) meta.ce = message.contentEncoding;
  if (message.expiresAt !== undefined) meta.x = message.expiresAt.getTime();
  return JSON.stringify(meta);
}

function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Records encoded straight into one reusable buffer, frames closed as they fill; `take()` hands
 * over the bytes of every frame so far. The buffer is reused after a take: the caller writes the
 * bytes synchronously before the next record is added.
 */
export class FrameWriter {
  #buf: Buffer;
  // The header fields go through a DataView of the same bytes: the optimizing compiler turns its
  // setters into plain stores, where Buffer's write*LE are calls with their own bounds checks
  // (about a third of a record's encoding; bench/README.md, "Outbox").
  #view: DataView;
  #at = 0;
  /** Where the open frame's header is; -1 when no frame is open. */
  #frame = -1;

  constructor(initial = 64 * 1024) {
    this.#buf = Buffer.allocUnsafe(initial);
    this.#view = viewOf(this.#buf);
  }

  get empty(): boolean {
    return this.#at === 0;
  }

  #ensure(bytes: number): void {
    if (this.#frame === -1 || this.#at - this.#frame - FRAME_HEADER >= FRAME_TARGET) {
      this.#close();
      bytes += FRAME_HEADER;
    }
    if (this.#at + bytes > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#at + bytes));
      this.#buf.copy(grown, 0, 0, this.#at);
      this.#buf = grown;
      this.#view = viewOf(grown);
    }
    if (this.#frame === -1) {
      this.#frame = this.#at;
      this.#at += FRAME_HEADER;
    }
  }

  #close(): void {
    if (this.#frame === -1) return;
    const buf = this.#buf;
    const start = this.#frame + FRAME_HEADER;
    this.#view.setUint32(this.#frame, this.#at - start, true);
    this.#view.setUint32(this.#frame + 4, crc32(buf.subarray(start, this.#at)), true);
    this.#frame = -1;
  }

  /** Appends an add record; returns its size. */
  add(record: AddRecord): number {
    const { message } = record;
    const { body } = message;
    const meta = metaOf(message);
    const id = message.messageId;
    // Text is at most 3 bytes per UTF-16 unit; bytes are what they are.
    const json = typeof body === 'string' || body instanceof Uint8Array ? undefined : JSON.stringify(body);
    const text = typeof body === 'string' ? body : json;
    const bodyMax = text === undefined ? (body as Uint8Array).byteLength : text.length * 3;
    this.#ensure(ADD_HEADER + id.length * 3 + meta.length * 3 + bodyMax);
    const buf = this.#buf;
    const start = this.#at;
    let at = start + ADD_HEADER;
    const idBytes = buf.write(id, at);
    at += idBytes;
    const metaBytes = meta === '' ? 0 : buf.write(meta, at);
    at += metaBytes;
    let bodyBytes: number;
    if (text === undefined) {
      buf.set(body as Uint8Array, at);
      bodyBytes = (body as Uint8Array).byteLength;
    } else {
      bodyBytes = buf.write(text, at);
    }
    at += bodyBytes;
    const view = this.#view;
    buf[start] = ADD;
    buf[start + 1] = text === undefined ? BODY_BYTES : json === undefined ? BODY_TEXT : BODY_JSON;
    view.setUint16(start + 2, 0, true);
    view.setUint32(start + 4, idBytes, true);
    view.setUint32(start + 8, metaBytes, true);
    view.setUint32(start + 12, bodyBytes, true);
    view.setFloat64(start + 16, record.seq, true);
    view.setFloat64(start + 24, record.enqueuedAt, true);
    this.#at = at;
    return at - start;
  }

  /** Appends an ack record for the seqs of `records` (the queue's entries, handed over as they are). */
  ack(records: readonly { seq: number }[]): void {
    this.#ensure(5 + 8 * records.length);
    const buf = this.#buf;
    let at = this.#at;
    const view = this.#view;
    buf[at] = ACK;
    view.setUint32(at + 1, records.length, true);
    at += 5;
    for (const record of records) {
      view.setFloat64(at, record.seq, true);
      at += 8;
    }
    this.#at = at;
  }

  /** The frames written since the last take, closed; a view of the reused buffer. */
  take(): Buffer | undefined {
    if (this.#at === 0) return undefined;
    this.#close();
    const out = this.#buf.subarray(0, this.#at);
    this.#at = 0;
    return out;
  }

  /** Forgets what was not taken (the log failed). */
  clear(): void {
    this.#at = 0;
    this.#frame = -1;
  }
}

/** One frame holding `records`: for tests and for writing a file in one piece. */
export function encodeFrame(records: readonly LogRecord[]): Buffer {
  const writer = new FrameWriter(1024);
  for (const record of records) {
    if ('acks' in record) writer.ack(record.acks.map((seq) => ({ seq })));
    else writer.add(record);
  }
  return Buffer.from(writer.take() ?? Buffer.alloc(0));
}

export interface DecodedLog {
  records: DecodedRecord[];
  /** Bytes of the header and whole, valid frames; anything after is a torn or corrupt tail. */
  validBytes: number;
}

/** The file holds something other than this format (another version, not an outbox log). */
export class UnknownLogFormat extends Error {}

function decodeMessage(kind: number, id: string, meta: Meta | undefined, body: Buffer): StoredMessage {
  const message: StoredMessage = {
    // Bytes are copied out, so a recovered message does not keep the whole file in memory.
    body: kind === BODY_BYTES ? Buffer.from(body) : kind === BODY_TEXT ? body.toString('utf8') : (JSON.parse(body.toString('utf8')) as DeviceMessage['body']),
    messageId: id,
  };
  if (meta === undefined) return message;
  if (meta.p !== undefined) message.properties = meta.p;
  if (meta.c !== undefined) message.correlationId = meta.c;
  if (meta.ct !== undefined) message.contentType = meta.ct;
  if (meta.ce !== undefined) message.contentEncoding = meta.ce;
  if (meta.x !== undefined) message.expiresAt = new Date(meta.x);
  return message;
}

/** The records of one frame's payload; undefined if they do not parse (a bug, not a torn write: the CRC held). */
function decodePayload(payload: Buffer): DecodedRecord[] | undefined {
  const records: DecodedRecord[] = [];
  let at = 0;
  try {
    while (at < payload.length) {
      const kind = payload[at];
      if (kind === ADD) {
        if (at + ADD_HEADER > payload.length) return undefined;
        const bodyKind = payload[at + 1]!;
        const idBytes = payload.readUInt32LE(at + 4);
        const metaBytes = payload.readUInt32LE(at + 8);
        const bodyBytes = payload.readUInt32LE(at + 12);
        const size = ADD_HEADER + idBytes + metaBytes + bodyBytes;
        if (at + size > payload.length || bodyKind > BODY_JSON) return undefined;
        const seq = payload.readDoubleLE(at + 16);
        const enqueuedAt = payload.readDoubleLE(at + 24);
        let p = at + ADD_HEADER;
        const id = payload.toString('utf8', p, p + idBytes);
        p += idBytes;
        const meta = metaBytes === 0 ? undefined : (JSON.parse(payload.toString('utf8', p, p + metaBytes)) as Meta);
        p += metaBytes;
        records.push({ seq, enqueuedAt, message: decodeMessage(bodyKind, id, meta, payload.subarray(p, p + bodyBytes)), size });
        at += size;
      } else if (kind === ACK) {
        if (at + 5 > payload.length) return undefined;
        const count = payload.readUInt32LE(at + 1);
        if (at + 5 + 8 * count > payload.length) return undefined;
        const acks: number[] = new Array<number>(count);
        for (let i = 0; i < count; i++) acks[i] = payload.readDoubleLE(at + 5 + 8 * i);
        records.push({ acks });
        at += 5 + 8 * count;
      } else {
        return undefined;
      }
    }
  } catch {
    return undefined;
  }
  return records;
}

/**
 * Reads a whole file: the header, then frames up to the first that is short, fails its checksum
 * or does not parse. An empty file, or one cut inside its header (a crash while creating it),
 * holds nothing. Throws UnknownLogFormat for a file this version cannot read, which must be left
 * alone rather than cut as if it were a torn tail.
 */
export function decodeLog(bytes: Buffer): DecodedLog {
  const records: DecodedRecord[] = [];
  const header = fileHeader();
  if (bytes.length < FILE_HEADER_BYTES) {
    if (header.subarray(0, bytes.length).equals(bytes)) return { records, validBytes: 0 };
    throw new UnknownLogFormat('the file is not an outbox log of this version (no "SYOB" header)');
  }
  if (!bytes.subarray(0, 4).equals(MAGIC)) throw new UnknownLogFormat('the file is not an outbox log of this version (no "SYOB" header; logs written before format 1 are not read)');
  const version = bytes.readUInt32LE(4);
  if (version !== LOG_VERSION) throw new UnknownLogFormat(`the file is an outbox log of format ${version}; this version reads format ${LOG_VERSION}`);
  let at = FILE_HEADER_BYTES;
  while (at + FRAME_HEADER <= bytes.length) {
    const length = bytes.readUInt32LE(at);
    if (at + FRAME_HEADER + length > bytes.length) break;
    const payload = bytes.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length);
    if (crc32(payload) !== bytes.readUInt32LE(at + 4)) break;
    const decoded = decodePayload(payload);
    if (decoded === undefined) break;
    for (const record of decoded) records.push(record);
    at += FRAME_HEADER + length;
  }
  return { records, validBytes: at };
}

/** The adds a log still holds (never acknowledged or dropped), oldest first. */
export function liveEntries(records: readonly DecodedRecord[]): DecodedAdd[] {
  const live = new Map<number, DecodedAdd>();
  for (const record of records) {
    if ('acks' in record) for (const seq of record.acks) live.delete(seq);
    else live.set(record.seq, record);
  }
  return [...live.values()].sort((x, y) => x.seq - y.seq);
}
