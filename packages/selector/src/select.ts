import { SwitchyardError } from '@switchyard/errors';
import { PRODUCTION_POLL_FLOOR_SECONDS, PROTOCOLS, type CapabilityProfile, type Protocol } from '@switchyard/profile';
import { PROTOCOL_PORTS, type Decision, type Rejection } from './decision.ts';
import { LOW_RAM_KIB, findingsFor, isAmqpFamily, isMqttFamily } from './rules.ts';

export interface SelectOptions {
  /** Use this protocol if the profile allows it; refused with the reasons otherwise. */
  forceProtocol?: Protocol;
}

/**
 * Bytes on the wire per small message including its acknowledgement, measured against the local
 * hub (loopback-transport-findings.md §9). Quoted in explanations, never used to rank.
 */
export const WIRE_BYTES_PER_SMALL_MESSAGE: Readonly<Record<Protocol, number>> = { mqtt: 83, 'mqtt-ws': 279, amqp: 158, 'amqp-ws': 166, https: 550 };

const WEBSOCKET_TWIN: Partial<Record<Protocol, Protocol>> = { mqtt: 'mqtt-ws', amqp: 'amqp-ws' };
const DIRECT_TWIN: Partial<Record<Protocol, Protocol>> = { 'mqtt-ws': 'mqtt', 'amqp-ws': 'amqp' };

// The guidance's default is MQTT for one identity and AMQP for a gateway; within a family the
// direct port comes before its WebSocket twin; HTTPS is for devices that can run nothing else.
function preferenceOrder(profile: CapabilityProfile): readonly Protocol[] {
  return profile.identities > 1 ? ['amqp', 'amqp-ws', 'mqtt', 'mqtt-ws', 'https'] : ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];
}

const list = (protocols: readonly Protocol[]): string => protocols.join(', ');

function explainWin(winner: Protocol, others: readonly Protocol[], rejected: readonly Rejection[], profile: CapabilityProfile): string[] {
  const because: string[] = [];
  if (profile.identities > 1 && isAmqpFamily(winner)) {
    because.push(`${profile.identities} identities share one connection, and multiplexing identities is what AMQP is for: the guidance's choice for field gateways`);
  }
  if (profile.identities === 1 && !isMqttFamily(winner)) {
    const fell = rejected.filter((r) => isMqttFamily(r.protocol));
    if (fell.length === 2) {
      because.push(`MQTT, the guidance's default for a single identity, fell (${fell.map((r) => `${r.protocol}: ${r.reasons.map((f) => f.rule).join(', ')}`).join('; ')})`);
    }
  }
  const otherFamily = others.filter((p) => (isMqttFamily(winner) ? isAmqpFamily(p) : false));
  if (otherFamily.length > 0) {
    because.push(`a single-identity device is what MQTT is for (the guidance: use it on all devices that do not multiplex identities over one connection), so ${winner} ranks above ${list(otherFamily)}`);
  }
  const twin = WEBSOCKET_TWIN[winner];
  if (twin !== undefined && others.includes(twin)) {
    because.push(
      `${winner} connects directly on port ${PROTOCOL_PORTS[winner]}, which beats its WebSocket twin ${twin} on 443 (no HTTP upgrade, no WebSocket framing: ~${WIRE_BYTES_PER_SMALL_MESSAGE[winner]} B against ~${WIRE_BYTES_PER_SMALL_MESSAGE[twin]} B per small message); ${twin} remains the fallback for networks that only let 443 out`,
    );
  }
  const direct = DIRECT_TWIN[winner];
  const directRejection = direct === undefined ? undefined : rejected.find((r) => r.protocol === direct);
  if (direct !== undefined && directRejection !== undefined) {
    because.push(`${direct} fell (${directRejection.reasons.map((r) => r.rule).join(', ')}), so ${winner} carries the same protocol over port 443`);
  }
  if (winner !== 'https' && others.includes('https')) {
    const size = profile.payloadBytes === undefined ? '' : ` and your ${profile.payloadBytes}-byte messages travel in binary frames rather than HTTP requests`;
    because.push(
      `${winner} is binary: ~${WIRE_BYTES_PER_SMALL_MESSAGE[winner]} B on the wire per small message against ~${WIRE_BYTES_PER_SMALL_MESSAGE.https} B over HTTPS, which repeats headers and the SAS token on every request${size}; HTTPS is for devices that can run nothing else, so it ranks last`,
    );
  }
  if (others.length === 0) because.push(`${winner} is the only protocol that satisfies the profile; "rejected" says why each other one fell`);
  return because;
}

