// The HTTPS front-end: IoT Hub's device REST API, its service REST API, the `/local/` extensions
// and a blob container for file upload, all behind one request handler that hub.ts mounts on the
// HTTPS listener (WebSocket upgrades go elsewhere).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { redactSecrets } from '@switchyard/errors';
import { HubError } from '../core/errors.ts';
import { isModuleIdentity } from '../core/identity.ts';
import type { FrontEnd } from '../core/types.ts';
import { streamFaultTarget } from '../faults/targets.ts';
import { authenticateDevice, authenticateServiceRequest, refuseDevice } from './auth.ts';
import { BlobStore, DEFAULT_BLOB_LIMITS, StorageError, STORAGE_VERSION, storageErrorXml, type BlobStoreLimits } from './blob-store.ts';
import { readBody } from './body.ts';
import { DRAIN, MAX_BLOB_BLOCK_BYTES, param, RequestAborted, type FrontEndDeps, type RequestContext } from './context.ts';
import * as device from './device-api.ts';
import * as modules from './module-api.ts';
import { badRequest, errorResponse, HttpError, sendEmpty, sendJson, unauthorized } from './respond.ts';
import { BLOB_CONTAINER, matchRoute, type RouteName } from './routes.ts';
import * as registry from './registry-api.ts';
import * as service from './service-api.ts';
import * as consumerGroups from './consumer-groups-api.ts';
import { rightsFor } from './service-rights.ts';

export { BLOB_CONTAINER } from './routes.ts';
export type { BlobStoreLimits, UploadRecord } from './blob-store.ts';
export type { FrontEndDeps } from './context.ts';

export interface HttpsFrontEnd extends FrontEnd {
  handleRequest(req: IncomingMessage, res: ServerResponse): void;
}

type Handler = (ctx: RequestContext) => void | Promise<void>;

const HANDLERS: Record<RouteName, Handler> = {
  telemetry: device.telemetry,
  'c2d-receive': device.receiveC2D,
  'c2d-complete': device.completeOrRejectC2D,
  'c2d-abandon': device.abandonC2D,
  'file-sas': device.fileUploadSas,
  'file-notify': device.fileUploadNotification,
  'device-list': service.listDevices,
  'device-get': service.getDevice,
  'device-put': service.putDevice,
  'device-delete': service.deleteDevice,
  'twin-get': service.getTwin,
  'twin-patch': service.patchTwin,
  'method-invoke': service.invokeMethod,
  'module-list': modules.listModules,
  'module-get': modules.getModule,
  'module-put': modules.putModule,
  'module-delete': modules.deleteModule,
  'module-twin-get': modules.getModuleTwin,
  'module-twin-patch': modules.patchModuleTwin,
  'module-method-invoke': modules.invokeModuleMethod,
  'device-bulk': registry.bulk,
  'device-query': registry.query,
  'statistics-devices': registry.deviceStatistics,
  'statistics-service': registry.serviceStatistics,
  'local-c2d': service.sendC2D,
  'local-telemetry': service.listTelemetry,
  'local-files': service.listFiles,
  'local-stats': service.stats,
  'local-faults-list': service.listFaults,
  'local-faults-inject': service.injectFault,
  'local-faults-clear': service.clearFaults,
  'local-consumer-groups-list': consumerGroups.listConsumerGroups,
  'local-consumer-group-put': consumerGroups.putConsumerGroup,
  'local-consumer-group-delete': consumerGroups.deleteConsumerGroup,
  'blob-put': putBlob,
};

async function putBlob(ctx: RequestContext): Promise<void> {
  const result = await readBody(ctx.req, { maxBytes: MAX_BLOB_BLOCK_BYTES, ...DRAIN });
  if (!result.ok) {
    if (result.reason === 'aborted') throw new RequestAborted();
    throw new StorageError(413, 'RequestBodyTooLarge', `a block may hold at most ${MAX_BLOB_BLOCK_BYTES} bytes`);
  }
  const stamp = ctx.blobs.put(param(ctx.params, 'blobPath'), ctx.query, ctx.req.headers, result.body);
  sendEmpty(ctx.res, 201, { ETag: stamp.etag, 'Last-Modified': stamp.lastModified, 'x-ms-version': STORAGE_VERSION, 'x-ms-request-server-encrypted': 'false' });
}

function splitUrl(url: string): { rawPath: string; query: URLSearchParams } {
  const q = url.indexOf('?');
  return { rawPath: q < 0 ? url : url.slice(0, q), query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)) };
}

