/**
 * The audit log: every security event (a grant issued or revoked, a login and its failure, a
 * session started or ended, and why, a refused command, a policy change) is appended to the
 * store, chained to the record before it (audit/chain.ts), so that `drawbridge audit verify`
 * finds any record edited, removed, reordered or cut off since.
 *
 * Durability: appends made in one turn of the event loop go to the store together, in one
 * transaction (group commit). Writers that act for a person (the CLI, the API) await the append,
 * so a command is not reported done before its record is committed; the data path appends
 * without waiting (`note`): its record is committed within one store transaction of the event,
 * and a failure is logged.
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
  | 'session.issued'
  | 'session.refreshed'
  | 'session.refresh-reused'
  | 'session.revoked'
  | 'logout'
  | 'access.requested'
  | 'policy.loaded'
  | 'policy.changed'
  | 'command.allowed'
  | 'command.denied'
  | 'masking.exempted'
  | 'recording.deleted';

export interface AuditLog {
  append(event: AuditEvent): Promise<void>;
  /** For the data path: appends without waiting; a failure is logged, never thrown. */
  note(event: AuditEvent): void;
}

interface Pending {
  readonly event: NewAuditEvent;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class StoreAuditLog implements AuditLog {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  /** Appends waiting for the next transaction. */
  #queue: Pending[] = [];
  /** Every transaction so far, in order: the next one starts after it. */
  #tail: Promise<void> = Promise.resolve();
  #scheduled = false;

  readonly #sinks: readonly AuditSink[];

  /** `sinks` get each record once it is committed (audit/sinks.ts). */
  constructor(store: Store, clock: Clock, log?: Logger, sinks: readonly AuditSink[] = []) {
    this.#store = store;
    this.#clock = clock;
    this.#log = log;
    this.#sinks = sinks;
  }

  append(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ event: { at: this.#clock.now(), details: {}, ...event }, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      // After this turn of the event loop, so that what it appends goes in one transaction.
      this.#tail = this.#tail.then(() => new Promise<void>((r) => setImmediate(r))).then(() => this.#write());
    });
  }

  note(event: AuditEvent): void {
    this.append(event).catch(() => {}); // the failed transaction is logged once, in #write
  }

  /** Resolves once every append made so far is committed (or has failed). */
  async flush(): Promise<void> {
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
    this.#queue = [];
    this.#scheduled = false;
    try {
      const records = await this.#store.appendAudits(batch.map((p) => p.event));
      for (const p of batch) p.resolve();
      this.#copy(records);
    } catch (error) {
      this.#log?.error({ err: error, records: batch.length }, 'could not commit audit records');
      for (const p of batch) p.reject(error);
    }
  }
}
