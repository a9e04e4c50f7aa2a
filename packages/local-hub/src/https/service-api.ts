// The service REST API: IoT Hub's own registry, twin and method paths with its JSON shapes, plus
// `/local/…` for what IoT Hub offers only through Event Hubs or AMQP (C2D send, telemetry, stats).
import { z } from 'zod';
import { HubError } from '../core/errors.ts';
import type { DeviceAuthentication, DeviceInput, DeviceRecord, HubStats, ServiceTwinDocument, TelemetryRecord } from '../core/types.ts';
import type { FaultInjector } from '../faults/injector.ts';
import { NETWORK_FAULTS } from '../faults/injector.ts';
import { KILL_FAULTS, MAX_FAULT_SECONDS, WINDOW_FAULTS } from '../faults/vocabulary.ts';
import { ifMatch, param, readJson, type RequestContext } from './context.ts';
import { badRequest, HttpError, sendEmpty, sendJson } from './respond.ts';
import { describeZodError } from './wire.ts';

/** IoT Hub's "never" timestamp in registry documents. */
const NEVER = '0001-01-01T00:00:00Z';

export function connectionState(stats: HubStats, deviceId: string): 'Connected' | 'Disconnected' {
  // A connected module of the device does not make the device itself connected.
  return stats.connectedIdentities.some((c) => c.deviceId === deviceId && c.moduleId === undefined) ? 'Connected' : 'Disconnected';
}

function authenticationJson(auth: DeviceAuthentication): Record<string, unknown> {
  if (auth.type === 'sas') {
    return { symmetricKey: { primaryKey: auth.primaryKey, secondaryKey: auth.secondaryKey }, x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null }, type: 'sas' };
  }
  return { symmetricKey: { primaryKey: null, secondaryKey: null }, x509Thumbprint: { primaryThumbprint: auth.primaryThumbprint, secondaryThumbprint: auth.secondaryThumbprint ?? null }, type: 'selfSigned' };
}

/** A registry device as IoT Hub's `GET /devices/{id}` returns it. */
export function deviceJson(record: DeviceRecord, stats: HubStats): Record<string, unknown> {
  return {
    deviceId: record.deviceId,
    moduleId: null,
    generationId: record.generationId,
    etag: record.etag,
    connectionState: connectionState(stats, record.deviceId),
    status: record.status,
    statusReason: record.statusReason ?? null,
    connectionStateUpdatedTime: NEVER,
    statusUpdatedTime: record.statusUpdatedTime ?? NEVER,
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: stats.devices[record.deviceId]?.queuedC2D ?? 0,
    authentication: authenticationJson(record.authentication),
    capabilities: { iotEdge: false },
  };
}

const keySchema = z
  .string()
  .refine((key) => /^[A-Za-z0-9+/]+={0,2}$/.test(key) && key.length % 4 === 0 && Buffer.from(key, 'base64').length >= 16 && Buffer.from(key, 'base64').length <= 64, 'must be base64 of 16 to 64 bytes');
const thumbprintSchema = z.string().regex(/^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$/, 'must be a SHA-1 (40 hex) or SHA-256 (64 hex) thumbprint');

// Read-only fields a client echoes back from a GET (connectionState, etag, …) are accepted and ignored.
export const devicePutBody = z.object({
  deviceId: z.string().optional(),
  status: z.enum(['enabled', 'disabled']).optional(),
  statusReason: z.string().max(128).nullish(),
  authentication: z
    .object({
      type: z.enum(['sas', 'selfSigned', 'certificateAuthority', 'none']).optional(),
      // azure-iothub sends '' for keys it wants the hub to generate.
      symmetricKey: z.object({ primaryKey: z.literal('').or(keySchema).nullish(), secondaryKey: z.literal('').or(keySchema).nullish() }).nullish(),
      x509Thumbprint: z.object({ primaryThumbprint: thumbprintSchema.nullish(), secondaryThumbprint: thumbprintSchema.nullish() }).nullish(),
    })
    .nullish(),
});

