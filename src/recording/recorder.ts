/**
 * Writes what sessions do to the store. Statements are buffered and written in batches (one
 * transaction each, at most every `flushMs` or every `batchSize` statements) so that the data
 * path never waits on the store. Known limit: statements still buffered when the process dies
 * are lost (at most `flushMs` worth); the tamper-evident audit log of a later issue is durable.
 */

import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { pushStatement, type NewSession, type NewStatement, type StatementFields, type Store } from '../store/index.ts';

export interface Recorder {
  /** False when statements are not kept: sessions then build no record of them (text, masking, result). */
  readonly keepsStatements: boolean;
  startSession(session: NewSession): Promise<string>;
  statement(statement: NewStatement): void;
  endSession(id: string, at: number, reason: string): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export class StoreRecorder implements Recorder {
  readonly keepsStatements = true;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #flushMs: number;
  readonly #batchSize: number;
  /**
   * Gathered as they come, flat (store/statement-batches.ts `pushStatement`): no object per
   * statement waits to be written, and the batches are made where they are written.
   */
  #pending: StatementFields = [];
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(store: Store, log: Logger, options: { flushMs?: number; batchSize?: number } = {}) {
    this.#store = store;
    this.#log = log;
    this.#flushMs = options.flushMs ?? 200;
    this.#batchSize = options.batchSize ?? 500;
  }

  async startSession(session: NewSession): Promise<string> {
    const record = await this.#store.startSession(session);
    return record.id;
  }

  statement(statement: NewStatement): void {
    pushStatement(this.#pending, statement);
    if (++this.#count >= this.#batchSize) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), this.#flushMs);
  }

  endSession(id: string, at: number, reason: string): void {
    // Queued after the session's statements, so a reader never sees an ended session grow.
    void this.flush();
    this.#writing = this.#writing
      .then(async () => void (await this.#store.endSession(id, at, reason)))
      .catch((error: unknown) => {
        this.#log.error({ err: error, session: id }, 'could not record the end of a session');
      });
  }

  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    const count = this.#count;
    this.#pending = [];
    this.#count = 0;
    this.#writing = this.#writing.then(async () => {
      if (count === 0) return;
      try {
        await this.#store.insertStatements(batch);
      } catch (error) {
        this.#log.error({ err: error, statements: count }, 'could not record statements');
      }
    });
    return this.#writing;
  }

  async close(): Promise<void> {
    await this.flush();
  }
}

/**
 * What a gateway with `recording: enabled: false` uses: sessions get an id (audit events and
 * revocation name them) and nothing is written. Fail-safe for the rest: the audit log still
 * records logins, refusals and session starts and ends.
 */
export class NoRecorder implements Recorder {
  readonly keepsStatements = false;
  async startSession(): Promise<string> {
    return `ses_${randomUUID().replaceAll('-', '')}`;
  }
  statement(): void {}
  endSession(): void {}
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}
