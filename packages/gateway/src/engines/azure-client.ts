// The `azure-client` engine over AMQP and AMQP-WS: an unmodified azure-iot-device Client per
// identity, on a session of its own over the pool's shared connection (the stock transport is
// given the identity's channel in place of its own base client), under the same DeviceCore as
// every other client.
import azureDevice from 'azure-iot-device';
import azureDeviceAmqp from 'azure-iot-device-amqp';
import type { Amqp as BaseAmqpClient } from 'azure-iot-amqp-base';
import azureCommon from 'azure-iot-common';
import { AzureClientLink, DeviceCore, type AzureClientLike } from '@switchyard/device/internal';
import { IdentityChannel } from '../amqp/identity-channel.ts';
import type { GatewayIdentity, GatewayIdentityInput } from '../types.ts';
import { SharedConnectionGateway } from './base.ts';
import { IdentityHandle } from './identity.ts';

const { Client } = azureDevice;
type Client = InstanceType<typeof Client>;
const { Amqp: AmqpTransport } = azureDeviceAmqp;
type AmqpTransport = InstanceType<typeof AmqpTransport>;
const { ExponentialBackOffWithJitter } = azureCommon;

export class AzureClientGateway extends SharedConnectionGateway {
  async add(input: GatewayIdentityInput): Promise<GatewayIdentity> {
    const parsed = this.claim(input);
    const pool = this.poolFor(parsed);
    this.pending.add(parsed.deviceId);
    const connection = pool.assign(parsed.deviceId);
    // The channel exists before the identity that owns it; faults reach the identity through this.
    const owner: { identity?: IdentityHandle } = {};
    const channel = new IdentityChannel(parsed.deviceId, connection, {
      onIdentityFault: (error) => {
        if (owner.identity) this.fault(owner.identity.core, this.translate(error, parsed.deviceId, 'link'));
      },
    });
    // The stock transport, given the channel in place of its own base client (its second,
    // documented constructor argument); the class is typed with private fields, hence the cast.
    const base = channel as unknown as BaseAmqpClient;
    const Transport = class extends AmqpTransport {
      constructor(authenticationProvider: ConstructorParameters<typeof AmqpTransport>[0]) {
        super(authenticationProvider, base);
      }
    };
    let client: Client;
    try {
      client = Client.fromConnectionString(parsed.connectionString, Transport);
    } catch (err) {
      this.pending.delete(parsed.deviceId);
      await pool.release(parsed.deviceId);
      throw this.translate(err, parsed.deviceId, 'connect');
    }
    // An 'error' without a listener would crash the process until the link listens.
    client.on('error', () => undefined);
    const retryPolicy = this.options.retryPolicy?.() ?? new ExponentialBackOffWithJitter();
    const transport = (client as unknown as { _transport: AmqpTransport })._transport;
    const link = new AzureClientLink({
      protocol: this.protocol,
      deviceId: parsed.deviceId,
      azure: client as unknown as AzureClientLike,
      transport,
      reopenedBy: 'owner',
      clock: this.clock,
      // The SDK's disconnect waits for each link's detach without a timeout of its own: over a
      // dead network the link's close gives up on it after its grace (see AzureClientLink).
      abandon: (why) => channel.abandon(why),
    });
    const outbox = await this.openOutbox(parsed.deviceId);
    const core = new DeviceCore({ link, decision: this.decision, identity: parsed.deviceId, clock: this.clock, observer: this, ...(outbox === undefined ? {} : { outbox }) });
    const identity = new IdentityHandle(core, channel, client);
    owner.identity = identity;
    this.byCore.set(core, identity);
    return this.admit(identity, parsed.deviceId, async () => {
      client.setRetryPolicy(retryPolicy);
      // One setOptions call: the SDK replaces, never merges, its options object. The AMQP
      // transport only keeps it; the channel owns the connection's TLS and agent.
      const sdkOptions = { ...this.fileUploadOptions(), ...(this.options.tokenRenewal ? { tokenRenewal: { ...this.options.tokenRenewal } } : {}) };
      if (Object.keys(sdkOptions).length > 0) await client.setOptions(sdkOptions as never);
      // close() may have come while the options were set: an open() now would retry for minutes
      // into a gateway that is gone.
      if (this.closed) throw new Error('closed');
      await client.open();
      link.opened();
    });
  }

  /** The Azure client's open(), with its own retry policy; the pool coalesces the attempts. */
  protected async openLink(identity: IdentityHandle): Promise<void> {
    await identity.client!.open();
    (identity.core.link as AzureClientLink).opened();
  }

  protected giveUp(identity: IdentityHandle, error: unknown): void {
    (identity.core.link as AzureClientLink).gaveUp(error);
  }

}
