// Test bench for the AMQP front-end: the real hub (startLocalHub, in memory, ephemeral ports),
// Azure SDK client builders, and a raw rhea client for what the SDK never sends.
import rhea from 'rhea';
import type { Connection, EventContext, Message, Receiver, Sender } from 'rhea';
import azureIotDevice from 'azure-iot-device';
import type { Client } from 'azure-iot-device';
import azureIotDeviceAmqp from 'azure-iot-device-amqp';
import azureIotCommon from 'azure-iot-common';
import { createMemoryLogger, createSasToken, startLocalHub, type LocalHub } from '../../src/index.ts';
import { RedirectAgent } from './azure-clients.ts';

export { RedirectAgent };

export const HUB_NAME = 'testhub.azure-devices.net';

export interface AmqpTestHub {
  /** The hub under test, assembled by startLocalHub exactly as in production. */
  local: LocalHub;
  logger: ReturnType<typeof createMemoryLogger>;
  ca: string;
  amqpPort: number;
  httpsPort: number;
  close(): Promise<void>;
}

export async function startAmqpTestHub(): Promise<AmqpTestHub> {
  const logger = createMemoryLogger();
  const local = await startLocalHub({ inMemory: true, hostName: HUB_NAME, logger });
  return { local, logger, ca: local.ca, amqpPort: local.ports.amqp, httpsPort: local.ports.https, close: () => local.close() };
}

export function deviceKey(hub: AmqpTestHub, deviceId: string): string {
  const device = hub.local.getDevice(deviceId) ?? hub.local.createDevice(deviceId);
  if (device.authentication.type !== 'sas') throw new Error(`${deviceId} is not a SAS device`);
  return device.authentication.primaryKey;
}

export function sasToken(deviceId: string, key: string, ttlSeconds = 3600): string {
  return createSasToken(`${HUB_NAME}/devices/${deviceId}`, key, Math.floor(Date.now() / 1000) + ttlSeconds);
}

// ---- Azure SDK clients --------------------------------------------------------------------------


export interface SdkClientOptions {
  tokenRenewal?: { tokenValidTimeInSeconds: number; tokenRenewalMarginInSeconds: number };
  noRetry?: boolean;
  key?: string;
}

export async function sdkClient(hub: AmqpTestHub, transport: 'amqp' | 'amqp-ws', deviceId: string, opts: SdkClientOptions = {}): Promise<Client> {
  const key = opts.key ?? deviceKey(hub, deviceId);
  const base = `HostName=${HUB_NAME};DeviceId=${deviceId};SharedAccessKey=${key}`;
  // Default imports: Node's ESM loader cannot see these CommonJS packages' named exports.
  const { Client } = azureIotDevice;
  const { Amqp, AmqpWs } = azureIotDeviceAmqp;
  const client = transport === 'amqp'
    ? Client.fromConnectionString(`${base};GatewayHostName=localhost:${hub.amqpPort}`, Amqp)
    : Client.fromConnectionString(base, AmqpWs);
  const options: Record<string, unknown> = { ca: hub.ca };
  if (opts.tokenRenewal) options.tokenRenewal = opts.tokenRenewal;
  if (transport === 'amqp-ws') options.amqp = { webSocketAgent: new RedirectAgent({ host: '127.0.0.1', port: hub.httpsPort }) };
  // setOptions replaces rather than merges: everything goes in one call.
  await client.setOptions(options as Parameters<Client['setOptions']>[0]);
  if (opts.noRetry) client.setRetryPolicy(new azureIotCommon.NoRetry());
  // An 'error' without a listener would crash the test process.
  client.on('error', () => undefined);
  return client;
}

