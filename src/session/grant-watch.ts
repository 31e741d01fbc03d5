/**
 * The gateway's watch over grants. Revocation reaches running sessions: every `intervalMs` the
 * gateway asks the store which grants were revoked lately and ends the live sessions that use
 * them. Expiry reaches the audit log: at the same pace it claims the grants that expired
 * unrecorded and appends a `grant.expired` event for each (sessions end at expiry on their own
 * timers). The store is the one
 * place every writer shares (the CLI on the gateway's host, the API, other replicas), so a
 * revocation made anywhere ends sessions everywhere within one interval and a query.
 *
 * The window looks back `windowMs` further than the last poll, so that a revocation stamped by
 * a writer whose clock runs a little behind this one's is not missed; ending a session is
 * idempotent, so seeing a revocation twice costs nothing.
 */

import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Clock } from '../core/index.ts';
import type { Pipeline } from './pipeline.ts';

export interface RevokedGrant {
  readonly id: string;
  readonly revokedBy: string | undefined;
  readonly revokeReason: string | undefined;
}

export interface ExpiredGrant {
  readonly id: string;
  readonly principal: string;
  readonly connection: string;
  readonly expiresAt: number;
}

export interface GrantSources {
  revokedSince(since: number): Promise<readonly RevokedGrant[]>;
  /** Expired grants nobody recorded yet, claimed for this gateway. */
  claimExpired(now: number): Promise<readonly ExpiredGrant[]>;
}

export interface GrantWatchOptions {
  readonly intervalMs?: number;
  readonly windowMs?: number;
}

export class GrantWatch {
  readonly #sources: GrantSources;
  readonly #audit: AuditLog;
  readonly #pipeline: Pipeline;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #windowMs: number;
  #timer: NodeJS.Timeout | undefined;
  #since: number;
  #polling: Promise<void> = Promise.resolve();

  constructor(sources: GrantSources, audit: AuditLog, pipeline: Pipeline, clock: Clock, log: Logger, options: GrantWatchOptions = {}) {
    this.#sources = sources;
    this.#audit = audit;
    this.#pipeline = pipeline;
    this.#clock = clock;
    this.#log = log;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#windowMs = options.windowMs ?? 300_000;
    this.#since = clock.now();
  }

  start(): void {
    this.#timer = setInterval(() => void this.poll(), this.#intervalMs);
    this.#timer.unref();
  }

  /** One look at the store; also for tests, which drive it instead of waiting. */
  poll(): Promise<void> {
    this.#polling = this.#polling.then(async () => {
      const started = this.#clock.now();
      try {
        for (const grant of await this.#sources.revokedSince(this.#since - this.#windowMs)) {
          const why = `access grant ${grant.id} was revoked${grant.revokedBy ? ` by ${grant.revokedBy}` : ''}${grant.revokeReason ? `: ${grant.revokeReason}` : ''}`;
          const ended = this.#pipeline.terminateGrant(grant.id, why);
          if (ended > 0) this.#log.info({ grant: grant.id, sessions: ended }, 'ended sessions of a revoked grant');
        }
        this.#since = started;
      } catch (error) {
        // The next poll tries again from the same point: nothing is skipped.
        this.#log.error({ err: error }, 'could not look for revoked grants');
      }
      try {
        for (const grant of await this.#sources.claimExpired(started)) {
          await this.#audit.append({
            actor: 'gateway',
            action: 'grant.expired',
            subject: grant.id,
            outcome: 'success',
            details: { principal: grant.principal, connection: grant.connection, expiresAt: grant.expiresAt },
          });
        }
      } catch (error) {
        this.#log.error({ err: error }, 'could not record expired grants');
      }
    });
    return this.#polling;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#polling;
  }
}
