// A stand-in for the Azure Storage container that IoT Hub file upload hands devices: enough of
// the Blob REST API for @azure/storage-blob's BlockBlobClient (Put Block, Put Block List, Put
// Blob), kept in memory with hard bounds, and authorised by SAS tokens this hub minted.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { BLOB_CONTAINER } from './routes.ts';

export const STORAGE_VERSION = '2020-10-02';

export interface BlobStoreLimits {
  /** Bytes held across all uploads (staged blocks and committed blobs). */
  maxTotalBytes: number;
  /** Uploads remembered; the oldest is forgotten first. */
  maxUploads: number;
  /** How long a blob SAS stays valid. */
  sasLifetimeMs: number;
}

export const DEFAULT_BLOB_LIMITS: BlobStoreLimits = { maxTotalBytes: 32 * 1024 * 1024, maxUploads: 200, sasLifetimeMs: 60 * 60 * 1000 };

export interface UploadNotification {
  isSuccess: boolean;
  statusCode: number;
  statusDescription: string;
  /** ISO time. */
  notifiedAt: string;
}

export interface UploadRecord {
  correlationId: string;
  deviceId: string;
  /** As the device asked for it. */
  requestedName: string;
  /** `<deviceId>/<requestedName>`, the blob path inside the container (IoT Hub's layout). */
  blobName: string;
  /** ISO time. */
  createdAt: string;
  content?: Buffer;
  /** ISO time of the commit. */
  committedAt?: string;
  notification?: UploadNotification;
}

interface UploadState extends UploadRecord {
  staged: Map<string, Buffer>;
  expiresAt: number;
}

export class StorageError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'StorageError';
    this.status = status;
    this.code = code;
  }
}

const xmlParser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true, isArray: (name) => ['Latest', 'Committed', 'Uncommitted'].includes(name) });
const xmlBuilder = new XMLBuilder({});

/** Storage's error body: `<Error><Code>…</Code><Message>…</Message></Error>`. */
export function storageErrorXml(err: StorageError): string {
  return `<?xml version="1.0" encoding="utf-8"?>${xmlBuilder.build({ Error: { Code: err.code, Message: err.message } }) as string}`;
}

export class BlobStore {
  private readonly uploads = new Map<string, UploadState>();
  private readonly byBlob = new Map<string, string>();
  private readonly key = randomBytes(32);
  private readonly limits: BlobStoreLimits;
  private readonly now: () => number;
  private totalBytes = 0;

  constructor(limits: BlobStoreLimits = DEFAULT_BLOB_LIMITS, now: () => number = Date.now) {
    this.limits = limits;
    this.now = now;
  }

  /** IoT Hub's `POST /devices/{id}/files`: registers the upload and mints its blob SAS. */
  begin(deviceId: string, requestedName: string): { correlationId: string; containerName: string; blobName: string; sasToken: string } {
    const blobName = `${deviceId}/${requestedName}`;
    const correlationId = randomUUID();
    const expiresAt = this.now() + this.limits.sasLifetimeMs;
    const previous = this.byBlob.get(blobName);
    if (previous !== undefined) this.forget(previous);
    while (this.uploads.size >= this.limits.maxUploads) {
      const oldest = this.uploads.keys().next().value;
      if (oldest === undefined) break;
      this.forget(oldest);
    }
    this.uploads.set(correlationId, { correlationId, deviceId, requestedName, blobName, createdAt: new Date(this.now()).toISOString(), staged: new Map(), expiresAt });
    this.byBlob.set(blobName, correlationId);
    const se = new Date(expiresAt).toISOString();
    const params = new URLSearchParams({ sv: STORAGE_VERSION, sr: 'b', sp: 'cw', se, sig: this.sign(blobName, se) });
    return { correlationId, containerName: BLOB_CONTAINER, blobName, sasToken: `?${params.toString()}` };
  }