/** Polls `probe` until it returns something other than undefined; fails after `ms`. */
export async function waitFor<T>(probe: () => T | undefined, ms = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Rejects after `ms` so no await in a test can hang. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- raw rhea client ----------------------------------------------------------------------------

export interface RawLinkResult {
  opened: boolean;
  error?: { condition?: string; description?: string };
}

/** A raw AMQP client (rhea 3) over verified TLS, for what the SDK never sends. */
export class RawAmqpClient {
  readonly connection: Connection;
  private readonly container = rhea.create_container({ id: `raw-${Math.random().toString(16).slice(2)}` });
  private readonly cbsPairs: Array<{ sender: Sender; receiver: Receiver; waiters: Map<string, (m: Message) => void> }> = [];
  strayCbsReplies = 0;
  private disconnected = false;

  private constructor(hub: AmqpTestHub, tlsOptions: { cert?: string; key?: string }) {
    this.container.on('error', () => undefined);
    this.container.on('disconnected', () => {
      this.disconnected = true;
    });
    this.connection = this.container.connect({
      host: 'localhost',
      port: hub.amqpPort,
      transport: 'tls',
      ca: hub.ca,
      reconnect: false,
      ...tlsOptions,
    } as Parameters<typeof this.container.connect>[0]);
    this.connection.on('connection_error', () => undefined);
  }

  static async connect(hub: AmqpTestHub, tlsOptions: { cert?: string; key?: string } = {}): Promise<RawAmqpClient> {
    const client = new RawAmqpClient(hub, tlsOptions);
    await within(new Promise<void>((resolve, reject) => {
      client.connection.once('connection_open', () => resolve());
      client.connection.once('disconnected', () => reject(new Error('disconnected before open')));
    }), 5000, 'raw connection open');
    return client;
  }

  get isDisconnected(): boolean {
    return this.disconnected;
  }

  /** Attaches and reports whether the hub kept the link or detached it (with which error). */
  async attach(kind: 'sender' | 'receiver', address: string, options: Record<string, unknown> = {}): Promise<{ link: Sender | Receiver; result: RawLinkResult }> {
    const link = kind === 'sender'
      ? this.connection.open_sender({ target: { address }, ...options })
      : this.connection.open_receiver({ source: { address }, ...options });
    const result = await within(new Promise<RawLinkResult>((resolve) => {
      const prefix = kind === 'sender' ? 'sender' : 'receiver';
      let opened = false;
      link.once(`${prefix}_open`, () => {
        opened = true;
        // The hub answers a refused attach with attach + detach; give the detach a moment.
        setTimeout(() => resolve({ opened: !link.is_closed() && link.is_open() }), 150);
      });
      link.once(`${prefix}_close`, (ctx: EventContext) => {
        const error = (kind === 'sender' ? ctx.sender : ctx.receiver)?.error as RawLinkResult['error'];
        resolve({ opened: false, ...(error ? { error } : {}) });
      });
      link.once(`${prefix}_error`, () => undefined);
      void opened;
    }), 5000, `attach ${address}`);
    return { link, result };
  }

  /**
   * Sends one put-token on $cbs pair `pair` (opened on first use; several pairs on one session is
   * what the SDK does when identities share a connection) and returns the reply's status. Replies
   * that arrive on another pair are recorded in `strayCbsReplies`.
   */
  async putToken(audienceDeviceId: string, token: string, pair = 0): Promise<{ status: unknown; description: unknown }> {
    let cbs = this.cbsPairs[pair];
    if (!cbs) {
      const sender = (await this.attach('sender', '$cbs')).link as Sender;
      const receiver = (await this.attach('receiver', '$cbs')).link as Receiver;
      const waiters = new Map<string, (m: Message) => void>();
      receiver.on('message', (ctx: EventContext) => {
        const id = String(ctx.message?.correlation_id);
        const waiter = waiters.get(id);
        if (waiter) waiter(ctx.message as Message);
        else this.strayCbsReplies++;
        waiters.delete(id);
      });
      cbs = { sender, receiver, waiters };
      this.cbsPairs[pair] = cbs;
    }
    const messageId = rhea.generate_uuid();
    const pending = cbs.waiters;
    const reply = within(new Promise<Message>((resolve) => pending.set(messageId, resolve)), 5000, 'put-token reply');
    cbs.sender.send({
      message_id: messageId,
      to: '$cbs',
      reply_to: 'cbs',
      application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: encodeURIComponent(`${HUB_NAME}/devices/${audienceDeviceId}`) },
      body: token,
    } as unknown as Message);
    const m = await reply;
    const props = (m.application_properties ?? {}) as Record<string, unknown>;
    return { status: props['status-code'], description: props['status-description'] };
  }

  /** Sends one message and resolves with its outcome. */
  async send(sender: Sender, message: Record<string, unknown> | Buffer, format?: number): Promise<{ outcome: 'accepted' | 'rejected' | 'released'; error?: { condition?: string; description?: string } }> {
    await waitFor(() => (sender.sendable() ? true : undefined), 5000, 'credit');
    const delivery = format === undefined ? sender.send(message as unknown as Message) : sender.send(message as Buffer, undefined, format);
    return within(new Promise((resolve) => {
      const onAccepted = (ctx: EventContext): void => {
        if (ctx.delivery === delivery) resolve({ outcome: 'accepted' });
      };
      const onRejected = (ctx: EventContext): void => {
        const error = (ctx.delivery?.remote_state as { error?: { condition?: string; description?: string } } | undefined)?.error;
        if (ctx.delivery === delivery) resolve({ outcome: 'rejected', ...(error ? { error } : {}) });
      };
      const onReleased = (ctx: EventContext): void => {
        if (ctx.delivery === delivery) resolve({ outcome: 'released' });
      };
      sender.on('accepted', onAccepted);
      sender.on('rejected', onRejected);
      sender.on('released', onReleased);
    }), 5000, 'disposition');
  }

  async close(): Promise<void> {
    if (this.disconnected) return;
    // A clean close ends with the peer's close frame; rhea reports 'disconnected' only for unclean ends.
    const done = new Promise<void>((resolve) => {
      this.connection.once('connection_close', () => resolve());
      this.connection.once('disconnected', () => resolve());
    });
    this.connection.close();
    await within(done, 3000, 'raw close').catch(() => {
      (this.connection as unknown as { socket?: { destroy(): void } }).socket?.destroy();
    });
  }
}
