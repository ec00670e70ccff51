/**
 * The training log: each line goes to the console and, on rank 0, to
 * `<output>/training.log` with a time stamp, as arcface_torch's `init_logging` does.
 *
 * @module
 */

/** Writes log lines; `close` flushes the file. */
export class TrainLog {
  #file: Deno.FsFile | null = null;
  #encoder = new TextEncoder();
  readonly #console: boolean;
  readonly #sink?: (line: string) => void;

  /**
   * Logs to the console (when `console`), appends to the file `path` when given, and hands
   * every line to `sink`.
   */
  constructor(path: string | null, console = true, sink?: (line: string) => void) {
    if (path) this.#file = Deno.openSync(path, { create: true, append: true });
    this.#console = console;
    this.#sink = sink;
  }

  #progressShown = false;
  readonly #terminal = (() => {
    try {
      return Deno.stderr.isTerminal();
    } catch {
      return false;
    }
  })();

  /** One line. */
  info(message: string): void {
    this.#clearProgress();
    if (this.#console) console.log(message);
    this.#write(message);
  }

  /** Replaces the progress line at the bottom of a terminal (nothing elsewhere, nothing in the file). */
  progress(text: string): void {
    if (!this.#console || !this.#terminal) return;
    Deno.stderr.writeSync(this.#encoder.encode(`\r${text}\x1b[K`));
    this.#progressShown = true;
  }

  #clearProgress(): void {
    if (!this.#progressShown) return;
    Deno.stderr.writeSync(this.#encoder.encode("\r\x1b[K"));
    this.#progressShown = false;
  }

  /** A warning line (stderr on the console). */
  warn(message: string): void {
    this.#clearProgress();
    if (this.#console) console.warn(`Warning: ${message}`);
    this.#write(`Warning: ${message}`);
  }

  /** The error that ended the run, for the log file (the caller reports it on the console). */
  failed(message: string): void {
    this.#clearProgress();
    this.#write(`Failed: ${message}`);
  }

  #write(message: string): void {
    this.#sink?.(message);
    if (!this.#file) return;
    const stamp = new Date().toISOString().replace("T", " ").slice(0, 23);
    this.#file.writeSync(this.#encoder.encode(`Training: ${stamp}-${message}\n`));
  }

  close(): void {
    this.#clearProgress();
    this.#file?.close();
    this.#file = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
