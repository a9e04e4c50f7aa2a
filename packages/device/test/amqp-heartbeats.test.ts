// The AMQP silence watch on a stand-in for rhea's Connection and a ManualClock: no sockets. Over a
// real half-open connection it is exercised by bounded-dead-network.test.ts ("half-open").
import { describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import { keepWriting, requestAmqpHeartbeats, watchSilence } from '../src/links/amqp-heartbeats.ts';

function fakeConnection() {
  const reads: Buffer[] = [];
  const connection = {
    local: { open: { idle_time_out: 4_000 as number | undefined } },
    heartbeat_in: setTimeout(() => undefined, 60_000) as ReturnType<typeof setTimeout> | undefined,
    amqp_transport: { read: (buffer: Buffer, _connection?: unknown) => (reads.push(buffer), buffer.length) },
    socket: {},
    socket_ready: true,
    idled: 0,
    idle() {
      this.idled++;
    },
  };
  return { connection, reads };
}

describe('the AMQP silence watch', () => {
  it('switches rhea\'s per-read timer off and drops the connection after idleTimeoutMs without a read', () => {
    const clock = new ManualClock(0);
    const { connection, reads } = fakeConnection();
    watchSilence(connection, 4_000, clock);
    expect(connection.local.open.idle_time_out).toBeUndefined();
    expect(connection.heartbeat_in).toBeUndefined();
    // Reads (a hub heartbeat every half of the timeout) keep it open, and still reach rhea.
    for (let t = 0; t < 5; t++) {
      clock.advance(2_000);
      connection.amqp_transport.read(Buffer.from([0, 0, 0, 8]), connection);
    }
    expect(reads).toHaveLength(5);
    expect(connection.idled).toBe(0);
    clock.advance(3_999);
    expect(connection.idled).toBe(0);
    clock.advance(1);
    expect(connection.idled).toBe(1);
    // Once idled there is nothing left armed.
    expect(clock.pending()).toBe(0);
  });

  it('tells how long nothing was read', () => {
    const clock = new ManualClock(0);
    const { connection } = fakeConnection();
    const watch = watchSilence(connection, 4_000, clock)!;
    clock.advance(1_500);
    expect(watch.silentMs()).toBe(1_500);
    connection.amqp_transport.read(Buffer.from([0, 0, 0, 8]), connection);
    expect(watch.silentMs()).toBe(0);
    clock.advance(700);
    expect(watch.silentMs()).toBe(700);
    expect(watchSilence({ ...connection, amqp_transport: undefined } as never, 4_000, clock)).toBeUndefined();
  });

  it('stops watching a connection that is gone, and never keeps the process alive', () => {
    const clock = new ManualClock(0);
    const { connection } = fakeConnection();
    watchSilence(connection, 4_000, clock);
    expect(clock.pending({ refed: true })).toBe(0);
    connection.socket_ready = false;
    clock.advance(10_000);
    expect(connection.idled).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it('leaves rhea\'s own watch alone on a connection that lacks the parts it relies on', () => {
    const clock = new ManualClock(0);
    const { connection } = fakeConnection();
    const timer = connection.heartbeat_in;
    watchSilence({ ...connection, amqp_transport: undefined } as never, 4_000, clock);
    expect(connection.local.open.idle_time_out).toBe(4_000);
    expect(connection.heartbeat_in).toBe(timer);
    clearTimeout(timer);
  });

  it('asks for heartbeats in the open frame and watches the connection the SDK opened', () => {
    const clock = new ManualClock(0);
    const { connection } = fakeConnection();
    let config: Record<string, unknown> | undefined;
    const amqp = {
      _rheaConnection: undefined as unknown,
      connect(c: Record<string, unknown>, done: (err?: unknown) => void) {
        config = c;
        this._rheaConnection = connection;
        done(null);
      },
    };
    requestAmqpHeartbeats({ _amqp: amqp }, 4_000, clock);
    let connected = false;
    (amqp.connect as (c: Record<string, unknown>, done: (err?: unknown) => void) => void)({ policyOverride: { other: 1 } }, () => (connected = true));
    expect(connected).toBe(true);
    expect(config?.policyOverride).toEqual({ other: 1, idle_time_out: 4_000 });
    expect(connection.local.open.idle_time_out).toBeUndefined();
    clock.advance(4_000);
    expect(connection.idled).toBe(1);
  });
});

/** A stand-in for rhea 1.x's Connection on the writing side: the peer's open frame keeps its idle timeout behind an accessor, as rhea's composite types do. */
function writingConnection(peerIdleMs: number) {
  const written: string[] = [];
  const open = Object.create({
    get idle_time_out(): number {
      return peerIdleMs;
    },
  }) as { idle_time_out?: number };
  const transport = {
    pending: [] as string[],
    write(this: { pending: string[] }, _socket: unknown) {
      written.push(...this.pending);
      this.pending = [];
    },
  };
  const connection = {
    remote: { open },
    // Stands in for rhea's armed Timeout; clearTimeout ignores what is not one.
    heartbeat_out: { armed: 'by rhea' } as unknown as ReturnType<typeof setTimeout> | undefined,
    amqp_transport: transport,
    socket: {},
    socket_ready: true,
    open: true,
    is_open(): boolean {
      return connection.open;
    },
    // rhea: encode the frame, then output(), which writes whatever is pending.
    _write_frame(frame = 'empty') {
      transport.pending.push(frame);
      transport.write.call(transport, connection.socket);
    },
    send(frame: string) {
      connection._write_frame(frame);
    },
  };
  return { connection, written };
}

describe('the AMQP heartbeat writer', () => {
  it('hides the hub\'s idle timeout from rhea\'s per-write timer and writes an empty frame after half of it in silence', () => {
    const clock = new ManualClock(0);
    const { connection, written } = writingConnection(8_000);
    keepWriting(connection, clock);
    expect(connection.remote.open.idle_time_out).toBeUndefined();
    expect(connection.heartbeat_out).toBeUndefined();
    // Frames every second: no heartbeat is needed.
    for (let t = 0; t < 10; t++) {
      clock.advance(1_000);
      connection.send(`transfer ${t}`);
    }
    expect(written.filter((f) => f === 'empty')).toHaveLength(0);
    // Silence from t = 10 s: a frame goes out no later than half the idle timeout after the last one.
    clock.advance(4_000);
    expect(written.filter((f) => f === 'empty')).toHaveLength(1);
    // And again in every half timeout of silence after it, from one timer, never keeping the process alive.
    clock.advance(8_000);
    expect(written.filter((f) => f === 'empty')).toHaveLength(3);
    expect(clock.pending()).toBe(1);
    expect(clock.pending({ refed: true })).toBe(0);
  });

  it('stops with the connection, lost or closed in order (rhea keeps socket_ready then)', () => {
    for (const end of ['lost', 'closed'] as const) {
      const clock = new ManualClock(0);
      const { connection, written } = writingConnection(8_000);
      keepWriting(connection, clock);
      if (end === 'lost') connection.socket_ready = false;
      else connection.open = false;
      clock.advance(20_000);
      expect(written).toHaveLength(0);
      expect(clock.pending()).toBe(0);
    }
  });

  it('leaves rhea\'s own timer alone when the hub asks for no heartbeats or the connection lacks the parts it relies on', () => {
    const clock = new ManualClock(0);
    const { connection } = writingConnection(0);
    const timer = connection.heartbeat_out;
    keepWriting(connection, clock);
    expect(connection.heartbeat_out).toBe(timer);
    expect(clock.pending()).toBe(0);
    const other = writingConnection(8_000).connection;
    keepWriting({ ...other, amqp_transport: { write: other.amqp_transport.write } } as never, clock);
    expect(other.remote.open.idle_time_out).toBe(8_000);
    expect(clock.pending()).toBe(0);
  });
});
