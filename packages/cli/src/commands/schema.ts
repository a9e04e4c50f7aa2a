import { profileJsonSchema } from '@switchyard/profile';
import { EXIT_OK, parseFlags, reportError } from '../cli.ts';

const USAGE = 'switchyard schema [--help]';
const HELP = `Usage: ${USAGE}

Prints the capability profile format as JSON Schema (draft 2020-12), with each field's
description and default. Fields with a default may be left out of a profile file.`;

export async function run(argv: string[]): Promise<number> {
  try {
    const flags = parseFlags(argv, { help: { type: 'boolean', short: 'h' } }, USAGE);
    if (flags.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    console.log(JSON.stringify(profileJsonSchema(), null, 2));
    return EXIT_OK;
  } catch (err) {
    return reportError('schema', err, false);
  }
}
