// Must NOT compile: each line below is a mistake the types exist to catch. The consumer test
// expects tsc to fail here, naming each mistake.
import { connect } from '@switchyard/device';
import { defineProfile } from '@switchyard/profile';

export const badFeature = defineProfile({ features: ['telemetryy'] });
export const badType = defineProfile({ identities: 'two' });
export const unknownField = defineProfile({ featurs: ['telemetry'] });
export const viaConnect = connect({ connectionString: 'x', profile: { c2d: 'sometimes' } });
