// The twin query language subset, without sockets: what parses, what is refused as invalid
// (400) or as not supported (501), how conditions evaluate with missing properties and mixed
// types, and how pages and continuation tokens split a result.
import { describe, expect, it } from 'vitest';
import { decodeContinuation, pageOf, parseQuery, QueryNotSupportedError, QuerySyntaxError, runQuery } from '../src/query/index.ts';

const twin = (deviceId: string, extra: { status?: string; tags?: Record<string, unknown>; reported?: Record<string, unknown>; desired?: Record<string, unknown> } = {}): Record<string, unknown> => ({
  deviceId,
  status: extra.status ?? 'enabled',
  tags: extra.tags ?? {},
  properties: { desired: { $version: 1, ...extra.desired }, reported: { $version: 1, ...extra.reported } },
});

const fleet = [
  twin('a', { tags: { x: 'y', floor: 1 }, reported: { z: 5 } }),
  twin('b', { tags: { x: 'y' }, reported: { z: 2 } }),
  twin('c', { tags: { x: 'w' }, reported: { z: 9 }, status: 'disabled' }),
  twin('d', { reported: { z: '7' } }),
  twin('e', { tags: { x: 'y', nested: { deep: true } }, desired: { mode: 'eco' } }),
];

const ids = (sql: string): string[] => runQuery(parseQuery(sql), fleet).items.map((t) => t.deviceId as string);

