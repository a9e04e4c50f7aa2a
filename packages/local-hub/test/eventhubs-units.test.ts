// The built-in endpoint's pure logic without sockets: retention, start positions, selector
// filters, owner levels, sb:// claims, partition hashing, consumer groups and the files on disk.
import { createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkClaim, EventHubEndpoint, parseStartFilter, partitionOfDevice, PartitionLog, PartitionOwnership, type EventInput } from '../src/eventhubs/index.ts';
import { createMemoryLogger, silentLogger } from '../src/index.ts';
import { eventToAmqp } from '../src/eventhubs/wire.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function input(deviceId: string, body: string, properties: Record<string, string> = {}): EventInput {
  return { deviceId, authType: 'sas', generationId: 'g1', body: Buffer.from(body), properties, systemProperties: { messageId: `${deviceId}-${body}` } };
}

describe('PartitionLog retention', () => {
  it('keeps at most maxEvents, dropping the oldest, while sequence numbers and offsets keep counting', () => {
    const log = new PartitionLog({ maxEvents: 3, maxBytes: 1_000_000 });
    const stored = Array.from({ length: 10 }, (_, i) => log.append(input('d', `e${i}`), 1000 + i));
    expect(log.size).toBe(3);
    expect(log.retained().map((e) => e.sequenceNumber)).toEqual([7, 8, 9]);
    expect(stored.map((e) => e.sequenceNumber)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let i = 1; i < stored.length; i++) expect(stored[i]!.offset).toBeGreaterThan(stored[i - 1]!.offset);
    expect(log.info()).toEqual({ beginSequenceNumber: 7, lastSequenceNumber: 9, lastOffset: String(stored[9]!.offset), lastEnqueuedAt: 1009, isEmpty: false });
    expect(log.get(6)).toBeUndefined();
    expect(log.get(8)?.body.toString()).toBe('e8');
  });

  it('bounds bytes, but always keeps the newest event', () => {
    const log = new PartitionLog({ maxEvents: 1000, maxBytes: 100 });
    for (let i = 0; i < 50; i++) log.append(input('d', 'x'.repeat(30)), i);
    expect(log.bytes).toBeLessThanOrEqual(100);
    const big = log.append(input('d', 'y'.repeat(500)), 51);
    expect(log.retained()).toEqual([big]);
  });

  it('stays within both bounds for any sequence of appends (property)', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 400 }),
      fc.array(fc.integer({ min: 0, max: 120 }), { maxLength: 200 }),
      (maxEvents, maxBytes, sizes) => {
        const log = new PartitionLog({ maxEvents, maxBytes });
        sizes.forEach((n, i) => log.append(input('d', 'z'.repeat(n)), i));
        expect(log.size).toBeLessThanOrEqual(maxEvents);
        if (log.size > 1) expect(log.bytes).toBeLessThanOrEqual(maxBytes);
        expect(log.nextSequenceNumber).toBe(sizes.length);
        const kept = log.retained().map((e) => e.sequenceNumber);
        expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => sizes.length - kept.length + i));
      },
    ));
  });

  it('an empty partition reports itself as Event Hubs does', () => {
    expect(new PartitionLog({ maxEvents: 1, maxBytes: 1 }).info()).toEqual({ beginSequenceNumber: 0, lastSequenceNumber: -1, lastOffset: '-1', lastEnqueuedAt: 0, isEmpty: true });
  });

  it('enqueue times never go backwards, even when the clock does', () => {
    const log = new PartitionLog({ maxEvents: 10, maxBytes: 10_000 });
    log.append(input('d', 'a'), 5000);
    expect(log.append(input('d', 'b'), 4000).enqueuedAt).toBe(5000);
  });
});

