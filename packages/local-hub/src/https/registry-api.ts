// IoT Hub's registry operations beyond single devices: bulk create/update/delete (POST /devices),
// twin queries (POST /devices/query, paged with x-ms-continuation) and statistics.
import { z } from 'zod';
import { HubError } from '../core/errors.ts';
import type { DeviceRecord } from '../core/types.ts';
import { decodeContinuation, DEFAULT_PAGE_SIZE, pageOf, parseQuery, QueryNotSupportedError, QuerySyntaxError, runQuery, type TwinQuery } from '../query/index.ts';
import { readJson, type RequestContext } from './context.ts';
import { badRequest, HttpError, sendJson } from './respond.ts';
import { authenticationFromBody, deviceInputOf, devicePutBody, twinDocument } from './service-api.ts';

/** IoT Hub takes at most 100 devices per bulk call. */
const MAX_BULK_DEVICES = 100;

const IMPORT_MODES = ['create', 'update', 'updateifmatchetag', 'delete', 'deleteifmatchetag', 'updatetwin', 'updatetwinifmatchetag'] as const;
type ImportMode = (typeof IMPORT_MODES)[number];

const bulkDevice = devicePutBody.extend({
  id: z.string().min(1),
  importMode: z.string().transform((mode) => mode.toLowerCase()).pipe(z.enum(IMPORT_MODES)),
  // IoT Hub reads JSON names case-insensitively; azure-iothub's Device objects carry `etag`.
  eTag: z.string().nullish(),
  etag: z.string().nullish(),
  twinETag: z.string().nullish(),
  tags: z.record(z.string(), z.unknown()).nullish(),
  properties: z.object({ desired: z.record(z.string(), z.unknown()).nullish() }).nullish(),
});
const bulkBody = z.array(bulkDevice).min(1).max(MAX_BULK_DEVICES);
type BulkDevice = z.infer<typeof bulkDevice>;

interface BulkError {
  deviceId: string;
  errorCode: string;
  errorStatus: string;
  operation: string;
}

/** `W/"x"` and `"x"` name the etag `x`; IoT Hub's bulk bodies carry either. */
function bareEtag(value: string | null | undefined): string | undefined {
  if (value === undefined || value === null || value.trim() === '') return undefined;
  return value.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function applyBulk(ctx: RequestContext, device: BulkDevice): void {
  const service = ctx.deps.service;
  const mode: ImportMode = device.importMode;
  const etag = bareEtag(device.eTag ?? device.etag);
  switch (mode) {
    case 'create':
      service.createDevice(device.id, deviceInputOf(device, authenticationFromBody(device.authentication)));
      return;
    case 'update':
    case 'updateifmatchetag': {
      if (mode === 'updateifmatchetag' && etag === undefined && ctx.deps.core.getDevice(device.id)) throw badRequest('importMode updateIfMatchETag needs the device\'s eTag');
      service.putDevice(device.id, deviceInputOf(device, authenticationFromBody(device.authentication)), mode === 'update' ? '*' : etag ?? '*');
      return;
    }
    case 'delete':
    case 'deleteifmatchetag':
      if (mode === 'deleteifmatchetag' && etag === undefined) throw badRequest('importMode deleteIfMatchETag needs the device\'s eTag');
      service.removeDevice(device.id, mode === 'delete' ? undefined : etag);
      return;
    case 'updatetwin':
    case 'updatetwinifmatchetag': {
      const twinEtag = bareEtag(device.twinETag);
      if (mode === 'updatetwinifmatchetag' && twinEtag === undefined) throw badRequest('importMode updateTwinIfMatchETag needs the twin\'s twinETag');
      const desired = device.properties?.desired ?? undefined;
      const tags = device.tags ?? undefined;
      service.updateTwin(device.id, { ...(tags ? { tags } : {}), ...(desired ? { desired } : {}) }, mode === 'updatetwin' ? undefined : twinEtag);
      return;
    }
  }
}

/** POST /devices: every entry is tried on its own; the answer lists the ones that failed. */
export async function bulk(ctx: RequestContext): Promise<void> {
  const devices = await readJson(ctx, bulkBody);
  const seen = new Set<string>();
  for (const device of devices) {
    if (seen.has(device.id)) throw badRequest(`device ${JSON.stringify(device.id)} appears more than once; a bulk call names each device once`);
    seen.add(device.id);
  }
  const errors: BulkError[] = [];
  for (const device of devices) {
    try {
      applyBulk(ctx, device);
    } catch (error) {
      if (!(error instanceof HubError)) throw error;
      errors.push({ deviceId: device.id, errorCode: error.kind, errorStatus: error.message, operation: device.importMode });
    }
  }
  sendJson(ctx.res, errors.length === 0 ? 200 : 400, { isSuccessful: errors.length === 0, errors, warnings: [] });
}

const queryBody = z.object({ query: z.string().min(1) });

function parsed(sql: string): TwinQuery {
  try {
    return parseQuery(sql);
  } catch (error) {
    throw queryError(error);
  }
}

function queryError(error: unknown): unknown {
  if (error instanceof QueryNotSupportedError) return new HttpError(501, 'NotImplemented', 501000, error.message);
  if (error instanceof QuerySyntaxError) return badRequest(`the query is not valid: ${error.message}`);
  return error;
}

function pageSizeOf(ctx: RequestContext): number {
  const raw = ctx.req.headers['x-ms-max-item-count'];
  if (raw === undefined || raw === '') return DEFAULT_PAGE_SIZE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw badRequest('x-ms-max-item-count must be a positive integer');
  return n;
}

/** POST /devices/query: the twins (or the count, or the projected fields) the query selects. */
export async function query(ctx: RequestContext): Promise<void> {
  const { query: sql } = await readJson(ctx, queryBody);
  const twinQuery = parsed(sql);
  const pageSize = pageSizeOf(ctx);
  const token = ctx.req.headers['x-ms-continuation'];
  let offset = 0;
  try {
    if (typeof token === 'string' && token !== '') offset = decodeContinuation(sql, token);
  } catch (error) {
    throw queryError(error);
  }
  const service = ctx.deps.service;
  const stats = service.stats();
  const documents = service.listDevices().map((record: DeviceRecord) => twinDocument(record, service.readTwin(record.deviceId), stats));
  const { items, itemType } = runQuery(twinQuery, documents);
  const { page, continuation } = pageOf(sql, items, offset, pageSize);
  sendJson(ctx.res, 200, page, { 'x-ms-item-type': itemType, ...(continuation === undefined ? {} : { 'x-ms-continuation': continuation }) });
}

/** GET /statistics/devices */
export function deviceStatistics(ctx: RequestContext): void {
  const devices = ctx.deps.service.listDevices();
  const enabled = devices.filter((d) => d.status === 'enabled').length;
  sendJson(ctx.res, 200, { totalDeviceCount: devices.length, enabledDeviceCount: enabled, disabledDeviceCount: devices.length - enabled });
}

/** GET /statistics/service */
export function serviceStatistics(ctx: RequestContext): void {
  // A connected module does not make its device connected.
  const connected = new Set(ctx.deps.service.stats().connectedIdentities.filter((c) => c.moduleId === undefined).map((c) => c.deviceId));
  sendJson(ctx.res, 200, { connectedDeviceCount: connected.size });
}
