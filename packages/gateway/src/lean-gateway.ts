// The gateway over AMQP and AMQP-WS with the `lean` engine: the same pool, shared connections,
// identity channels and failure handling as the default engine, but each identity's DeviceClient
// is a LeanDevice on its session instead of an Azure Client + transport. Token renewal is one
// timer for the whole gateway rather than one per identity.
import { EventEmitter } from 'node:events';
import { SwitchyardError } from '@switchyard/errors';
import { systemClock, type Clock, type DeviceClient } from '@switchyard/device/internal';
import type { Decision } from '@switchyard/selector';
import azureCommon from 'azure-iot-common';
import type {
  GatewayIdentity,
  GatewayIdentityInput,
  GatewayOptions,
  GatewaySettings,
  IdentityEvents,
  IdentityState,
} from './gateway.ts';
import { isTransientFailure, reopenDelayMs } from './gateway.ts';
import { SharedConnectionGateway } from './gateway-base.ts';
import { IdentityChannel } from './identity-channel.ts';
import { LeanDevice, type LeanCredentials, type LeanOwner } from './lean-device.ts';
import { translateAzureError } from './errors.ts';

const { ConnectionString } = azureCommon;

// The SDK's defaults (azure-iot-device's SharedAccessKeyAuthenticationProvider).
const DEFAULT_TOKEN_VALID_SECONDS = 3600;
const DEFAULT_TOKEN_MARGIN_SECONDS = 900;
/** Renewals due within this much of a timer firing are done in the same pass, so the timer fires rarely. */
const RENEWAL_BATCH_MS = 1_000;

class LeanIdentity extends EventEmitter<IdentityEvents> implements GatewayIdentity {
  stateValue: IdentityState = 'connecting';
  readonly client = undefined;
  reopenTimer: unknown;
  reopenAttempt = 0;
  constructor(readonly lean: LeanDevice) {
    super();
  }
  get deviceId(): string {
    return this.lean.deviceId;
  }
  get device(): DeviceClient {
    return this.lean as unknown as DeviceClient;
  }
  get state(): IdentityState {
    return this.stateValue;
  }
  get connectionId(): string {
    return this.lean.channel.connectionId;
  }
}

export class LeanAmqpGateway extends SharedConnectionGateway<LeanIdentity> implements LeanOwner {
  declare readonly protocol: 'amqp' | 'amqp-ws';
  readonly clock: Clock;
  readonly operationTimeoutMs = 30_000;
  readonly tokenValidTimeInSeconds: number;
  readonly tokenRenewalMarginInSeconds: number;
  /** Identities by device, also while connecting, so drops and faults find their owner. */
  private readonly byDevice = new Map<LeanDevice, LeanIdentity>();
  private renewalTimer: unknown;
  /** Shared by every identity's channel: the channel says whose fault it is. */
  private readonly channelHooks = {
    onIdentityFault: (error: Error, channel: IdentityChannel): void => this.channelFault(channel, error),
    sharedSession: true,
  };
  private renewalDue: number | undefined;

  constructor(options: GatewayOptions, settings: GatewaySettings, decision: Decision) {
    super(options, settings, decision);
    this.clock = options.clock ?? systemClock;
    this.tokenValidTimeInSeconds = options.tokenRenewal?.tokenValidTimeInSeconds ?? DEFAULT_TOKEN_VALID_SECONDS;
    this.tokenRenewalMarginInSeconds = options.tokenRenewal?.tokenRenewalMarginInSeconds ?? DEFAULT_TOKEN_MARGIN_SECONDS;
  }

  async add(input: GatewayIdentityInput): Promise<GatewayIdentity> {
    const parsed = this.claim(input);
    const pool = this.poolFor(parsed);
    const fields = ConnectionString.parse(parsed.connectionString);
    this.pending.add(parsed.deviceId);
    const connection = pool.assign(parsed.deviceId);
    const channel = new IdentityChannel(parsed.deviceId, connection, this.channelHooks);
    const credentials = { hubHostName: parsed.hubHostName, ...(fields.SharedAccessKey ? { sharedAccessKey: fields.SharedAccessKey } : { sharedAccessSignature: fields.SharedAccessSignature! }) };
    const device = new LeanDevice(parsed.deviceId, channel, credentials, this);
    const identity = new LeanIdentity(device);
    this.byDevice.set(device, identity);
    try {
      await device.open();
    } catch (err) {
      this.pending.delete(parsed.deviceId);
      this.byDevice.delete(device);
      identity.stateValue = 'closed';
      await device.close();
      await pool.release(parsed.deviceId);
      throw translateAzureError(err, { deviceId: parsed.deviceId, operation: 'connect', protocol: this.protocol });
    }
    this.pending.delete(parsed.deviceId);
    if (this.closed) {
      this.byDevice.delete(device);
      await device.close();
      throw new SwitchyardError('NOT_CONNECTED', 'the gateway was closed while the identity connected');
    }
    identity.stateValue = 'connected';
    this.identities.set(parsed.deviceId, identity);
    return identity;
  }

