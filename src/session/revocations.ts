/**
 * Revocation reaches running sessions: every `intervalMs` the gateway asks the store which
 * grants were revoked lately and ends the live sessions that use them. The store is the one
 * place every writer shares (the CLI on the gateway's host, the API, other replicas), so a
 * revocation made anywhere ends sessions everywhere within one interval and a query.
 *
 * The window looks back `windowMs` further than the last poll, so that a revocation stamped by
 * a writer whose clock runs a little behind this one's is not missed; ending a session is
 * idempotent, so seeing a revocation twice costs nothing.
 */

import type { Clock } from '../core/index.ts';
import type { Logger } from 'pino';
import type { Pipeline } from './pipeline.ts';

export interface RevokedGrant {
  readonly id: string;
  readonly revokedBy: string | undefined;
  readonly revokeReason: string | undefined;
}

export interface RevocationWatchOptions {
  readonly intervalMs?: number;
  readonly windowMs?: number;
}

export class RevocationWatch {
  readonly #revokedSince: (since: number) => Promise<readonly RevokedGrant[]>;
  readonly #pipeline: Pipeline;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #windowMs: number;
  #timer: NodeJS.Timeout | undefined;
  #since: number;
  #polling: Promise<void> = Promise.resolve();

  constructor(
    revokedSince: (since: number) => Promise<readonly RevokedGrant[]>,
    pipeline: Pipeline,
    clock: Clock,
    log: Logger,
    options: RevocationWatchOptions = {},
  ) {
    this.#revokedSince = revokedSince;
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
        for (const grant of await this.#revokedSince(this.#since - this.#windowMs)) {
          const why = `access grant ${grant.id} was revoked${grant.revokedBy ? ` by ${grant.revokedBy}` : ''}${grant.revokeReason ? `: ${grant.revokeReason}` : ''}`;
          const ended = this.#pipeline.terminateGrant(grant.id, why);
          if (ended > 0) this.#log.info({ grant: grant.id, sessions: ended }, 'ended sessions of a revoked grant');
        }
        this.#since = started;
      } catch (error) {
        // The next poll tries again from the same point: nothing is skipped.
        this.#log.error({ err: error }, 'could not look for revoked grants');
      }
    });
    return this.#polling;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#polling;
  }
}
