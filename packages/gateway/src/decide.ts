// Which protocol the gateway uses, decided by the selector like any single device's, so the
// selector's rules hold: several identities over one connection require AMQP or AMQP-WS. When the
// profile or a forced protocol excludes those, the gateway falls back to one connection per
// identity and says so in the decision record rather than failing.
import { isSwitchyardError } from '@switchyard/errors';
import { resolveProfile, type CapabilityProfile, type Protocol } from '@switchyard/profile';
import { select, type Decision } from '@switchyard/selector';
import type { GatewayOptions } from './types.ts';

export function isMultiplexing(protocol: Protocol): protocol is 'amqp' | 'amqp-ws' {
  return protocol === 'amqp' || protocol === 'amqp-ws';
}

async function resolveGatewayProfile(options: GatewayOptions): Promise<{ profile: CapabilityProfile; forceProtocol?: Protocol }> {
  // The one resolution, as connect() does it: options first, the environment only for what they
  // leave open, the schema's defaults when neither gives a profile.
  const { profile, forceProtocol } = await resolveProfile({ profile: options.profile, forceProtocol: options.protocol, env: options.env, otherwise: 'defaults' });
  // A gateway carries several identities by definition; the profile's own count may be the default 1.
  const identities = Math.max(2, profile.identities, options.identities?.length ?? 0);
  const gatewayProfile = { ...profile, identities };
  return forceProtocol === undefined ? { profile: gatewayProfile } : { profile: gatewayProfile, forceProtocol };
}

export async function decideProtocol(options: GatewayOptions): Promise<Decision> {
  const { profile, forceProtocol } = await resolveGatewayProfile(options);
  const selectOptions = forceProtocol === undefined ? {} : { forceProtocol };
  try {
    return select(profile, selectOptions);
  } catch (err) {
    if (!isSwitchyardError(err, 'PROTOCOL_REFUSED') && !isSwitchyardError(err, 'NO_ELIGIBLE_PROTOCOL')) throw err;
    // Decide again for one identity per connection; what that refuses is refused for real.
    const single = select({ ...profile, identities: 1 }, selectOptions);
    if (isMultiplexing(single.protocol)) throw err;
    const note =
      `multiplexing lost: ${single.protocol} carries one identity per connection, so the gateway opens one connection per identity ` +
      `(${profile.identities} identities; rule multiplexing-needs-amqp). Allow amqp or amqp-ws in the profile to share connections.`;
    return {
      ...single,
      profile,
      multiplexed: false,
      warnings: [...single.warnings, note],
      because: [...single.because, `the gateway could not multiplex: ${(err as Error).message}`],
    };
  }
}
