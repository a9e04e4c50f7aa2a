import { PROTOCOLS, type Protocol } from '@switchyard/profile';
import { PROTOCOL_PORTS, type Decision } from './decision.ts';

interface Row {
  protocol: Protocol;
  verdict: string;
  why: string[];
}

/** The decision as the plain-text table `switchyard explain` prints. */
export function explainTable(decision: Decision): string {
  const rows: Row[] = PROTOCOLS.map((protocol) => {
    if (protocol === decision.protocol) return { protocol, verdict: decision.forced ? 'CHOSEN (forced)' : 'CHOSEN', why: [] };
    const rank = decision.fallbacks.indexOf(protocol);
    if (rank >= 0) return { protocol, verdict: `fallback ${rank + 1}`, why: [] };
    const rejection = decision.rejected.find((r) => r.protocol === protocol);
    return { protocol, verdict: 'rejected', why: (rejection?.reasons ?? []).map((r) => `${r.rule}: ${r.message}`) };
  });
  const header = { protocol: 'PROTOCOL', port: 'PORT', verdict: 'VERDICT', why: 'WHY' };
  const wProtocol = Math.max(header.protocol.length, ...rows.map((r) => r.protocol.length));
  const wPort = header.port.length;
  const wVerdict = Math.max(header.verdict.length, ...rows.map((r) => r.verdict.length));
  const line = (a: string, b: string, c: string, d: string): string => `  ${a.padEnd(wProtocol)}  ${b.padEnd(wPort)}  ${c.padEnd(wVerdict)}  ${d}`.trimEnd();

  const out: string[] = [];
  out.push(`Protocol: ${decision.protocol} on port ${decision.port}${decision.forced ? ' (forced)' : ''}${decision.multiplexed ? `, multiplexing ${decision.profile.identities} identities` : ''}`);
  out.push(`Fallbacks: ${decision.fallbacks.length > 0 ? decision.fallbacks.join(', ') : 'none'}`);
  if (decision.pollIntervalSeconds !== undefined) out.push(`C2D poll interval: ${decision.pollIntervalSeconds} s`);
  out.push('');
  out.push(line(header.protocol, header.port, header.verdict, header.why));
  for (const row of rows) {
    const [first = '', ...rest] = row.why;
    out.push(line(row.protocol, String(PROTOCOL_PORTS[row.protocol]), row.verdict, first));
    for (const more of rest) out.push(line('', '', '', more));
  }
  out.push('');
  out.push('Because:');
  for (const reason of decision.because) out.push(`  - ${reason}`);
  if (decision.warnings.length > 0) {
    out.push('Warnings:');
    for (const warning of decision.warnings) out.push(`  ! ${warning}`);
  }
  return out.join('\n');
}
