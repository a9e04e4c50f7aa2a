// The soak's tables: one row per client, every minute (running counts) and at the end (with what
// the hub saw after the final drain). Pure formatting over what bench/soak.ts collected.
import { table } from './overhead-report.ts';
import type { ProcSample } from './soak-proc.ts';
import type { ClientStats } from './soak-types.ts';

export interface FaultRecord {
  k: number;
  atS: number;
  label: string;
  /** Hub fault events for the client's identities: phase → count ('scheduled' left out). */
  phases: Record<string, number>;
  error?: string;
}

export interface ClientRow {
  name: string;
  stats: ClientStats | undefined;
  c2dSent: number;
  methodsOk: number;
  methodsFailed: number;
  proc: { start: ProcSample | undefined; max: ProcSample | undefined; last: ProcSample | undefined; end: ProcSample | undefined };
  faults: FaultRecord[];
  /** Only at the end. */
  final?: { lost: number; duplicates: number; c2dReceived: number };
}

const n = (v: number | undefined, digits = 0): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));
const mb = (s: ProcSample | undefined): string => n(s?.rssMB);
const fd = (s: ProcSample | undefined): string => n(s?.fds);

export function minuteTable(rows: ClientRow[]): string {
  const header = ['client', 'sent', 'acked', 'pending', 'rejected', 'depth now/max', 'C2D sent/recv', 'methods ok/failed', 'twin ok/failed', 'reconn', 'RSS MB start/now/max', 'fds start/now/max', 'ELD p99 ms', 'state'];
  return table(
    header,
    rows.map((r) => {
      const s = r.stats;
      const pending = s === undefined ? undefined : s.issued - s.acknowledged - s.rejected;
      return [
        r.name,
        n(s?.issued),
        n(s?.acknowledged),
        n(pending),
        n(s?.rejected),
        `${n(s?.depth)}/${n(s?.maxDepth)}`,
        `${r.c2dSent}/${n(s?.c2dReceived)}`,
        `${r.methodsOk}/${r.methodsFailed}`,
        `${n(s?.twinOk)}/${n(s?.twinFailed)}`,
        n(s?.reconnects),
        `${mb(r.proc.start)}/${mb(r.proc.last)}/${mb(r.proc.max)}`,
        `${fd(r.proc.start)}/${fd(r.proc.last)}/${fd(r.proc.max)}`,
        n(s?.eldP99Ms, 1),
        s === undefined ? 'no stats' : Object.entries(s.states).map(([k, v]) => (v === 1 ? k : `${k}×${v}`)).join(','),
      ];
    }),
  );
}

export function finalTable(rows: ClientRow[]): string {
  const header = ['client', 'sent', 'acked', 'lost', 'dup@hub', 'rejected', 'max depth', 'C2D sent/recv', 'methods ok/failed', 'twin ok/failed', 'reconn', 'RSS MB start/max/end', 'fds start/max/end', 'ELD p99 ms', 'faults'];
  return table(
    header,
    rows.map((r) => {
      const s = r.stats;
      return [
        r.name,
        n(s?.issued),
        n(s?.acknowledged),
        n(r.final?.lost),
        n(r.final?.duplicates),
        n(s?.rejected),
        n(s?.maxDepth),
        `${r.c2dSent}/${n(r.final?.c2dReceived ?? s?.c2dReceived)}`,
        `${r.methodsOk}/${r.methodsFailed}`,
        `${n(s?.twinOk)}/${n(s?.twinFailed)}`,
        n(s?.reconnects),
        `${mb(r.proc.start)}/${mb(r.proc.max)}/${mb(r.proc.end)}`,
        `${fd(r.proc.start)}/${fd(r.proc.max)}/${fd(r.proc.end)}`,
        n(s?.eldRunP99Ms, 1),
        String(r.faults.length),
      ];
    }),
  );
}

/** One line per client: each fault step with what the hub said it did. */
export function faultLines(rows: ClientRow[]): string[] {
  return rows.map((r) => {
    const steps = r.faults.map((f) => {
      const phases = Object.entries(f.phases)
        .filter(([phase]) => phase !== 'ended')
        .map(([phase, count]) => (count === 1 ? phase : `${phase}×${count}`))
        .join(',');
      return `${clock(f.atS)} ${f.label}${f.error === undefined ? '' : ` FAILED TO INJECT: ${f.error}`}${phases === '' ? '' : ` (${phases})`}`;
    });
    return `  ${r.name}: ${steps.length === 0 ? 'none' : steps.join('; ')}`;
  });
}

/** Seconds from the start of the load as m:ss. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
