// IoT Hub's HTTPS device API: telemetry (single and batch), C2D polling and settlement, and the
// two file-upload calls. The caller has already authenticated the device named in the path.
import { z } from 'zod';
import { HubError } from '../core/errors.ts';
import { ifMatch, MAX_MESSAGE_BYTES, param, readJson, readLimited, type RequestContext } from './context.ts';
import { sendEmpty, sendJson } from './respond.ts';
import { BLOB_CONTAINER } from './routes.ts';
import { c2dHeaders, isBatch, telemetryFromBatch, telemetryFromHeaders } from './wire.ts';

export async function telemetry(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const body = await readLimited(ctx, MAX_MESSAGE_BYTES);
  // Parse the whole batch before accepting any of it, so a malformed batch delivers nothing.
  const messages = isBatch(ctx.req.headers) ? telemetryFromBatch(body) : [telemetryFromHeaders(ctx.req.headers, body)];
  for (const message of messages) ctx.deps.core.acceptTelemetry(deviceId, 'https', message);
  sendEmpty(ctx.res, 204);
}

export function receiveC2D(ctx: RequestContext): void {
  const deviceId = param(ctx.params, 'deviceId');
  const message = ctx.deps.core.pollC2D(deviceId);
  if (!message) {
    sendEmpty(ctx.res, 204);
    return;
  }
  const { headers, dropped } = c2dHeaders(message);
  if (dropped.length > 0) ctx.deps.logger.warn('C2D properties that cannot be HTTP header names were not sent', { deviceId, messageId: message.messageId, dropped });
  ctx.res.writeHead(200, { ...headers, 'Content-Length': String(message.body.length) });
  ctx.res.end(message.body);
}

/** azure-iot-device sends `If-Match: <lockToken>` unquoted; a mismatch with the path is refused. */
function checkLockHeader(ctx: RequestContext, lockToken: string): void {
  const header = ifMatch(ctx.req);
  if (header !== undefined && header !== '*' && header !== lockToken) {
    throw new HubError('PreconditionFailed', 'If-Match does not match the lock token in the path');
  }
}

export function completeOrRejectC2D(ctx: RequestContext): void {
  const deviceId = param(ctx.params, 'deviceId');
  const lockToken = param(ctx.params, 'lockToken');
  checkLockHeader(ctx, lockToken);
  // The SDK appends a bare `&reject`; `reject=false` is read as complete.
  const reject = ctx.query.has('reject') && ctx.query.get('reject')?.toLowerCase() !== 'false';
  ctx.deps.core.settleC2D(deviceId, lockToken, reject ? 'reject' : 'complete');
  sendEmpty(ctx.res, 204);
}

export function abandonC2D(ctx: RequestContext): void {
  const deviceId = param(ctx.params, 'deviceId');
  const lockToken = param(ctx.params, 'lockToken');
  checkLockHeader(ctx, lockToken);
  ctx.deps.core.settleC2D(deviceId, lockToken, 'abandon');
  sendEmpty(ctx.res, 204);
}

const fileSasBody = z.object({
  blobName: z
    .string()
    .min(1)
    .max(1024)
    .refine((name) => !name.split('/').some((part) => part === '' || part === '.' || part === '..'), 'blobName must be a relative path without empty, "." or ".." segments'),
});

/**
 * Where the blob client should PUT: this listener's own address, because the blob container lives
 * on the same HTTPS listener and the Host header may be a hub name that only a redirecting agent
 * can reach.
 */
function blobHostName(ctx: RequestContext): string {
  const { localAddress, localPort } = ctx.req.socket;
  if (!localAddress || !localPort) return ctx.deps.core.hostName;
  return `${localAddress.includes(':') ? `[${localAddress}]` : localAddress}:${localPort}`;
}

export async function fileUploadSas(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const { blobName } = await readJson(ctx, fileSasBody);
  const upload = ctx.blobs.begin(deviceId, blobName);
  sendJson(ctx.res, 200, { correlationId: upload.correlationId, hostName: blobHostName(ctx), containerName: upload.containerName, blobName: upload.blobName, sasToken: upload.sasToken });
}

const notificationBody = z.object({
  correlationId: z.string().min(1).optional(),
  isSuccess: z.boolean(),
  statusCode: z.number().int(),
  statusDescription: z.string().default(''),
});

export async function fileUploadNotification(ctx: RequestContext): Promise<void> {
  const deviceId = param(ctx.params, 'deviceId');
  const body = await readJson(ctx, notificationBody);
  const correlationId = ctx.params.correlationId ?? body.correlationId;
  if (correlationId === undefined) throw new HubError('ArgumentInvalid', 'correlationId is required (in the path or the body)');
  if (!ctx.blobs.notify(deviceId, correlationId, { isSuccess: body.isSuccess, statusCode: body.statusCode, statusDescription: body.statusDescription })) {
    throw new HubError('ArgumentInvalid', `correlationId ${JSON.stringify(correlationId)} is not a file upload of device ${JSON.stringify(deviceId)}`);
  }
  const upload = body.isSuccess ? ctx.blobs.list(deviceId).find((u) => u.correlationId === correlationId) : undefined;
  if (upload && ctx.deps.onFileUploaded) {
    try {
      ctx.deps.onFileUploaded({
        deviceId,
        blobName: upload.blobName,
        blobUri: `https://${blobHostName(ctx)}/${BLOB_CONTAINER}/${upload.blobName.split('/').map(encodeURIComponent).join('/')}`,
        blobSizeInBytes: upload.content?.length ?? 0,
        lastUpdatedTime: upload.committedAt ?? upload.createdAt,
      });
    } catch (e) {
      ctx.deps.logger.warn('file upload notification failed', { deviceId, error: e instanceof Error ? e.message : String(e) });
    }
  }
  sendEmpty(ctx.res, 204);
}
