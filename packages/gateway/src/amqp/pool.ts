// A pool of shared AMQP connections, each carrying at most `maxIdentitiesPerConnection`
// identities. 995 is the C# SDK's cap: IoT Hub accepts 999 tokens per connection and the SDK
// keeps a margin for renewals in flight.
import { EventEmitter } from 'node:events';
import { SharedAmqpConnection, type AmqpEndpoint, type ConnectionState, type SharedConnectionOptions } from './connection.ts';

export const DEFAULT_MAX_IDENTITIES_PER_CONNECTION = 995;

/**
 * Which connection takes the next identity: the first (oldest) one with room, so connections fill
 * up one after another and emptied slots are reused before a new socket is opened. Returns -1
 * when every connection is full.
 */
export function chooseConnection(loads: readonly number[], maxPerConnection: number): number {
  return loads.findIndex((load) => load < maxPerConnection);
}

export interface ConnectionInfo {
  connectionId: string;
  state: ConnectionState;
  identities: string[];
  /** Shared AMQP connections only: sessions open on it, the control session included. */
  sessions?: number;
}

export interface PoolEvents {
  'connection-open': [{ connectionId: string }];
  'connection-lost': [{ connectionId: string; error: Error }];
  'connection-closed': [{ connectionId: string }];
}

export interface PoolOptions extends SharedConnectionOptions {
  endpoint: AmqpEndpoint;
  maxIdentitiesPerConnection: number;
}

interface Slot {
  connection: SharedAmqpConnection;
  identities: Set<string>;
}

export class AmqpConnectionPool extends EventEmitter<PoolEvents> {
  private readonly slots: Slot[] = [];
  private readonly byIdentity = new Map<string, Slot>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: PoolOptions) {
    super();
  }

  /** Reserves a place for `deviceId` and returns the connection that will carry it. */
  assign(deviceId: string): SharedAmqpConnection {
    if (this.closed) throw new Error('the connection pool is closed');
    const existing = this.byIdentity.get(deviceId);
    if (existing) return existing.connection;
    const index = chooseConnection(this.slots.map((slot) => slot.identities.size), this.options.maxIdentitiesPerConnection);
    const slot = index === -1 ? this.createSlot() : this.slots[index];
    if (!slot) throw new Error('connection pool slot vanished');
    slot.identities.add(deviceId);
    this.byIdentity.set(deviceId, slot);
    return slot.connection;
  }

  /** Gives the place back; a connection left with no identity is closed. */
  async release(deviceId: string): Promise<void> {
    const slot = this.byIdentity.get(deviceId);
    if (!slot) return;
    this.byIdentity.delete(deviceId);
    slot.identities.delete(deviceId);
    if (slot.identities.size > 0) return;
    const index = this.slots.indexOf(slot);
    if (index !== -1) this.slots.splice(index, 1);
    await slot.connection.close();
    this.emit('connection-closed', { connectionId: slot.connection.id });
  }

  connections(): ConnectionInfo[] {
    return this.slots.map((slot) => ({ connectionId: slot.connection.id, state: slot.connection.state, identities: [...slot.identities], sessions: slot.connection.sessionCount }));
  }

  async close(): Promise<void> {
    this.closed = true;
    // Kept in the list until closed, so that abandon() still finds them.
    const slots = [...this.slots];
    this.byIdentity.clear();
    await Promise.all(
      slots.map(async (slot) => {
        await slot.connection.close();
        this.emit('connection-closed', { connectionId: slot.connection.id });
      }),
    );
    this.slots.splice(0);
  }

  /** Ends every connection without waiting for the hub (see SharedAmqpConnection.abandon). */
  abandon(): void {
    for (const slot of this.slots) slot.connection.abandon();
  }

  private createSlot(): Slot {
    const { endpoint, maxIdentitiesPerConnection: _max, ...connectionOptions } = this.options;
    const connection = new SharedAmqpConnection(`amqp-${this.nextId++}`, endpoint, connectionOptions);
    connection.on('open', () => this.emit('connection-open', { connectionId: connection.id }));
    connection.on('lost', (error) => this.emit('connection-lost', { connectionId: connection.id, error }));
    const slot: Slot = { connection, identities: new Set() };
    this.slots.push(slot);
    return slot;
  }
}
