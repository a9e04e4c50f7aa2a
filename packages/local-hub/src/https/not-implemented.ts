// IoT Hub service operations the local hub does not do. Each is answered 501 with IoT Hub's error
// body naming the operation, so a caller learns at once what is missing instead of meeting a
// 404 that reads like a typo. Paths that neither IoT Hub nor the local hub has stay 404.
// A route in routes.ts wins over an entry here, so implementing one means adding its route.

export interface NotImplementedDef {
  /** `*` for any method. */
  method: string;
  /** As in routes.ts: literal segments, `:name` for one segment, `*rest` (last) for one or more. */
  pattern: string[];
  operation: string;
}

function def(method: string, path: string, operation: string): NotImplementedDef {
  return { method, pattern: path.split('/').filter((s) => s !== ''), operation };
}

export const NOT_IMPLEMENTED: NotImplementedDef[] = [
  def('PUT', '/twins/:deviceId', 'replace twin (PUT /twins/{id})'),
  def('POST', '/devices/:deviceId/applyConfigurationContent', 'applyConfigurationContentOnDevice (IoT Edge deployments)'),
  def('*', '/configurations', 'automatic device configurations'),
  def('*', '/configurations/*rest', 'automatic device configurations'),
  def('*', '/jobs', 'import/export jobs'),
  def('*', '/jobs/*rest', 'import/export and scheduled jobs'),
  def('*', '/digitaltwins/*rest', 'digital twins'),
  def('DELETE', '/devices/:deviceId/commands', 'purging a device\'s cloud-to-device queue'),
  def('*', '/messages/*rest', 'service-side messaging over HTTPS (use AMQP, or POST /local/devices/{id}/c2d)'),
  def('*', '/devicesInScope/*rest', 'device scopes (nested IoT Edge)'),
];