export function authenticationFromBody(auth: z.infer<typeof devicePutBody>['authentication']): DeviceAuthentication | undefined {
  if (!auth) return undefined;
  const type = auth.type ?? (auth.x509Thumbprint?.primaryThumbprint ? 'selfSigned' : 'sas');
  if (type === 'sas') {
    const primaryKey = auth.symmetricKey?.primaryKey || undefined;
    const secondaryKey = auth.symmetricKey?.secondaryKey || undefined;
    // Neither key: the hub generates both for a new device, as IoT Hub does, and keeps an existing device's.
    if (primaryKey === undefined && secondaryKey === undefined) return undefined;
    if (primaryKey === undefined || secondaryKey === undefined) throw badRequest('authentication.symmetricKey needs both primaryKey and secondaryKey, or neither to have them generated');
    return { type: 'sas', primaryKey, secondaryKey };
  }
  if (type === 'selfSigned') {
    const primaryThumbprint = auth.x509Thumbprint?.primaryThumbprint ?? undefined;
    if (primaryThumbprint === undefined) throw badRequest('authentication.x509Thumbprint.primaryThumbprint is required for type selfSigned');
    const secondaryThumbprint = auth.x509Thumbprint?.secondaryThumbprint ?? undefined;
    return { type: 'x509-thumbprint', primaryThumbprint, ...(secondaryThumbprint === undefined ? {} : { secondaryThumbprint }) };
  }
  throw badRequest(`authentication.type ${type} is not supported by the local hub (use sas or selfSigned)`);
}

export function listDevices(ctx: RequestContext): void {
  const top = ctx.query.get('top');
  const limit = top === null ? undefined : Number(top);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw badRequest('top must be a positive integer');
  const stats = ctx.deps.service.stats();
  const devices = ctx.deps.service.listDevices().slice(0, limit);
  sendJson(ctx.res, 200, devices.map((d) => deviceJson(d, stats)));
}

function requireDevice(ctx: RequestContext, deviceId: string): DeviceRecord {
  const record = ctx.deps.core.getDevice(deviceId);
  if (!record) throw new HubError('DeviceNotFound', `device ${JSON.stringify(deviceId)} is not registered`);
  return record;
}

export function getDevice(ctx: RequestContext): void {
  const record = requireDevice(ctx, param(ctx.params, 'deviceId'));
  sendJson(ctx.res, 200, deviceJson(record, ctx.deps.service.stats()), { ETag: `"${record.etag}"` });
}

export async function putDevice(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const body = await readJson(ctx, devicePutBody.optional());
  if (body?.deviceId !== undefined && body.deviceId !== deviceId) throw badRequest(`deviceId ${JSON.stringify(body.deviceId)} in the body does not match ${JSON.stringify(deviceId)} in the path`);
  const authentication = authenticationFromBody(body?.authentication);
  const record = ctx.deps.service.putDevice(deviceId, deviceInputOf(body ?? {}, authentication), ifMatch(ctx.req));
  sendJson(ctx.res, 200, deviceJson(record, ctx.deps.service.stats()), { ETag: `"${record.etag}"` });
}

/** What a PUT or bulk body asks of the registry; what it leaves out stays as it is. */
export function deviceInputOf(body: Pick<z.infer<typeof devicePutBody>, 'status' | 'statusReason'>, authentication: DeviceAuthentication | undefined): DeviceInput {
  return {
    ...(authentication ? { authentication } : {}),
    ...(body.status ? { status: body.status } : {}),
    ...(body.statusReason === undefined ? {} : { statusReason: body.statusReason }),
  };
}

export function deleteDevice(ctx: RequestContext): void {
  ctx.deps.service.removeDevice(param(ctx.params, 'deviceId'), ifMatch(ctx.req));
  sendEmpty(ctx.res, 204);
}

function twinJson(ctx: RequestContext, deviceId: string, twin: ServiceTwinDocument): Record<string, unknown> {
  return twinDocument(requireDevice(ctx, deviceId), twin, ctx.deps.service.stats());
}

