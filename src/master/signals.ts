// Signals sent to tsrun that belong to the payload. Handlers are installed as the starter begins,
// so that none of these signals kills the master. Until the payload runs they are held back (stage
// 2 is a Node process: SIGUSR1 would start its inspector); a terminating signal during set-up ends
// the run at once (the container's processes die with the master, by their parent-death signal).
import { log } from '../common/log';
import { SIGNALS } from '../native/constants';
import type { SignalSource } from '../engines';

export const FORWARDED = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
] as const;
const TERMINATING = new Set(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']);

export class SignalForwarder implements SignalSource {
  private listener: ((signal: number) => void) | undefined;
  private held: number[] = [];
  private running = false;

  constructor(private readonly onAbort: (signal: number) => void) {
    for (const name of FORWARDED) process.on(name, () => this.received(name));
  }

  onSignal(listener: (signal: number) => void): void {
    this.listener = listener;
    this.flush();
  }

  /** The payload runs: deliver what was held back, then forward as signals come. */
  payloadStarted(): void {
    this.running = true;
    this.flush();
  }

  private flush(): void {
    if (!this.running || this.listener === undefined) return;
    const held = this.held;
    this.held = [];
    for (const signal of held) this.listener(signal);
  }

  private received(name: string): void {
    const signal = SIGNALS[name];
    log().debug({ signal: name, running: this.running }, 'signal received');
    if (this.running && this.listener !== undefined) return this.listener(signal);
    if (TERMINATING.has(name)) return this.onAbort(signal);
    this.held.push(signal);
  }
}
