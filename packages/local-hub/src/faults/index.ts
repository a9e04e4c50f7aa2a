// Fault injection for the local hub (see the README's "Faults" section).
export { FaultInjector, FaultRequestError, NETWORK_FAULTS, type ActiveFault, type FaultControl, type FaultEvent, type FaultInjection, type NetworkFaultKind, type NetworkFaultRequest } from './injector.ts';
export { FAULT_PROPERTIES, KILL_FAULTS, WINDOW_FAULTS, DEFAULT_WINDOW_SECONDS, parseFaultProperties, type FaultRequest, type FaultType, type KillFault, type WindowFault } from './vocabulary.ts';
export { amqpFaultTarget, type AmqpFaultHost, type AmqpEndpoint } from './amqp.ts';
export { streamFaultTarget, type FaultTarget, type StreamFaultHost } from './targets.ts';