describe('parseQuery', () => {
  it('reads the SELECT forms, TOP and the WHERE tree', () => {
    expect(parseQuery('SELECT * FROM devices')).toEqual({ select: { kind: 'all' }, from: 'devices' });
    expect(parseQuery('select count() as n from DEVICES').select).toEqual({ kind: 'count', alias: 'n' });
    expect(parseQuery('SELECT COUNT() FROM devices').select).toEqual({ kind: 'count', alias: '$1' });
    expect(parseQuery('SELECT TOP 2 deviceId, tags.x AS where_ FROM devices')).toMatchObject({
      top: 2,
      select: { kind: 'fields', fields: [{ path: { segments: ['deviceId'] }, alias: 'deviceId' }, { path: { segments: ['tags', 'x'] }, alias: 'where_' }] },
    });
    expect(parseQuery("SELECT * FROM devices WHERE tags.x = 'y' AND NOT (status = 'disabled' OR properties.reported.z <> -3.5e1)").where).toEqual({
      kind: 'and',
      left: { kind: 'compare', op: '=', left: { kind: 'path', segments: ['tags', 'x'] }, right: { kind: 'literal', value: 'y' } },
      right: {
        kind: 'not',
        condition: {
          kind: 'or',
          left: { kind: 'compare', op: '=', left: { kind: 'path', segments: ['status'] }, right: { kind: 'literal', value: 'disabled' } },
          right: { kind: 'compare', op: '!=', left: { kind: 'path', segments: ['properties', 'reported', 'z'] }, right: { kind: 'literal', value: -35 } },
        },
      },
    });
  });

  it('binds AND tighter than OR, and reads both quotes with escapes', () => {
    expect(parseQuery("SELECT * FROM devices WHERE a = 1 OR b = 2 AND c = 3").where).toMatchObject({ kind: 'or', right: { kind: 'and' } });
    expect(parseQuery(`SELECT * FROM devices WHERE tags.n = "it's" OR tags.m = 'say \\'hi\\''`).where).toMatchObject({
      left: { right: { value: "it's" } },
      right: { right: { value: "say 'hi'" } },
    });
    expect(parseQuery('SELECT * FROM devices WHERE IS_DEFINED(tags.x) AND tags.ok = TRUE AND tags.gone = null').where).toMatchObject({
      left: { left: { kind: 'defined', path: { segments: ['tags', 'x'] } }, right: { right: { value: true } } },
      right: { right: { value: null } },
    });
  });

  it.each([
    ['', /expected SELECT/],
    ['SELECT * FROM', /expected 'devices'/],
    ['SELECT * FROM twins', /expected 'devices'/],
    ["SELECT * FROM devices WHERE tags.x = 'open", /not closed/],
    ['SELECT * FROM devices WHERE tags.x', /expected a comparison/],
    ['SELECT * FROM devices WHERE (tags.x = 1', /expected '\)'/],
    ['SELECT * FROM devices WHERE tags.x = 1 extra', /expected the end/],
    ['SELECT * FROM devices WHERE frobnicate(tags.x)', /unknown function/],
    ['SELECT TOP 0 * FROM devices', /TOP needs/],
    ['SELECT * FROM devices WHERE tags.x # 1', /unexpected '#'/],
    [`SELECT * FROM devices WHERE ${'NOT '.repeat(100)}a = 1`, /nests deeper/],
  ])('refuses %j as invalid', (sql, why) => {
    expect(() => parseQuery(sql)).toThrow(QuerySyntaxError);
    expect(() => parseQuery(sql)).toThrow(why);
  });

  it.each([
    ['SELECT * FROM devices.modules', 'FROM devices.modules'],
    ['SELECT * FROM devices.jobs', 'FROM devices.jobs'],
    ['SELECT tags.x, COUNT() AS n FROM devices GROUP BY tags.x', 'COUNT() in SELECT'],
    ['SELECT * FROM devices GROUP BY tags.x', 'GROUP BY'],
    ["SELECT * FROM devices WHERE STARTSWITH(deviceId, 'a')", 'the function STARTSWITH'],
    ["SELECT * FROM devices WHERE tags.x IN ['y', 'w']", 'IN'],
    ['SELECT * FROM devices WHERE tags.list[0] = 1', 'indexed property paths ([ ])'],
  ])('refuses %j as not supported, naming %s', (sql, feature) => {
    let error: unknown;
    try {
      parseQuery(sql);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(QueryNotSupportedError);
    expect((error as QueryNotSupportedError).feature).toBe(feature);
  });
});

describe('runQuery', () => {
  it('filters on tags, reported properties, status and deviceId', () => {
    expect(ids("SELECT * FROM devices WHERE tags.x = 'y' AND properties.reported.z > 3")).toEqual(['a']);
    expect(ids("SELECT * FROM devices WHERE tags.x = 'y' OR status = 'disabled'")).toEqual(['a', 'b', 'c', 'e']);
    expect(ids("SELECT * FROM devices WHERE deviceId >= 'c' AND deviceId != 'd'")).toEqual(['c', 'e']);
    expect(ids('SELECT * FROM devices WHERE properties.reported.z <= 5')).toEqual(['a', 'b']);
    expect(ids("SELECT * FROM devices WHERE properties.desired.mode = 'eco' AND tags.nested.deep = true")).toEqual(['e']);
  });

  it('treats missing properties and mixed types as neither true nor false', () => {
    // d's z is the string '7': not comparable with a number, so neither side of the NOT holds.
    expect(ids('SELECT * FROM devices WHERE properties.reported.z > 3')).toEqual(['a', 'c']);
    expect(ids('SELECT * FROM devices WHERE NOT (properties.reported.z > 3)')).toEqual(['b']);
    expect(ids("SELECT * FROM devices WHERE tags.x != 'y'")).toEqual(['c']);
    expect(ids('SELECT * FROM devices WHERE IS_DEFINED(tags.x)')).toEqual(['a', 'b', 'c', 'e']);
    expect(ids('SELECT * FROM devices WHERE NOT IS_DEFINED(tags.x)')).toEqual(['d']);
    // OR with one undefined side is true when the other side is.
    expect(ids("SELECT * FROM devices WHERE tags.floor = 1 OR deviceId = 'b'")).toEqual(['a', 'b']);
  });

  it('counts, projects and stops at TOP', () => {
    expect(runQuery(parseQuery("SELECT COUNT() AS n FROM devices WHERE tags.x = 'y'"), fleet)).toEqual({ items: [{ n: 3 }], itemType: 'Raw' });
    expect(runQuery(parseQuery("SELECT deviceId, tags.x AS loc FROM devices WHERE deviceId < 'c'"), fleet).items).toEqual([{ deviceId: 'a', loc: 'y' }, { deviceId: 'b', loc: 'y' }]);
    expect(runQuery(parseQuery('SELECT TOP 2 * FROM devices'), fleet)).toMatchObject({ itemType: 'Twin', items: [{ deviceId: 'a' }, { deviceId: 'b' }] });
  });
});

describe('paging', () => {
  const sql = 'SELECT * FROM devices';

  it('splits a result into pages with a token for the rest, and the last page has none', () => {
    const items = [1, 2, 3, 4, 5];
    const first = pageOf(sql, items, 0, 2);
    expect(first.page).toEqual([1, 2]);
    const second = pageOf(sql, items, decodeContinuation(sql, first.continuation!), 2);
    expect(second.page).toEqual([3, 4]);
    const last = pageOf(sql, items, decodeContinuation(sql, second.continuation!), 2);
    expect(last).toEqual({ page: [5] });
  });

  it('refuses a token of another query or a made-up one', () => {
    const { continuation } = pageOf(sql, [1, 2, 3], 0, 1);
    expect(() => decodeContinuation('SELECT COUNT() FROM devices', continuation!)).toThrow(QuerySyntaxError);
    expect(() => decodeContinuation(sql, 'not-a-token')).toThrow(QuerySyntaxError);
    expect(() => decodeContinuation(sql, Buffer.from('{"o":-1}').toString('base64url'))).toThrow(QuerySyntaxError);
  });
});
