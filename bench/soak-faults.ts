// What the soak injects, per protocol: the local hub's whole fault vocabulary (IoT Hub's
// Kill*/ShutDown*/Invoke* faults through hub.faults.inject, network faults through
// hub.faults.network) with the durations a real outage has, not the 1 s of the CI fault suite.
// Each client walks its own list, one step per fault period, starting at its own offset so a short
// run still spreads different faults over the clients.
import type { Protocol } from '@switchyard/profile';

export type FaultStep =
  | { label: string; kind: 'inject'; type: string; durationSeconds?: number }
  | { label: string; kind: 'network'; network: 'blackhole' | 'delay' | 'reset' | 'refuse' | 'throttle-https'; seconds?: number; delayMs?: number }
  /** The hub unreachable: new connections refused for `seconds`, then the live ones reset. */
  | { label: string; kind: 'outage'; seconds: number };

/** Window faults last this long: long enough that the SDK's and the outbox's back-offs run. */
const WINDOW_SECONDS = 20;

const inject = (type: string, durationSeconds?: number): FaultStep => ({ label: durationSeconds === undefined ? type : `${type} ${durationSeconds}s`, kind: 'inject', type, ...(durationSeconds === undefined ? {} : { durationSeconds }) });

// Ordered so the first minutes already mix a kill, a black hole and a refusing window.
const COMMON: FaultStep[] = [
  inject('KillTcp'),
  { label: 'blackhole 20s', kind: 'network', network: 'blackhole', seconds: 20 },
  inject('InvokeThrottling', WINDOW_SECONDS),
  { label: 'reset', kind: 'network', network: 'reset' },
  { label: 'delay 20s x 1000ms', kind: 'network', network: 'delay', seconds: 20, delayMs: 1000 },
  inject('InvokeServiceUnavailable', WINDOW_SECONDS),
  { label: 'blackhole 60s', kind: 'network', network: 'blackhole', seconds: 60 },
  inject('InvokeMaxMessageQuota', WINDOW_SECONDS),
  { label: 'outage 20s (refuse + reset)', kind: 'outage', seconds: 20 },
  inject('InvokeAuthError', WINDOW_SECONDS),
];

const AMQP: FaultStep[] = [
  'KillAmqpConnection',
  'KillAmqpSession',
  'ShutDownAmqp',
  'KillAmqpD2CLink',
  'KillAmqpCBSLinkReq',
  'KillAmqpC2DLink',
  'KillAmqpCBSLinkResp',
  'KillAmqpTwinLinkReq',
  'KillAmqpMethodReqLink',
  'KillAmqpTwinLinkResp',
  'KillAmqpMethodRespLink',
].map((type) => inject(type));

const SPECIFIC: Record<Protocol, FaultStep[]> = {
  mqtt: [inject('ShutDownMqtt')],
  'mqtt-ws': [inject('ShutDownMqtt')],
  amqp: AMQP,
  'amqp-ws': AMQP,
  https: [{ label: 'throttle-https 20s', kind: 'network', network: 'throttle-https', seconds: WINDOW_SECONDS }],
};

/** Common and protocol-specific steps alternately, then the rest of the longer list. */
export function faultPlan(protocol: Protocol): FaultStep[] {
  const specific = SPECIFIC[protocol];
  const plan: FaultStep[] = [];
  for (let i = 0; i < Math.max(COMMON.length, specific.length); i++) {
    if (i < COMMON.length) plan.push(COMMON[i]!);
    if (i < specific.length) plan.push(specific[i]!);
  }
  return plan;
}

/** The step a client at `offset` takes at fault number `k` (0-based). */
export function stepAt(plan: readonly FaultStep[], offset: number, k: number): FaultStep {
  return plan[(offset + k) % plan.length]!;
}

/** When the fault steps fire, in seconds from the start of the load: a quarter period in, then every period. */
export function faultTimes(durationSeconds: number, everySeconds: number): number[] {
  const times: number[] = [];
  for (let t = Math.min(15, everySeconds / 4); t < durationSeconds && times.length < 10_000; t += everySeconds) times.push(t);
  return times;
}
