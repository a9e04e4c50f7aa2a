// Pure parts of the HTTPS front-end: route matching, wire mapping, and the blob container.
import { describe, expect, it } from 'vitest';
import { BlobStore, StorageError } from '../src/https/blob-store.ts';
import { matchRoute } from '../src/https/routes.ts';
import { c2dHeaders, telemetryFromBatch, telemetryFromHeaders } from '../src/https/wire.ts';
import { HubError } from '../src/internal.ts';

describe('matchRoute', () => {
  it('maps IoT Hub device and service paths', () => {
    expect(matchRoute('POST', '/devices/d1/messages/events')).toMatchObject({ kind: 'match', name: 'telemetry', auth: 'device', params: { deviceId: 'd1' } });
    expect(matchRoute('DELETE', '/devices/d1/messages/devicebound/lock-1')).toMatchObject({ name: 'c2d-complete', params: { deviceId: 'd1', lockToken: 'lock-1' } });
    expect(matchRoute('POST', '/devices/d1/messages/devicebound/lock-1/abandon')).toMatchObject({ name: 'c2d-abandon' });
    expect(matchRoute('POST', '/devices/d1/files/notifications/abc%2Fdef')).toMatchObject({ name: 'file-notify', params: { correlationId: 'abc/def' } });
    expect(matchRoute('GET', '/devices/d1')).toMatchObject({ name: 'device-get', auth: 'service', needsApiVersion: true });
    expect(matchRoute('GET', '/local/stats')).toMatchObject({ name: 'local-stats', auth: 'service', needsApiVersion: false });
    expect(matchRoute('PUT', '/local-hub-files/d1/a/b.txt')).toMatchObject({ name: 'blob-put', auth: 'blob-sas', params: { blobPath: 'd1/a/b.txt' } });
  });

  it('decodes each segment after splitting, so an encoded slash stays inside the device id', () => {
    expect(matchRoute('POST', '/devices/a%2Fb/messages/events')).toMatchObject({ kind: 'match', params: { deviceId: 'a/b' } });
    expect(matchRoute('GET', '/devices/%E0%A4%A')).toMatchObject({ kind: 'bad-path' });
  });

  it('tells an unknown path from a known path with the wrong method', () => {
    expect(matchRoute('GET', '/devices/d1/messages/events')).toEqual({ kind: 'method-not-allowed', allow: ['POST'] });
    expect(matchRoute('PATCH', '/devices/d1')).toEqual({ kind: 'method-not-allowed', allow: ['DELETE', 'GET', 'PUT'] });
    expect(matchRoute('GET', '/devices/d1/unknown')).toEqual({ kind: 'not-found' });
    expect(matchRoute('GET', '/')).toEqual({ kind: 'not-found' });
    expect(matchRoute('POST', '/devices//messages/events')).toEqual({ kind: 'not-found' });
  });

  it('names the IoT Hub operations the local hub does not do, and still routes what it does', () => {
    expect(matchRoute('PUT', '/twins/d1')).toEqual({ kind: 'not-implemented', operation: 'replace twin (PUT /twins/{id})' });
    expect(matchRoute('GET', '/devices/d1/modules/m1')).toMatchObject({ kind: 'match', name: 'module-get', params: { deviceId: 'd1', moduleId: 'm1' } });
    expect(matchRoute('GET', '/configurations')).toMatchObject({ kind: 'not-implemented' });
    expect(matchRoute('POST', '/jobs/create')).toMatchObject({ kind: 'not-implemented' });
    expect(matchRoute('POST', '/devices/query')).toMatchObject({ kind: 'match', name: 'device-query' });
    expect(matchRoute('POST', '/devices')).toMatchObject({ kind: 'match', name: 'device-bulk' });
    expect(matchRoute('GET', '/statistics/devices')).toMatchObject({ kind: 'match', name: 'statistics-devices' });
    expect(matchRoute('GET', '/nothing/here')).toEqual({ kind: 'not-found' });
  });
});

