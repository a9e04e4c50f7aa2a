// The `lean` engine over AMQP and AMQP-WS: the pool's shared connections and identity channels,
// and for each identity a DeviceCore over an IdentityLink on its session instead of an Azure
// Client + transport. Token renewal is one timer for the whole gateway rather than one per identity.
import { DeviceCore } from '@switchyard/device/internal';
import type { Decision } from '@switchyard/selector';
import type { TimerHandle } from '@switchyard/time';
import azureCommon from 'azure-iot-common';
import { IdentityChannel } from '../amqp/identity-channel.ts';
import { IdentityLink, type IdentityLinkOwner, type LeanCredentials } from '../amqp/identity-link.ts';
import type { GatewaySettings } from '../options.ts';
import type { GatewayIdentity, GatewayIdentityInput, GatewayOptions } from '../types.ts';
import { SharedConnectionGateway } from './base.ts';
import { IdentityHandle } from './identity.ts';

const { ConnectionString } = azureCommon;

// The SDK's defaults (azure-iot-device's SharedAccessKeyAuthenticationProvider).
const DEFAULT_TOKEN_VALID_SECONDS = 3600;
const DEFAULT_TOKEN_MARGIN_SECONDS = 900;
/** Renewals due within this much of a timer firing are done in the same pass, so the timer fires rarely. */
const RENEWAL_BATCH_MS = 1_000;
const OPERATION_TIMEOUT_MS = 30_000;

export class LeanAmqpGateway extends SharedConnectionGateway implements IdentityLinkOwner {
  declare readonly protocol: 'amqp' | 'amqp-ws';
  readonly tokenValidTimeInSeconds: number;
  readonly tokenRenewalMarginInSeconds: number;
  readonly #links = new Set<IdentityLink>();
  #renewalTimer: TimerHandle | undefined;
  #renewalDue: number | undefined;
  /** Shared by every identity's channel: the channel says whose fault it is. */
  readonly #channelHooks = {
    onIdentityFault: (error: Error, channel: IdentityChannel): void => {
      const identity = this.identities.get(channel.deviceId);
      if (identity && identity.connectionId === channel.connectionId) this.fault(identity.core, this.translate(error, channel.deviceId, 'link'));
    },
    sharedSession: true,
  };

  constructor(options: GatewayOptions, settings: GatewaySettings, decision: Decision) {
    super(options, settings, decision);
    this.tokenValidTimeInSeconds = options.tokenRenewal?.tokenValidTimeInSeconds ?? DEFAULT_TOKEN_VALID_SECONDS;
    this.tokenRenewalMarginInSeconds = options.tokenRenewal?.tokenRenewalMarginInSeconds ?? DEFAULT_TOKEN_MARGIN_SECONDS;
  }

  async add(input: GatewayIdentityInput): Promise<GatewayIdentity> {
    const parsed = this.claim(input);
    const pool = this.poolFor(parsed);
    const fields = ConnectionString.parse(parsed.connectionString);
    this.pending.add(parsed.deviceId);
    const connection = pool.assign(parsed.deviceId);
    const channel = new IdentityChannel(parsed.deviceId, connection, this.#channelHooks);
    const credentials: LeanCredentials = { hubHostName: parsed.hubHostName, ...(fields.SharedAccessKey ? { sharedAccessKey: fields.SharedAccessKey } : { sharedAccessSignature: fields.SharedAccessSignature! }) };
    const link = new IdentityLink(parsed.deviceId, channel, credentials, this);
    const outbox = await this.openOutbox(parsed.deviceId);
    const core = new DeviceCore({ link, decision: this.decision, identity: parsed.deviceId, clock: this.clock, operationTimeoutMs: OPERATION_TIMEOUT_MS, observer: this, ...(outbox === undefined ? {} : { outbox }) });
    const identity = new IdentityHandle(core, channel);
    this.byCore.set(core, identity);
    this.#links.add(link);
    return this.admit(identity, parsed.deviceId, () => link.open());
  }

  protected openLink(identity: IdentityHandle): Promise<void> {
    return (identity.core.link as IdentityLink).open();
  }

  protected giveUp(identity: IdentityHandle, error: unknown): void {
    (identity.core.link as IdentityLink).gaveUp(error);
  }

  protected override async closeIdentity(identity: IdentityHandle): Promise<void> {
    this.#links.delete(identity.core.link as IdentityLink);
    await super.closeIdentity(identity);
  }

  protected override beforeClose(): void {
    this.clock.clearTimeout(this.#renewalTimer);
    this.#renewalTimer = undefined;
  }

  // ---- IdentityLinkOwner -------------------------------------------------------------------

  /**
   * File upload through the SDK's own blob client, with an authentication provider made for this
   * upload and stopped after it. Loaded on first use: it brings @azure/storage-blob along.
   */
  async uploadToBlob(link: IdentityLink, credentials: LeanCredentials, blobName: string, stream: NodeJS.ReadableStream, size: number): Promise<void> {
    const [{ default: blobUpload }, { default: azureDevice }] = await Promise.all([import('azure-iot-device/dist/blob_upload/index.js'), import('azure-iot-device')]);
    const auth =
      credentials.sharedAccessKey !== undefined
        ? new azureDevice.SharedAccessKeyAuthenticationProvider(
            { host: credentials.hubHostName, deviceId: link.deviceId, sharedAccessKey: credentials.sharedAccessKey } as never,
            this.tokenValidTimeInSeconds,
            this.tokenRenewalMarginInSeconds,
          )
        : azureDevice.SharedAccessSignatureAuthenticationProvider.fromSharedAccessSignature(credentials.sharedAccessSignature!);
    try {
      const client = new blobUpload.BlobUploadClient(auth);
      client.setOptions(this.fileUploadOptions());
      await client.uploadToBlob(blobName, stream as never, size);
    } finally {
      auth.stop();
    }
  }

  /** One timer for every identity's renewal, armed for the earliest one due. */
  scheduleRenewal(link: IdentityLink): void {
    const due = link.renewAt;
    if (due === undefined || this.closed) return;
    if (this.#renewalDue !== undefined && this.#renewalDue <= due) return;
    this.clock.clearTimeout(this.#renewalTimer);
    this.#renewalDue = due;
    this.#renewalTimer = this.clock.setTimeout(() => this.#renewDue(), Math.max(0, due - this.clock.now()));
    // Renewal is for identities that are connected anyway; it must not keep a process alive alone.
    this.#renewalTimer.unref();
  }

  #renewDue(): void {
    this.#renewalTimer = undefined;
    this.#renewalDue = undefined;
    if (this.closed) return;
    const horizon = this.clock.now() + RENEWAL_BATCH_MS;
    let next: IdentityLink | undefined;
    for (const link of this.#links) {
      const due = link.renewAt;
      if (due === undefined) continue;
      if (due <= horizon) link.renew();
      else if (next === undefined || due < next.renewAt!) next = link;
    }
    if (next) this.scheduleRenewal(next);
  }
}
