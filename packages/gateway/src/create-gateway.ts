// createGateway(): options checked, protocol decided by the selector, and the engine that
// carries identities the way that protocol can. The only module that knows every engine.
import { decideProtocol, isMultiplexing } from './decide.ts';
import { AzureClientGateway } from './engines/azure-client.ts';
import { LeanAmqpGateway } from './engines/lean.ts';
import { PerConnectionGateway } from './engines/per-connection.ts';
import { validateOptions } from './options.ts';
import type { Gateway, GatewayOptions } from './types.ts';

/**
 * Validates the options (CONFIG_INVALID naming the field), resolves the protocol from
 * `options.protocol`, SWITCHYARD_PROTOCOL and the profile through the selector, and returns a
 * gateway that has connected nothing yet. PROTOCOL_REFUSED when the forced protocol cannot serve
 * the profile for reasons other than multiplexing.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const settings = validateOptions(options);
  const decision = await decideProtocol(options);
  if (isMultiplexing(decision.protocol)) {
    return settings.engine === 'lean' ? new LeanAmqpGateway(options, settings, decision) : new AzureClientGateway(options, settings, decision);
  }
  return new PerConnectionGateway(options, settings, decision);
}
