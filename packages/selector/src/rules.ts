// The guidance of "Choose a device communication protocol" and IoT Hub's documented limits, one
// rule per constraint. Every rule is asked about every protocol, so a rejection lists all of its
// reasons rather than the first one found.
import { type CapabilityProfile, type Protocol } from '@switchyard/profile';
import { PROTOCOL_PORTS, type RuleFinding } from './decision.ts';

export const RULE_IDS = [
  'not-implemented-by-device',
  'multiplexing-needs-amqp',
  'ram-under-1mb',
  'port-closed',
  'c2d-latency-needs-push',
  'https-no-twin',
  'https-no-methods',
  'mqtt-no-reject-abandon',
  'x509-ca-preview',
  'file-upload-x509-ca-preview',
] as const;
export type RuleId = (typeof RULE_IDS)[number];

interface Rule {
  id: RuleId;
  /** A finding when `protocol` cannot serve `profile`, otherwise undefined. */
  check(protocol: Protocol, profile: CapabilityProfile): string | undefined;
}

export const LOW_RAM_KIB = 1024;

const MQTT_FAMILY: ReadonlySet<Protocol> = new Set(['mqtt', 'mqtt-ws']);
const AMQP_FAMILY: ReadonlySet<Protocol> = new Set(['amqp', 'amqp-ws']);
const X509_CA_PREVIEW_ONLY: ReadonlySet<Protocol> = new Set(['https', 'mqtt-ws', 'amqp-ws']);

export const isMqttFamily = (p: Protocol): boolean => MQTT_FAMILY.has(p);
export const isAmqpFamily = (p: Protocol): boolean => AMQP_FAMILY.has(p);

const RULES: readonly Rule[] = [
  {
    id: 'not-implemented-by-device',
    check: (protocol, p) =>
      p.protocols.includes(protocol) ? undefined : `the device cannot run ${protocol} (it is not in "protocols")`,
  },
  {
    id: 'multiplexing-needs-amqp',
    check: (protocol, p) =>
      p.identities > 1 && !AMQP_FAMILY.has(protocol)
        ? `${p.identities} identities must share one connection, and ${protocol} carries one identity per TLS connection; only AMQP and AMQP-WS multiplex`
        : undefined,
  },
  {
    id: 'ram-under-1mb',
    check: (protocol, p) =>
      p.ramKiB !== undefined && p.ramKiB < LOW_RAM_KIB && AMQP_FAMILY.has(protocol)
        ? `${p.ramKiB} KiB of RAM is under 1 MB, where AMQP libraries do not fit; the guidance leaves MQTT, MQTT-WS or HTTPS`
        : undefined,
  },
  {
    id: 'port-closed',
    check: (protocol, p) =>
      p.outboundPorts.includes(PROTOCOL_PORTS[protocol]) ? undefined : `${protocol} needs outbound port ${PROTOCOL_PORTS[protocol]}, which is not in "outboundPorts"`,
  },
  {
    id: 'c2d-latency-needs-push',
    check: (protocol, p) =>
      p.c2d === 'latency-sensitive' && protocol === 'https'
        ? 'latency-sensitive cloud-to-device messages need server push; HTTPS can only poll (at most every 25 minutes in production)'
        : undefined,
  },
  {
    id: 'https-no-twin',
    check: (protocol, p) => (protocol === 'https' && p.features.includes('twin') ? 'device twins are not available over HTTPS' : undefined),
  },
  {
    id: 'https-no-methods',
    check: (protocol, p) => (protocol === 'https' && p.features.includes('methods') ? 'direct methods are not available over HTTPS' : undefined),
  },
  {
    id: 'mqtt-no-reject-abandon',
    check: (protocol, p) =>
      MQTT_FAMILY.has(protocol) && p.features.includes('c2d-reject-abandon')
        ? `${protocol} cannot reject or abandon cloud-to-device messages (IoT Hub's MQTT completes them on acknowledgement)`
        : undefined,
  },
  {
    id: 'x509-ca-preview',
    check: (protocol, p) =>
      p.auth === 'x509-ca' && !p.previewFeatures && X509_CA_PREVIEW_ONLY.has(protocol)
        ? `X.509 CA authentication over ${protocol} is an IoT Hub preview feature; set "previewFeatures": true or use X.509 thumbprint`
        : undefined,
  },
  {
    id: 'file-upload-x509-ca-preview',
    check: (_protocol, p) =>
      p.auth === 'x509-ca' && !p.previewFeatures && p.features.includes('file-upload')
        ? 'file upload with X.509 CA authentication is an IoT Hub preview feature on every protocol; set "previewFeatures": true or use X.509 thumbprint'
        : undefined,
  },
];

/** Every rule that keeps `protocol` from serving `profile`; empty when it is eligible. */
export function findingsFor(protocol: Protocol, profile: CapabilityProfile): RuleFinding[] {
  const findings: RuleFinding[] = [];
  for (const rule of RULES) {
    const message = rule.check(protocol, profile);
    if (message !== undefined) findings.push({ rule: rule.id, message });
  }
  return findings;
}
