// The one way a Switchyard component turns "what the caller passed" plus the environment into a
// capability profile and a forced protocol. Options win over the environment, and a variable the
// options already answer is not even read, so a broken SWITCHYARD_PROFILE file cannot fail a
// caller who passed a profile of their own.
import { SwitchyardError } from '@switchyard/errors';
import { loadProfile, parseProfile, parseProtocol } from './parse.ts';
import type { CapabilityProfile, ProfileDefinition, Protocol } from './types.ts';

export interface ProfileSource {
  /** A profile object, or the path of a JSON profile file. */
  profile?: ProfileDefinition | CapabilityProfile | string | undefined;
  /** A protocol the caller forces; SWITCHYARD_PROTOCOL applies only when this is absent. */
  forceProtocol?: Protocol | undefined;
  /** Where SWITCHYARD_PROFILE and SWITCHYARD_PROTOCOL are read; default `process.env`. */
  env?: NodeJS.ProcessEnv | undefined;
  /**
   * What to use when neither the options nor SWITCHYARD_PROFILE give a profile: 'defaults' (the
   * schema's defaults) or 'required' (CONFIG_INVALID naming the `profile` option). Default 'required'.
   */
  otherwise?: 'defaults' | 'required';
}

export interface ResolvedProfile {
  profile: CapabilityProfile;
  forceProtocol?: Protocol;
  /** Where the profile came from, for decision records and error messages. */
  source: 'options' | 'file' | 'SWITCHYARD_PROFILE' | 'defaults';
}

export async function resolveProfile(source: ProfileSource): Promise<ResolvedProfile> {
  const env = source.env ?? process.env;
  let forceProtocol = source.forceProtocol;
  if (forceProtocol === undefined) {
    const fromEnv = env.SWITCHYARD_PROTOCOL?.trim();
    if (fromEnv) forceProtocol = parseProtocol(fromEnv, 'SWITCHYARD_PROTOCOL');
  }
  const withProtocol = (profile: CapabilityProfile, from: ResolvedProfile['source']): ResolvedProfile =>
    forceProtocol === undefined ? { profile, source: from } : { profile, forceProtocol, source: from };
  if (typeof source.profile === 'string') return withProtocol(await loadProfile(source.profile), 'file');
  if (source.profile !== undefined) return withProtocol(parseProfile(source.profile), 'options');
  const path = env.SWITCHYARD_PROFILE?.trim();
  if (path) return withProtocol(await loadProfile(path), 'SWITCHYARD_PROFILE');
  if (source.otherwise === 'defaults') return withProtocol(parseProfile({}), 'defaults');
  throw new SwitchyardError('CONFIG_INVALID', 'no capability profile: pass the profile option (an object or a JSON file path) or set SWITCHYARD_PROFILE', { details: { field: 'profile' } });
}
