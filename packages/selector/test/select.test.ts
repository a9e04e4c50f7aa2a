import { describe, expect, it } from 'vitest';
import { isSwitchyardError, type SwitchyardError } from '@switchyard/errors';
import { PROTOCOLS, parseProfile, type Protocol } from '@switchyard/profile';
import { RULE_IDS, explainTable, select, type Decision, type Rejection, type SelectOptions } from '@switchyard/selector';

function outcome(input: unknown, options?: SelectOptions): Decision | SwitchyardError {
  try {
    return select(parseProfile(input), options);
  } catch (err) {
    if (isSwitchyardError(err)) return err;
    throw err;
  }
}

function decide(input: unknown, options?: SelectOptions): Decision {
  const out = outcome(input, options);
  if (isSwitchyardError(out)) throw new Error(`expected a decision, got ${out.code}: ${out.message}`);
  return out;
}

function refusal(input: unknown, options?: SelectOptions): SwitchyardError {
  const out = outcome(input, options);
  if (!isSwitchyardError(out)) throw new Error(`expected an error, got a decision for ${out.protocol}`);
  return out;
}

const rejectionsOf = (out: Decision | SwitchyardError): Rejection[] =>
  isSwitchyardError(out) ? (out.details.rejected as Rejection[]) : out.rejected;

describe('every rule rejects exactly the protocols it should', () => {
  const cases: Array<[string, unknown, Protocol[]]> = [
    ['not-implemented-by-device', { protocols: ['mqtt', 'https'] }, ['mqtt-ws', 'amqp', 'amqp-ws']],
    ['multiplexing-needs-amqp', { identities: 2 }, ['mqtt', 'mqtt-ws', 'https']],
    ['ram-under-1mb', { ramKiB: 1023 }, ['amqp', 'amqp-ws']],
    ['port-closed', { outboundPorts: [443] }, ['mqtt', 'amqp']],
    ['port-closed', { outboundPorts: [8883, 5671] }, ['mqtt-ws', 'amqp-ws', 'https']],
    ['port-closed', { outboundPorts: [5671, 443] }, ['mqtt']],
    ['c2d-latency-needs-push', { c2d: 'latency-sensitive' }, ['https']],
    ['https-no-twin', { features: ['twin'] }, ['https']],
    ['https-no-methods', { features: ['methods'] }, ['https']],
    ['mqtt-no-reject-abandon', { features: ['c2d-reject-abandon'] }, ['mqtt', 'mqtt-ws']],
    ['x509-ca-preview', { auth: 'x509-ca' }, ['mqtt-ws', 'amqp-ws', 'https']],
    ['file-upload-x509-ca-preview', { auth: 'x509-ca', features: ['file-upload'] }, [...PROTOCOLS]],
  ];

  it.each(cases)('%s with %j', (rule, input, expected) => {
    const hit = rejectionsOf(outcome(input)).filter((r) => r.reasons.some((f) => f.rule === rule)).map((r) => r.protocol);
    expect(hit.sort()).toEqual([...expected].sort());
  });

  it('covers every rule id', () => {
    expect(new Set(cases.map(([rule]) => rule))).toEqual(new Set(RULE_IDS));
  });

  it.each([
    ['ram-under-1mb', { ramKiB: 1024 }],
    ['x509-ca-preview', { auth: 'x509-ca', previewFeatures: true }],
    ['file-upload-x509-ca-preview', { auth: 'x509-ca', previewFeatures: true, features: ['file-upload'] }],
    ['file-upload-x509-ca-preview', { auth: 'x509-thumbprint', features: ['file-upload'] }],
    ['multiplexing-needs-amqp', { identities: 1 }],
    ['c2d-latency-needs-push', { c2d: 'occasional' }],
  ])('%s stays quiet for %j', (rule, input) => {
    expect(rejectionsOf(outcome(input)).some((r) => r.reasons.some((f) => f.rule === rule))).toBe(false);
  });

  it('lists every reason of a rejection, not only the first', () => {
    const https = decide({ c2d: 'latency-sensitive', features: ['twin', 'methods'], identities: 2, protocols: ['amqp', 'https'] }).rejected.find(
      (r) => r.protocol === 'https',
    );
    expect(https?.reasons.map((r) => r.rule).sort()).toEqual(['c2d-latency-needs-push', 'https-no-methods', 'https-no-twin', 'multiplexing-needs-amqp']);
    for (const reason of https!.reasons) expect(reason.message.length).toBeGreaterThan(10);
  });
});

