import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { HubError } from '../core/errors.ts';
import type { ModuleService } from '../core/module-types.ts';
import type { HubCore, HubLogger, HubService } from '../core/types.ts';
import type { FaultInjector } from '../faults/injector.ts';
import type { BlobStore } from './blob-store.ts';
import { readBody, type BodyLimits } from './body.ts';
import { badRequest } from './respond.ts';
import type { RouteParams } from './routes.ts';
import { describeZodError } from './wire.ts';

import type { CompletedUpload } from '../amqp/file-notifications.ts';

export interface FrontEndDeps {
  core: HubCore;
  service: HubService & ModuleService;
  logger: HubLogger;
  /** Fault injection (src/faults/) and its service routes; without it those routes answer 404. */
  faults?: FaultInjector;
  /** Told of each upload a device reports as successful (IoT Hub's file upload notifications). */
  onFileUploaded?: (upload: CompletedUpload) => void;
  /** The built-in endpoint's consumer groups; without it those routes answer 404. */
  consumerGroups?: ConsumerGroupAdmin;
}

export interface ConsumerGroupAdmin {
  list(): string[];
  /** Idempotent; throws a SwitchyardError CONFIG_INVALID for a name Event Hubs would refuse. */
  create(name: string): string;
  delete(name: string): boolean;
}

/** IoT Hub's D2C limit, applied to every JSON or telemetry body. */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** @azure/storage-blob stages 4 MiB blocks during uploadToBlob. */
export const MAX_BLOB_BLOCK_BYTES = 4 * 1024 * 1024;

export const DRAIN = { drainBytes: 1024 * 1024, drainMs: 5_000 } as const;

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  params: RouteParams;
  connectionId: string;
  deps: FrontEndDeps;
  blobs: BlobStore;
}

/** Reads the body under `maxBytes`; 413 (MessageTooLarge) past it, without buffering the excess. */
export async function readLimited(ctx: RequestContext, maxBytes: number): Promise<Buffer> {
  const limits: BodyLimits = { maxBytes, ...DRAIN };
  const result = await readBody(ctx.req, limits);
  if (result.ok) return result.body;
  if (result.reason === 'too-large') throw new HubError('MessageTooLarge', `the request body exceeds ${maxBytes} bytes`);
  throw new RequestAborted();
}

/** The client went away mid-body: nothing can be answered. */
export class RequestAborted extends Error {
  constructor() {
    super('request aborted by the client');
    this.name = 'RequestAborted';
  }
}

/** JSON body validated by `schema`; failures name the field (400 ArgumentInvalid). */
export async function readJson<S extends z.ZodType>(ctx: RequestContext, schema: S, maxBytes = MAX_MESSAGE_BYTES): Promise<z.infer<S>> {
  const raw = await readLimited(ctx, maxBytes);
  let json: unknown;
  try {
    json = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw badRequest(`the request body is not valid JSON (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw badRequest(`invalid request body: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

/** Route params are guaranteed by the pattern; this only narrows the type. */
export function param(params: RouteParams, name: keyof RouteParams): string {
  const value = params[name];
  if (value === undefined) throw new Error(`route is missing :${name}`);
  return value;
}

/** `If-Match: "etag"` or `W/"etag"` → `etag`; `*` stays `*`. */
export function ifMatch(req: IncomingMessage): string | undefined {
  const raw = req.headers['if-match'];
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  const value = raw.trim().replace(/^W\//, '');
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}
