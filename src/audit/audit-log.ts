/**
 * The audit log: every security event (a grant issued or revoked, a login and its failure, a
 * session started or ended, and why, a refused command, a policy change) is appended to the
 * store, chained to the record before it (audit/chain.ts), so that `drawbridge audit verify`
 * finds any record edited, removed, reordered or cut off since.
 *
 * Durability: appends go to the store together, in one transaction (group commit): at once
 * (after the current turn of the event loop, with whatever else is queued) when someone waits for
 * them (`append`, `commit`, `flush`), else at the latest COMMIT_DELAY_MS after the first of them
 * (`note`). Writers that act for a person (the CLI, the API) await the append, so a command is not
 * reported done before its record is committed; a session's client is told a statement is done
 * once the session's records are committed (session/pipeline.ts, `committed`), unless the gateway
 * is configured to answer at once; `note` appends without waiting, and a failure is logged.
 */

import type { Logger } from 'pino';
import type { Clock } from '../core/index.ts';
import type { AuditOutcome, AuditRecord, NewAuditEvent, Store } from '../store/index.ts';
import type { AuditSink } from './sinks.ts';

export interface AuditEvent {
  readonly actor: string;
  readonly action: AuditAction;
  readonly subject: string;
  readonly outcome: AuditOutcome;
  readonly details?: Readonly<Record<string, unknown>>;
}

export type AuditAction =
  | 'grant.issued'
  | 'grant.revoked'
  | 'grant.expired'
  | 'login.succeeded'
  | 'login.failed'
  | 'session.started'
  | 'session.ended'
  | 'session.terminated'
  | 'account.created'
  | 'account.disabled'
  | 'account.enabled'
  | 'account.roles-changed'
  | 'account.password-set'
  | 'service-account.key-rotated'
  | 'service-account.limits'
  | 'session.issued'
  | 'session.refreshed'
  | 'session.refresh-reused'
  | 'session.revoked'
  | 'logout'
  | 'access.requested'
  | 'policy.loaded'
  | 'policy.changed'
  | 'approval.requested'
  | 'approval.approved'
  | 'approval.denied'
  | 'approval.expired'
  | 'approval.cancelled'
  | 'review.certified'
  | 'review.revoked'
  | 'command.allowed'
  | 'command.denied'
  | 'masking.exempted'
  | 'recording.deleted'
  | 'plan.submitted'
  | 'plan.deviation'
  | 'plan.finished';

export interface AuditLog {
  /** Appends, and starts committing at once: resolves once the record is committed. */
  append(event: AuditEvent): Promise<void>;
  /**
   * For the data path: appends without waiting (and without a promise of its own); a failure is
   * logged, never thrown, and told to `onFailure`.
   */
  note(event: AuditEvent, onFailure?: (error: unknown) => void): void;
  /** Starts committing what was appended now, instead of at the end of the commit delay: someone waits for it. */
  commit(): void;
}

/**
 * How long an append may wait for others to share its transaction, unless someone waits for it
 * (`commit`, `flush`): the most a gateway killed can lose of records nobody waited for.
 */
export const COMMIT_DELAY_MS = 5;

const ignore = (): void => {};

export class StoreAuditLog implements AuditLog {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  /**
   * Appends waiting for the next transaction, and what to tell each one's writer: three lists of
   * one length (no object per append: a gateway makes one per statement).
   */
  #queue: NewAuditEvent[] = [];
  #resolves: (() => void)[] = [];
  #rejects: ((error: unknown) => void)[] = [];
  /** Every transaction so far, in order: the next one starts after it. */
  #tail: Promise<void> = Promise.resolve();
  /** A transaction is queued behind #tail and will take #queue as it is when it starts. */
  #scheduled = false;
  /** Ends the commit delay of what #queue holds. */
  #timer: NodeJS.Timeout | undefined;

  readonly #sinks: readonly AuditSink[];

  /** `sinks` get each record once it is committed (audit/sinks.ts). */
  constructor(store: Store, clock: Clock, log?: Logger, sinks: readonly AuditSink[] = []) {
    this.#store = store;
    this.#clock = clock;
    this.#log = log;
    this.#sinks = sinks;
  }

  append(event: AuditEvent): Promise<void> {
    const appended = new Promise<void>((resolve, reject) => this.#enqueue(event, resolve, reject));
    this.commit(); // someone waits for it
    return appended;
  }

  note(event: AuditEvent, onFailure: (error: unknown) => void = ignore): void {
    this.#enqueue(event, ignore, onFailure); // the failed transaction is logged once, in #write
  }

  #enqueue(event: AuditEvent, resolve: () => void, reject: (error: unknown) => void): void {
    // Field by field: a spread after other fields takes V8's slow path, once per statement here.
    const { actor, action, subject, outcome, details = {} } = event;
    this.#queue.push({ at: this.#clock.now(), actor, action, subject, outcome, details });
    this.#resolves.push(resolve);
    this.#rejects.push(reject);
    // Group commit: what is appended within the delay shares one transaction.
    if (!this.#scheduled) this.#timer ??= setTimeout(() => this.commit(), COMMIT_DELAY_MS);
  }

  commit(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#scheduled || this.#queue.length === 0) return;
    this.#scheduled = true;
    // After this turn of the event loop, so that what it appends still goes in the same transaction.
    this.#tail = this.#tail.then(() => new Promise<void>((r) => setImmediate(r))).then(() => this.#write());
  }

  /** Resolves once every append made so far is committed (or has failed). */
  async flush(): Promise<void> {
    this.commit();
    await this.#tail;
  }

  /** Flushes, then closes the sinks. */
  async close(): Promise<void> {
    await this.flush();
    await Promise.all(this.#sinks.map((s) => s.close()));
  }

  /** To each sink; a sink's failure is logged, never the writers'. */
  #copy(records: readonly AuditRecord[]): void {
    for (const sink of this.#sinks) {
      try {
        sink.send(records);
      } catch (error) {
        this.#log?.warn({ err: error }, 'an audit sink failed');
      }
    }
  }

  async #write(): Promise<void> {
    const batch = this.#queue;
    const resolves = this.#resolves;
    const rejects = this.#rejects;
    this.#queue = [];
    this.#resolves = [];
    this.#rejects = [];
    this.#scheduled = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      // The records come back only for the sinks.
      const records = await this.#store.appendAudits(batch, { records: this.#sinks.length > 0 });
      for (const resolve of resolves) resolve();
      this.#copy(records);
    } catch (error) {
      this.#log?.error({ err: error, records: batch.length }, 'could not commit audit records');
      for (const reject of rejects) reject(error);
    }
  }
}
