// The gateway over MQTT, MQTT-WS or HTTPS: the same Gateway interface, but each identity is a
// plain single-device client from @switchyard/device with its own connection, because those
// protocols authenticate one identity per connection. The decision record carries the reason.
import { SwitchyardError } from '@switchyard/errors';
import { connect, translateError, type DeviceCore } from '@switchyard/device/internal';
import type { ConnectionInfo } from '../amqp/pool.ts';
import type { GatewayIdentity, GatewayIdentityInput, GatewayOptions } from '../types.ts';
import { identityOutbox } from '../options.ts';
import { GatewayBase } from './base.ts';
import { IdentityHandle } from './identity.ts';

export class PerConnectionGateway extends GatewayBase<IdentityHandle> {
  readonly multiplexed = false;

  async add(input: GatewayIdentityInput): Promise<GatewayIdentity> {
    const parsed = this.claim(input);
    this.pending.add(parsed.deviceId);
    let device: DeviceCore;
    try {
      const { endpoint, ca, tokenRenewal } = this.options;
      const result = await connect({
        connectionString: parsed.connectionString,
        // Each connection carries one identity, so that is what the device client is told; the
        // protocol is the gateway's decision, not a fresh one per identity.
        profile: { ...this.decision.profile, identities: 1 },
        forceProtocol: this.protocol,
        ...(ca === undefined ? {} : { ca: ca.toString() }),
        ...(endpoint === undefined ? {} : { endpoint: { host: endpoint.host, ports: this.ports(endpoint) } }),
        ...(tokenRenewal === undefined ? {} : { tokenRenewal }),
        connectTimeoutMs: this.settings.openTimeoutMs,
        ...(this.settings.outbox === undefined ? {} : { outbox: identityOutbox(this.settings.outbox, parsed.deviceId)! }),
      });
      // connect() builds the one core; its client is that core.
      device = result.client as unknown as DeviceCore;
    } catch (err) {
      this.pending.delete(parsed.deviceId);
      throw this.translate(err, parsed.deviceId, 'connect');
    }
    this.pending.delete(parsed.deviceId);
    if (this.closed) {
      await device.close().catch(() => undefined);
      throw new SwitchyardError('NOT_CONNECTED', 'the gateway was closed while the identity connected');
    }
    const identity = new IdentityHandle(device, { connectionId: `${this.protocol}:${parsed.deviceId}` });
    device.on('connected', () => {
      if (identity.state === 'closed' || identity.state === 'closing') return;
      identity.emit('connected');
      this.emit('identity-connected', { deviceId: identity.deviceId, connectionId: identity.connectionId });
    });
    device.on('disconnected', ({ error, willRetry }: { error?: SwitchyardError; willRetry: boolean }) => {
      if (identity.state === 'closed' || identity.state === 'closing') return;
      const event = error === undefined ? { willRetry } : { error, willRetry };
      identity.emit('disconnected', event);
      this.emit('identity-disconnected', { deviceId: identity.deviceId, ...event });
    });
    device.on('error', (error: SwitchyardError) => {
      if (identity.listenerCount('error') > 0) identity.emit('error', error);
      this.emit('identity-error', { deviceId: identity.deviceId, error });
    });
    this.identities.set(parsed.deviceId, identity);
    this.emit('connection-open', { connectionId: identity.connectionId });
    return identity;
  }

  protected async retire(identity: IdentityHandle): Promise<void> {
    await identity.core.close().catch(() => undefined);
  }

  /** The identity's connection was its own. */
  protected released(identity: IdentityHandle): Promise<void> {
    this.emit('connection-closed', { connectionId: identity.connectionId });
    return Promise.resolve();
  }

  connections(): ConnectionInfo[] {
    return [...this.identities.values()].map((identity) => ({
      connectionId: identity.connectionId,
      state: identity.state,
      identities: [identity.deviceId],
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.identities.values()];
    this.identities.clear();
    await Promise.all(
      all.map(async (identity) => {
        await identity.core.close().catch(() => undefined);
      }),
    );
  }

  private ports(endpoint: NonNullable<GatewayOptions['endpoint']>): { mqtt?: number; amqp?: number; https?: number } {
    const ports = { ...endpoint.ports };
    if (endpoint.port !== undefined) {
      // A single `port` belongs to the listener the chosen protocol dials.
      if (this.protocol === 'mqtt') ports.mqtt = endpoint.port;
      else ports.https = endpoint.port;
    }
    return ports;
  }

  // The identity's own device client failed, so its error is the device client's, with the id added.
  protected override translate(err: unknown, deviceId: string, operation: string): SwitchyardError {
    return translateError(err, { protocol: this.protocol, operation, identity: deviceId });
  }
}
