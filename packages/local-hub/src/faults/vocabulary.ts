// IoT Hub's fault-injection vocabulary, as the Azure SDKs' end-to-end suites speak it: a telemetry
// message whose application properties name a fault. Parsing is pure so the rules are testable
// without sockets; what each fault does lives in the injector and the per-transport targets.

export const FAULT_PROPERTIES = {
  type: 'AzIoTHub_FaultOperationType',
  closeReason: 'AzIoTHub_FaultOperationCloseReason',
  delay: 'AzIoTHub_FaultOperationDelayInSecs',
  duration: 'AzIoTHub_FaultOperationDurationInSecs',
} as const;

/** Faults that cut something once when the delay has elapsed. */
export const KILL_FAULTS = [
  'KillTcp',
  'KillAmqpConnection',
  'KillAmqpSession',
  'KillAmqpCBSLinkReq',
  'KillAmqpCBSLinkResp',
  'KillAmqpD2CLink',
  'KillAmqpC2DLink',
  'KillAmqpTwinLinkReq',
  'KillAmqpTwinLinkResp',
  'KillAmqpMethodReqLink',
  'KillAmqpMethodRespLink',
  'ShutDownAmqp',
  'ShutDownMqtt',
] as const;

/** Faults that refuse the device's telemetry for a window instead of cutting a connection. */
export const WINDOW_FAULTS = ['InvokeThrottling', 'InvokeMaxMessageQuota', 'InvokeAuthError', 'InvokeServiceUnavailable'] as const;

export type KillFault = (typeof KILL_FAULTS)[number];
export type WindowFault = (typeof WINDOW_FAULTS)[number];
export type FaultType = KillFault | WindowFault;

/**
 * The Azure suites send no duration for the kill faults, and 5 s for the window faults
 * (`DefaultDurationInSec` in the C# and Java helpers); a window fault without one lasts that long.
 */
export const DEFAULT_WINDOW_SECONDS = 5;
/** Bounds a typo (or a hostile device) from scheduling a fault for days. */
export const MAX_FAULT_SECONDS = 3600;

export interface FaultRequest {
  type: FaultType;
  closeReason: string;
  delaySeconds: number;
  /** 0 for kill faults: they act once. */
  durationSeconds: number;
}

export type FaultParse =
  | { kind: 'none' }
  | { kind: 'fault'; request: FaultRequest }
  | { kind: 'invalid'; why: string; /** When the type itself was understood. */ type?: FaultType };

export function isKillFault(type: FaultType): type is KillFault {
  return (KILL_FAULTS as readonly string[]).includes(type);
}

/** IoT Hub's property names are matched exactly; the SDKs send numbers as decimal strings. */
function seconds(value: string | undefined, name: string): number | string {
  if (value === undefined || value.trim() === '') return 0;
  const n = Number(value.trim());
  if (!Number.isFinite(n) || n < 0) return `${name} must be a number of seconds >= 0, not ${JSON.stringify(value)}`;
  if (n > MAX_FAULT_SECONDS) return `${name} must be at most ${MAX_FAULT_SECONDS} s, not ${n}`;
  return n;
}

/**
 * Reads a fault request from a telemetry message's application properties. Names are matched
 * without regard to case: over HTTPS they travel as `iothub-app-*` headers, which arrive lower-cased.
 */
export function parseFaultProperties(input: Readonly<Record<string, string>>): FaultParse {
  const properties: Record<string, string> = {};
  for (const name of Object.values(FAULT_PROPERTIES)) {
    const key = Object.keys(input).find((k) => k.toLowerCase() === name.toLowerCase());
    if (key !== undefined) properties[name] = input[key] as string;
  }
  const type = properties[FAULT_PROPERTIES.type];
  if (type === undefined) return { kind: 'none' };
  const known = [...KILL_FAULTS, ...WINDOW_FAULTS] as readonly string[];
  if (!known.includes(type)) return { kind: 'invalid', why: `unknown ${FAULT_PROPERTIES.type} ${JSON.stringify(type)}; known: ${known.join(', ')}` };
  const faultType = type as FaultType;
  const delay = seconds(properties[FAULT_PROPERTIES.delay], FAULT_PROPERTIES.delay);
  if (typeof delay === 'string') return { kind: 'invalid', why: delay, type: faultType };
  const rawDuration = properties[FAULT_PROPERTIES.duration];
  const duration = seconds(rawDuration, FAULT_PROPERTIES.duration);
  if (typeof duration === 'string') return { kind: 'invalid', why: duration, type: faultType };
  const durationSeconds = isKillFault(faultType) ? 0 : rawDuration === undefined || rawDuration.trim() === '' ? DEFAULT_WINDOW_SECONDS : duration;
  return {
    kind: 'fault',
    request: { type: faultType, closeReason: (properties[FAULT_PROPERTIES.closeReason] ?? '').trim(), delaySeconds: delay, durationSeconds },
  };
}
