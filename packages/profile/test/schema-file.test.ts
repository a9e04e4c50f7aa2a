// The checked-in schema.json is what editors and the package's `./schema.json` export serve; it
// must say exactly what the validator enforces.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILE, schemaText } from '../scripts/write-schema.ts';
import { parseProfile } from '../src/index.ts';

describe('schema.json', () => {
  it('equals the schema generated from the validator (regenerate: pnpm --filter @switchyard/profile run write-schema)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(schemaText());
  });

  it('lets a profile name its schema with "$schema", which parsing drops', () => {
    const profile = parseProfile({ $schema: './node_modules/@switchyard/profile/schema.json', features: ['telemetry', 'c2d'] });
    expect(profile).not.toHaveProperty('$schema');
    expect(profile.features).toEqual(['telemetry', 'c2d']);
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as { properties: Record<string, unknown>; additionalProperties: unknown };
    expect(schema.properties).toHaveProperty('$schema');
    expect(schema.additionalProperties).toBe(false);
  });

  it('still refuses a "$schema" that is not a string', () => {
    expect(() => parseProfile({ $schema: 42 })).toThrow(/\$schema: must be a string/);
  });
});

describe('"$schema" beside another unknown field', () => {
  it('names only the unknown one', () => {
    expect(() => parseProfile({ $schema: './schema.json', featurs: [] })).toThrow(/featurs: unknown field; did you mean "features"\? Valid fields: identities,/);
    try {
      parseProfile({ $schema: './schema.json', featurs: [] });
    } catch (err) {
      expect((err as { details: { issues: { path: string }[] } }).details.issues.map((i) => i.path)).toEqual(['featurs']);
    }
  });
});
