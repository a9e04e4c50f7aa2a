// The service REST API for module identities, on IoT Hub's own paths and JSON shapes as
// azure-iothub's Registry and Client call them: /devices/{id}/modules[/{mid}],
// /twins/{id}/modules/{mid} and /twins/{id}/modules/{mid}/methods.
import { z } from 'zod';
import type { ModuleInput, ModuleRecord, ModuleTwin } from '../core/module-types.ts';
import type { DeviceAuthentication, HubStats } from '../core/types.ts';
import { ifMatch, param, readJson, type RequestContext } from './context.ts';
import { authenticationFromBody } from './service-api.ts';
import { badRequest, sendEmpty, sendJson } from './respond.ts';

/** IoT Hub's "never" timestamp in registry documents. */
const NEVER = '0001-01-01T00:00:00Z';

function moduleConnectionState(stats: HubStats, deviceId: string, moduleId: string): 'Connected' | 'Disconnected' {
  return stats.connectedIdentities.some((c) => c.deviceId === deviceId && c.moduleId === moduleId) ? 'Connected' : 'Disconnected';
}

function authenticationJson(auth: DeviceAuthentication): Record<string, unknown> {
  if (auth.type === 'sas') {
    return { symmetricKey: { primaryKey: auth.primaryKey, secondaryKey: auth.secondaryKey }, x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null }, type: 'sas' };
  }
  return { symmetricKey: { primaryKey: null, secondaryKey: null }, x509Thumbprint: { primaryThumbprint: auth.primaryThumbprint, secondaryThumbprint: auth.secondaryThumbprint ?? null }, type: 'selfSigned' };
}

/** A module as IoT Hub's `GET /devices/{id}/modules/{mid}` returns it. */
function moduleJson(record: ModuleRecord, stats: HubStats): Record<string, unknown> {
  return {
    moduleId: record.moduleId,
    managedBy: record.managedBy,
    deviceId: record.deviceId,
    generationId: record.generationId,
    etag: record.etag,
    connectionState: moduleConnectionState(stats, record.deviceId, record.moduleId),
    connectionStateUpdatedTime: NEVER,
    lastActivityTime: NEVER,
    // Modules have no cloud-to-device queue in IoT Hub.
    cloudToDeviceMessageCount: 0,
    authentication: authenticationJson(record.authentication),
  };
}

// Registry.addModule sends empty keys for "generate them"; read-only fields a client echoes back
// from a GET (etag, connectionState, …) are accepted and ignored.
const modulePutBody = z.object({
  deviceId: z.string().optional(),
  moduleId: z.string().optional(),
  managedBy: z.string().max(128).nullish(),
  authentication: z
    .object({
      type: z.enum(['sas', 'selfSigned', 'certificateAuthority', 'none']).optional(),
      symmetricKey: z.object({ primaryKey: z.string().nullish(), secondaryKey: z.string().nullish() }).nullish(),
      x509Thumbprint: z.object({ primaryThumbprint: z.string().nullish(), secondaryThumbprint: z.string().nullish() }).nullish(),
    })
    .nullish(),
});


export function listModules(ctx: RequestContext): void {
  const modules = ctx.deps.service.listModules(param(ctx.params, 'deviceId'));
  const stats = ctx.deps.service.stats();
  sendJson(ctx.res, 200, modules.map((m) => moduleJson(m, stats)));
}

export function getModule(ctx: RequestContext): void {
  const record = ctx.deps.service.requireModule(param(ctx.params, 'deviceId'), param(ctx.params, 'moduleId'));
  sendJson(ctx.res, 200, moduleJson(record, ctx.deps.service.stats()), { ETag: `"${record.etag}"` });
}

export async function putModule(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const moduleId = param(ctx.params, 'moduleId');
  const body = await readJson(ctx, modulePutBody.optional());
  if (body?.deviceId !== undefined && body.deviceId !== deviceId) throw badRequest(`deviceId ${JSON.stringify(body.deviceId)} in the body does not match ${JSON.stringify(deviceId)} in the path`);
  if (body?.moduleId !== undefined && body.moduleId !== moduleId) throw badRequest(`moduleId ${JSON.stringify(body.moduleId)} in the body does not match ${JSON.stringify(moduleId)} in the path`);
  // The same authentication rules as a device's (keys generated when absent, both or neither).
  const authentication = authenticationFromBody(body?.authentication as Parameters<typeof authenticationFromBody>[0]);
  const input: ModuleInput = { ...(authentication ? { authentication } : {}), ...(typeof body?.managedBy === 'string' ? { managedBy: body.managedBy } : {}) };
  const record = ctx.deps.service.putModule(deviceId, moduleId, input, ifMatch(ctx.req));
  sendJson(ctx.res, 200, moduleJson(record, ctx.deps.service.stats()), { ETag: `"${record.etag}"` });
}

