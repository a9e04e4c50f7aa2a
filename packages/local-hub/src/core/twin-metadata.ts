// IoT Hub's `$metadata` for twin sections: when each node was last written (and, for desired
// properties, in which `$version`). Kept beside the section, updated by the same patch.
import type { TwinMetadata } from './types.ts';

export interface MetadataStamp {
  /** ISO time of the write. */
  at: string;
  /** The section's new `$version`: desired metadata carries it, reported metadata does not. */
  version?: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stampOf(stamp: MetadataStamp): TwinMetadata {
  return stamp.version === undefined ? { $lastUpdated: stamp.at } : { $lastUpdated: stamp.at, $lastUpdatedVersion: stamp.version };
}

/** The metadata of a section nobody has written yet. */
export function emptyMetadata(stamp: MetadataStamp): TwinMetadata {
  return stampOf(stamp);
}

/**
 * The metadata after `patch` (twin merge semantics: objects merge, `null` deletes, anything else
 * replaces): every node the patch writes, and each of its ancestors, gets the stamp; deleted
 * keys lose theirs; a value that replaces an object drops the object's children.
 */
export function touchMetadata(metadata: TwinMetadata, patch: Record<string, unknown>, stamp: MetadataStamp): TwinMetadata {
  const next = structuredClone(metadata);
  apply(next, patch, stamp);
  return next;
}

function apply(node: Record<string, unknown>, patch: Record<string, unknown>, stamp: MetadataStamp): void {
  Object.assign(node, stampOf(stamp));
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) {
      delete node[key];
    } else if (isPlainObject(value)) {
      const current = node[key];
      const child: Record<string, unknown> = isPlainObject(current) ? current : {};
      apply(child, value, stamp);
      node[key] = child;
    } else {
      node[key] = stampOf(stamp);
    }
  }
}
