/**
 * Retention of session recordings: sessions that ended longer ago than `maxAgeMs` are deleted with
 * their statements, and when the recordings hold more than `maxBytes` (as the store counts them:
 * `BATCH_ROW_BYTES` in store/statement-batches.ts) the oldest ended sessions go first until they fit. The
 * gateway applies the limits every `intervalMs` (`RecordingRetention`); `drawbridge sessions prune`
 * applies them once (`applyRetention`).
 *
 * Guarantees: a live session (not ended) is never deleted, nor are its statements; the audit log
 * is never deleted (it is a hash chain: `drawbridge audit verify` would report every deleted
 * record); each run that deletes anything appends one `recording.deleted` audit event saying how
 * many sessions, statements and bytes went, the span of time they covered, and which limit
 * decided; deletion goes in batches (`batchSize` sessions, one transaction each), so that a large
 * backlog never holds the store's write lock for long, and each batch is all or nothing.
 *
 * One walk serves both limits: ended sessions in the order they ended (then by id). Those past
 * `maxAgeMs` are a prefix of that order, and so are the fewest oldest sessions that bring the
 * recordings under `maxBytes`; a run deletes the longer prefix, and its `reason` names the limit
 * that asked for it (`max_size` when the size limit reached past the sessions that were too old).
 *
 * Known limits: the size is measured once per run (one aggregate over every batch of statements) and is
 * the bytes the rows hold, not the database's files: SQLite reuses freed pages but does not shrink
 * its file (VACUUM does), PostgreSQL reclaims space with autovacuum. When live sessions alone hold
 * more than `maxBytes`, every ended session goes and the run says the recordings are still over
 * the limit. Several gateways on one store may run at once; each deletes and reports only what it
 * deleted itself.
 */

import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Clock } from '../core/index.ts';
import { formatDuration } from '../core/duration.ts';
import { MAX_DELETE_BATCH, type EndedSession, type RecordingUsage, type Store } from '../store/index.ts';

export interface RetentionLimits {
  /** Sessions that ended longer ago than this are deleted. */
  readonly maxAgeMs?: number | undefined;
  /** When the recordings hold more bytes than this, the oldest ended sessions go first. */
  readonly maxBytes?: number | undefined;
}

export type RetentionReason = 'max_age' | 'max_size';

export interface RetentionReport {
  /** True when nothing was deleted on purpose: the counts say what a run would delete. */
  readonly dryRun: boolean;
  /** When the run began (its clock): `max_age` counts back from here. */
  readonly at: number;
  readonly limits: RetentionLimits;
  /** The limit that decided how far deletion went; undefined when nothing was (or would be) deleted. */
  readonly reason: RetentionReason | undefined;
  readonly sessions: number;
  readonly statements: number;
  readonly bytes: number;
  /** The earliest start among the deleted sessions (epoch ms); undefined when none. */
  readonly oldestStartedAt: number | undefined;
  /** The latest end among the deleted sessions (epoch ms); undefined when none. */
  readonly newestEndedAt: number | undefined;
  /** What the recordings held before the run; measured only with `maxBytes`. */
  readonly usage: RecordingUsage | undefined;
  /** With `maxBytes`: the recordings still hold more after the run (live sessions hold the rest). */
  readonly stillOverLimit: boolean;
}

export interface RetentionOptions {
  /** Who the audit event names: `gateway` for the timer, `local-admin` for the CLI. */
  readonly actor: string;
  readonly dryRun?: boolean;
  /** Sessions per transaction; default 500, at most `MAX_DELETE_BATCH`. */
  readonly batchSize?: number;
}

export const DEFAULT_RETENTION_BATCH = 500;

/** True when at least one limit is set: with none, recordings are kept forever. */
export function hasLimits(limits: RetentionLimits): boolean {
  return limits.maxAgeMs !== undefined || limits.maxBytes !== undefined;
}

/**
 * Applies the limits once. Rejects when the store fails; what earlier batches deleted stays
 * deleted and is on record (the audit event then carries the `error` that stopped the run).
 */