/** A twin as IoT Hub's `GET /twins/{id}` returns it, and as queries see it. */
export function twinDocument(record: DeviceRecord, twin: ServiceTwinDocument, stats: HubStats): Record<string, unknown> {
  const deviceId = record.deviceId;
  const auth = record.authentication;
  return {
    deviceId,
    etag: twin.etag,
    deviceEtag: record.etag,
    status: record.status,
    statusUpdateTime: record.statusUpdatedTime ?? NEVER,
    connectionState: connectionState(stats, deviceId),
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: stats.devices[deviceId]?.queuedC2D ?? 0,
    authenticationType: auth.type === 'sas' ? 'sas' : 'selfSigned',
    x509Thumbprint: auth.type === 'sas' ? { primaryThumbprint: null, secondaryThumbprint: null } : { primaryThumbprint: auth.primaryThumbprint, secondaryThumbprint: auth.secondaryThumbprint ?? null },
    version: twin.version,
    tags: twin.tags,
    properties: {
      desired: { ...twin.desired, $metadata: twin.metadata.desired },
      reported: { ...twin.reported, $metadata: twin.metadata.reported },
    },
  };
}

export function getTwin(ctx: RequestContext): void {
  const deviceId = param(ctx.params, 'deviceId');
  requireDevice(ctx, deviceId);
  const twin = ctx.deps.service.readTwin(deviceId);
  sendJson(ctx.res, 200, twinJson(ctx, deviceId, twin), { ETag: `"${twin.etag}"` });
}

// Read-only fields a client echoes back from a GET (deviceId, etag, reported, …) are accepted and ignored.
const twinPatchBody = z.object({
  properties: z.object({ desired: z.record(z.string(), z.unknown()).optional() }).optional(),
  tags: z.record(z.string(), z.unknown()).optional(),
});

export async function patchTwin(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const body = await readJson(ctx, twinPatchBody);
  const desired = body.properties?.desired;
  if (body.tags === undefined && desired === undefined) throw badRequest('the patch needs tags, properties.desired or both');
  requireDevice(ctx, deviceId);
  const twin = ctx.deps.service.updateTwin(deviceId, { ...(body.tags === undefined ? {} : { tags: body.tags }), ...(desired === undefined ? {} : { desired }) }, ifMatch(ctx.req));
  sendJson(ctx.res, 200, twinJson(ctx, deviceId, twin), { ETag: `"${twin.etag}"` });
}

// IoT Hub's bounds: response timeout 5–300 s, connect timeout 0–300 s.
const methodBody = z.object({
  methodName: z.string().min(1).max(128),
  payload: z.unknown().optional(),
  responseTimeoutInSeconds: z.number().int().min(5).max(300).optional(),
  connectTimeoutInSeconds: z.number().int().min(0).max(300).optional(),
});

export async function invokeMethod(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const body = await readJson(ctx, methodBody);
  requireDevice(ctx, deviceId);
  const result = await ctx.deps.service.invokeMethod(deviceId, {
    methodName: body.methodName,
    ...(body.payload === undefined ? {} : { payload: body.payload }),
    ...(body.responseTimeoutInSeconds === undefined ? {} : { responseTimeoutInSeconds: body.responseTimeoutInSeconds }),
    ...(body.connectTimeoutInSeconds === undefined ? {} : { connectTimeoutInSeconds: body.connectTimeoutInSeconds }),
  });
  sendJson(ctx.res, 200, { status: result.status, payload: result.payload ?? null });
}

const c2dBody = z
  .object({
    body: z.string(),
    properties: z.record(z.string(), z.string()).optional(),
    messageId: z.string().min(1).max(128).optional(),
    correlationId: z.string().min(1).max(128).optional(),
    ttlSeconds: z.number().int().positive().max(2 * 24 * 3600).optional(),
    ack: z.enum(['none', 'positive', 'negative', 'full']).optional(),
  })
  .strict();