  /** The three PUT shapes BlockBlobClient uses; `blobPath` is decoded, relative to the container. */
  put(blobPath: string, query: URLSearchParams, headers: Record<string, string | string[] | undefined>, body: Buffer): { etag: string; lastModified: string } {
    const upload = this.authorize(blobPath, query);
    const comp = query.get('comp');
    if (comp === 'block') {
      const blockId = query.get('blockid');
      if (!blockId) throw new StorageError(400, 'MissingRequiredQueryParameter', 'blockid is required with comp=block');
      const previous = upload.staged.get(blockId);
      this.reserve(body.length - (previous?.length ?? 0));
      upload.staged.set(blockId, body);
      return this.stamp(upload);
    }
    if (comp === 'blocklist') {
      const ids = parseBlockList(body);
      const parts: Buffer[] = [];
      for (const id of ids) {
        const part = upload.staged.get(id);
        if (!part) throw new StorageError(400, 'InvalidBlockList', `block ${id} was never staged`);
        parts.push(part);
      }
      const content = Buffer.concat(parts);
      // The committed blob replaces both the staged blocks and any earlier content.
      const stagedBytes = [...upload.staged.values()].reduce((n, b) => n + b.length, 0);
      this.reserve(content.length - stagedBytes - (upload.content?.length ?? 0));
      upload.content = content;
      upload.staged.clear();
      upload.committedAt = new Date(this.now()).toISOString();
      return this.stamp(upload);
    }
    if (comp === null) {
      const type = headers['x-ms-blob-type'];
      if (type !== 'BlockBlob') throw new StorageError(400, 'InvalidHeaderValue', 'only x-ms-blob-type: BlockBlob is supported');
      this.reserve(body.length - (upload.content?.length ?? 0));
      upload.content = body;
      upload.committedAt = new Date(this.now()).toISOString();
      return this.stamp(upload);
    }
    throw new StorageError(400, 'InvalidQueryParameterValue', `comp=${comp} is not supported by the local hub`);
  }

  /** `POST /devices/{id}/files/notifications`: false when the correlation id is unknown for that device. */
  notify(deviceId: string, correlationId: string, result: { isSuccess: boolean; statusCode: number; statusDescription: string }): boolean {
    const upload = this.uploads.get(correlationId);
    if (!upload || upload.deviceId !== deviceId) return false;
    upload.notification = { ...result, notifiedAt: new Date(this.now()).toISOString() };
    return true;
  }

  list(deviceId: string): UploadRecord[] {
    return [...this.uploads.values()]
      .filter((u) => u.deviceId === deviceId)
      .map(({ staged: _staged, expiresAt: _expiresAt, ...record }) => record);
  }

  private authorize(blobPath: string, query: URLSearchParams): UploadState {
    const sig = query.get('sig');
    const se = query.get('se');
    const correlationId = this.byBlob.get(blobPath);
    const upload = correlationId === undefined ? undefined : this.uploads.get(correlationId);
    if (!sig || !se || !upload) throw new StorageError(403, 'AuthenticationFailed', 'no valid SAS for this blob');
    const expected = Buffer.from(this.sign(blobPath, se), 'base64');
    const given = Buffer.from(sig, 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new StorageError(403, 'AuthenticationFailed', 'SAS signature mismatch');
    if (Date.parse(se) <= this.now()) throw new StorageError(403, 'AuthenticationFailed', 'SAS expired');
    return upload;
  }

  private sign(blobPath: string, se: string): string {
    return createHmac('sha256', this.key).update(`${BLOB_CONTAINER}/${blobPath}\n${se}`).digest('base64');
  }

  private reserve(delta: number): void {
    if (this.totalBytes + delta > this.limits.maxTotalBytes) {
      throw new StorageError(413, 'RequestBodyTooLarge', `the local hub keeps at most ${this.limits.maxTotalBytes} bytes of uploads`);
    }
    this.totalBytes += delta;
  }

  private forget(correlationId: string): void {
    const upload = this.uploads.get(correlationId);
    if (!upload) return;
    for (const block of upload.staged.values()) this.totalBytes -= block.length;
    this.totalBytes -= upload.content?.length ?? 0;
    this.uploads.delete(correlationId);
    if (this.byBlob.get(upload.blobName) === correlationId) this.byBlob.delete(upload.blobName);
  }

  private stamp(upload: UploadState): { etag: string; lastModified: string } {
    return { etag: `"0x${createHmac('sha1', this.key).update(`${upload.correlationId}:${this.now()}:${upload.staged.size}`).digest('hex').slice(0, 16).toUpperCase()}"`, lastModified: new Date(this.now()).toUTCString() };
  }
}

function parseBlockList(body: Buffer): string[] {
  let doc: unknown;
  try {
    doc = xmlParser.parse(body.toString('utf8'), true);
  } catch (err) {
    throw new StorageError(400, 'InvalidXmlDocument', `block list is not XML: ${(err as Error).message}`);
  }
  const list = (doc as { BlockList?: Record<string, unknown> } | undefined)?.BlockList;
  if (list === undefined || typeof list !== 'object' || list === null) throw new StorageError(400, 'InvalidXmlDocument', 'expected <BlockList>');
  // Order across the three element kinds matters in Storage; BlockBlobClient only sends Latest.
  const ids: string[] = [];
  for (const tag of ['Committed', 'Uncommitted', 'Latest']) {
    const values = list[tag];
    if (values === undefined) continue;
    for (const v of values as unknown[]) {
      if (typeof v !== 'string') throw new StorageError(400, 'InvalidXmlDocument', `<${tag}> must hold a block id`);
      ids.push(v);
    }
  }
  return ids;
}
