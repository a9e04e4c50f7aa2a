// The contract for module identities: IoT Hub's second kind of identity, registered under a
// device, with its own keys, twin and direct methods, but no status and no cloud-to-device queue.
// Front-ends name a module by its identity id `<deviceId>/<moduleId>` (see identity.ts) wherever
// the HubCore contract takes a device id for a connected identity.
import type { MethodRequest } from './methods.ts';
import type { DeviceAuthentication, MethodResult, ServiceTwinDocument } from './types.ts';

export type { MethodRequest } from './methods.ts';

export interface ModuleRecord {
  deviceId: string;
  moduleId: string;
  authentication: DeviceAuthentication;
  /** Who manages the module (IoT Edge sets `IotEdge`); empty when nobody claimed it. */
  managedBy: string;
  etag: string;
  generationId: string;
  /** ISO time. */
  createdAt: string;
}

export interface ModuleInput {
  /** Fresh SAS keys are generated when absent (or when the keys are empty), as IoT Hub does. */
  authentication?: DeviceAuthentication;
  managedBy?: string;
}

/** A module twin as the service sees it: the device twin's shape (tags, `$metadata`) plus `moduleId`. */
export type ModuleTwin = ServiceTwinDocument & { moduleId: string };

/** The service side for modules: what the typed handle and the REST API call. */
export interface ModuleService {
  /** DeviceNotFound when the device is absent, ModuleAlreadyExists when the module is present. */
  createModule(deviceId: string, moduleId: string, input?: ModuleInput): ModuleRecord;
  /** IoT Hub's PUT /devices/{id}/modules/{mid}: create, or update when `ifMatch` matches (or is '*'). */
  putModule(deviceId: string, moduleId: string, input: ModuleInput, ifMatch?: string): ModuleRecord;
  getModule(deviceId: string, moduleId: string): ModuleRecord | undefined;
  /** The module, or DeviceNotFound / ModuleNotFound. */
  requireModule(deviceId: string, moduleId: string): ModuleRecord;
  /** DeviceNotFound when the device is absent. */
  listModules(deviceId: string): ModuleRecord[];
  /** Also ends the module's live sessions and drops its twin. */
  removeModule(deviceId: string, moduleId: string, ifMatch?: string): void;
  readModuleTwin(deviceId: string, moduleId: string): ModuleTwin;
  updateModuleDesired(deviceId: string, moduleId: string, patch: Record<string, unknown>, ifMatch?: string): ModuleTwin;
  /** IoT Hub's PATCH /twins/{id}/modules/{mid}: merges tags and desired properties in one twin version. */
  updateModuleTwin(deviceId: string, moduleId: string, patch: { tags?: Record<string, unknown>; desired?: Record<string, unknown> }, ifMatch?: string): ModuleTwin;
  /** As invokeMethod, for a module connected with a method subscription. */
  invokeModuleMethod(deviceId: string, moduleId: string, request: MethodRequest): Promise<MethodResult>;
}