export function createHttpsFrontEnd(deps: FrontEndDeps, options: { blobLimits?: BlobStoreLimits } = {}): HttpsFrontEnd {
  const blobs = new BlobStore(options.blobLimits ?? DEFAULT_BLOB_LIMITS);
  /** Every socket seen, so close() can end keep-alive connections this front-end served. */
  const sockets = new Map<Socket, string>();
  /** Sockets that carried an authenticated device request: HubStats counts them as connections. */
  const deviceSockets = new Set<Socket>();
  let nextConnection = 1;
  let closed = false;

  function connectionIdOf(socket: Socket): string {
    let id = sockets.get(socket);
    if (id === undefined) {
      id = `https-${nextConnection++}`;
      sockets.set(socket, id);
      socket.once('close', () => {
        sockets.delete(socket);
        if (deviceSockets.delete(socket)) deps.core.connectionClosed('https', id as string);
      });
    }
    return id;
  }

  function markDeviceConnection(socket: Socket, connectionId: string, deviceId: string): void {
    if (deviceSockets.has(socket) || socket.destroyed) return;
    deviceSockets.add(socket);
    deps.core.connectionOpened('https', connectionId);
    const forget = deps.faults?.register(streamFaultTarget({ connectionId, protocol: 'https', socket, deviceIds: () => [deviceId], destroy: () => socket.destroy() }));
    if (forget) socket.once('close', forget);
  }

  function fail(ctx: { req: IncomingMessage; res: ServerResponse }, err: unknown, blob: boolean): void {
    // A refused request's body is never read: closing is cheaper than draining what may be endless.
    const unread: Record<string, string> = ctx.req.complete ? {} : { Connection: 'close' };
    if (err instanceof RequestAborted) {
      ctx.res.destroy();
      return;
    }
    if (ctx.res.headersSent) {
      ctx.res.destroy();
      return;
    }
    if (blob && err instanceof StorageError) {
      const xml = Buffer.from(storageErrorXml(err), 'utf8');
      ctx.res.writeHead(err.status, { 'Content-Type': 'application/xml', 'Content-Length': String(xml.length), 'x-ms-error-code': err.code, 'x-ms-version': STORAGE_VERSION, ...unread });
      ctx.res.end(xml);
      return;
    }
    const { status, body, headers } = errorResponse(err);
    // 501 is an answer about the local hub's scope, not a failure of it.
    if (status >= 500 && status !== 501) deps.logger.warn('https request failed', { method: ctx.req.method, path: splitUrl(ctx.req.url ?? '/').rawPath, error: redactSecrets(String((err as Error)?.stack ?? err)) });
    sendJson(ctx.res, status, body, { ...headers, ...unread });
  }

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const connectionId = connectionIdOf(req.socket);
    if (closed) {
      sendJson(res, 503, new HttpError(503, 'ServiceUnavailable', 503000, 'the local hub is shutting down').toBody(), { Connection: 'close' });
      return;
    }
    const { rawPath, query } = splitUrl(req.url ?? '/');
    if (!rawPath.startsWith('/')) throw badRequest('the request target must be an absolute path');
    const route = matchRoute(req.method ?? 'GET', rawPath);
    if (route.kind === 'bad-path') throw badRequest(route.message);
    if (route.kind === 'not-found') throw new HttpError(404, 'NotFound', 404000, `no ${req.method} ${rawPath} on the local hub`);
    if (route.kind === 'not-implemented') throw new HttpError(501, 'NotImplemented', 501000, `${route.operation} is not implemented by the local hub (${req.method} ${rawPath})`);
    if (route.kind === 'method-not-allowed') throw new HttpError(405, 'MethodNotAllowed', 405000, `${rawPath} does not support ${req.method}`, { Allow: route.allow.join(', ') });
    if (route.needsApiVersion && !query.get('api-version')) throw badRequest('the api-version query parameter is required (IoT Hub uses api-version=2021-04-12)');

    const ctx: RequestContext = { req, res, query, params: route.params, connectionId, deps, blobs };
    const what = `${req.method} ${route.name}`;
    if (route.auth === 'device') {
      const deviceId = param(route.params, 'deviceId');
      // An encoded '/' would name a module identity; IoT Hub's HTTPS device API is for devices.
      if (isModuleIdentity(deviceId)) throw new HubError('DeviceNotFound', `${JSON.stringify(deviceId)} is not a device id: the HTTPS device API does not serve module identities`);
      const auth = authenticateDevice(deps.core, req, deviceId);
      if (!auth.ok) refuseDevice(deps.core, auth, { deviceId, connectionId, what });
      // Defence in depth: the path, not the credential, names whose queue and telemetry this is.
      if (auth.deviceId !== deviceId) {
        deps.core.logRefusal({ deviceId, protocol: 'https', connectionId, what, why: `authenticated as ${auth.deviceId}` });
        throw unauthorized('the credential belongs to another device');
      }
      // A refused connection is cut before it counts; an open one may still be throttled (429).
      if (!deviceSockets.has(req.socket) && deps.faults?.admitConnection(deviceId, 'https', connectionId) === false) throw new RequestAborted();
      markDeviceConnection(req.socket, connectionId, deviceId);
      deps.faults?.admitHttpsRequest(deviceId);
    } else if (route.auth === 'service') {
      authenticateServiceRequest(deps.core, req, { connectionId, what, rights: rightsFor(route.name) });
    }
    // blob-sas routes are authorised by the blob SAS inside BlobStore.put.
    await HANDLERS[route.name](ctx);
  }

  return {
    handleRequest(req, res) {
      const isBlob = (req.url ?? '').startsWith(`/${BLOB_CONTAINER}/`);
      dispatch(req, res).catch((err: unknown) => {
        try {
          fail({ req, res }, err, isBlob);
        } catch {
          res.destroy();
        }
      });
    },
    async close() {
      closed = true;
      for (const socket of sockets.keys()) socket.destroy();
      sockets.clear();
    },
  };
}
