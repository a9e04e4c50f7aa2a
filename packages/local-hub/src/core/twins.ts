// Device twins: tags, desired and reported sections with their versions and `$metadata`,
// persisted in the store, and desired changes pushed to every session that listens for them.
import type { Clock } from '@switchyard/time';
import type { CounterTable } from './counters.ts';
import { HubError } from './errors.ts';
import { checkEtag } from './etag.ts';
import type { IdentityLookup } from './identity.ts';
import type { SessionTable } from './sessions.ts';
import { emptyMetadata, touchMetadata } from './twin-metadata.ts';
import { mergePatch, sectionSize, TWIN_SECTION_LIMIT_BYTES, twinEtag, validatePatch } from './twin.ts';
import type { HubStore, StoredTwin } from '../store/index.ts';
import type { HubLogger, ServiceTwinDocument, TwinDocument, TwinMetadata } from './types.ts';

/** IoT Hub's limit on a twin's tags. */
export const TWIN_TAGS_LIMIT_BYTES = 8 * 1024;

export type ServiceTwin = ServiceTwinDocument;

type Metadata = { desired: TwinMetadata; reported: TwinMetadata };

export interface TwinTableOptions {
  /** Devices and modules: a module's twin is its own, keyed by `<deviceId>/<moduleId>`. */
  registry: IdentityLookup;
  sessions: SessionTable;
  counters: CounterTable;
  store: HubStore;
  logger: HubLogger;
  clock: Clock;
}

export class TwinTable {
  readonly #o: TwinTableOptions;
  readonly #twins = new Map<string, StoredTwin>();

  constructor(options: TwinTableOptions) {
    this.#o = options;
    for (const deviceId of options.registry.ids()) this.#twins.set(deviceId, options.store.loadTwin(deviceId) ?? this.#empty());
  }

  /** A new device's empty twin. */
  create(deviceId: string): void {
    const twin = this.#empty();
    this.#o.store.putTwin(deviceId, twin);
    this.#twins.set(deviceId, twin);
  }

  drop(deviceId: string): void {
    this.#twins.delete(deviceId);
  }

  /** The device's view (GET over MQTT/AMQP); counted as a twin read. */
  get(deviceId: string): TwinDocument {
    const twin = this.#require(deviceId);
    this.#o.counters.of(deviceId).twinReads++;
    return { desired: structuredClone(twin.desired), reported: structuredClone(twin.reported) };
  }

  /** The service's view, with etag, version, tags and metadata. */
  read(deviceId: string): ServiceTwin {
    const twin = this.#require(deviceId);
    return {
      deviceId,
      etag: twinEtag(twin.version),
      version: twin.version,
      tags: structuredClone(twin.tags ?? {}),
      desired: structuredClone(twin.desired),
      reported: structuredClone(twin.reported),
      metadata: structuredClone(this.#metadataOf(twin)),
    };
  }

  patchReported(deviceId: string, patch: Record<string, unknown>): number {
    const twin = this.#require(deviceId);
    validatePatch(patch, 'The reported properties patch');
    const reported = this.#merged(twin.reported, patch, 'Reported properties', TWIN_SECTION_LIMIT_BYTES);
    reported.$version = twin.reported.$version + 1;
    const metadata = this.#metadataOf(twin);
    this.#put(deviceId, {
      ...twin,
      reported,
      version: twin.version + 1,
      metadata: { desired: metadata.desired, reported: touchMetadata(metadata.reported, patch, { at: this.#now() }) },
    });
    this.#o.counters.of(deviceId).twinReportedUpdates++;
    return reported.$version;
  }

  updateDesired(deviceId: string, patch: Record<string, unknown>, ifMatch?: string): ServiceTwin {
    return this.update(deviceId, { desired: patch }, ifMatch);
  }

  /** Tags and desired properties in one write (one twin version), as IoT Hub's PATCH /twins/{id}. */
  update(deviceId: string, patch: { tags?: Record<string, unknown>; desired?: Record<string, unknown> }, ifMatch?: string): ServiceTwin {
    const twin = this.#require(deviceId);
    if (ifMatch !== undefined) checkEtag(twinEtag(twin.version), ifMatch, `the twin of '${deviceId}'`);
    if (patch.tags !== undefined) validatePatch(patch.tags, 'The tags patch');
    if (patch.desired !== undefined) validatePatch(patch.desired, 'The desired properties patch');
    const next: StoredTwin = { ...twin, version: twin.version + 1, metadata: this.#metadataOf(twin) };
    if (patch.tags !== undefined) next.tags = this.#merged(twin.tags ?? {}, patch.tags, 'Tags', TWIN_TAGS_LIMIT_BYTES);
    const desiredPatch = patch.desired;
    if (desiredPatch !== undefined) {
      const desired = this.#merged(twin.desired, desiredPatch, 'Desired properties', TWIN_SECTION_LIMIT_BYTES);
      desired.$version = twin.desired.$version + 1;
      next.desired = desired;
      next.metadata = { reported: next.metadata!.reported, desired: touchMetadata(next.metadata!.desired, desiredPatch, { at: this.#now(), version: desired.$version }) };
    }
    this.#put(deviceId, next);
    if (desiredPatch !== undefined) {
      const { $version: _v, ...changes } = desiredPatch;
      this.#notifyDesired(deviceId, { ...structuredClone(changes), $version: next.desired.$version });
    }
    return this.read(deviceId);
  }

  #merged<T extends Record<string, unknown>>(section: T, patch: Record<string, unknown>, what: string, limit: number): T {
    const merged = structuredClone(section);
    mergePatch(merged, patch);
    const size = sectionSize(merged);
    if (size > limit) throw new HubError('MessageTooLarge', `${what} would be ${size} bytes; IoT Hub allows ${limit}.`);
    return merged;
  }

  #notifyDesired(deviceId: string, notification: Record<string, unknown> & { $version: number }): void {
    for (const session of this.#o.sessions.of(deviceId)) {
      try {
        session.desired?.desiredChanged(structuredClone(notification));
      } catch (error) {
        this.#o.logger.warn('desired receiver threw', { deviceId, protocol: session.protocol, error: String(error) });
      }
    }
  }

  #now(): string {
    return new Date(this.#o.clock.now()).toISOString();
  }

  #empty(): StoredTwin {
    return { desired: { $version: 1 }, reported: { $version: 1 }, version: 1, tags: {}, metadata: this.#emptyMetadata() };
  }

  #emptyMetadata(): Metadata {
    const at = this.#now();
    return { desired: emptyMetadata({ at, version: 1 }), reported: emptyMetadata({ at }) };
  }

  /** Twins stored before metadata was kept get it as of now. */
  #metadataOf(twin: StoredTwin): Metadata {
    twin.metadata ??= this.#emptyMetadata();
    return twin.metadata;
  }

  #require(deviceId: string): StoredTwin {
    this.#o.registry.require(deviceId);
    return this.#twins.get(deviceId)!;
  }

  #put(deviceId: string, next: StoredTwin): void {
    this.#o.store.putTwin(deviceId, next);
    this.#twins.set(deviceId, next);
  }
}
