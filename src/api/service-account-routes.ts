/**
 * The API of service-account workflows beyond creating and rotating (identity-routes.ts): the
 * list with each account's limits, key and last use; one account with its usage over a window;
 * and changing its limits, which revokes the live grants beyond the new ones. Admins and
 * auditors read; only admins change.
 */

import { z } from 'zod';
import { parseDuration, pointInTime } from '../core/duration.ts';
import type { Clock } from '../core/index.ts';
import type { Accounts } from '../identity/accounts.ts';
import { DEFAULT_USAGE_WINDOW_MS, getServiceAccount, listServiceAccounts, serviceAccountReport } from '../identity/service-accounts.ts';
import type { Store } from '../store/index.ts';
import { accountCall, durationText } from './identity-routes.ts';
import { LIMIT_PARAMETER, page, pageLimit } from './paging.ts';
import { ApiError, type AnyRoute, type RequestContext } from './server.ts';

export interface ServiceAccountRouteDeps {
  readonly accounts: Accounts;
  readonly store: Store;
  readonly clock: Clock;
  /** The names of the gateway's connections. */
  readonly connections: readonly string[];
}

const when = z.string().nullable();

const serviceAccount = z.object({
  name: z.string(),
  createdAt: z.string(),
  disabledAt: when,
  lastUsedAt: when,
  maxGrantDuration: z.string().nullable(),
  connections: z.array(z.string()).nullable(),
  key: z.object({ id: z.string(), createdAt: z.string(), works: z.boolean() }).nullable(),
  retiredKeys: z.number().int(),
});

const count = z.number().int();

const usage = z.object({
  since: z.string(),
  until: z.string(),
  lastUsedAt: when,
  grants: z.object({
    issued: count,
    live: count,
    last: z
      .object({
        grant: z.string(),
        connection: z.string(),
        createdAt: z.string(),
        expiresAt: z.string(),
        state: z.enum(['live', 'expired', 'revoked']),
      })
      .nullable(),
  }),
  sessions: z.object({ started: count, live: count, lastStartedAt: when }),
  statements: z.object({ count, refused: count, failed: count }),
  connections: z.array(
    z.object({
      connection: z.string(),
      allowed: z.boolean(),
      grants: count,
      sessions: count,
      statements: count,
      refused: count,
      failed: count,
      lastUsedAt: when,
    }),
  ),
});

const connectionName = z.string().min(1).max(63);

interface LimitsBody {
  maxGrantDuration?: string | null;
  connections?: string[] | null;
}

export function serviceAccountRoutes(deps: ServiceAccountRouteDeps): AnyRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/service-accounts',
      summary: 'The service accounts by name, a page at a time, each with its limits, the state of its key and when it was last used.',
      access: ['admin', 'auditor'],
      query: { limit: LIMIT_PARAMETER, after: 'The `next` of the page before (the last name it holds).' },
      response: z.object({ serviceAccounts: z.array(serviceAccount), next: z.string().nullable() }),
      handler: async ({ query }) => {
        const limit = pageLimit(query.limit);
        const rows = await listServiceAccounts(deps.store, { ...(query.after !== undefined && { after: query.after }), limit: limit + 1 });
        const { items, next } = page(rows, limit, (a) => a.name);
        return { serviceAccounts: items, next };
      },
    },
    {
      method: 'GET',
      path: '/api/service-accounts/:name',
      summary:
        'A service account with its usage since a time (default 30 days back): grants, sessions, statements and refusals, by connection.',
      access: ['admin', 'auditor'],
      query: { since: 'The start of the usage window: a duration back from now (7d) or an ISO date; default 30d.' },
      response: serviceAccount.extend({ usage }),
      errors: { 404: ['account-unknown'] },
      handler: async ({ params, query }) => {
        const now = deps.clock.now();
        let since = now - DEFAULT_USAGE_WINDOW_MS;
        if (query.since !== undefined) {
          try {
            since = pointInTime(query.since, now);
          } catch (error) {
            throw new ApiError(400, 'invalid-query', `since: ${(error as Error).message}`);
          }
          if (since > now) throw new ApiError(400, 'invalid-query', 'since is in the future');
        }
        const name = params['name'] ?? '';
        const report = await serviceAccountReport(deps.store, name, { since, now }, deps.connections);
        if (!report) throw new ApiError(404, 'account-unknown', `no service account named ${name}`);
        return report;
      },
    },
    {
      method: 'PUT',
      path: '/api/service-accounts/:name/limits',
      summary:
        "Change a service account's limits (an absent field stays, null removes the limit); live grants beyond the new limits are revoked and their sessions end.",
      access: ['admin'],
      body: z
        .object({ maxGrantDuration: durationText.nullable().optional(), connections: z.array(connectionName).nullable().optional() })
        .strict(),
      response: z.object({ account: serviceAccount, revokedGrants: z.array(z.string()) }),
      errors: { 400: ['account-wrong-kind', 'account-invalid-input'], 404: ['account-unknown'] },
      handler: async ({ who, params, body }: RequestContext<LimitsBody>) => {
        const name = params['name'] ?? '';
        const changed = await accountCall(() =>
          deps.accounts.setLimits(
            name,
            {
              ...(body.maxGrantDuration !== undefined && {
                maxGrantMs: body.maxGrantDuration === null ? null : parseDuration(body.maxGrantDuration),
              }),
              ...(body.connections !== undefined && { connections: body.connections }),
            },
            who!.principal.name,
          ),
        );
        const account = await getServiceAccount(deps.store, name);
        if (!account) throw new ApiError(404, 'account-unknown', `no service account named ${name}`);
        return { account, revokedGrants: [...changed.revoked] };
      },
    },
  ];
}
