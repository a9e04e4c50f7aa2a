// Route table for everything the HTTPS listener serves besides WebSocket upgrades. Matching is a
// pure function of method and raw path so it can be unit-tested without sockets.
import { NOT_IMPLEMENTED } from './not-implemented.ts';

export type RouteName =
  // device API (IoT Hub's own paths)
  | 'telemetry'
  | 'c2d-receive'
  | 'c2d-complete'
  | 'c2d-abandon'
  | 'file-sas'
  | 'file-notify'
  // service API (IoT Hub's own paths)
  | 'device-list'
  | 'device-get'
  | 'device-put'
  | 'device-delete'
  | 'twin-get'
  | 'twin-patch'
  | 'method-invoke'
  | 'module-list'
  | 'module-get'
  | 'module-put'
  | 'module-delete'
  | 'module-twin-get'
  | 'module-twin-patch'
  | 'module-method-invoke'
  | 'device-bulk'
  | 'device-query'
  | 'statistics-devices'
  | 'statistics-service'
  // service API (local extensions)
  | 'local-c2d'
  | 'local-telemetry'
  | 'local-files'
  | 'local-stats'
  | 'local-faults-list'
  | 'local-faults-inject'
  | 'local-faults-clear'
  | 'local-consumer-groups-list'
  | 'local-consumer-group-put'
  | 'local-consumer-group-delete'
  // blob storage stand-in for file upload
  | 'blob-put';

/** Who may call a route, which decides how the request is authenticated. */
export type RouteAuth = 'device' | 'service' | 'blob-sas';

/** The path prefix of the in-memory blob container; IoT Hub's own paths never start with it. */
export const BLOB_CONTAINER = 'local-hub-files';

interface RouteDef {
  method: string;
  /** Literal segments, `:name` for one decoded segment, `*rest` (last) for one or more. */
  pattern: string[];
  name: RouteName;
  auth: RouteAuth;
  /** IoT Hub refuses its own paths without `api-version`; the local extensions do not need it. */
  needsApiVersion: boolean;
}

function def(method: string, path: string, name: RouteName, auth: RouteAuth, needsApiVersion: boolean): RouteDef {
  return { method, pattern: path.split('/').filter((s) => s !== ''), name, auth, needsApiVersion };
}

const ROUTES: RouteDef[] = [
  def('POST', '/devices/:deviceId/messages/events', 'telemetry', 'device', true),
  def('GET', '/devices/:deviceId/messages/devicebound', 'c2d-receive', 'device', true),
  def('DELETE', '/devices/:deviceId/messages/devicebound/:lockToken', 'c2d-complete', 'device', true),
  def('POST', '/devices/:deviceId/messages/devicebound/:lockToken/abandon', 'c2d-abandon', 'device', true),
  def('POST', '/devices/:deviceId/files', 'file-sas', 'device', true),
  def('POST', '/devices/:deviceId/files/notifications', 'file-notify', 'device', true),
  // azure-iot-device puts the correlation id in the path rather than in the body.
  def('POST', '/devices/:deviceId/files/notifications/:correlationId', 'file-notify', 'device', true),

  def('GET', '/devices', 'device-list', 'service', true),
  def('POST', '/devices', 'device-bulk', 'service', true),
  def('POST', '/devices/query', 'device-query', 'service', true),
  def('GET', '/statistics/devices', 'statistics-devices', 'service', true),
  def('GET', '/statistics/service', 'statistics-service', 'service', true),
  def('GET', '/devices/:deviceId', 'device-get', 'service', true),
  def('PUT', '/devices/:deviceId', 'device-put', 'service', true),
  def('DELETE', '/devices/:deviceId', 'device-delete', 'service', true),
  def('GET', '/twins/:deviceId', 'twin-get', 'service', true),
  def('PATCH', '/twins/:deviceId', 'twin-patch', 'service', true),
  def('POST', '/twins/:deviceId/methods', 'method-invoke', 'service', true),
  def('GET', '/devices/:deviceId/modules', 'module-list', 'service', true),
  def('GET', '/devices/:deviceId/modules/:moduleId', 'module-get', 'service', true),
  def('PUT', '/devices/:deviceId/modules/:moduleId', 'module-put', 'service', true),
  def('DELETE', '/devices/:deviceId/modules/:moduleId', 'module-delete', 'service', true),
  def('GET', '/twins/:deviceId/modules/:moduleId', 'module-twin-get', 'service', true),
  def('PATCH', '/twins/:deviceId/modules/:moduleId', 'module-twin-patch', 'service', true),
  def('POST', '/twins/:deviceId/modules/:moduleId/methods', 'module-method-invoke', 'service', true),

  def('POST', '/local/devices/:deviceId/c2d', 'local-c2d', 'service', false),
  def('GET', '/local/devices/:deviceId/telemetry', 'local-telemetry', 'service', false),
  def('GET', '/local/devices/:deviceId/files', 'local-files', 'service', false),
  def('GET', '/local/stats', 'local-stats', 'service', false),
  def('GET', '/local/faults', 'local-faults-list', 'service', false),
  def('POST', '/local/devices/:deviceId/faults', 'local-faults-inject', 'service', false),
  def('DELETE', '/local/devices/:deviceId/faults', 'local-faults-clear', 'service', false),
  def('GET', '/local/eventhubs/consumergroups', 'local-consumer-groups-list', 'service', false),
  def('PUT', '/local/eventhubs/consumergroups/:consumerGroup', 'local-consumer-group-put', 'service', false),
  def('DELETE', '/local/eventhubs/consumergroups/:consumerGroup', 'local-consumer-group-delete', 'service', false),

  def('PUT', `/${BLOB_CONTAINER}/*blobPath`, 'blob-put', 'blob-sas', false),
];

