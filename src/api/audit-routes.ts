/**
 * The API of the audit log, for auditors and administrators: the records, filtered and paged by
 * a cursor (the sequence number to continue after), and the verification of the whole chain
 * against the gateway's own signing key, as `drawbridge audit verify` does it.
 */

import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../core/index.ts';
import { parseDuration, pointInTime } from '../core/duration.ts';
import { exportLine } from '../audit/sinks.ts';
import { auditRecords, verifyAuditLog, type AuditVerification } from '../audit/verify.ts';
import type { Store } from '../store/index.ts';
import { LIMIT_PARAMETER, page, pageLimit, seqCursor } from './paging.ts';
import { ApiError, StreamReply, type AnyRoute } from './server.ts';

export interface AuditRouteDeps {
  readonly store: Store;
  /** The store's URL: verification reads the log on a thread of its own, with a connection of its own. */
  readonly storeUrl?: string;
  /** The keys whose checkpoints are trusted: the gateway's own. */
  readonly trusted: ReadonlyMap<string, KeyObject>;
  readonly clock: Clock;
}

const READERS = ['admin', 'auditor'] as const;

const record = z.object({
  seq: z.number().int(),
  time: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  outcome: z.enum(['success', 'failure']),
  details: z.record(z.string(), z.unknown()),
  prevHash: z.string().nullable(),
  hash: z.string().nullable(),
});

/** One line of the export (audit/sinks.ts exportLine). */
const exportLineSchema = z.object({
  seq: z.number().int(),
  time: z.string(),
  at: z.number().int(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  outcome: z.enum(['success', 'failure']),
  details: z.record(z.string(), z.unknown()),
  prev_hash: z.string().nullable(),
  hash: z.string().nullable(),
});

const verification = z.object({
  ok: z.boolean(),
  verifiedAt: z.string(),
  records: z.number().int(),
  head: z.object({ seq: z.number().int(), hash: z.string() }),
  checkpoints: z.number().int(),
  lastCheckpoint: z.object({ seq: z.number().int(), time: z.string() }).nullable(),
  problem: z.object({ kind: z.enum(['chain', 'checkpoint']), seq: z.number().int(), message: z.string() }).nullable(),
});

/** A verification of the whole log, and when it finished. */
interface Verified {
  readonly result: AuditVerification;
  readonly at: number;
}

export function auditRoutes(deps: AuditRouteDeps): AnyRoute[] {
  /**
   * The verification under way: a request that comes while it runs gets its answer instead of
   * reading the whole log once more.
   */
  let verifying: Promise<Verified> | undefined;
  /** The last verification that finished, for `?recent=` (the web UI's audit page asks for one). */
  let last: Verified | undefined;
  return [
    {
      method: 'GET',
      path: '/api/audit',
      summary: 'Audit records, oldest first, a page at a time, filtered by action, subject and time.',
      access: [...READERS],
      query: {
        after: 'The `next` of the page before (the sequence number of its last record).',
        limit: LIMIT_PARAMETER,
        action: 'Only records of this action (`grant.issued`, `login.failed`, ...).',
        subject: 'Only records about this subject (a grant id, a principal, a session id).',
        since: 'Only records at or after this time: a duration back from now (7d) or an ISO date.',
        until: 'Only records before this time: a duration back from now or an ISO date.',
      },
      response: z.object({ records: z.array(record), next: z.number().int().nullable() }),
      handler: async ({ query }) => {
        const limit = pageLimit(query['limit']);
        const rows = await deps.store.listAudit({
          afterSeq: seqCursor(query['after'], 'after') ?? 0,
          since: time(query['since'], 'since'),
          until: time(query['until'], 'until'),
          action: query['action'],
          subject: query['subject'],
          limit: limit + 1,
        });
        const { items, next } = page(rows, limit, (r) => r.seq);
        return { records: items.map((r) => ({ ...r, time: new Date(r.at).toISOString(), at: undefined })), next };
      },
    },
    {
      method: 'GET',
      path: '/api/audit/export',
      summary:
        'The audit log as JSON lines (application/x-ndjson), oldest first, each record with its hashes, as `drawbridge audit export` writes it: ?since= and ?until= (7d, or an ISO date).',
      access: [...READERS],
      query: {
        since: 'Only records at or after this time: a duration back from now (7d) or an ISO date.',
        until: 'Only records before this time: a duration back from now or an ISO date.',
      },
      produces: 'application/x-ndjson',
      response: exportLineSchema,
      handler: ({ query }) => {
        const since = time(query['since'], 'since');
        const until = time(query['until'], 'until');
        return new StreamReply(
          (async function* () {
            for await (const r of auditRecords(deps.store, { since, until })) yield exportLine(r);
          })(),
        );
      },
    },
    {
      method: 'GET',
      path: '/api/audit/verify',
      summary:
        "Verifies the whole chain and the signed checkpoints against the gateway's key: ok, or the first record or checkpoint that breaks, and when it was verified. Requests that come while a verification runs share its answer; with ?recent=, a verification finished within that long ago answers without reading the log again.",
      access: [...READERS],
      query: {
        recent:
          'Accept the last verification if it finished within this long ago (`1h`, `10m`): its `verifiedAt` says when, its `head` up to which record. Without it, the log is read now.',
      },
      response: verification,
      handler: async ({ query }) => {
        const recent = query['recent'] === undefined ? undefined : parsed(query['recent'], 'recent', parseDuration);
        if (recent !== undefined && last !== undefined && deps.clock.now() - last.at <= recent) return answer(last);
        // In one pass, off the thread that serves the sessions.
        verifying ??= verifyAuditLog(deps.store, deps.trusted, { url: deps.storeUrl, offThread: true })
          .then((result) => (last = { result, at: deps.clock.now() }))
          .finally(() => (verifying = undefined));
        return answer(await verifying);
      },
    },
  ];

  function time(value: string | undefined, name: string): number | undefined {
    return value === undefined ? undefined : parsed(value, name, (text) => pointInTime(text, deps.clock.now()));
  }
}

/** A verification as the API answers it. */
function answer({ result: r, at }: Verified): z.infer<typeof verification> {
  return {
    ok: r.ok,
    verifiedAt: new Date(at).toISOString(),
    records: r.records,
    head: r.head,
    checkpoints: r.checkpoints,
    lastCheckpoint: r.lastCheckpoint ? { seq: r.lastCheckpoint.seq, time: new Date(r.lastCheckpoint.at).toISOString() } : null,
    problem: r.problem ? { kind: r.problem.kind, seq: r.problem.seq, message: r.problem.message } : null,
  };
}

/** A query parameter as `read` reads it, or a 400 that names it. */
function parsed<T>(value: string, name: string, read: (text: string) => T): T {
  try {
    return read(value);
  } catch (error) {
    throw new ApiError(400, 'invalid-query', `${name}: ${(error as Error).message}`);
  }
}