describe('ranking of the eligible protocols', () => {
  const cases: Array<[string, unknown, Protocol, Protocol[]]> = [
    ['single identity: MQTT first, direct before WebSocket, HTTPS last', {}, 'mqtt', ['mqtt-ws', 'amqp', 'amqp-ws', 'https']],
    ['gateway: AMQP, then AMQP-WS', { identities: 2 }, 'amqp', ['amqp-ws']],
    ['443 only: MQTT-WS', { outboundPorts: [443] }, 'mqtt-ws', ['amqp-ws', 'https']],
    ['MQTT family beats direct AMQP', { outboundPorts: [443, 5671] }, 'mqtt-ws', ['amqp', 'amqp-ws', 'https']],
    ['reject/abandon needed: AMQP', { features: ['c2d', 'c2d-reject-abandon'] }, 'amqp', ['amqp-ws', 'https']],
    ['WebSocket beats HTTPS', { protocols: ['https', 'amqp-ws'] }, 'amqp-ws', ['https']],
    ['HTTPS when nothing else runs', { protocols: ['https'] }, 'https', []],
    ['X.509 CA without preview keeps the direct ports', { auth: 'x509-ca' }, 'mqtt', ['amqp']],
    ['X.509 CA with preview over 443', { auth: 'x509-ca', previewFeatures: true, outboundPorts: [443] }, 'mqtt-ws', ['amqp-ws', 'https']],
    ['small RAM: MQTT, HTTPS fallback', { ramKiB: 256 }, 'mqtt', ['mqtt-ws', 'https']],
  ];

  it.each(cases)('%s', (_name, input, protocol, fallbacks) => {
    const d = decide(input);
    expect(d.protocol).toBe(protocol);
    expect(d.fallbacks).toEqual(fallbacks);
    expect(d.forced).toBeUndefined();
  });

  it('sets the port of the chosen protocol', () => {
    expect(decide({}).port).toBe(8883);
    expect(decide({ identities: 3 }).port).toBe(5671);
    expect(decide({ outboundPorts: [443] }).port).toBe(443);
  });

  it('marks a gateway decision as multiplexed', () => {
    expect(decide({ identities: 3 }).multiplexed).toBe(true);
    expect(decide({}).multiplexed).toBe(false);
  });

  it('explains the win against each kind of loser', () => {
    const because = decide({ payloadBytes: 100 }).because.join('\n');
    expect(because).toMatch(/ranks above amqp, amqp-ws/);
    expect(because).toMatch(/WebSocket twin mqtt-ws/);
    expect(because).toMatch(/~550 B over HTTPS/);
    expect(because).toMatch(/100-byte messages/);
    expect(decide({ outboundPorts: [443] }).because.join('\n')).toMatch(/mqtt fell \(port-closed\)/);
    expect(decide({ identities: 5 }).because.join('\n')).toMatch(/5 identities share one connection/);
    expect(decide({ protocols: ['https'] }).because.join('\n')).toMatch(/only protocol/);
    expect(decide({ features: ['c2d-reject-abandon'] }).because.join('\n')).toMatch(/MQTT, the guidance's default for a single identity, fell \(mqtt: mqtt-no-reject-abandon; mqtt-ws: mqtt-no-reject-abandon\)/);
  });
});

describe('no eligible protocol', () => {
  it.each([
    ['gateway on a small device', { identities: 2, ramKiB: 512 }],
    ['X.509 CA without preview behind a 443-only firewall', { auth: 'x509-ca', outboundPorts: [443] }],
    ['file upload with X.509 CA without preview', { auth: 'x509-ca', features: ['file-upload'] }],
    ['HTTPS-only device with twins', { protocols: ['https'], features: ['twin'] }],
  ])('%s: NO_ELIGIBLE_PROTOCOL lists all five protocols with reasons', (_name, input) => {
    const err = refusal(input);
    expect(err.code).toBe('NO_ELIGIBLE_PROTOCOL');
    const rejected = err.details.rejected as Rejection[];
    expect(rejected.map((r) => r.protocol)).toEqual([...PROTOCOLS]);
    for (const r of rejected) {
      expect(r.reasons.length).toBeGreaterThan(0);
      expect(err.message).toContain(r.protocol);
    }
  });
});

describe('forced protocol', () => {
  it('accepts a forced protocol that serves the profile and marks it', () => {
    const d = decide({}, { forceProtocol: 'amqp-ws' });
    expect(d.protocol).toBe('amqp-ws');
    expect(d.port).toBe(443);
    expect(d.forced).toBe(true);
    expect(d.fallbacks).toEqual(['mqtt', 'mqtt-ws', 'amqp', 'https']);
    expect(d.because.join('\n')).toMatch(/forced.*would have chosen mqtt/);
  });

  it('refuses a forced protocol with every reason it fails', () => {
    const err = refusal({ features: ['twin', 'methods'], c2d: 'latency-sensitive' }, { forceProtocol: 'https' });
    expect(err.code).toBe('PROTOCOL_REFUSED');
    expect(err.details.protocol).toBe('https');
    expect((err.details.reasons as Array<{ rule: string }>).map((r) => r.rule).sort()).toEqual(['c2d-latency-needs-push', 'https-no-methods', 'https-no-twin']);
    expect(err.details.eligible).toEqual(['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws']);
    expect(err.message).toMatch(/https-no-twin/);
  });

  it('refuses a forced protocol the device cannot run, even if nothing else is eligible', () => {
    const err = refusal({ protocols: ['mqtt'], identities: 2 }, { forceProtocol: 'amqp' });
    expect(err.code).toBe('PROTOCOL_REFUSED');
    expect((err.details.reasons as Array<{ rule: string }>).map((r) => r.rule)).toEqual(['not-implemented-by-device']);
    expect(err.details.eligible).toEqual([]);
  });
});

describe('warnings', () => {
  it('says the Node.js client does not fit a device under 1 MB', () => {
    const d = decide({ ramKiB: 512 });
    expect(d.warnings.join('\n')).toMatch(/Node\.js client.*will not fit/);
    expect(decide({ ramKiB: 1024 }).warnings.join('\n')).not.toMatch(/Node\.js/);
  });

  it('HTTPS: sets the poll interval (default the 25-minute floor) and warns about polling latency', () => {
    const d = decide({ protocols: ['https'] });
    expect(d.pollIntervalSeconds).toBe(1500);
    expect(d.warnings.join('\n')).toMatch(/polled, at most once every 25 min:/);
    const slow = decide({ protocols: ['https'], pollIntervalSeconds: 3600 });
    expect(slow.pollIntervalSeconds).toBe(3600);
    expect(slow.warnings.join('\n')).toMatch(/once every 60 min: a message waits up to 60 min/);
  });

  it('HTTPS without C2D: interval on the record, no polling warning', () => {
    const d = decide({ protocols: ['https'], c2d: 'none' });
    expect(d.pollIntervalSeconds).toBe(1500);
    expect(d.warnings.join('\n')).not.toMatch(/polled/);
  });

  it('non-HTTPS decisions carry no poll interval', () => {
    expect(decide({ pollIntervalSeconds: 2000 }).pollIntervalSeconds).toBeUndefined();
  });

  it('development with a short interval is allowed with a warning that production refuses it', () => {
    const d = decide({ protocols: ['https'], environment: 'development', pollIntervalSeconds: 30 });
    expect(d.pollIntervalSeconds).toBe(30);
    expect(d.warnings.join('\n')).toMatch(/allowed in development.*production profile with this value is refused/);
    expect(decide({ protocols: ['https'], environment: 'development', pollIntervalSeconds: 1500 }).warnings.join('\n')).not.toMatch(/allowed in development/);
  });

  it('MQTT with C2D: settlement is complete-only', () => {
    expect(decide({ features: ['c2d'] }).warnings.join('\n')).toMatch(/completing them only/);
    expect(decide({ features: ['c2d'], outboundPorts: [443] }).warnings.join('\n')).toMatch(/mqtt-ws settles/);
    expect(decide({ features: ['telemetry'] }).warnings.join('\n')).not.toMatch(/completing/);
    expect(decide({ features: ['c2d'], identities: 2 }).warnings.join('\n')).not.toMatch(/completing/);
  });

  it('names a preview feature when the choice relies on one', () => {
    expect(decide({ auth: 'x509-ca', previewFeatures: true, outboundPorts: [443] }).warnings.join('\n')).toMatch(/preview feature/);
    expect(decide({ auth: 'x509-ca', previewFeatures: true }).warnings.join('\n')).not.toMatch(/preview/);
  });

  it('a plain default profile has no warnings', () => {
    expect(decide({}).warnings).toEqual([]);
  });
});

describe('explainTable', () => {
  it('shows every protocol with its verdict and each rejection reason', () => {
    const d = decide({ outboundPorts: [443], features: ['twin', 'c2d'] });
    const table = explainTable(d);
    const row = (p: string) => table.split('\n').find((l) => new RegExp(`^\\s+${p}\\s`).test(l)) ?? '';
    expect(table).toMatch(/^Protocol: mqtt-ws on port 443/);
    expect(row('mqtt-ws')).toMatch(/CHOSEN/);
    expect(row('amqp-ws')).toMatch(/fallback 1/);
    expect(row('mqtt')).toMatch(/rejected\s+port-closed/);
    expect(row('https')).toMatch(/rejected\s+https-no-twin/);
    for (const reason of d.because) expect(table).toContain(reason);
    for (const warning of d.warnings) expect(table).toContain(warning);
  });

  it('marks a forced choice and shows the HTTPS poll interval', () => {
    const table = explainTable(decide({ protocols: ['https', 'mqtt'] }, { forceProtocol: 'https' }));
    expect(table).toMatch(/CHOSEN \(forced\)/);
    expect(table).toMatch(/C2D poll interval: 1500 s/);
  });
});
