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

  /** One line. */
  info(message: string): void {
    if (this.#console) console.log(message);
    this.#write(message);
  }

  /** A warning line (stderr on the console). */
  warn(message: string): void {
    if (this.#console) console.warn(`Warning: ${message}`);
    this.#write(`Warning: ${message}`);
  }

  #write(message: string): void {
    this.#sink?.(message);
    if (!this.#file) return;
    const stamp = new Date().toISOString().replace("T", " ").slice(0, 23);
    this.#file.writeSync(this.#encoder.encode(`Training: ${stamp}-${message}\n`));
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