export async function applyRetention(
  store: Store,
  audit: AuditLog,
  clock: Clock,
  limits: RetentionLimits,
  options: RetentionOptions,
): Promise<RetentionReport> {
  const dryRun = options.dryRun === true;
  const batchSize = Math.min(MAX_DELETE_BATCH, Math.max(1, Math.floor(options.batchSize ?? DEFAULT_RETENTION_BATCH)));
  const at = clock.now();
  const endedBefore = limits.maxAgeMs === undefined ? undefined : at - limits.maxAgeMs;
  const usage = limits.maxBytes === undefined ? undefined : await store.recordingUsage();
  // Bytes to free for the size limit; zero or less: the recordings fit.
  const excess = usage === undefined || limits.maxBytes === undefined ? 0 : usage.bytes - limits.maxBytes;

  const done = {
    sessions: 0,
    statements: 0,
    bytes: 0,
    oldestStartedAt: undefined as number | undefined,
    newestEndedAt: undefined as number | undefined,
  };
  const add = (part: {
    sessions: number;
    statements: number;
    bytes: number;
    oldestStartedAt: number | undefined;
    newestEndedAt: number | undefined;
  }) => {
    done.sessions += part.sessions;
    done.statements += part.statements;
    done.bytes += part.bytes;
    if (part.oldestStartedAt !== undefined) done.oldestStartedAt = Math.min(done.oldestStartedAt ?? Infinity, part.oldestStartedAt);
    if (part.newestEndedAt !== undefined) done.newestEndedAt = Math.max(done.newestEndedAt ?? -Infinity, part.newestEndedAt);
  };
  let chosenBytes = 0;
  let bySize = false;

  const walk = async (): Promise<void> => {
    if (endedBefore === undefined && excess <= 0) return;
    let after: { endedAt: number; id: string } | undefined;
    for (;;) {
      const page = await store.listEndedSessions({
        limit: batchSize,
        ...(after === undefined ? {} : { after }),
        // Only the age limit: the database stops at the cutoff. The size limit may reach past it.
        ...(excess > 0 || endedBefore === undefined ? {} : { endedBefore }),
      });
      let last = page.length < batchSize;
      const chosen: EndedSession[] = [];
      for (const session of page) {
        const tooOld = endedBefore !== undefined && session.endedAt < endedBefore;
        if (!tooOld && chosenBytes >= excess) {
          last = true;
          break;
        }
        if (!tooOld) bySize = true;
        chosen.push(session);
        chosenBytes += session.bytes;
      }
      if (chosen.length > 0) add(dryRun ? summary(chosen) : await store.deleteRecordings(chosen.map((s) => s.id)));
      if (last) return;
      const end = page.at(-1)!;
      after = { endedAt: end.endedAt, id: end.id };
    }
  };

  const event = (error?: unknown) => ({
    actor: options.actor,
    action: 'recording.deleted' as const,
    subject: 'retention',
    outcome: 'success' as const,
    details: {
      sessions: done.sessions,
      statements: done.statements,
      bytes: done.bytes,
      oldestStartedAt: done.oldestStartedAt,
      newestEndedAt: done.newestEndedAt,
      reason: bySize ? 'max_size' : 'max_age',
      limits: limitsOf(limits),
      ...(error === undefined ? {} : { error: `the run stopped before it was done: ${(error as Error).message ?? String(error)}` }),
    },
  });

  try {
    await walk();
  } catch (error) {
    // What the batches before deleted is gone: on record all the same, then the failure.
    if (!dryRun && done.sessions > 0) await audit.append(event(error)).catch(() => {});
    throw error;
  }
  if (!dryRun && done.sessions > 0) {
    try {
      await audit.append(event());
    } catch (error) {
      throw new Error(
        `deleted ${done.sessions} ended sessions (${done.statements} statements) but could not append their recording.deleted audit event: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  return {
    dryRun,
    at,
    limits: limitsOf(limits),
    reason: done.sessions === 0 ? undefined : bySize ? 'max_size' : 'max_age',
    ...done,
    usage,
    stillOverLimit: usage !== undefined && limits.maxBytes !== undefined && usage.bytes - chosenBytes > limits.maxBytes,
  };
}

function summary(sessions: readonly EndedSession[]) {
  return {
    sessions: sessions.length,
    statements: sessions.reduce((n, s) => n + s.statements, 0),
    bytes: sessions.reduce((n, s) => n + s.bytes, 0),
    oldestStartedAt: Math.min(...sessions.map((s) => s.startedAt)),
    newestEndedAt: Math.max(...sessions.map((s) => s.endedAt)),
  };
}

/** Only the limits that are set. */
function limitsOf(limits: RetentionLimits): RetentionLimits {
  return {
    ...(limits.maxAgeMs === undefined ? {} : { maxAgeMs: limits.maxAgeMs }),
    ...(limits.maxBytes === undefined ? {} : { maxBytes: limits.maxBytes }),
  };
}

/** `1.5 GiB`, `320 KiB`, `12 B`: for people. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${Number.isInteger(value) || value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** `max_age 90d, max_size 10 GiB`: the limits as the config names them. */
export function describeLimits(limits: RetentionLimits): string {
  return [
    ...(limits.maxAgeMs === undefined ? [] : [`max_age ${formatDuration(limits.maxAgeMs)}`]),
    ...(limits.maxBytes === undefined ? [] : [`max_size ${formatBytes(limits.maxBytes)}`]),
  ].join(', ');
}

export interface RetentionSchedule extends RetentionLimits {
  readonly intervalMs: number;
}

/** The first run comes this long after `start`: shortly, once the gateway is serving. */
export const FIRST_RUN_DELAY_MS = 30_000;

/**
 * The gateway's timer: applies the limits `FIRST_RUN_DELAY_MS` after start, then every
 * `intervalMs` after the previous run finished (runs never overlap). A failed run is logged and the
 * next one comes at the next interval; the timer never keeps the process alive.
 */
export class RecordingRetention {
  readonly #store: Store;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #schedule: RetentionSchedule;
  readonly #firstDelayMs: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #running: Promise<RetentionReport | undefined> = Promise.resolve(undefined);

  constructor(
    store: Store,
    audit: AuditLog,
    clock: Clock,
    log: Logger,
    schedule: RetentionSchedule,
    options: { firstDelayMs?: number } = {},
  ) {
    this.#store = store;
    this.#audit = audit;
    this.#clock = clock;
    this.#log = log;
    this.#schedule = schedule;
    this.#firstDelayMs = options.firstDelayMs ?? FIRST_RUN_DELAY_MS;
  }

  /** Starts the timer; with no limit set there is nothing to do and no timer. */
  start(): void {
    if (!hasLimits(this.#schedule) || this.#stopped) return;
    this.#log.info(
      { retention: { ...limitsOf(this.#schedule), intervalMs: this.#schedule.intervalMs } },
      `recordings are kept within ${describeLimits(this.#schedule)}, checked every ${formatDuration(this.#schedule.intervalMs)}`,
    );
    this.#arm(this.#firstDelayMs);
  }

  /** One run now, after any run in progress; resolves undefined when it failed (and was logged). */
  run(): Promise<RetentionReport | undefined> {
    this.#running = this.#running.then(() => this.#apply());
    return this.#running;
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => {
      void this.run().finally(() => {
        if (!this.#stopped) this.#arm(this.#schedule.intervalMs);
      });
    }, delayMs);
    this.#timer.unref();
  }

  async #apply(): Promise<RetentionReport | undefined> {
    try {
      const report = await applyRetention(this.#store, this.#audit, this.#clock, this.#schedule, { actor: 'gateway' });
      if (report.sessions > 0) {
        this.#log.info(
          { recordingDeleted: { ...report, usage: undefined } },
          `retention deleted ${report.sessions} ended session${report.sessions === 1 ? '' : 's'} (${report.statements} statements, ${formatBytes(report.bytes)}) by ${report.reason}`,
        );
      }
      if (report.stillOverLimit) {
        this.#log.warn(
          { usage: report.usage, maxBytes: this.#schedule.maxBytes },
          'the recordings are still over recording.retention.max_size: live sessions hold the rest',
        );
      }
      return report;
    } catch (error) {
      this.#log.error({ err: error }, 'recording retention failed; it runs again at the next interval');
      return undefined;
    }
  }
}
