// A progress bar on stderr for the long steps of a build, drawn only when stderr is a terminal;
// elsewhere the build stays quiet. cli-progress is loaded only when a bar is drawn.
import * as tty from 'node:tty';

export interface ProgressBar {
  /** Bytes done so far and in all. */
  update: (done: number, total: number) => void;
  stop: () => void;
}

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}

/** A bar labelled `label`, or undefined when stderr is not a terminal. */
export function progressBar(label: string): ProgressBar | undefined {
  if (!tty.isatty(2)) return undefined;
  const { SingleBar } = require('cli-progress') as typeof import('cli-progress');
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% {value}/{total} MiB`,
    formatValue: (v, _options, type) => (type === 'value' || type === 'total' ? mib(v) : `${v}`),
    stream: process.stderr,
    barsize: 30,
  });
  let started = false;
  return {
    update: (done, total) => {
      if (!started) bar.start(total, done);
      else bar.update(done);
      started = true;
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