export function deleteModule(ctx: RequestContext): void {
  ctx.deps.service.removeModule(param(ctx.params, 'deviceId'), param(ctx.params, 'moduleId'), ifMatch(ctx.req));
  sendEmpty(ctx.res, 204);
}

/** A module twin as IoT Hub's `GET /twins/{id}/modules/{mid}` returns it. */
function moduleTwinJson(ctx: RequestContext, twin: ModuleTwin): Record<string, unknown> {
  const record = ctx.deps.service.requireModule(twin.deviceId, twin.moduleId);
  const device = ctx.deps.core.getDevice(twin.deviceId);
  const auth = record.authentication;
  return {
    deviceId: twin.deviceId,
    moduleId: twin.moduleId,
    etag: twin.etag,
    deviceEtag: record.etag,
    status: device?.status ?? 'enabled',
    statusUpdateTime: NEVER,
    connectionState: moduleConnectionState(ctx.deps.service.stats(), twin.deviceId, twin.moduleId),
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authenticationType: auth.type === 'sas' ? 'sas' : 'selfSigned',
    x509Thumbprint: auth.type === 'sas' ? { primaryThumbprint: null, secondaryThumbprint: null } : { primaryThumbprint: auth.primaryThumbprint, secondaryThumbprint: auth.secondaryThumbprint ?? null },
    modelId: '',
    version: twin.version,
    tags: twin.tags,
    properties: {
      desired: { ...twin.desired, $metadata: twin.metadata.desired },
      reported: { ...twin.reported, $metadata: twin.metadata.reported },
    },
  };
}

export function getModuleTwin(ctx: RequestContext): void {
  const twin = ctx.deps.service.readModuleTwin(param(ctx.params, 'deviceId'), param(ctx.params, 'moduleId'));
  sendJson(ctx.res, 200, moduleTwinJson(ctx, twin), { ETag: `"${twin.etag}"` });
}

const twinPatchBody = z.object({
  properties: z.object({ desired: z.record(z.string(), z.unknown()).optional() }).optional(),
  tags: z.record(z.string(), z.unknown()).optional(),
});

export async function patchModuleTwin(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const moduleId = param(ctx.params, 'moduleId');
  const body = await readJson(ctx, twinPatchBody);
  const desired = body.properties?.desired;
  if (body.tags === undefined && desired === undefined) throw badRequest('the patch needs tags, properties.desired or both');
  const twin = ctx.deps.service.updateModuleTwin(deviceId, moduleId, { ...(body.tags === undefined ? {} : { tags: body.tags }), ...(desired === undefined ? {} : { desired }) }, ifMatch(ctx.req));
  sendJson(ctx.res, 200, moduleTwinJson(ctx, twin), { ETag: `"${twin.etag}"` });
}

// IoT Hub's bounds, as for device methods: response timeout 5–300 s, connect timeout 0–300 s.
const methodBody = z.object({
  methodName: z.string().min(1).max(128),
  payload: z.unknown().optional(),
  responseTimeoutInSeconds: z.number().int().min(5).max(300).optional(),
  connectTimeoutInSeconds: z.number().int().min(0).max(300).optional(),
});

export async function invokeModuleMethod(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const moduleId = param(ctx.params, 'moduleId');
  const body = await readJson(ctx, methodBody);
  const result = await ctx.deps.service.invokeModuleMethod(deviceId, moduleId, {
    methodName: body.methodName,
    ...(body.payload === undefined ? {} : { payload: body.payload }),
    ...(body.responseTimeoutInSeconds === undefined ? {} : { responseTimeoutInSeconds: body.responseTimeoutInSeconds }),
    ...(body.connectTimeoutInSeconds === undefined ? {} : { connectTimeoutInSeconds: body.connectTimeoutInSeconds }),
  });
  sendJson(ctx.res, 200, { status: result.status, payload: result.payload ?? null });
}