export interface RouteParams {
  deviceId?: string;
  moduleId?: string;
  lockToken?: string;
  correlationId?: string;
  blobPath?: string;
  consumerGroup?: string;
}

export type RouteMatch =
  | { kind: 'match'; name: RouteName; auth: RouteAuth; needsApiVersion: boolean; params: RouteParams }
  | { kind: 'method-not-allowed'; allow: string[] }
  | { kind: 'not-implemented'; operation: string }
  | { kind: 'not-found' }
  | { kind: 'bad-path'; message: string };

function matchPattern(pattern: string[], segments: string[]): RouteParams | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] as string;
    if (p.startsWith('*')) {
      if (segments.length <= i) return undefined;
      params[p.slice(1)] = segments.slice(i).join('/');
      return params;
    }
    const s = segments[i];
    if (s === undefined) return undefined;
    if (p.startsWith(':')) {
      if (s === '') return undefined;
      params[p.slice(1)] = s;
    } else if (p !== s) {
      return undefined;
    }
  }
  return segments.length === pattern.length ? params : undefined;
}

/**
 * `rawPath` is the path without the query, still percent-encoded: splitting before decoding keeps
 * an encoded `/` inside a device id from creating a segment.
 */
export function matchRoute(method: string, rawPath: string): RouteMatch {
  const rawSegments = rawPath.split('/').slice(1);
  // A trailing slash is tolerated the way IoT Hub's front door does.
  if (rawSegments.length > 1 && rawSegments[rawSegments.length - 1] === '') rawSegments.pop();
  let segments: string[];
  try {
    segments = rawSegments.map((s) => decodeURIComponent(s));
  } catch {
    return { kind: 'bad-path', message: `the path ${JSON.stringify(rawPath)} is not valid percent-encoding` };
  }
  const allow = new Set<string>();
  for (const route of ROUTES) {
    const params = matchPattern(route.pattern, segments);
    if (!params) continue;
    if (route.method === method.toUpperCase()) {
      return { kind: 'match', name: route.name, auth: route.auth, needsApiVersion: route.needsApiVersion, params };
    }
    allow.add(route.method);
  }
  for (const missing of NOT_IMPLEMENTED) {
    if ((missing.method === '*' || missing.method === method.toUpperCase()) && matchPattern(missing.pattern, segments)) return { kind: 'not-implemented', operation: missing.operation };
  }
  return allow.size > 0 ? { kind: 'method-not-allowed', allow: [...allow].sort() } : { kind: 'not-found' };
}
