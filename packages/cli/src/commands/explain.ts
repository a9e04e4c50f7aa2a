import { PROTOCOLS, parseProtocol, loadProfile, resolveProfileFromEnv } from '@switchyard/profile';
import { explainTable, select } from '@switchyard/selector';
import { EXIT_OK, parseFlags, reportError, usageError } from '../cli.ts';

const USAGE = 'switchyard explain --profile FILE [--protocol P] [--json]';
const HELP = `Usage: ${USAGE}

Shows which IoT Hub protocol a capability profile gets, which ones remain as fallbacks, why each
other one was rejected, and any warnings.

Options:
  --profile FILE   the capability profile (JSON); default: $SWITCHYARD_PROFILE
  --protocol P     force a protocol (${PROTOCOLS.join(', ')}); it is still checked
                   against the profile and refused with reasons; default: $SWITCHYARD_PROTOCOL
  --json           print the decision record (or {"error": ...}) as one JSON object
  -h, --help       show this help

Exit status: 0 decided; 1 invalid profile, no eligible protocol, or forced protocol refused;
2 usage error (bad flag, unreadable file, bad environment variable).
See \`switchyard schema\` for the profile format and examples/profiles/ for examples.`;

export async function run(argv: string[]): Promise<number> {
  // Known before parsing, so that even a usage error comes out as JSON when asked for.
  const json = argv.includes('--json');
  try {
    const flags = parseFlags(
      argv,
      { profile: { type: 'string' }, protocol: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      USAGE,
    );
    if (flags.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    // A flag wins over its variable, and a variable that a flag overrides is not even read.
    const env = { ...process.env };
    if (flags.profile !== undefined) delete env.SWITCHYARD_PROFILE;
    if (flags.protocol !== undefined) delete env.SWITCHYARD_PROTOCOL;
    const fromEnv = await resolveProfileFromEnv(env);
    if (flags.profile === '') throw usageError('--profile', `--profile needs a file path; usage: ${USAGE}`);
    const profile = flags.profile !== undefined ? await loadProfile(flags.profile) : fromEnv.profile;
    if (profile === undefined) throw usageError('--profile', `no profile given: pass --profile FILE or set SWITCHYARD_PROFILE; usage: ${USAGE}`);
    const forceProtocol = flags.protocol !== undefined ? parseProtocol(flags.protocol, '--protocol') : fromEnv.forceProtocol;

    const decision = select(profile, forceProtocol === undefined ? {} : { forceProtocol });
    console.log(json ? JSON.stringify(decision, null, 2) : explainTable(decision));
    return EXIT_OK;
  } catch (err) {
    return reportError('explain', err, json);
  }
}