describe('start positions', () => {
  const log = new PartitionLog({ maxEvents: 5, maxBytes: 1_000_000 });
  const events = Array.from({ length: 8 }, (_, i) => log.append(input('d', `e${i}`), 100 * i));
  // Retained: sequence numbers 3..7.

  it('earliest is the oldest retained; latest is the next to come', () => {
    expect(log.startSequence({ kind: 'earliest' })).toBe(3);
    expect(log.startSequence({ kind: 'latest' })).toBe(8);
  });

  it('by sequence number, inclusive or not, clamped to what is retained', () => {
    expect(log.startSequence({ kind: 'sequence', sequenceNumber: 5, inclusive: true })).toBe(5);
    expect(log.startSequence({ kind: 'sequence', sequenceNumber: 5, inclusive: false })).toBe(6);
    expect(log.startSequence({ kind: 'sequence', sequenceNumber: 1, inclusive: true })).toBe(3);
    expect(log.startSequence({ kind: 'sequence', sequenceNumber: 40, inclusive: true })).toBe(40);
  });

  it('by offset and by enqueue time', () => {
    const at = events[5]!;
    expect(log.startSequence({ kind: 'offset', offset: at.offset, inclusive: true })).toBe(5);
    expect(log.startSequence({ kind: 'offset', offset: at.offset, inclusive: false })).toBe(6);
    expect(log.startSequence({ kind: 'enqueued', time: at.enqueuedAt, inclusive: false })).toBe(6);
    expect(log.startSequence({ kind: 'enqueued', time: at.enqueuedAt, inclusive: true })).toBe(5);
    expect(log.startSequence({ kind: 'enqueued', time: 1_000_000, inclusive: false })).toBe(8);
  });
});

describe('selector filters as @azure/event-hubs writes them', () => {
  it.each([
    ["amqp.annotation.x-opt-offset > '-1'", { kind: 'earliest' }],
    ["amqp.annotation.x-opt-offset > '@latest'", { kind: 'latest' }],
    ["amqp.annotation.x-opt-offset >= '120'", { kind: 'offset', offset: 120, inclusive: true }],
    ["amqp.annotation.x-opt-offset > '120'", { kind: 'offset', offset: 120, inclusive: false }],
    ["amqp.annotation.x-opt-sequence-number >= '7'", { kind: 'sequence', sequenceNumber: 7, inclusive: true }],
    ["amqp.annotation.x-opt-sequence-number > '7'", { kind: 'sequence', sequenceNumber: 7, inclusive: false }],
    ["amqp.annotation.x-opt-enqueued-time > '1700000000000'", { kind: 'enqueued', time: 1_700_000_000_000, inclusive: false }],
  ])('%s', (text, position) => {
    expect(parseStartFilter({ 'apache.org:selector-filter:string': { descriptor: 0x468c00000004, value: text } })).toEqual({ ok: true, position });
    expect(parseStartFilter({ 'apache.org:selector-filter:string': text })).toEqual({ ok: true, position });
  });

  it('no filter reads from the start; anything else is refused', () => {
    expect(parseStartFilter(undefined)).toEqual({ ok: true, position: { kind: 'earliest' } });
    expect(parseStartFilter({ 'apache.org:selector-filter:string': "amqp.annotation.x-opt-offset > 'abc'" }).ok).toBe(false);
    expect(parseStartFilter({ 'apache.org:selector-filter:string': '1 = 1; DROP' }).ok).toBe(false);
    expect(parseStartFilter({ 'apache.org:selector-filter:string': 42 }).ok).toBe(false);
  });
});