function warningsFor(winner: Protocol, profile: CapabilityProfile): { warnings: string[]; pollIntervalSeconds?: number } {
  const warnings: string[] = [];
  let pollIntervalSeconds: number | undefined;
  if (profile.ramKiB !== undefined && profile.ramKiB < LOW_RAM_KIB) {
    warnings.push(
      `ramKiB is ${profile.ramKiB} (under 1 MB): the protocol choice follows the guidance for such a device, but this Node.js client needs tens of MB itself and will not fit it; use the decision to configure an embedded client (e.g. the Azure IoT C SDK)`,
    );
  }
  if (winner === 'https') {
    pollIntervalSeconds = profile.pollIntervalSeconds ?? PRODUCTION_POLL_FLOOR_SECONDS;
    if (profile.c2d !== 'none') {
      // Whole minutes read best for production intervals; development ones can be seconds.
      const span = pollIntervalSeconds >= 120 ? `${Math.round((pollIntervalSeconds / 60) * 10) / 10} min` : `${pollIntervalSeconds} s`;
      warnings.push(
        `over HTTPS cloud-to-device messages are polled, at most once every ${span}: a message waits up to ${span} (half that on average) before the device sees it, a message whose time-to-live is under ${span} may expire unseen, and the hub's 50-message device queue caps delivery at 50 messages per poll interval`,
      );
    }
  }
  if (profile.environment === 'development' && profile.pollIntervalSeconds !== undefined && profile.pollIntervalSeconds < PRODUCTION_POLL_FLOOR_SECONDS) {
    warnings.push(
      `pollIntervalSeconds ${profile.pollIntervalSeconds} is under the ${PRODUCTION_POLL_FLOOR_SECONDS} s (25 min) floor: allowed in development, but IoT Hub throttles such polling and a production profile with this value is refused`,
    );
  }
  if (isMqttFamily(winner) && profile.features.includes('c2d')) {
    warnings.push(`${winner} settles cloud-to-device messages by completing them only: reject and abandon are not available (add "c2d-reject-abandon" to features to require a protocol that has them)`);
  }
  if (profile.auth === 'x509-ca' && profile.previewFeatures && (winner === 'https' || winner === 'mqtt-ws' || winner === 'amqp-ws' || profile.features.includes('file-upload'))) {
    warnings.push(`X.509 CA authentication ${profile.features.includes('file-upload') ? 'with file upload' : `over ${winner}`} relies on an IoT Hub preview feature (previewFeatures is true)`);
  }
  return pollIntervalSeconds === undefined ? { warnings } : { warnings, pollIntervalSeconds };
}

/**
 * Chooses the IoT Hub protocol for a validated profile. Pure: the same profile always gives the
 * same decision. Throws NO_ELIGIBLE_PROTOCOL (with `details.rejected`) when nothing fits, and
 * PROTOCOL_REFUSED (with `details.reasons`) when a forced protocol cannot serve the profile.
 */
export function select(profile: CapabilityProfile, options: SelectOptions = {}): Decision {
  const order = preferenceOrder(profile);
  const rejected: Rejection[] = [];
  const eligible: Protocol[] = [];
  for (const protocol of order) {
    const reasons = findingsFor(protocol, profile);
    if (reasons.length > 0) rejected.push({ protocol, reasons });
    else eligible.push(protocol);
  }
  // Report rejections in the canonical protocol order so output is stable whatever the ranking.
  rejected.sort((a, b) => PROTOCOLS.indexOf(a.protocol) - PROTOCOLS.indexOf(b.protocol));

  const forced = options.forceProtocol;
  if (forced !== undefined) {
    const refusal = rejected.find((r) => r.protocol === forced);
    if (refusal !== undefined) {
      throw new SwitchyardError(
        'PROTOCOL_REFUSED',
        `the forced protocol ${forced} cannot serve this profile: ${refusal.reasons.map((r) => `[${r.rule}] ${r.message}`).join('; ')}${eligible.length > 0 ? `; eligible instead: ${list(eligible)}` : ''}`,
        { details: { protocol: forced, reasons: refusal.reasons, eligible, rejected } },
      );
    }
  }
  const winner = forced ?? eligible[0];
  if (winner === undefined) {
    throw new SwitchyardError(
      'NO_ELIGIBLE_PROTOCOL',
      `no protocol satisfies this profile: ${rejected.map((r) => `${r.protocol} (${r.reasons.map((f) => f.rule).join(', ')})`).join('; ')}`,
      { details: { rejected } },
    );
  }
  const fallbacks = eligible.filter((p) => p !== winner);
  const because = forced === undefined ? explainWin(winner, fallbacks, rejected, profile) : [
    `${winner} was forced, and it satisfies every rule for this profile${eligible[0] === winner ? '; it is also what the selector would have chosen' : `; the selector would have chosen ${eligible[0]}`}`,
  ];
  const { warnings, pollIntervalSeconds } = warningsFor(winner, profile);
  const decision: Decision = {
    protocol: winner,
    port: PROTOCOL_PORTS[winner],
    fallbacks,
    rejected,
    warnings,
    because,
    multiplexed: profile.identities > 1 && isAmqpFamily(winner),
    profile,
  };
  if (pollIntervalSeconds !== undefined) decision.pollIntervalSeconds = pollIntervalSeconds;
  if (forced !== undefined) decision.forced = true;
  return decision;
}