describe('wire mapping', () => {
  it('reads system and application properties from headers (names arrive lower-cased)', () => {
    const input = telemetryFromHeaders(
      { 'iothub-messageid': 'm', 'iothub-correlationid': 'c', 'iothub-userid': 'u', 'iothub-contenttype': 'text/plain', 'iothub-contentencoding': 'utf-8', 'iothub-app-temp': '21', 'dt-subject': 'sensor', 'iothub-expiry': '2030-01-02T03:04:05.000Z', 'user-agent': 'x' },
      Buffer.from('b'),
    );
    expect(input.properties).toEqual({ temp: '21' });
    expect(input.systemProperties).toEqual({ messageId: 'm', correlationId: 'c', userId: 'u', contentType: 'text/plain', contentEncoding: 'utf-8', subject: 'sensor', expiryTimeUtc: '2030-01-02T03:04:05.000Z' });
  });

  it("normalizes the SDK's stringified Date expiry and refuses nonsense", () => {
    const asDateString = new Date('2030-01-02T03:04:05Z').toString();
    expect(telemetryFromHeaders({ 'iothub-expiry': asDateString }, Buffer.alloc(0)).systemProperties.expiryTimeUtc).toBe('2030-01-02T03:04:05.000Z');
    expect(() => telemetryFromHeaders({ 'iothub-expiry': 'tomorrow' }, Buffer.alloc(0))).toThrow(HubError);
  });

  it('parses the batch body exactly as azure-iot-device builds it (no base64Encoded flag)', () => {
    // Copied from the shape of azure-iot-device-http sendEventBatch's constructBatchBody.
    const body = '[{"body": "AAEC/w=="},{"body": "dHdv", "properties":{"iothub-app-k":"v","dt-subject":"s"}}]';
    const messages = telemetryFromBatch(Buffer.from(body));
    expect(messages.map((m) => m.body.toString('hex'))).toEqual(['000102ff', Buffer.from('two').toString('hex')]);
    expect(messages[1]?.properties).toEqual({ k: 'v' });
    expect(messages[1]?.systemProperties).toEqual({ subject: 's' });
  });

  it('honours base64Encoded: false and names the failing element', () => {
    const [plain] = telemetryFromBatch(Buffer.from('[{"body":"hi there","base64Encoded":false,"properties":{"bare":"1"}}]'));
    expect(plain?.body.toString()).toBe('hi there');
    expect(plain?.properties).toEqual({ bare: '1' });
    expect(() => telemetryFromBatch(Buffer.from('[]'))).toThrow(/at least one/);
    expect(() => telemetryFromBatch(Buffer.from('[{"body":"not base64!"}]'))).toThrow(/\[0\]\.body/);
    expect(() => telemetryFromBatch(Buffer.from('[{"body":"aGk=","properties":{"a":1}}]'))).toThrow(/\[0\]\.properties\.a/);
  });

  it('writes C2D headers with a quoted ETag and encodes what cannot be a header', () => {
    const { headers, dropped } = c2dHeaders({
      deviceId: 'd', messageId: 'm1', correlationId: 'c1', body: Buffer.from('x'), properties: { ok: 'yes', multi: 'line\nbreak', 'bad name': 'v' },
      to: '/devices/d/messages/devicebound', enqueuedAt: Date.UTC(2030, 0, 1), expiresAt: Date.UTC(2030, 0, 1, 1), deliveryCount: 2, lockToken: 'L1', lockedUntil: 0,
    });
    expect(headers).toMatchObject({ ETag: '"L1"', 'iothub-messageid': 'm1', 'iothub-correlationid': 'c1', 'iothub-deliverycount': '2', 'iothub-expiry': '2030-01-01T01:00:00.000Z', 'iothub-app-ok': 'yes', 'iothub-app-multi': 'line%0Abreak' });
    expect(dropped).toEqual(['bad name']);
  });
});

describe('BlobStore', () => {
  function sasQuery(sasToken: string, extra: Record<string, string> = {}): URLSearchParams {
    const query = new URLSearchParams(sasToken.slice(1));
    for (const [k, v] of Object.entries(extra)) query.set(k, v);
    return query;
  }

  it('stages blocks and commits them in block-list order', () => {
    const store = new BlobStore();
    const upload = store.begin('d1', 'f.txt');
    expect(upload.blobName).toBe('d1/f.txt');
    store.put(upload.blobName, sasQuery(upload.sasToken, { comp: 'block', blockid: 'Qg==' }), {}, Buffer.from('world'));
    store.put(upload.blobName, sasQuery(upload.sasToken, { comp: 'block', blockid: 'QQ==' }), {}, Buffer.from('hello '));
    store.put(upload.blobName, sasQuery(upload.sasToken, { comp: 'blocklist' }), {}, Buffer.from('<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QQ==</Latest><Latest>Qg==</Latest></BlockList>'));
    const [record] = store.list('d1');
    expect(record?.content?.toString()).toBe('hello world');
    expect(store.notify('d2', upload.correlationId, { isSuccess: true, statusCode: 201, statusDescription: '' })).toBe(false);
    expect(store.notify('d1', upload.correlationId, { isSuccess: true, statusCode: 201, statusDescription: 'ok' })).toBe(true);
  });

  it('refuses a tampered or expired SAS, unknown blocks and bodies past its byte budget', () => {
    let now = Date.UTC(2030, 0, 1);
    const store = new BlobStore({ maxTotalBytes: 10, maxUploads: 5, sasLifetimeMs: 1000 }, () => now);
    const upload = store.begin('d1', 'f');
    const forged = sasQuery(upload.sasToken, { comp: 'block', blockid: 'QQ==' });
    forged.set('sig', Buffer.alloc(32).toString('base64'));
    expect(() => store.put(upload.blobName, forged, {}, Buffer.from('x'))).toThrow(StorageError);
    expect(() => store.put('d2/f', sasQuery(upload.sasToken, { comp: 'block', blockid: 'QQ==' }), {}, Buffer.from('x'))).toThrow(/no valid SAS/);
    expect(() => store.put(upload.blobName, sasQuery(upload.sasToken, { comp: 'block', blockid: 'QQ==' }), {}, Buffer.alloc(11))).toThrow(/at most 10 bytes/);
    expect(() => store.put(upload.blobName, sasQuery(upload.sasToken, { comp: 'blocklist' }), {}, Buffer.from('<BlockList><Latest>Wg==</Latest></BlockList>'))).toThrow(/never staged/);
    now += 1001;
    expect(() => store.put(upload.blobName, sasQuery(upload.sasToken, { comp: 'block', blockid: 'QQ==' }), {}, Buffer.from('x'))).toThrow(/expired/);
  });

  it('forgets the oldest upload past maxUploads and releases its bytes', () => {
    const store = new BlobStore({ maxTotalBytes: 8, maxUploads: 2, sasLifetimeMs: 60_000 });
    const first = store.begin('d', 'a');
    store.put(first.blobName, new URLSearchParams(first.sasToken.slice(1)), { 'x-ms-blob-type': 'BlockBlob' }, Buffer.alloc(8));
    store.begin('d', 'b');
    const third = store.begin('d', 'c');
    expect(store.list('d').map((u) => u.requestedName)).toEqual(['b', 'c']);
    // The first upload's 8 bytes were released, so the budget fits another 8.
    store.put(third.blobName, new URLSearchParams(third.sasToken.slice(1)), { 'x-ms-blob-type': 'BlockBlob' }, Buffer.alloc(8));
  });
});
