export { PROTOCOLS, FEATURES, type Protocol, type Feature, type C2DPattern, type AuthKind, type Environment, type CapabilityProfile, type ProfileDefinition, type ExactProfile } from './types.ts';
export { profileSchema, type ProfileInput, D2C_MAX_BYTES, PRODUCTION_POLL_FLOOR_SECONDS, DEFAULT_OUTBOUND_PORTS } from './schema.ts';
export { parseProfile, defineProfile, loadProfile, profileJsonSchema, parseProtocol, resolveProfileFromEnv, type ProfileIssue, type EnvProfile } from './parse.ts';
export { resolveProfile, type ProfileSource, type ResolvedProfile } from './resolve.ts';