describe('owner levels (epochs)', () => {
  it('a higher owner level takes the partition; lower ones and readers without one are refused', () => {
    const o = new PartitionOwnership<string>();
    expect(o.claim('g/0', 'a', undefined)).toEqual({ ok: true, evicted: [] });
    const taken = o.claim('g/0', 'b', 1);
    expect(taken.ok && taken.evicted.map((e) => e.link)).toEqual(['a']);
    expect(o.claim('g/0', 'c', 0)).toMatchObject({ ok: false, condition: 'amqp:link:stolen' });
    expect(o.claim('g/0', 'd', undefined)).toMatchObject({ ok: false, condition: 'amqp:link:stolen' });
    const again = o.claim('g/0', 'e', 1);
    expect(again.ok && again.evicted.map((e) => e.link)).toEqual(['b']);
    // Other partitions and groups are separate.
    expect(o.claim('g/1', 'f', undefined).ok).toBe(true);
    o.release('g/0', 'e');
    expect(o.claim('g/0', 'g', undefined).ok).toBe(true);
  });

  it('at most five readers without an owner level share a partition', () => {
    const o = new PartitionOwnership<number>();
    for (let i = 0; i < 5; i++) expect(o.claim('g/0', i, undefined).ok).toBe(true);
    expect(o.claim('g/0', 5, undefined)).toMatchObject({ ok: false, condition: 'amqp:resource-limit-exceeded' });
  });
});

