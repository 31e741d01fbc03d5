/**
 * The API of the audit log, for auditors and administrators: the records, filtered and paged by
 * a cursor (the sequence number to continue after), and the verification of the whole chain
 * against the gateway's own signing key, as `drawbridge audit verify` does it.
 */

import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../core/index.ts';
import { pointInTime } from '../core/duration.ts';
import { exportLine } from '../audit/sinks.ts';
import { auditRecords, verifyAuditLog, type AuditVerification } from '../audit/verify.ts';
import type { Store } from '../store/index.ts';
import { LIMIT_PARAMETER, page, pageLimit, seqCursor } from './paging.ts';
import { ApiError, StreamReply, type AnyRoute } from './server.ts';

export interface AuditRouteDeps {
  readonly store: Store;
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
  records: z.number().int(),
  head: z.object({ seq: z.number().int(), hash: z.string() }),
  checkpoints: z.number().int(),
  lastCheckpoint: z.object({ seq: z.number().int(), time: z.string() }).nullable(),
  problem: z.object({ kind: z.enum(['chain', 'checkpoint']), seq: z.number().int(), message: z.string() }).nullable(),
});

export function auditRoutes(deps: AuditRouteDeps): AnyRoute[] {
  /**
   * The verification under way: a request that comes while it runs gets its answer instead of
   * reading the whole log once more (the web UI verifies each time its audit page opens).
   */
  let verifying: Promise<AuditVerification> | undefined;
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
        "Verifies the whole chain and the signed checkpoints against the gateway's key: ok, or the first record or checkpoint that breaks. Requests that come while a verification runs share its answer.",
      access: [...READERS],
      response: verification,
      handler: async () => {
        verifying ??= verifyAuditLog(deps.store, deps.trusted).finally(() => (verifying = undefined));
        const r = await verifying;
        return {
          ok: r.ok,
          records: r.records,
          head: r.head,
          checkpoints: r.checkpoints,
          lastCheckpoint: r.lastCheckpoint ? { seq: r.lastCheckpoint.seq, time: new Date(r.lastCheckpoint.at).toISOString() } : null,
          problem: r.problem ? { kind: r.problem.kind, seq: r.problem.seq, message: r.problem.message } : null,
        };
      },
    },
  ];

  function time(value: string | undefined, name: string): number | undefined {
    if (value === undefined) return undefined;
    try {
      return pointInTime(value, deps.clock.now());
    } catch (error) {
      throw new ApiError(400, 'invalid-query', `${name}: ${(error as Error).message}`);
    }
  }
}
