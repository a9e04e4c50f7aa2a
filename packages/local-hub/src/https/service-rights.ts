// Which shared access policy right each service route needs, as IoT Hub grants them: the registry
// by RegistryRead/RegistryWrite, twins, methods and messaging by ServiceConnect. A policy holding
// any one of a route's rights may call it.
import type { PolicyRight } from '../core/policies.ts';
import type { RouteName } from './routes.ts';

const SERVICE_ROUTE_RIGHTS: Partial<Record<RouteName, readonly PolicyRight[]>> = {
  'device-list': ['RegistryRead'],
  'device-get': ['RegistryRead'],
  'device-put': ['RegistryWrite'],
  'device-delete': ['RegistryWrite'],
  'device-bulk': ['RegistryWrite'],
  'device-query': ['RegistryRead', 'ServiceConnect'],
  'statistics-devices': ['RegistryRead'],
  'statistics-service': ['ServiceConnect'],
  'module-list': ['RegistryRead'],
  'module-get': ['RegistryRead'],
  'module-put': ['RegistryWrite'],
  'module-delete': ['RegistryWrite'],
  'module-twin-get': ['RegistryRead', 'ServiceConnect'],
  'module-twin-patch': ['ServiceConnect'],
  'module-method-invoke': ['ServiceConnect'],
  'twin-get': ['RegistryRead', 'ServiceConnect'],
  'twin-patch': ['ServiceConnect'],
  'method-invoke': ['ServiceConnect'],
  'local-c2d': ['ServiceConnect'],
  'local-telemetry': ['ServiceConnect'],
  'local-files': ['ServiceConnect'],
  'local-stats': ['RegistryRead', 'ServiceConnect'],
  'local-faults-list': ['ServiceConnect'],
  'local-faults-inject': ['ServiceConnect'],
  'local-faults-clear': ['ServiceConnect'],
};

/** The rights that admit a route; a service route not listed needs ServiceConnect. */
export function rightsFor(route: RouteName): readonly PolicyRight[] {
  return SERVICE_ROUTE_RIGHTS[route] ?? ['ServiceConnect'];
}
