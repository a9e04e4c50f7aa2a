// The soak's two kinds of child process: the hub (bench/hub-process.ts --control, JSON-line
// requests and replies) and a client (bench/soak-child.ts, tagged lines). Each child's stderr goes
// to a file in the run directory, so fault-time warnings do not drown the tables.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ClientEvent, HubFaultEvent, HubRequestBody } from './soak-types.ts';

export interface HubInfo {
  hostName: string;
  address: string;
  ports: { mqtt: number; amqp: number; https: number };
  ca: string;
}

export class HubError extends Error {
  constructor(message: string, readonly errorCode: string | undefined) {
    super(message);
  }
}

function logTo(child: ChildProcess, file: string): void {
  const log = createWriteStream(file, { flags: 'a' });
  child.stderr!.pipe(log);
}

/** Waits for a child's exit up to `ms`; undefined if it is still running then. */
async function exitWithin(child: ChildProcess, exited: Promise<unknown>, ms: number): Promise<{ code: number | null; signal: string | null } | undefined> {
  if (child.exitCode === null && child.signalCode === null) {
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)))]);
    clearTimeout(timer);
    if (late) return undefined;
  }
  return { code: child.exitCode, signal: child.signalCode };
}

export class HubProcess {
  readonly #child: ChildProcess;
  readonly #exited: Promise<unknown>;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #nextId = 1;
  telemetryReceived: number | undefined;

  private constructor(child: ChildProcess, onFault: (e: HubFaultEvent) => void, onLine: (line: string) => void) {
    this.#child = child;
    this.#exited = once(child, 'exit');
    this.#exited.then(() => {
      for (const [, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(new Error('the hub process exited'));
      }
      this.#pending.clear();
    }, () => undefined);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let message: { reply?: number; ok?: boolean; value?: unknown; error?: { message: string; errorCode?: string }; event?: string; telemetryReceived?: number };
      try {
        message = JSON.parse(line) as typeof message;
      } catch {
        return;
      }
      if (message.event === 'fault') onFault(message as unknown as HubFaultEvent);
      else if (message.reply !== undefined) {
        const p = this.#pending.get(message.reply);
        if (p === undefined) return;
        this.#pending.delete(message.reply);
        clearTimeout(p.timer);
        if (message.ok === true) p.resolve(message.value);
        else p.reject(new HubError(message.error?.message ?? 'failed', message.error?.errorCode));
      } else if (message.telemetryReceived !== undefined) this.telemetryReceived = message.telemetryReceived;
      else onLine(line);
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  static async start(command: string, args: string[], logFile: string, onFault: (e: HubFaultEvent) => void): Promise<{ hub: HubProcess; info: HubInfo }> {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    logTo(child, logFile);
    let first: (line: string) => void = () => undefined;
    const ready = new Promise<string>((resolve) => (first = resolve));
    const hub = new HubProcess(child, onFault, (line) => first(line));
    const line = await Promise.race([
      ready,
      hub.#exited.then(() => {
        throw new Error(`the hub process exited before printing its address (see ${logFile})`);
      }),
    ]);
    const { devices: _devices, ...info } = JSON.parse(line) as HubInfo & { devices: unknown };
    return { hub, info };
  }

  call<T>(request: HubRequestBody, timeoutMs = 30_000): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`hub ${request.op}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#child.stdin!.write(`${JSON.stringify({ ...request, id })}\n`);
    });
  }

  /** Ends its stdin (it closes the hub and prints its telemetry count), killing it after 15 s. */
  async stop(): Promise<void> {
    this.#child.stdin!.end();
    if ((await exitWithin(this.#child, this.#exited, 15_000)) === undefined) {
      this.#child.kill('SIGKILL');
      await this.#exited;
    }
  }
}

/** One soak client process, driven by tagged lines (soak-types.ts). */
export class ClientProcess {
  readonly #child: ChildProcess;
  readonly #exited: Promise<unknown>;
  readonly #queued = new Map<string, string[]>();
  readonly #waiting = new Map<string, Array<(body: string) => void>>();
  handles: string[] | undefined;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv, config: object, logFile: string, onEvent: (e: ClientEvent) => void) {
    this.#child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    logTo(this.#child, logFile);
    // 'close', not 'exit': the last lines it wrote (HANDLES) are read by then.
    this.#exited = once(this.#child, 'close');
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const space = line.indexOf(' ');
      const tag = space < 0 ? line : line.slice(0, space);
      const body = space < 0 ? '' : line.slice(space + 1);
      if (tag === 'EVENT') {
        try {
          onEvent(JSON.parse(body) as ClientEvent);
        } catch {
          // a torn line: nothing to record
        }
        return;
      }
      if (tag === 'HANDLES') {
        this.handles = JSON.parse(body) as string[];
        return;
      }
      const waiter = this.#waiting.get(tag)?.shift();
      if (waiter !== undefined) waiter(body);
      else this.#queued.set(tag, [...(this.#queued.get(tag) ?? []), body]);
    });
    this.#child.stdin!.on('error', () => undefined); // a child that died: its exit is reported instead
    this.#child.stdin!.write(`${JSON.stringify(config)}\n`);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  send(command: string, last = false): void {
    if (!this.running) return;
    if (last) this.#child.stdin!.end(`${command}\n`);
    else this.#child.stdin!.write(`${command}\n`);
  }

  /** The next line tagged `tag`, parsed; fails after `ms` or when the process exits first. */
  async expect<T>(tag: string, ms: number): Promise<T> {
    const queued = this.#queued.get(tag)?.shift();
    if (queued !== undefined) return JSON.parse(queued) as T;
    let timer: NodeJS.Timeout | undefined;
    let waiter: ((body: string) => void) | undefined;
    try {
      const body = await Promise.race([
        new Promise<string>((resolve) => {
          waiter = resolve;
          this.#waiting.set(tag, [...(this.#waiting.get(tag) ?? []), resolve]);
        }),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${tag} within ${ms} ms`)), ms))),
        this.#exited.then(() => {
          throw new Error(`exited (code ${this.#child.exitCode ?? this.#child.signalCode}) before ${tag}`);
        }),
      ]);
      return JSON.parse(body) as T;
    } finally {
      clearTimeout(timer);
      const list = this.#waiting.get(tag);
      if (list !== undefined && waiter !== undefined) this.#waiting.set(tag, list.filter((w) => w !== waiter));
    }
  }

  exitWithin(ms: number): Promise<{ code: number | null; signal: string | null } | undefined> {
    return exitWithin(this.#child, this.#exited, ms);
  }

  kill(): void {
    if (this.running) this.#child.kill('SIGKILL');
  }
}
