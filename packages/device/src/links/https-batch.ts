// IoT Hub's HTTPS batch (`application/vnd.microsoft.iothub.json`: one POST carrying many messages)
// with each message's system properties. The SDK's own sendEventBatch drops them, the message id
// included, and does not escape property values (azure-sdk-transports.md §5), so the outbox, whose
// replays a consumer tells apart by message id, cannot use it. Only the body is built here: the
// request goes through the SDK transport's own HTTP layer and credentials (its `ca` and agent, SAS
// renewal or X.509), reached through two fields of azure-iot-device-http 1.14.4 (`_http`,
// `_authenticationProvider`); when they are not there, there is no batch and messages go one by one.
import azureCommon from 'azure-iot-common';
import type { Message as AzureMessage } from 'azure-iot-device';
import type { DeviceMessage } from '../message.ts';
import { toAzureMessage } from '../message.ts';

/** IoT Hub's cap on one batch request's body. */
export const HTTPS_BATCH_MAX_BYTES = 256 * 1024;
/** What the messages of one batch may take, counted with batchElementBytes: the cap less the brackets' share. */
export const HTTPS_BATCH_ELEMENTS_BYTES = HTTPS_BATCH_MAX_BYTES - 1;
const APP_PREFIX = 'iothub-app-';
const DT_SUBJECT = 'dt-subject';

interface BatchElement {
  body: string;
  properties?: Record<string, string>;
}

function element(message: AzureMessage): BatchElement {
  const properties: Record<string, string> = {};
  for (let i = 0; i < message.properties.count(); i++) {
    const { key, value } = message.properties.getItem(i);
    properties[key === DT_SUBJECT ? key : APP_PREFIX + key] = String(value);
  }
  if (message.messageId) properties['iothub-messageid'] = String(message.messageId);
  if (message.correlationId) properties['iothub-correlationid'] = String(message.correlationId);
  if (message.contentType) properties['iothub-contenttype'] = String(message.contentType);
  if (message.contentEncoding) properties['iothub-contentencoding'] = String(message.contentEncoding);
  if (message.expiryTimeUtc) properties['iothub-expiry'] = String(message.expiryTimeUtc);
  const body = Buffer.from(message.getData() as Buffer).toString('base64');
  return Object.keys(properties).length === 0 ? { body } : { body, properties };
}

/**
 * Bytes `message` takes in a batch body, its separator included. A message that cannot travel
 * over HTTPS at all counts as more than a batch holds, so it goes alone and fails alone.
 */
export function batchElementBytes(message: DeviceMessage): number {
  try {
    return Buffer.byteLength(JSON.stringify(element(toAzureMessage(message, 'https')))) + 1;
  } catch {
    return HTTPS_BATCH_MAX_BYTES + 1;
  }
}

export function httpsBatchBody(messages: readonly DeviceMessage[]): string {
  return JSON.stringify(messages.map((m) => element(toAzureMessage(m, 'https'))));
}

interface Credentials {
  host: string;
  deviceId: string;
  sharedAccessSignature?: unknown;
  x509?: unknown;
}
interface HttpBase {
  buildRequest(method: string, path: string, headers: Record<string, string>, host: string, x509: unknown, done: (err: Error | null | undefined, body?: unknown, response?: unknown) => void): { write(body: string): void; end(): void };
}
interface HttpTransport {
  _http: HttpBase;
  _authenticationProvider: { getDeviceCredentials(done: (err?: Error, credentials?: Credentials) => void): void };
  _userAgentString?: string;
}

function isHttpTransport(value: unknown): value is HttpTransport {
  const t = value as Partial<HttpTransport> | undefined;
  return typeof t?._http?.buildRequest === 'function' && typeof t._authenticationProvider?.getDeviceCredentials === 'function';
}

export type BatchSend = (messages: readonly DeviceMessage[], done: (err?: unknown) => void) => void;

/** A sender of batches over `transport` (an azure-iot-device-http Http), or undefined if it is not one. */
export function httpsBatchSender(transport: unknown): BatchSend | undefined {
  if (!isHttpTransport(transport)) return undefined;
  return (messages, done) => {
    let body: string;
    try {
      body = httpsBatchBody(messages);
    } catch (err) {
      done(err);
      return;
    }
    transport._authenticationProvider.getDeviceCredentials((err, credentials) => {
      if (err || credentials === undefined) {
        done(err ?? new Error('no device credentials'));
        return;
      }
      const path = azureCommon.endpoint.deviceEventPath(azureCommon.encodeUriComponentStrict(credentials.deviceId));
      const headers: Record<string, string> = {
        'iothub-to': path,
        'Content-Type': 'application/vnd.microsoft.iothub.json',
        'Content-Length': String(Buffer.byteLength(body)),
      };
      if (transport._userAgentString !== undefined) headers['User-Agent'] = transport._userAgentString;
      if (credentials.sharedAccessSignature !== undefined && credentials.sharedAccessSignature !== null) headers.Authorization = String(credentials.sharedAccessSignature);
      try {
        const request = transport._http.buildRequest('POST', path + azureCommon.endpoint.versionQueryString(), headers, credentials.host, credentials.x509, (requestErr, _body, response) => {
          // The status is on the response, where translateError reads it (413 is MESSAGE_TOO_LARGE).
          if (requestErr) done(response === undefined ? requestErr : Object.assign(requestErr, { response }));
          else done();
        });
        request.write(body);
        request.end();
      } catch (requestErr) {
        done(requestErr);
      }
    });
  };
}
