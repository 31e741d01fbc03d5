/**
 * The audit log: every security event (a grant issued or revoked, a login and its failure, a
 * session started or ended, and why) is appended to the store in the shape the tamper-evident
 * chain of a later release will hash. Writers that act for a person (the CLI, the API) await
 * the append, so a command is not reported done before its record is written; the data path
 * appends without waiting and logs a failure.
 */

import type { Logger } from 'pino';
import type { Clock } from '../core/index.ts';
import type { AuditOutcome, Store } from '../store/index.ts';

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
  | 'command.denied'
  | 'masking.exempted';

export interface AuditLog {
  append(event: AuditEvent): Promise<void>;
  /** For the data path: appends without waiting; a failure is logged, never thrown. */
  note(event: AuditEvent): void;
}

export class StoreAuditLog implements AuditLog {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;

  constructor(store: Store, clock: Clock, log?: Logger) {
    this.#store = store;
    this.#clock = clock;
    this.#log = log;
  }

  async append(event: AuditEvent): Promise<void> {
    await this.#store.appendAudit({ at: this.#clock.now(), details: {}, ...event });
  }

  note(event: AuditEvent): void {
    this.append(event).catch((error: unknown) => {
      this.#log?.error({ err: error, action: event.action, subject: event.subject }, 'could not write an audit event');
    });
  }
}
