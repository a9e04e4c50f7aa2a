// Writes schema.json, the profile's JSON Schema as a file editors and other tools can use, from
// the validator. `schema-file.test.ts` fails when the two drift; run this to bring them together:
//   pnpm --filter @switchyard/profile run write-schema
import { writeFileSync } from 'node:fs';
import { profileJsonSchema } from '../src/parse.ts';

export const SCHEMA_FILE = new URL('../schema.json', import.meta.url);
export const schemaText = (): string => `${JSON.stringify(profileJsonSchema(), null, 2)}\n`;

if (process.argv[1] !== undefined && new URL(`file://${process.argv[1]}`).href === import.meta.url) {
  writeFileSync(SCHEMA_FILE, schemaText());
  console.log(`wrote ${SCHEMA_FILE.pathname}`);
}
