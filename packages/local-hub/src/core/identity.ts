// IoT Hub has two kinds of identity: a device, and a module identity on a device. The core and the
// front-ends name either by one string, the identity id: the device id alone, or
// `<deviceId>/<moduleId>`. IoT Hub ids cannot contain '/', so the split is unambiguous, and the
// string is exactly the MQTT client id the Azure SDK sends for a module.

export interface IdentityRef {
  deviceId: string;
  /** Absent for the device identity itself. */
  moduleId?: string;
}

// IoT Hub's alphabet for device and module ids (the same as the registry's device-id rule).
const ID = /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/;

export function identityId(deviceId: string, moduleId?: string): string {
  return moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`;
}

/** Splits an identity id; undefined when it has more than one '/' or an empty part. */
export function parseIdentityId(id: string): IdentityRef | undefined {
  if (typeof id !== 'string' || id === '') return undefined;
  const slash = id.indexOf('/');
  if (slash < 0) return { deviceId: id };
  const deviceId = id.slice(0, slash);
  const moduleId = id.slice(slash + 1);
  if (deviceId === '' || moduleId === '' || moduleId.includes('/')) return undefined;
  return { deviceId, moduleId };
}

export function isModuleIdentity(id: string): boolean {
  return typeof id === 'string' && id.includes('/');
}

/** `/devices/<d>` or `/devices/<d>/modules/<m>`: the SAS audience path and the AMQP address base. */
export function identityPath(ref: IdentityRef): string {
  return ref.moduleId === undefined ? `/devices/${ref.deviceId}` : `/devices/${ref.deviceId}/modules/${ref.moduleId}`;
}

/** What is wrong with a module id, or undefined when IoT Hub would accept it. */
export function moduleIdProblem(moduleId: unknown): string | undefined {
  if (typeof moduleId !== 'string' || !ID.test(moduleId)) {
    return `Module id '${String(moduleId)}' is invalid: use 1-128 characters from A-Z a-z 0-9 - . % _ * ? ! ( ) , : = @ $ '.`;
  }
  // `$edgeAgent` and `$edgeHub` are IoT Edge's own modules, which the registry creates itself.
  if (moduleId.startsWith('$')) return `Module id '${moduleId}' is reserved: ids starting with '$' belong to IoT Edge's system modules.`;
  return undefined;
}

/** A readable name for logs and errors: `device 'd'` or `module 'm' of device 'd'`. */
export function describeIdentity(id: string): string {
  const ref = parseIdentityId(id);
  if (ref?.moduleId === undefined) return `device '${id}'`;
  return `module '${ref.moduleId}' of device '${ref.deviceId}'`;
}
