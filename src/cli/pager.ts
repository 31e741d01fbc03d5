/**
 * Long output through a pager, the way git does it: when stdout is a terminal and what a command
 * prints does not fit on one screen, it goes through `$DRAWBRIDGE_PAGER`, else `$PAGER`, else
 * `less -FRX` (LESS=FRX is set for a pager that reads it, when LESS is unset); otherwise it is
 * written as it is. Off with `--no-pager` (the caller's `off`), for `--json`, when stdout is not a
 * terminal, and when the pager is set to `` or `cat`.
 *
 * Guarantees: output that fits on the screen is written directly, without starting anything;
 * past the first screen it streams, with backpressure, so a long export does not sit in memory;
 * when the reader quits the pager early, what follows is dropped and `quit` turns true, so the
 * producer can stop, and the command still exits normally. A pager that cannot be started (not
 * installed) is reported once on stderr and the output is written directly instead. While the
 * pager runs, Ctrl-C is the pager's: it does not kill the command under it.
 *
 * Known limits: a character is taken as one column wide (wide characters and emoji count as
 * one), so the fit is an estimate for such text; a pager named with shell syntax (quotes, pipes,
 * variables) is run through `sh -c`, and one that is not found then gets the shell's message.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';

export const DEFAULT_PAGER = 'less -FRX';

/** What the output goes to when it is not paged, and whose size decides: process.stdout. */
export interface Terminal {
  readonly isTTY?: boolean;
  readonly rows?: number;
  readonly columns?: number;
  write(chunk: string, callback?: (error?: Error | null) => void): boolean;
}

export interface PagerOptions {
  /** Write straight to the terminal: `--no-pager`, `--json`, a paced replay. */
  readonly off?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly terminal?: Terminal;
}

/** The pager command the environment asks for; undefined when it turns paging off. */
export function pagerCommand(env: NodeJS.ProcessEnv): string | undefined {
  const chosen = (env['DRAWBRIDGE_PAGER'] ?? env['PAGER'] ?? DEFAULT_PAGER).trim();
  return chosen === '' || chosen === 'cat' ? undefined : chosen;
}

export interface Output extends Writable {
  /** The reader quit the pager: what is written now is dropped; stop producing. */
  readonly quit: boolean;
  /** Ends the output: writes what is held back, then waits until the pager has exited. */
  close(): Promise<void>;
}

/** Where a command writes what it prints: the terminal, or the pager when it turns out long. */
export function pagedOutput(options: PagerOptions = {}): Output {
  const terminal = options.terminal ?? process.stdout;
  const env = options.env ?? process.env;
  const command = options.off || !terminal.isTTY ? undefined : pagerCommand(env);
  return new PagedOutput(terminal, command, env);
}

// CSI and OSC escape sequences take no columns (colours, hyperlinks).
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;
const SHELL_SYNTAX = /[|&;<>()$`\\"'*?[\]#~=%{}!\n]/;

class PagedOutput extends Writable implements Output {
  readonly #terminal: Terminal;
  readonly #command: string | undefined;
  readonly #env: NodeJS.ProcessEnv;
  /** Held back until it is known whether the output fits. */
  #held: string[] = [];
  #lines = 0;
  #column = 0;
  #pager: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #quit = false;
  /** Write callbacks the pager has not answered yet: a pager that exits leaves them to us. */
  readonly #pending = new Set<() => void>();
  /** Decided: straight to the terminal from now on. */
  #direct: boolean;

  constructor(terminal: Terminal, command: string | undefined, env: NodeJS.ProcessEnv) {
    super({ decodeStrings: false });
    this.#terminal = terminal;
    this.#command = command;
    this.#env = env;
    this.#direct = command === undefined;
  }

  get quit(): boolean {
    return this.#quit;
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.once('error', reject);
      this.end(() => resolve());
    });
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (this.#quit) return callback();
    if (this.#pager) return this.#toPager(text, callback);
    if (this.#direct) return void this.#terminal.write(text, (error) => callback(error));
    this.#held.push(text);
    this.#count(text);
    if (!this.#overflows()) return callback();
    const held = this.#held.join('');
    this.#held = [];
    this.#start().then(
      () => this.#toPager(held, callback),
      () => {
        this.#direct = true;
        this.#terminal.write(held, (error) => callback(error));
      },
    );
  }

  // What was written while the last piece was on its way goes on as one piece.
  override _writev(chunks: { chunk: string | Buffer; encoding: BufferEncoding }[], callback: (error?: Error | null) => void): void {
    this._write(chunks.map(({ chunk }) => (typeof chunk === 'string' ? chunk : chunk.toString('utf8'))).join(''), 'utf8', callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#pager) {
      this.#pager.stdin?.end();
      void this.#exited!.then(() => callback());
      return;
    }
    const held = this.#held.join('');
    this.#held = [];
    if (held === '') return callback();
    this.#terminal.write(held, (error) => callback(error));
  }

  /** Screen lines taken by `text` after what came before, wrapping at the terminal's width. */
  #count(text: string): void {
    const columns = Math.max(1, this.#terminal.columns ?? 80);
    for (const char of text.replace(ESCAPES, '')) {
      if (char === '\n') {
        this.#lines++;
        this.#column = 0;
      } else if (char === '\r') {
        this.#column = 0;
      } else {
        this.#column += char === '\t' ? 8 - (this.#column % 8) : 1;
        if (this.#column > columns) {
          this.#lines++;
          this.#column = this.#column - columns;
        }
      }
    }
  }

  /** More than fits above the shell's next prompt: the first line would scroll away. */
  #overflows(): boolean {
    const rows = Math.max(2, this.#terminal.rows ?? 24);
    return this.#lines + (this.#column > 0 ? 1 : 0) >= rows;
  }

  #start(): Promise<void> {
    const command = this.#command!;
    const env = { ...this.#env, LESS: this.#env['LESS'] ?? 'FRX', LV: this.#env['LV'] ?? '-c' };
    const [file, ...args] = SHELL_SYNTAX.test(command) ? ['/bin/sh', '-c', command] : command.split(/\s+/);
    const pager = spawn(file!, args, { stdio: ['pipe', 'inherit', 'inherit'], env });
    return new Promise((resolve, reject) => {
      pager.once('error', (error: NodeJS.ErrnoException) => {
        process.stderr.write(`drawbridge: cannot start the pager "${command}" (${error.code ?? error.message}); printing without it\n`);
        reject(error);
      });
      pager.once('spawn', () => {
        this.#pager = pager;
        // The pager owns the terminal now: Ctrl-C is for it, not for the command under it.
        const ignore = () => {};
        process.on('SIGINT', ignore);
        this.#exited = new Promise((exited) =>
          pager.once('close', () => {
            process.off('SIGINT', ignore);
            this.#quit = true;
            for (const done of [...this.#pending]) done();
            exited();
          }),
        );
        pager.on('error', () => {});
        // The reader quit before the end: EPIPE; what follows is dropped.
        pager.stdin!.on('error', () => (this.#quit = true));
        resolve();
      });
    });
  }

  #toPager(text: string, callback: (error?: Error | null) => void): void {
    const stdin = this.#pager!.stdin!;
    if (this.#quit || stdin.destroyed) return callback();
    const done = () => {
      if (this.#pending.delete(done)) callback();
    };
    this.#pending.add(done);
    stdin.write(text, done);
  }
}
