// Shared plumbing for the command line: dispatch, flag parsing, and error output. Exit codes:
// 0 success, 1 the input was understood but cannot be served (invalid profile, no protocol,
// refused protocol), 2 usage or configuration errors (bad flag, unreadable file, bad variable).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SwitchyardError, isSwitchyardError, redactSecrets } from '@switchyard/errors';

export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  summary: string;
  load(): Promise<CommandModule>;
}

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

function topHelp(commands: Record<string, CommandEntry>): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    'Usage: switchyard <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `switchyard <command> --help` for a command\'s options.',
  ].join('\n');
}

export async function runCommand(commands: Record<string, CommandEntry>, argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const out = topHelp(commands);
    if (name === undefined) {
      console.error(out);
      return EXIT_USAGE;
    }
    console.log(out);
    return EXIT_OK;
  }
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (entry === undefined) {
    console.error(`switchyard: unknown command "${name}"; use one of: ${Object.keys(commands).join(', ')}\n\n${topHelp(commands)}`);
    return EXIT_USAGE;
  }
  const command = await entry.load();
  return command.run(rest);
}

/**
 * node:util parseArgs, with its errors turned into CONFIG_INVALID naming the flag and the fix.
 * `usage` is the command's one-line synopsis, quoted in every error.
 */
type StrictConfig<T> = { args: string[]; options: T; allowPositionals: false; strict: true };
// Spelled out because the inferred type names a type @types/node does not export, which a
// declaration file cannot refer to.
type ParsedFlags<T extends NonNullable<ParseArgsConfig['options']>> = ReturnType<typeof parseArgs<StrictConfig<T>>>['values'];

export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string): ParsedFlags<T> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    // node's message quotes the offending argument, which may be a connection string or a key:
    // it is redacted before it is quoted back, and never kept as the cause.
    const text = redactSecrets((cause as Error).message);
    const positional = code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' ? /'([^']+)'/.exec(text)?.[1] : undefined;
    const connectionString = positional !== undefined && /(^|;)\s*(HostName|DeviceId|SharedAccessKey)\s*=/i.test(positional);
    const flag = connectionString ? '--connection-string' : /'(-{1,2}[^' ]+)/.exec(text)?.[1] ?? positional ?? 'arguments';
    let fix: string;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') fix = `unknown option ${flag}`;
    else if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') fix = `option ${flag} needs a value`;
    else if (connectionString) fix = 'a connection string goes after --connection-string (or in SWITCHYARD_CONNECTION_STRING), not on its own';
    else if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') fix = `unexpected argument ${flag}; values go after their flag`;
    else fix = text;
    throw new SwitchyardError('CONFIG_INVALID', `${fix}; usage: ${usage}`, { details: { field: flag } });
  }
}

export function usageError(field: string, message: string): SwitchyardError {
  return new SwitchyardError('CONFIG_INVALID', message, { details: { field } });
}

export function asSwitchyardError(err: unknown): SwitchyardError {
  if (isSwitchyardError(err)) return err;
  return new SwitchyardError('INTERNAL', redactSecrets(err instanceof Error ? err.message : String(err)), { cause: err });
}

interface Finding { rule: string; message: string }

/** Prints an error (as `{"error": ...}` on stdout with --json, readable on stderr otherwise) and returns the exit code. */
export function reportError(command: string, err: unknown, json: boolean): number {
  const error = asSwitchyardError(err);
  const exit = error.code === 'CONFIG_INVALID' ? EXIT_USAGE : EXIT_REFUSED;
  if (json) {
    console.log(JSON.stringify({ error: error.toJSON() }, null, 2));
    return exit;
  }
  const lines: string[] = [];
  const details = error.details;
  if (error.code === 'PROFILE_INVALID' && Array.isArray(details.issues)) {
    lines.push(`invalid capability profile${typeof details.file === 'string' ? ` ${details.file}` : ''} (${error.code}):`);
    for (const issue of details.issues as Array<{ path: string; message: string }>) lines.push(`  ${issue.path}: ${issue.message}`);
  } else if (error.code === 'NO_ELIGIBLE_PROTOCOL' && Array.isArray(details.rejected)) {
    lines.push(`no protocol satisfies this profile (${error.code}):`);
    for (const r of details.rejected as Array<{ protocol: string; reasons: Finding[] }>) {
      for (const f of r.reasons) lines.push(`  ${r.protocol.padEnd(8)} ${f.rule}: ${f.message}`);
    }
  } else if (error.code === 'PROTOCOL_REFUSED' && Array.isArray(details.reasons)) {
    lines.push(`the forced protocol ${String(details.protocol)} cannot serve this profile (${error.code}):`);
    for (const f of details.reasons as Finding[]) lines.push(`  ${f.rule}: ${f.message}`);
    const eligible = Array.isArray(details.eligible) ? (details.eligible as string[]) : [];
    lines.push(eligible.length > 0 ? `eligible instead: ${eligible.join(', ')}` : 'no other protocol is eligible either');
  } else {
    lines.push(`${error.message} (${error.code})`);
  }
  console.error(`switchyard ${command}: ${lines.join('\n')}`);
  return exit;
}
