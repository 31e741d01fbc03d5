/**
 * The policies in force: the Cedar files the config names (or the shipped default pack), loaded
 * and validated at start, and reloaded while the gateway runs, without a restart.
 *
 * Guarantees: a file that fails to parse or validate never goes live. At start that stops the
 * gateway (the error names the file, line and column); on a reload the policies in force stay
 * in force and the failure is reported. A reload happens when the text of a file changes (the
 * gateway looks every second, and at once on `reload()`, which SIGHUP calls); a file that has
 * vanished counts as a failed reload, not as "no policies" (fail closed: a deleted file must not
 * drop the forbids it held).
 *
 * Known limits: a change is seen at the next look, so up to a second after it is written; an
 * editor that writes a file in two steps may cause one failed reload before the good one.
 */

import { readFile } from 'node:fs/promises';
import { PolicyEngine, PolicyError } from './cedar/engine.ts';

export interface PolicyChange {
  readonly from: string;
  readonly to: string;
  readonly files: readonly string[];
}

export interface LivePolicyEvents {
  readonly changed: (change: PolicyChange) => void;
  readonly failed: (error: PolicyError, files: readonly string[]) => void;
}

export type ReloadOutcome = 'unchanged' | 'changed' | 'failed';

export class LivePolicy {
  /** The files in force; empty for the default pack. */
  readonly files: readonly string[];
  #engine: PolicyEngine;
  #texts: readonly string[];
  /** The texts of the last failed reload (or its error), so that one bad edit is reported once. */
  #failedWith: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<ReloadOutcome> | undefined;
  #events: LivePolicyEvents | undefined;

  private constructor(files: readonly string[], engine: PolicyEngine, texts: readonly string[]) {
    this.files = Object.freeze([...files]);
    this.#engine = engine;
    this.#texts = texts;
  }

  /** Reads and validates `files` (none: the default pack); throws PolicyError on the first problem. */
  static async load(files: readonly string[]): Promise<LivePolicy> {
    if (files.length === 0) return new LivePolicy([], PolicyEngine.defaultPack(), []);
    const texts = await readAll(files);
    return new LivePolicy(files, PolicyEngine.load(files.map((file, i) => ({ file, text: texts[i]! }))), texts);
  }

  /** The policies in force now. */
  get engine(): PolicyEngine {
    return this.#engine;
  }

  /** What each file holds now, in the order of `files`. */
  get texts(): readonly string[] {
    return this.#texts;
  }

  /** Looks at the files every `intervalMs` and reloads them when their text changed. */
  watch(events: LivePolicyEvents, intervalMs = 1000): void {
    this.#events = events;
    if (this.files.length === 0 || this.#timer) return;
    this.#timer = setInterval(() => void this.reload(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Reads the files now; a reload already under way is shared rather than run twice. */
  reload(): Promise<ReloadOutcome> {
    this.#reloading ??= this.#reload().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  async #reload(): Promise<ReloadOutcome> {
    if (this.files.length === 0) return 'unchanged';
    let texts: string[] | undefined;
    let engine: PolicyEngine;
    try {
      texts = await readAll(this.files);
      if (texts.every((text, i) => text === this.#texts[i])) {
        this.#failedWith = undefined;
        return 'unchanged';
      }
      engine = PolicyEngine.load(this.files.map((file, i) => ({ file, text: texts![i]! })));
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      const failure = texts ? texts.join('\0') : error.message;
      if (failure !== this.#failedWith) this.#events?.failed(error, this.files);
      this.#failedWith = failure;
      return 'failed';
    }
    this.#failedWith = undefined;
    const from = this.#engine.version;
    this.#engine = engine;
    this.#texts = texts;
    this.#events?.changed({ from, to: engine.version, files: this.files });
    return 'changed';
  }
}

async function readAll(files: readonly string[]): Promise<string[]> {
  return Promise.all(
    files.map(async (file) => {
      try {
        return await readFile(file, 'utf8');
      } catch (error) {
        throw new PolicyError(`${file}: cannot read the policy file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, file);
      }
    }),
  );
}
