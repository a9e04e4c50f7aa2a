import { readFile } from 'node:fs/promises';
import * as v from 'valibot';
import { toJsonSchema } from '@valibot/to-json-schema';
import { SwitchyardError } from '@switchyard/errors';
import { isUnknownField, profileSchema } from './schema.ts';
import { PROTOCOLS, type CapabilityProfile, type ExactProfile, type ProfileDefinition, type Protocol } from './types.ts';

/** One reason a profile is invalid: `path` is the field (`features[2]`), `message` what would be valid. */
export interface ProfileIssue {
  path: string;
  message: string;
}

const FIELDS = Object.keys(profileSchema.entries);
// `$schema` is for editors; naming it among the profile's fields would only distract.
const LISTED_FIELDS = FIELDS.filter((field) => field !== '$schema');

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out === '' ? '' : '.'}${String(key)}`;
  return out === '' ? '(root)' : out;
}

// Typos are the usual cause of an unknown field, so point at the nearest real one.
function nearestField(name: string): string | undefined {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let diagonal = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const above = row[j]!;
        row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
        diagonal = above;
      }
    }
    return row[b.length]!;
  };
  let best: { field: string; d: number } | undefined;
  for (const field of LISTED_FIELDS) {
    const d = distance(name, field);
    if (best === undefined || d < best.d) best = { field, d };
  }
  return best !== undefined && best.d <= Math.max(2, Math.floor(best.field.length / 3)) ? best.field : undefined;
}

const NOT_AN_OBJECT: ProfileIssue = { path: '(root)', message: 'a profile must be a JSON object, e.g. {"identities": 1, "c2d": "occasional"}' };

function toIssues(found: readonly v.BaseIssue<unknown>[]): ProfileIssue[] {
  const issues: ProfileIssue[] = [];
  for (const issue of found) {
    const path = issue.path?.map((item) => item.key as PropertyKey) ?? [];
    if (isUnknownField(issue)) {
      for (const key in issue.path![0]!.input as object) {
        if (FIELDS.includes(key)) continue;
        const hint = nearestField(key);
        issues.push({
          path: formatPath([key]),
          message: `unknown field${hint === undefined ? '' : `; did you mean "${hint}"?`} Valid fields: ${LISTED_FIELDS.join(', ')}`,
        });
      }
    } else if (path.length === 0) {
      issues.push(NOT_AN_OBJECT);
    } else {
      issues.push({ path: formatPath(path), message: issue.message });
    }
  }
  return issues;
}

// v.strictObject takes an array for an object keyed by its indexes; a profile is never an array.
function check(input: unknown): { profile: CapabilityProfile } | { issues: ProfileIssue[] } {
  if (Array.isArray(input)) return { issues: [NOT_AN_OBJECT] };
  const result = v.safeParse(profileSchema, input);
  if (!result.success) return { issues: toIssues(result.issues) };
  const { $schema: _editorsOnly, ...profile } = result.output as CapabilityProfile & { $schema?: string };
  return { profile };
}

function invalid(issues: ProfileIssue[], file?: string): SwitchyardError {
  const where = file === undefined ? 'capability profile' : `capability profile ${file}`;
  const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return new SwitchyardError('PROFILE_INVALID', `invalid ${where}: ${list}`, { details: { ...(file === undefined ? {} : { file }), issues } });
}

/** Validates a profile and fills in defaults; throws PROFILE_INVALID naming every bad field. */
export function parseProfile(input: unknown): CapabilityProfile {
  const result = check(input);
  if ('issues' in result) throw invalid(result.issues);
  return result.profile;
}

/**
 * A profile written in code, checked twice: by the compiler (an unknown field or a wrong value
 * does not compile) and at once at run time (the rules between fields). Returns the literal as
 * written, so `connect({ profile })` still narrows the client to the declared features.
 */
export function defineProfile<const P extends ProfileDefinition>(profile: ExactProfile<P>): P {
  parseProfile(profile);
  return profile as P;
}

/** Reads and validates a JSON profile file. */
export async function loadProfile(path: string): Promise<CapabilityProfile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : `cannot be read (${code ?? String(cause)})`;
    throw new SwitchyardError('CONFIG_INVALID', `cannot read profile file ${path}: ${why}; pass the path of a JSON capability profile (--profile or SWITCHYARD_PROFILE)`, {
      cause,
      details: { field: 'profile', file: path, reason: code ?? 'unknown' },
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw invalid([{ path: '(root)', message: `the file is not valid JSON (${(cause as Error).message})` }], path);
  }
  const result = check(json);
  if ('issues' in result) throw invalid(result.issues, path);
  return result.profile;
}

/** The profile format as JSON Schema (draft 2020-12), describing the file a user writes. */
export function profileJsonSchema(): Record<string, unknown> {
  return toJsonSchema(profileSchema, {
    target: 'draft-2020-12',
    typeMode: 'input',
    // The duplicate and cross-field rules: the first is published as uniqueItems, the second has no JSON Schema form.
    ignoreActions: ['raw_check'],
    // The only custom schema is the whole-number test in `int`, whose safeInteger action gives the JSON type.
    overrideSchema: ({ valibotSchema }) => (valibotSchema.type === 'custom' ? {} : undefined),
  }) as Record<string, unknown>;
}

/** Checks a protocol name from a flag or the environment; `field` names where it came from. */
export function parseProtocol(value: string, field: string): Protocol {
  if ((PROTOCOLS as readonly string[]).includes(value)) return value as Protocol;
  throw new SwitchyardError('CONFIG_INVALID', `${field} is ${JSON.stringify(value)}; use one of ${PROTOCOLS.join(', ')}`, {
    details: { field, value, valid: [...PROTOCOLS] },
  });
}

export interface EnvProfile {
  /** The profile loaded from SWITCHYARD_PROFILE, when set. */
  profile?: CapabilityProfile;
  profilePath?: string;
  /** The protocol forced by SWITCHYARD_PROTOCOL, when set. */
  forceProtocol?: Protocol;
}

/** Reads SWITCHYARD_PROFILE (a profile file) and SWITCHYARD_PROTOCOL (a forced protocol); empty means unset. */
export async function resolveProfileFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<EnvProfile> {
  const out: EnvProfile = {};
  const protocol = env.SWITCHYARD_PROTOCOL?.trim();
  // Check the cheap variable first so a typo there is reported without touching the disk.
  if (protocol) out.forceProtocol = parseProtocol(protocol, 'SWITCHYARD_PROTOCOL');
  const path = env.SWITCHYARD_PROFILE?.trim();
  if (path) {
    out.profilePath = path;
    out.profile = await loadProfile(path);
  }
  return out;
}