describe('sb:// claims', () => {
  const key = Buffer.alloc(32, 7).toString('base64');
  const rules = { entity: 'myhub', hosts: ['127.0.0.1', 'localhost'], policies: [{ name: 'iothubowner', key }] };
  // Signed the way Service Bus clients sign: the key's text is the HMAC key.
  function token(resource: string, expirySeconds: number, signingKey = key, keyName = 'iothubowner'): string {
    const sr = encodeURIComponent(resource);
    const sig = encodeURIComponent(createHmac('sha256', Buffer.from(signingKey, 'utf8')).update(`${sr}\n${expirySeconds}`).digest('base64'));
    return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${expirySeconds}&skn=${keyName}`;
  }
  const audience = 'sb://127.0.0.1:5671/myhub/ConsumerGroups/$default/Partitions/0';
  const now = 1_000_000_000;

  it('accepts a token for the audience or a parent of it, until it expires', () => {
    const exp = now / 1000 + 60;
    expect(checkClaim(rules, audience, token(audience, exp), now)).toEqual({ ok: true, path: 'myhub/consumergroups/$default/partitions/0', expiresAt: exp * 1000, policy: 'iothubowner' });
    expect(checkClaim(rules, audience, token('sb://127.0.0.1:5671/myhub', exp), now).ok).toBe(true);
    expect(checkClaim(rules, audience, token(audience, now / 1000 - 1), now)).toMatchObject({ ok: false, status: 401 });
  });

  it('refuses other keys, policies, hosts, entities and sibling scopes', () => {
    const exp = now / 1000 + 60;
    expect(checkClaim(rules, audience, token(audience, exp, Buffer.alloc(32, 8).toString('base64')), now)).toMatchObject({ ok: false, status: 401 });
    expect(checkClaim(rules, audience, token(audience, exp, key, 'device'), now)).toMatchObject({ ok: false, status: 401 });
    expect(checkClaim(rules, audience, token('sb://evil.example/myhub', exp), now)).toMatchObject({ ok: false, status: 401 });
    expect(checkClaim(rules, 'sb://127.0.0.1/otherhub', token('sb://127.0.0.1/otherhub', exp), now)).toMatchObject({ ok: false, status: 404 });
    expect(checkClaim(rules, audience, token('sb://127.0.0.1/myhub/ConsumerGroups/$default/Partitions/1', exp), now)).toMatchObject({ ok: false, status: 401 });
    expect(checkClaim(rules, audience, 'SharedAccessSignature nonsense', now)).toMatchObject({ ok: false, status: 401 });
  });
});

describe('EventHubEndpoint', () => {
  it('hashes a device to the same partition every time, and spreads devices', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 64; i++) {
      const p = partitionOfDevice(`device-${i}`, 4);
      expect(partitionOfDevice(`device-${i}`, 4)).toBe(p);
      seen.add(p);
    }
    expect(seen.size).toBe(4);
  });

  it('names partitions 0 to n-1, canonically spelled', () => {
    const endpoint = new EventHubEndpoint({ name: 'h', partitionCount: 12, logger: silentLogger, now: () => 0 });
    expect(endpoint.partitionIds).toEqual(Array.from({ length: 12 }, (_, i) => String(i)));
    expect(endpoint.partition('11')).toBeDefined();
    for (const bad of ['12', '01', '-1', '1.0', ' 1', '']) expect(endpoint.partition(bad)).toBeUndefined();
    expect(() => new EventHubEndpoint({ name: 'h', partitionCount: 0, logger: silentLogger, now: () => 0 })).toThrow(/partitionCount/);
    expect(() => new EventHubEndpoint({ name: 'h', partitionCount: 129, logger: silentLogger, now: () => 0 })).toThrow(/partitionCount/);
  });

  it('validates consumer group names and matches them case-insensitively', () => {
    const endpoint = new EventHubEndpoint({ name: 'h', logger: silentLogger, now: () => 0 });
    expect(endpoint.consumerGroup('$default')).toBe('$Default');
    expect(endpoint.createConsumerGroup('Analytics')).toBe('Analytics');
    expect(endpoint.consumerGroup('analytics')).toBe('Analytics');
    expect(() => endpoint.createConsumerGroup('-bad')).toThrow(/invalid/);
    expect(() => endpoint.createConsumerGroup('x'.repeat(51))).toThrow(/invalid/);
    expect(() => endpoint.deleteConsumerGroup('$Default')).toThrow();
    expect(endpoint.deleteConsumerGroup('ANALYTICS')).toBe(true);
    expect(endpoint.consumerGroups()).toEqual(['$Default']);
  });

  it('keeps events, numbering and consumer groups across a restart, and bounds the files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-eventhubs-'));
    dirs.push(dir);
    const retention = { maxEvents: 50, maxBytes: 1_000_000 };
    let now = 1_000;
    const first = new EventHubEndpoint({ name: 'h', partitionCount: 2, retention, dir, logger: silentLogger, now: () => now++ });
    first.createConsumerGroup('kept');
    const sent = Array.from({ length: 3000 }, (_, i) => first.append(input(`dev-${i % 7}`, `m${i}`, { i: String(i) })));
    const before = first.partitionIds.map((id) => first.partitionInfo(id));
    first.close();
    // Rewriting keeps each file near what retention keeps, however many events went through.
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.log'))) expect(statSync(join(dir, file)).size).toBeLessThan(200_000);

    const second = new EventHubEndpoint({ name: 'h', partitionCount: 2, retention, dir, logger: silentLogger, now: () => now++ });
    expect(second.consumerGroups()).toEqual(['$Default', 'kept']);
    expect(second.partitionIds.map((id) => second.partitionInfo(id))).toEqual(before);
    const last = sent.at(-1)!;
    const partition = second.partition(String(second.partitionOf(last.deviceId)))!;
    expect(partition.get(last.sequenceNumber)).toEqual(last);
    const next = second.append(input(last.deviceId, 'after'));
    expect(next.sequenceNumber).toBe(last.sequenceNumber + 1);
    second.close();
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-eventhubs-'));
    dirs.push(dir);
    return dir;
  }

  it('drops a torn last event and sets a damaged file aside, keeping the rest', () => {
    const dir = tempDir();
    const first = new EventHubEndpoint({ name: 'h', partitionCount: 2, dir, logger: silentLogger, now: () => 1 });
    const kept = [first.append(input('dev-a', 'one')), first.append(input('dev-a', 'two'))];
    const other = first.append(input('dev-b', 'three'));
    first.close();
    const partA = join(dir, `partition-${first.partitionOf('dev-a')}.log`);
    const partB = join(dir, `partition-${first.partitionOf('dev-b')}.log`);
    expect(partA).not.toBe(partB);
    appendFileSync(partA, Buffer.from([200, 0, 0, 0, 1, 2]));
    const bytes = readFileSync(partB);
    bytes[12] = bytes[12]! ^ 0xff;
    writeFileSync(partB, Buffer.concat([bytes, bytes]));

    const logger = createMemoryLogger();
    const second = new EventHubEndpoint({ name: 'h', partitionCount: 2, dir, logger, now: () => 2 });
    expect(second.partition(String(second.partitionOf('dev-a')))!.retained()).toEqual(kept);
    expect(second.partitionInfo(String(second.partitionOf('dev-b')))?.isEmpty).toBe(true);
    expect(existsSync(`${partB}.damaged`)).toBe(true);
    expect(logger.entries.map((l) => l.message)).toEqual(expect.arrayContaining(['event hubs endpoint: torn last event dropped', 'event hubs endpoint: damaged partition file set aside']));
    expect(other.sequenceNumber).toBe(0);
    second.close();
  });

  it('starts afresh when the partition count changed, keeping the consumer groups', () => {
    const dir = tempDir();
    const first = new EventHubEndpoint({ name: 'h', partitionCount: 2, consumerGroups: ['g'], dir, logger: silentLogger, now: () => 1 });
    first.append(input('dev-a', 'one'));
    first.close();
    const second = new EventHubEndpoint({ name: 'h', partitionCount: 3, dir, logger: silentLogger, now: () => 2 });
    expect(second.partitionIds).toEqual(['0', '1', '2']);
    expect(second.partitionIds.every((id) => second.partitionInfo(id)?.isEmpty)).toBe(true);
    expect(second.consumerGroups()).toEqual(['$Default', 'g']);
    second.close();
  });

  it('a SIGKILLed hub keeps every event whose turn had passed', async () => {
    const dir = tempDir();
    const fixture = fileURLToPath(new URL('./fixtures/eventhubs-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const printed = await new Promise<number[]>((resolve, reject) => {
      let out = '';
      let err = '';
      let killed = false;
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`child printed too little within 20 s: ${err}`)); }, 20_000);
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (!killed && out.split('\n').length > 200) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      // 'close' comes after stdout has ended, so everything printed has been read.
      child.once('close', (_code, signal) => {
        clearTimeout(timer);
        if (signal !== 'SIGKILL') reject(new Error(`child exited with ${String(signal)}: ${err}`));
        else resolve(out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number));
      });
    });
    expect(printed.length).toBeGreaterThanOrEqual(200);
    const reopened = new EventHubEndpoint({ name: 'killed', partitionCount: 1, dir, logger: silentLogger, now: () => Date.now() });
    const info = reopened.partitionInfo('0')!;
    expect(info.lastSequenceNumber).toBeGreaterThanOrEqual(Math.max(...printed));
    expect(reopened.partition('0')!.retained().map((e) => e.sequenceNumber).slice(0, printed.length)).toEqual(printed);
    reopened.close();
  });

  it('marks a module\'s telemetry with iothub-connection-module-id, on the wire and across a restart', () => {
    const dir = tempDir();
    const first = new EventHubEndpoint({ name: 'h', partitionCount: 1, dir, logger: silentLogger, now: () => 5 });
    const fromModule = first.append({ ...input('edge', '{"t":1}'), moduleId: 'sensor' });
    const fromDevice = first.append(input('edge', '{"t":2}'));
    first.close();
    const annotations = (m: Record<string, unknown>): Record<string, unknown> => m.message_annotations as Record<string, unknown>;
    expect(annotations(eventToAmqp(fromModule))['iothub-connection-module-id']).toBe('sensor');
    expect(annotations(eventToAmqp(fromDevice))).not.toHaveProperty('iothub-connection-module-id');
    const second = new EventHubEndpoint({ name: 'h', partitionCount: 1, dir, logger: silentLogger, now: () => 6 });
    expect(second.partition('0')!.retained()).toEqual([fromModule, fromDevice]);
    second.close();
  });
});