  protected retire(identity: LeanIdentity): Promise<void> {
    return this.closeIdentity(identity);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.renewalTimer !== undefined) this.clock.clearTimeout(this.renewalTimer);
    this.renewalTimer = undefined;
    const all = [...this.identities.values()];
    this.identities.clear();
    await Promise.all(all.map((identity) => this.closeIdentity(identity)));
    await this.closeConnections();
  }

  private async closeIdentity(identity: LeanIdentity): Promise<void> {
    identity.stateValue = 'closed';
    if (identity.reopenTimer !== undefined) this.clock.clearTimeout(identity.reopenTimer);
    identity.reopenTimer = undefined;
    this.byDevice.delete(identity.lean);
    await identity.lean.close();
  }

  // ---- LeanOwner ---------------------------------------------------------------------------

  private channelFault(channel: IdentityChannel, error: Error): void {
    const identity = this.identities.get(channel.deviceId);
    if (identity && identity.lean.channel === channel) this.identityError(identity, error, 'link');
  }

  deviceFault(device: LeanDevice, error: Error, operation: string): void {
    const identity = this.byDevice.get(device);
    if (identity) this.identityError(identity, error, operation);
  }

  /**
   * The identity lost its session. Unlike the Azure client, which re-opens only identities with
   * C2D, methods or desired-property listeners, every identity is re-opened: at once after the
   * first drop (the pool coalesces the attempts into one connection), then with capped back-off.
   */
  deviceDropped(device: LeanDevice, err: Error): void {
    const identity = this.byDevice.get(device);
    if (!identity || identity.stateValue === 'closed' || this.closed || !this.identities.has(identity.deviceId)) return;
    const error = translateAzureError(err, { deviceId: identity.deviceId, operation: 'connection', protocol: this.protocol });
    const willRetry = isTransientFailure(err);
    identity.stateValue = willRetry ? 'reconnecting' : 'disconnected';
    const event = { error, willRetry };
    identity.emit('disconnected', event);
    this.emit('identity-disconnected', { deviceId: identity.deviceId, ...event });
    if (willRetry) {
      identity.reopenAttempt = 0;
      this.reopen(identity);
    } else device.gaveUp();
  }

  private reopen(identity: LeanIdentity): void {
    if (identity.stateValue === 'closed' || this.closed) return;
    identity.lean.open().then(
      () => {
        if (identity.stateValue === 'closed') return;
        identity.stateValue = 'connected';
        identity.emit('connected');
        this.emit('identity-connected', { deviceId: identity.deviceId, connectionId: identity.connectionId });
      },
      (reopenErr: unknown) => {
        if (identity.stateValue === 'closed' || this.closed) return;
        if (isTransientFailure(reopenErr)) {
          const delay = reopenDelayMs(identity.reopenAttempt++, this.settings.reconnect, (this.options.random ?? Math.random)());
          identity.reopenTimer = this.clock.setTimeout(() => {
            identity.reopenTimer = undefined;
            this.reopen(identity);
          }, delay);
          return;
        }
        identity.stateValue = 'disconnected';
        identity.lean.gaveUp();
        this.gaveUp(identity, reopenErr);
      },
    );
  }

  /**
   * File upload through the SDK's own blob client, with an authentication provider made for this
   * upload and stopped after it. Loaded on first use: it brings @azure/storage-blob along.
   */
  async uploadToBlob(device: LeanDevice, credentials: LeanCredentials, blobName: string, stream: NodeJS.ReadableStream, size: number): Promise<void> {
    const [{ default: blobUpload }, { default: azureDevice }] = await Promise.all([import('azure-iot-device/dist/blob_upload/index.js'), import('azure-iot-device')]);
    const auth =
      credentials.sharedAccessKey !== undefined
        ? new azureDevice.SharedAccessKeyAuthenticationProvider(
            { host: credentials.hubHostName, deviceId: device.deviceId, sharedAccessKey: credentials.sharedAccessKey } as never,
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
  scheduleRenewal(device: LeanDevice): void {
    const due = device.renewAt;
    if (due === undefined || this.closed) return;
    if (this.renewalDue !== undefined && this.renewalDue <= due) return;
    if (this.renewalTimer !== undefined) this.clock.clearTimeout(this.renewalTimer);
    this.renewalDue = due;
    this.renewalTimer = this.clock.setTimeout(() => this.renewDue(), Math.max(0, due - this.clock.now()));
  }

  private renewDue(): void {
    this.renewalTimer = undefined;
    this.renewalDue = undefined;
    if (this.closed) return;
    const horizon = this.clock.now() + RENEWAL_BATCH_MS;
    let next: LeanDevice | undefined;
    for (const device of this.byDevice.keys()) {
      const due = device.renewAt;
      if (due === undefined) continue;
      if (due <= horizon) device.renew();
      else if (next === undefined || due < next.renewAt!) next = device;
    }
    if (next) this.scheduleRenewal(next);
  }
}
