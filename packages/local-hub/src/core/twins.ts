// Device twins: desired and reported sections with their versions, persisted in the store, and
// desired changes pushed to every session that listens for them.
import type { CounterTable } from './counters.ts';
import { HubError } from './errors.ts';
import { checkEtag } from './etag.ts';
import type { IdentityLookup } from './identity.ts';
import type { SessionTable } from './sessions.ts';
import { mergePatch, sectionSize, TWIN_SECTION_LIMIT_BYTES, twinEtag, validatePatch } from './twin.ts';
import type { HubStore, StoredTwin } from '../store/index.ts';
import type { HubLogger, TwinDocument } from './types.ts';

export type ServiceTwin = TwinDocument & { deviceId: string; etag: string; version: number };

const emptyTwin = (): StoredTwin => ({ desired: { $version: 1 }, reported: { $version: 1 }, version: 1 });

export interface TwinTableOptions {
  /** Devices and modules: a module's twin is its own, keyed by `<deviceId>/<moduleId>`. */
  registry: IdentityLookup;
  sessions: SessionTable;
  counters: CounterTable;
  store: HubStore;
  logger: HubLogger;
}

export class TwinTable {
  readonly #o: TwinTableOptions;
  readonly #twins = new Map<string, StoredTwin>();

  constructor(options: TwinTableOptions) {
    this.#o = options;
    for (const deviceId of options.registry.ids()) this.#twins.set(deviceId, options.store.loadTwin(deviceId) ?? emptyTwin());
  }

  /** A new device's empty twin. */
  create(deviceId: string): void {
    const twin = emptyTwin();
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

  /** The service's view, with etag and version. */
  read(deviceId: string): ServiceTwin {
    const twin = this.#require(deviceId);
    return { deviceId, etag: twinEtag(twin.version), version: twin.version, desired: structuredClone(twin.desired), reported: structuredClone(twin.reported) };
  }

  patchReported(deviceId: string, patch: Record<string, unknown>): number {
    const twin = this.#require(deviceId);
    validatePatch(patch, 'The reported properties patch');
    const reported = structuredClone(twin.reported);
    mergePatch(reported, patch);
    const size = sectionSize(reported);
    if (size > TWIN_SECTION_LIMIT_BYTES) throw new HubError('MessageTooLarge', `Reported properties would be ${size} bytes; IoT Hub allows ${TWIN_SECTION_LIMIT_BYTES}.`);
    reported.$version = twin.reported.$version + 1;
    this.#put(deviceId, { desired: twin.desired, reported, version: twin.version + 1 });
    this.#o.counters.of(deviceId).twinReportedUpdates++;
    return reported.$version;
  }

  updateDesired(deviceId: string, patch: Record<string, unknown>, ifMatch?: string): ServiceTwin {
    const twin = this.#require(deviceId);
    if (ifMatch !== undefined) checkEtag(twinEtag(twin.version), ifMatch, `the twin of '${deviceId}'`);
    validatePatch(patch, 'The desired properties patch');
    const desired = structuredClone(twin.desired);
    mergePatch(desired, patch);
    const size = sectionSize(desired);
    if (size > TWIN_SECTION_LIMIT_BYTES) throw new HubError('MessageTooLarge', `Desired properties would be ${size} bytes; IoT Hub allows ${TWIN_SECTION_LIMIT_BYTES}.`);
    desired.$version = twin.desired.$version + 1;
    this.#put(deviceId, { desired, reported: twin.reported, version: twin.version + 1 });
    const { $version: _v, ...changes } = patch;
    this.#notifyDesired(deviceId, { ...structuredClone(changes), $version: desired.$version });
    return this.read(deviceId);
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

  #require(deviceId: string): StoredTwin {
    this.#o.registry.require(deviceId);
    return this.#twins.get(deviceId)!;
  }

  #put(deviceId: string, next: StoredTwin): void {
    this.#o.store.putTwin(deviceId, next);
    this.#twins.set(deviceId, next);
  }
}