export async function sendC2D(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const body = await readJson(ctx, c2dBody);
  const message = ctx.deps.service.sendC2D(deviceId, {
    body: Buffer.from(body.body, 'utf8'),
    ...(body.properties ? { properties: body.properties } : {}),
    ...(body.messageId ? { messageId: body.messageId } : {}),
    ...(body.correlationId ? { correlationId: body.correlationId } : {}),
    ...(body.ttlSeconds ? { ttlSeconds: body.ttlSeconds } : {}),
    ...(body.ack ? { ack: body.ack } : {}),
  });
  sendJson(ctx.res, 201, { messageId: message.messageId, ...(message.correlationId ? { correlationId: message.correlationId } : {}), enqueuedTimeUtc: new Date(message.enqueuedAt).toISOString(), expiryTimeUtc: new Date(message.expiresAt).toISOString() });
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** `body` is always a string; bytes that are not UTF-8 also come as `bodyBase64`. */
function telemetryJson(record: TelemetryRecord): Record<string, unknown> {
  let body: string;
  let bodyBase64: string | undefined;
  try {
    body = strictUtf8.decode(record.body);
  } catch {
    body = record.body.toString('utf8');
    bodyBase64 = record.body.toString('base64');
  }
  return {
    sequenceNumber: record.sequenceNumber,
    deviceId: record.deviceId,
    body,
    ...(bodyBase64 === undefined ? {} : { bodyBase64 }),
    properties: record.properties,
    systemProperties: record.systemProperties,
    protocol: record.protocol,
    receivedAt: record.receivedAt,
  };
}

const telemetryQuery = z.object({ after: z.coerce.number().int().min(0).optional() });

export function listTelemetry(ctx: RequestContext): void {
  const deviceId = param(ctx.params, 'deviceId');
  const parsed = telemetryQuery.safeParse({ after: ctx.query.get('after') ?? undefined });
  if (!parsed.success) throw badRequest(`invalid query: ${describeZodError(parsed.error)}`);
  const records = ctx.deps.service.telemetry({ deviceId, ...(parsed.data.after === undefined ? {} : { afterSequence: parsed.data.after }) });
  sendJson(ctx.res, 200, records.map(telemetryJson));
}

export function listFiles(ctx: RequestContext): void {
  const deviceId = param(ctx.params, 'deviceId');
  const files = ctx.blobs.list(deviceId).map(({ content, ...rest }) => ({
    ...rest,
    size: content?.length ?? null,
    contentBase64: content?.toString('base64') ?? null,
  }));
  sendJson(ctx.res, 200, files);
}

export function stats(ctx: RequestContext): void {
  sendJson(ctx.res, 200, ctx.deps.service.stats());
}

function faultsOf(ctx: RequestContext): FaultInjector {
  if (!ctx.deps.faults) throw new HttpError(404, 'NotFound', 404000, 'fault injection is not enabled on this front-end');
  return ctx.deps.faults;
}

// Either one of IoT Hub's own faults (what the AzIoTHub_Fault* properties request) or a network fault.
const faultBody = z.union([
  z.object({
    type: z.enum([...KILL_FAULTS, ...WINDOW_FAULTS]),
    delaySeconds: z.number().min(0).max(MAX_FAULT_SECONDS).optional(),
    durationSeconds: z.number().min(0).max(MAX_FAULT_SECONDS).optional(),
    closeReason: z.string().max(1024).optional(),
  }).strict(),
  z.object({
    kind: z.enum(NETWORK_FAULTS),
    seconds: z.number().positive().max(MAX_FAULT_SECONDS).optional(),
    delayMs: z.number().int().positive().max(60_000).optional(),
  }).strict(),
]);

export async function injectFault(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const body = await readJson(ctx, faultBody);
  requireDevice(ctx, deviceId);
  const faults = faultsOf(ctx);
  const event = 'type' in body
    ? faults.inject(deviceId, {
      type: body.type,
      ...(body.closeReason === undefined ? {} : { closeReason: body.closeReason }),
      ...(body.delaySeconds === undefined ? {} : { delaySeconds: body.delaySeconds }),
      ...(body.durationSeconds === undefined ? {} : { durationSeconds: body.durationSeconds }),
    })
    : faults.network(deviceId, {
      kind: body.kind,
      ...(body.seconds === undefined ? {} : { seconds: body.seconds }),
      ...(body.delayMs === undefined ? {} : { delayMs: body.delayMs }),
    });
  sendJson(ctx.res, 202, event);
}

export function listFaults(ctx: RequestContext): void {
  sendJson(ctx.res, 200, faultsOf(ctx).active().map((f) => ({ ...f, startsAt: new Date(f.startsAt).toISOString(), endsAt: new Date(f.endsAt).toISOString() })));
}

export function clearFaults(ctx: RequestContext): void {
  const deviceId = param(ctx.params, 'deviceId');
  requireDevice(ctx, deviceId);
  sendJson(ctx.res, 200, { cleared: faultsOf(ctx).clear(deviceId) });
}
