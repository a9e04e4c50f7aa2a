// C2D over HTTPS: the scheduler that keeps a device to IoT Hub's one poll per 25 minutes (faster
// only in an explicit development mode), started by the core when someone listens for messages
// on a link that polls. Messages a poll returns reach the core through the link, like pushed ones.
import { SwitchyardError } from '@switchyard/errors';
import type { Clock } from '@switchyard/time';
import type { Decision } from '@switchyard/selector';
import type { DeviceLink } from '../links/link.ts';
import { PollRunner, pollPolicy, type PollEvent, type PollPolicyInput } from '../poll-scheduler.ts';

export interface PollingOptions {
  poll?: Omit<PollPolicyInput, 'development'> & { development?: boolean };
  /** Where the last poll's time is kept across restarts; without it the first poll waits a full interval. */
  pollStateDir?: string;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
}

/** What the scheduler reports through its client. */
export interface PollingHost {
  readonly deviceId: string;
  readonly decision: Decision | undefined;
  readonly clock: Clock;
  pollEvent(event: PollEvent): void;
  warn(message: string): void;
  linkFault(error: unknown, operation: string): void;
}

export interface PollingHandle {
  stop(): Promise<void>;
}

export function startPolling(host: PollingHost, link: DeviceLink, options: PollingOptions): PollingHandle | undefined {
  const pollOnce = link.pollOnce?.bind(link);
  if (pollOnce === undefined) {
    host.linkFault(new SwitchyardError('FEATURE_UNSUPPORTED', 'C2D over HTTPS needs a link that can poll; this client was adapted without one', { details: { protocol: 'https', feature: 'c2d' } }), 'poll');
    return undefined;
  }
  const decision = host.decision;
  const development = options.poll?.development ?? decision?.profile.environment === 'development';
  const interval = options.poll?.pollIntervalSeconds ?? decision?.pollIntervalSeconds ?? decision?.profile.pollIntervalSeconds;
  const policy = pollPolicy({ ...options.poll, development, ...(interval === undefined ? {} : { pollIntervalSeconds: interval }) });
  const warnings: string[] = [];
  if (development) warnings.push(`development mode: polling C2D every ${policy.intervalMs / 1000} s; IoT Hub asks production devices to poll at most every 1500 s`);
  else if (options.pollStateDir === undefined) warnings.push(`no pollStateDir: the device cannot know when it last polled, so its first C2D poll waits ${policy.intervalMs / 1000} s`);
  // Next turn, so a 'warning' listener attached after on('message') still hears it.
  if (warnings.length > 0) setImmediate(() => warnings.forEach((w) => host.warn(w)));
  const runner = new PollRunner({
    deviceId: host.deviceId,
    policy,
    clock: host.clock,
    ...(options.pollStateDir === undefined ? {} : { stateDir: options.pollStateDir }),
    ...(options.random === undefined ? {} : { random: options.random }),
    pollOnce,
    onPoll: (event) => host.pollEvent(event),
    onError: (err) => host.linkFault(err, 'poll'),
  });
  runner.start().catch((err: unknown) => host.linkFault(err, 'poll'));
  return runner;
}
