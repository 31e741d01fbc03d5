/**
 * The API of recorded sessions: the list (newest first, paged by a cursor) and one session with
 * the statements it ran, in order (paged by seq), with its outcome, time, rows and error (masked for masked
 * sessions, as recorded). Admins and auditors see every session; anyone else their own, and
 * another's is answered as if it did not exist.
 */

import { z } from 'zod';
import type { Clock } from '../core/index.ts';
import { pointInTime } from '../core/duration.ts';
import type { AuthenticatedPrincipal } from '../identity/accounts.ts';
import type { SessionRecord, Store } from '../store/index.ts';
import { LIMIT_PARAMETER, page, pageLimit, seqCursor, timeCursor } from './paging.ts';
import { ApiError, type AnyRoute } from './server.ts';

export interface SessionRouteDeps {
  readonly store: Store;
  readonly clock: Clock;
}

const session = z.object({
  id: z.string(),
  protocol: z.string(),
  principal: z.string(),
  connection: z.string(),
  grant: z.string(),
  clientAddress: z.string(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  endReason: z.string().nullable(),
});

const statement = z.object({
  seq: z.number().int(),
  text: z.string(),
  startedAt: z.string(),
  durationMs: z.number(),
  rows: z.number().int().nullable(),
  outcome: z.enum(['ok', 'error', 'denied', 'cancelled']),
  errorCode: z.string().nullable(),
  errorMessage: z.string().nullable(),
  /** What it returned, as the client received it (masked), up to the recording's size; null when not recorded. */
  result: z.object({ columns: z.array(z.string()), rows: z.array(z.array(z.string().nullable())), truncated: z.boolean() }).nullable(),
});

const seesAll = (who: AuthenticatedPrincipal): boolean => who.roles.includes('admin') || who.roles.includes('auditor');

function view(s: SessionRecord): z.infer<typeof session> {
  return {
    id: s.id,
    protocol: s.protocol,
    principal: s.principal,
    connection: s.connection,
    grant: s.grantId,
    clientAddress: s.clientAddress,
    startedAt: new Date(s.startedAt).toISOString(),
    endedAt: s.endedAt === undefined ? null : new Date(s.endedAt).toISOString(),
    endReason: s.endReason ?? null,
  };
}

export function sessionRoutes(deps: SessionRouteDeps): AnyRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/sessions',
      summary: "Recorded sessions, newest first, a page at a time: the caller's own, or anyone's for admins and auditors.",
      access: 'authenticated',
      query: {
        principal: "Only this principal's sessions (another's: admins and auditors only).",
        connection: 'Only sessions on this connection.',
        since: 'Only sessions started at or after this time: a duration back from now (7d) or an ISO date.',
        limit: LIMIT_PARAMETER,
        before: 'The `next` of the page before.',
      },
      response: z.object({ sessions: z.array(session), next: z.string().nullable() }),
      errors: { 403: ['forbidden'] },
      handler: async ({ who, query }) => {
        const principal = seesAll(who!) ? query['principal'] : who!.principal.name;
        if (!seesAll(who!) && query['principal'] !== undefined && query['principal'] !== principal) {
          throw new ApiError(403, 'forbidden', 'only admins and auditors see the sessions of others');
        }
        const limit = pageLimit(query['limit']);
        const before = timeCursor(query['before'], 'before');
        let since: number | undefined;
        try {
          since = query['since'] === undefined ? undefined : pointInTime(query['since'], deps.clock.now());
        } catch (error) {
          throw new ApiError(400, 'invalid-query', `since: ${(error as Error).message}`);
        }
        const rows = await deps.store.listSessions({
          principal,
          connection: query['connection'],
          since,
          before: before && { startedAt: before.at, id: before.id },
          limit: limit + 1,
        });
        const { items, next } = page(rows, limit, (s) => `${s.startedAt}:${s.id}`);
        return { sessions: items.map(view), next };
      },
    },
    {
      method: 'GET',
      path: '/api/sessions/:id',
      summary:
        'One session and the statements it ran, in order, a page at a time: outcome, time, rows, error and result (masked as recorded).',
      access: 'authenticated',
      query: {
        limit: LIMIT_PARAMETER,
        after: 'The `next` of the page before: statements after this seq.',
      },
      response: z.object({ session, statements: z.array(statement), next: z.number().int().nullable() }),
      errors: { 400: ['invalid-query'], 404: ['unknown-session'] },
      handler: async ({ who, params, query }) => {
        const limit = pageLimit(query['limit']);
        const found = await deps.store.getSession(params['id']!);
        // Another's session is answered as if it did not exist: its id says nothing.
        if (!found || (!seesAll(who!) && found.principal !== who!.principal.name)) {
          throw new ApiError(404, 'unknown-session', `no session ${params['id']}`);
        }
        const rows = await deps.store.listStatements(found.id, {
          afterSeq: seqCursor(query['after'], 'after'),
          limit: limit + 1,
        });
        const { items, next } = page(rows, limit, (s) => s.seq);
        return {
          session: view(found),
          next,
          statements: items.map((s) => ({
            seq: s.seq,
            text: s.text,
            startedAt: new Date(s.startedAt).toISOString(),
            durationMs: s.durationMs,
            rows: s.rows ?? null,
            outcome: s.outcome,
            errorCode: s.errorCode ?? null,
            errorMessage: s.errorMessage ?? null,
            result: s.result
              ? { columns: [...s.result.columns], rows: s.result.rows.map((r) => [...r]), truncated: s.result.truncated }
              : null,
          })),
        };
      },
    },
  ];
}
