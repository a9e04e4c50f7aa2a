import { HubError } from './errors.ts';

/** IoT Hub's per-section limit (desired and reported, each). */
export const TWIN_SECTION_LIMIT_BYTES = 32 * 1024;
/** IoT Hub caps nesting of twin objects. */
const TWIN_MAX_DEPTH = 10;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks a patch as IoT Hub does: an object, no `$`-keys (metadata is the hub's), bounded depth. */
export function validatePatch(patch: unknown, what: string): asserts patch is Record<string, unknown> {
  if (!isPlainObject(patch)) throw new HubError('ArgumentInvalid', `${what} must be a JSON object.`);
  const walk = (node: Record<string, unknown>, depth: number, path: string): void => {
    if (depth > TWIN_MAX_DEPTH) throw new HubError('ArgumentInvalid', `${what} nests deeper than ${TWIN_MAX_DEPTH} levels at ${path}.`);
    for (const [key, value] of Object.entries(node)) {
      if (key.startsWith('$') && !(depth === 1 && key === '$version')) {
        throw new HubError('ArgumentInvalid', `${what} may not set '${path}${key}': names starting with '$' are reserved for the hub.`);
      }
      if (isPlainObject(value)) walk(value, depth + 1, `${path}${key}.`);
    }
  };
  walk(patch, 1, '');
}

/** JSON merge semantics of twin patches: objects merge, `null` deletes, anything else replaces. */
export function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$version') continue;
    if (value === null) {
      delete target[key];
    } else if (isPlainObject(value)) {
      const current = target[key];
      const next: Record<string, unknown> = isPlainObject(current) ? current : {};
      mergePatch(next, value);
      target[key] = next;
    } else {
      target[key] = structuredClone(value);
    }
  }
}

export function sectionSize(section: Record<string, unknown>): number {
  const { $version: _ignored, ...rest } = section;
  return Buffer.byteLength(JSON.stringify(rest));
}

/** IoT Hub etags are opaque base64 strings; deriving them from the version keeps them stable across restarts. */
export function twinEtag(version: number): string {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(BigInt(version));
  return buf.toString('base64');
}
