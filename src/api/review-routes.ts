/**
 * The API of access reviews (docs/review.md): the report of who can reach which connection, what
 * they were granted and what they used over a window, with the rights never used flagged; and a
 * reviewer's decision on one principal's access to one connection. Auditors and admins read the
 * report and certify; only admins revoke, because revoking ends live grants and sessions. Nobody
 * certifies their own access.
 */

import { z } from 'zod';
import type { Clock } from '../core/index.ts';
import { pointInTime } from '../core/duration.ts';
import { decisionView, ReviewError, type AccessReview } from '../review/access-review.ts';
import { USAGE_CATEGORIES } from '../review/report.ts';
import { ApiError, type AnyRoute } from './server.ts';

export interface ReviewRouteDeps {
  readonly review: AccessReview;
  readonly clock: Clock;
}

const probeOutcome = z.enum(['allow', 'approval', 'deny']);
const lastDecision = z.object({
  id: z.string(),
  decision: z.enum(['certified', 'revoked']),
  note: z.string(),
  by: z.string(),
  at: z.string(),
  grantsRevoked: z.array(z.string()),
});

const row = z.object({
  principal: z.string(),
  kind: z.enum(['user', 'service-account']),
  account: z.enum(['active', 'disabled', 'none']),
  connection: z.string(),
  access: z.object({
    via: z.enum(['at-once', 'approval', 'grant-only', 'none']),
    why: z.string(),
    maxDuration: z.string().nullable(),
    approvers: z.string().nullable(),
  }),
  statements: z.array(
    z.object({
      kind: z.enum(['read', 'insert', 'update', 'delete', 'ddl', 'admin', 'code']),
      sql: z.string(),
      outcome: probeOutcome,
      policy: z.string().nullable(),
    }),
  ),
  grants: z.object({
    issued: z.number().int(),
    unused: z.number().int(),
    last: z.string().nullable(),
    grantedBy: z.array(z.string()),
    live: z.number().int(),
    liveUnused: z.array(z.string()),
    liveIds: z.array(z.string()),
  }),
  usage: z.object({
    sessions: z.number().int(),
    liveSessions: z.number().int(),
    lastSession: z.string().nullable(),
    statements: z.number().int(),
    byCategory: z.object(Object.fromEntries(USAGE_CATEGORIES.map((c) => [c, z.number().int()]))),
    byKind: z.record(z.string(), z.number().int()),
    refused: z.number().int(),
    tablesRead: z.array(z.string()),
    tablesWritten: z.array(z.string()),
  }),
  flags: z.array(
    z.object({
      code: z.enum(['unused-access', 'unused-grants', 'unused-live-grant', 'unused-writes', 'unused-ddl', 'regranted-after-revoke']),
      message: z.string(),
      suggestion: z.string(),
    }),
  ),
  decision: lastDecision.nullable(),
});

const report = z.object({
  since: z.string(),
  until: z.string(),
  generatedAt: z.string(),
  policy: z.object({ enabled: z.boolean(), version: z.string().nullable() }),
  truncated: z.boolean(),
  summary: z.object({ rows: z.number().int(), flagged: z.number().int(), certified: z.number().int(), revoked: z.number().int() }),
  rows: z.array(row),
});

const decisionBody = z.object({
  principal: z.string().min(1).max(63),
  connection: z.string().min(1).max(63),
  note: z.string().max(2000),
});

const decided = lastDecision.extend({ principal: z.string(), connection: z.string() });

const STATUS: Record<ReviewError['code'], number> = {
  'note-required': 400,
  'invalid-window': 400,
  'unknown-principal': 404,
  'unknown-connection': 404,
  'self-review': 403,
};

/** A ReviewError as the API answers it; a window that ends before it starts is a bad query. */
function refused(error: unknown): never {
  if (error instanceof ReviewError) {
    throw new ApiError(STATUS[error.code], error.code === 'invalid-window' ? 'invalid-query' : error.code, error.message);
  }
  throw error;
}

export function reviewRoutes(deps: ReviewRouteDeps): AnyRoute[] {
  const time = (value: string | undefined, name: string): number | undefined => {
    if (value === undefined) return undefined;
    try {
      return pointInTime(value, deps.clock.now());
    } catch (error) {
      throw new ApiError(400, 'invalid-query', `${name}: ${(error as Error).message}`);
    }
  };
  const decide =
    (how: 'certify' | 'revoke') =>
    async ({ who, body }: { who?: { principal: { name: string } } | undefined; body: z.infer<typeof decisionBody> }) => {
      try {
        return decisionView(await deps.review[how](body, who!.principal.name));
      } catch (error) {
        refused(error);
      }
    };
  return [
    {
      method: 'GET',
      path: '/api/access/review',
      summary:
        'The access review: for every principal and connection, what policy allows, the grants issued and what was used in the window, the rights never used (flags) and the last decision.',
      access: ['admin', 'auditor'],
      query: {
        since: 'The start of the window: a duration back from now (30d, the default) or an ISO date.',
        until: 'The end of the window (default now): a duration back from now or an ISO date.',
        principal: "Only this principal's rows.",
        connection: 'Only the rows of this connection.',
        unused: '`true`: only the rows with a flag (a right never used).',
      },
      response: report,
      errors: { 404: ['unknown-connection'] },
      handler: async ({ query }) => {
        const until = time(query['until'], 'until');
        const since = time(query['since'], 'since');
        const unused = query['unused'];
        if (unused !== undefined && unused !== 'true' && unused !== 'false')
          throw new ApiError(400, 'invalid-query', 'unused must be true or false');
        const connection = query['connection'];
        try {
          return await deps.review.report({ since, until, principal: query['principal'], connection, unused: unused === 'true' });
        } catch (error) {
          refused(error);
        }
      },
    },
    {
      method: 'POST',
      path: '/api/access/review/certify',
      summary:
        "Certifies (keeps) a principal's access to a connection, with a note: stored, shown on the report, audited (review.certified).",
      access: ['admin', 'auditor'],
      body: decisionBody,
      response: decided,
      errors: { 400: ['note-required'], 403: ['self-review'], 404: ['unknown-principal', 'unknown-connection'] },
      handler: decide('certify'),
    },
    {
      method: 'POST',
      path: '/api/access/review/revoke',
      summary:
        "Revokes a principal's access to a connection, with a note: its live grants there end (and their sessions, within seconds); stored, shown on the report, audited (review.revoked).",
      access: ['admin'],
      body: decisionBody,
      response: decided,
      errors: { 400: ['note-required'], 404: ['unknown-principal', 'unknown-connection'] },
      handler: decide('revoke'),
    },
  ];
}
