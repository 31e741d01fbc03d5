/**
 * The API of identity and access: log in and out, who am I, the connections, requesting,
 * listing and revoking grants, and the administration of users and service accounts. Every
 * route names the roles that may call it; a principal sees and revokes its own grants, an
 * admin (or, read-only, an auditor) everyone's.
 */

import { z } from 'zod';
import { parseDuration } from '../core/duration.ts';
import type { Clock, Connection } from '../core/index.ts';
import { formatDuration } from '../core/duration.ts';
import { AccessError, type AccessRequests } from '../identity/access.ts';
import { MAX_PLAN_STEPS, parsePlanSteps, PlanError } from '../policy/plan.ts';
import { AccountError, GATEWAY_ROLES, toAccount, type Account, type Accounts, type AuthenticatedPrincipal } from '../identity/accounts.ts';
import type { Credentials } from '../identity/credentials.ts';
import type { GatewaySessions } from '../identity/gateway-sessions.ts';
import type { GrantRecord, Store } from '../store/index.ts';
import { connectionStrings } from '../protocols/pg/connection-strings.ts';
import { LIMIT_PARAMETER, page, pageLimit, timeCursor } from './paging.ts';
import { ApiError, StatusReply, type AnyRoute } from './server.ts';

export interface IdentityRouteDeps {
  readonly accounts: Accounts;
  readonly sessions: GatewaySessions;
  readonly credentials: Credentials;
  readonly access: AccessRequests;
  readonly store: Store;
  readonly clock: Clock;
  readonly connections: readonly Connection[];
  /** Where native clients reach the PostgreSQL listener, for ready-made connection strings. */
  readonly postgres: () => { readonly host: string; readonly port: number } | undefined;
}

const role = z.enum(GATEWAY_ROLES as unknown as [string, ...string[]]);
const name = z.string().min(1).max(63);
export const durationText = z.string().refine(
  (text) => {
    try {
      parseDuration(text);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'a duration such as 15m, 1h or 1h30m' },
);

export const issuedSession = z.object({
  token: z.string(),
  refreshToken: z.string(),
  expiresAt: z.string(),
  refreshExpiresAt: z.string(),
  principal: z.string(),
});
const whoami = z.object({
  name: z.string(),
  kind: z.enum(['user', 'service-account']),
  roles: z.array(z.string()),
  groups: z.array(z.string()),
  via: z.string(),
});
const connectionView = z.object({ name: z.string(), type: z.string(), maxDuration: z.string(), approval: z.enum(['none', 'required']) });
const grantView = z.object({
  grant: z.string(),
  principal: z.string(),
  connection: z.string(),
  state: z.enum(['live', 'expired', 'revoked']),
  createdAt: z.string(),
  expiresAt: z.string(),
  grantedBy: z.string(),
  reason: z.string().nullable(),
  revokedAt: z.string().nullable(),
  revokedBy: z.string().nullable(),
});
const accountView = z.object({
  name: z.string(),
  kind: z.enum(['user', 'service-account']),
  roles: z.array(z.string()),
  groups: z.array(z.string()),
  createdAt: z.string(),
  disabledAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  maxGrantDuration: z.string().nullable(),
  connections: z.array(z.string()).nullable(),
});
const accessGranted = z.object({
  status: z.literal('granted'),
  grant: z.string(),
  connection: z.string(),
  credential: z.string(),
  expiresAt: z.string(),
  connect: z.object({ psql: z.string(), jdbc: z.string(), env: z.record(z.string(), z.string()) }).nullable(),
});
const accessRequestView = z.object({
  request: z.string(),
  principal: z.string(),
  connection: z.string(),
  duration: z.string(),
  reason: z.string(),
  requestedAt: z.string(),
  status: z.enum(['pending', 'granted', 'denied', 'expired']),
  decidedBy: z.string().nullable(),
  decidedAt: z.string().nullable(),
  /** Why it was denied. */
  decisionReason: z.string().nullable(),
  /** Null for a granted request until its requester picks up the credential (POST …/credential). */
  grant: z.string().nullable(),
  /** The approval that decides it, when it needs one. */
  approval: z.number().int().nullable(),
  /** The steps of the plan it came with; null for a request without one. */
  plan: z.array(z.object({ actions: z.array(z.string()), tables: z.array(z.string()), template: z.string().optional() })).nullable(),
});
const accessPending = z.object({
  status: z.literal('pending'),
  request: z.string(),
  connection: z.string(),
  duration: z.string(),
  /** The approval that decides it, and where a person decides it. */
  approval: z.number().int().nullable(),
  url: z.string().nullable(),
  /** A request with a plan: its id, to finish it with (POST /api/access/plans/:id/finish). */
  plan: z.string().nullable(),
});

/** One step of a plan: what it does (policy action names), to which tables, optionally as one statement shape. */
const planStep = z.object({ actions: z.array(z.string()), tables: z.array(z.string()), template: z.string().optional() });

const REQUEST_STATES = ['pending', 'granted', 'denied', 'expired'] as const;

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export function identityRoutes(deps: IdentityRouteDeps): AnyRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/auth/login',
      summary: 'Log in with a local account; returns a short-lived gateway session token and its refresh token.',
      access: 'public',
      body: z.object({ username: name, password: z.string().min(1).max(1024) }),
      response: issuedSession,
      errors: { 401: ['invalid-credentials'] },
      handler: async ({ body }: { body: { username: string; password: string } }) => {
        const who = await deps.accounts.authenticatePassword(body.username, body.password);
        if (!who) throw new ApiError(401, 'invalid-credentials', 'wrong user name or password');
        // Disabled between the password check and now: the same answer as a wrong password.
        const issued = await deps.sessions.issue(who).catch((error: unknown) => {
          throw error instanceof AccountError ? new ApiError(401, 'invalid-credentials', 'wrong user name or password') : error;
        });
        return sessionView(issued, who);
      },
    },
    {
      method: 'POST',
      path: '/api/auth/refresh',
      summary: 'Trade a refresh token for a new session token (the old refresh token stops working).',
      access: 'public',
      body: z.object({ refreshToken: z.string().min(1).max(200) }),
      response: issuedSession,
      errors: { 401: ['invalid-refresh-token'] },
      handler: async ({ body }: { body: { refreshToken: string } }) => {
        const issued = await deps.sessions.refresh(body.refreshToken);
        if (!issued) throw new ApiError(401, 'invalid-refresh-token', 'the refresh token is unknown, expired or already used');
        const who = await deps.sessions.verify(issued.token);
        if (!who) throw new ApiError(401, 'invalid-refresh-token', 'the session is no longer valid');
        return sessionView(issued, who);
      },
    },
    {
      method: 'POST',
      path: '/api/auth/logout',
      summary: 'End the gateway session of the bearer token.',
      access: 'authenticated',
      status: 204,
      response: z.null(),
      handler: async ({ authorization }) => {
        const token = authorization?.slice('Bearer '.length) ?? '';
        if (token.startsWith('dbr_ses_')) await deps.sessions.revoke(token);
        return null;
      },
    },
    {
      method: 'GET',
      path: '/api/whoami',
      summary: 'The caller: name, kind, gateway roles, groups, and how it authenticated.',
      access: 'authenticated',
      response: whoami,
      handler: ({ who }) => ({
        name: who!.principal.name,
        kind: who!.principal.kind,
        roles: [...who!.roles],
        groups: [...who!.groups],
        via: who!.via,
      }),
    },
    {
      method: 'GET',
      path: '/api/connections',
      summary: 'The connections the caller may ask access to, with their access policy.',
      access: 'authenticated',
      response: z.array(connectionView),
      handler: ({ who }) =>
        deps.connections
          .filter((c) => who!.connections === undefined || who!.connections.includes(c.name))
          .map((c) => ({ name: c.name, type: c.type, maxDuration: formatDuration(c.access.maxDurationMs), approval: c.access.approval })),
    },
    {
      method: 'POST',
      path: '/api/access/requests',
      summary:
        'Ask for access to a connection for a while, for a reason. 201 with a credential when policy grants it at once; 202 when it waits for approval.',
      access: 'authenticated',
      status: 201,
      body: z.object({
        connection: name,
        duration: durationText.optional(),
        reason: z.string().min(1).max(1000),
        plan: z.object({ steps: z.array(planStep).min(1).max(MAX_PLAN_STEPS) }).optional(),
      }),
      response: accessGranted,
      otherResponses: { 202: accessPending },
      errors: { 400: ['too-long', 'reason-required', 'invalid-plan'], 404: ['unknown-connection', 'not-allowed'] },
      handler: async ({
        who,
        body,
      }: {
        who: AuthenticatedPrincipal | undefined;
        body: { connection: string; duration?: string; reason: string; plan?: { steps: unknown[] } };
      }) => {
        try {
          const outcome = await deps.access.request(who!, {
            connection: body.connection,
            durationMs: body.duration === undefined ? undefined : parseDuration(body.duration),
            reason: body.reason,
            plan: body.plan && parsePlanSteps(body.plan.steps),
          });
          if (outcome.status === 'pending') {
            return new StatusReply(202, {
              status: 'pending',
              request: outcome.request,
              connection: outcome.connection,
              duration: formatDuration(outcome.durationMs),
              approval: outcome.approval ?? null,
              url: outcome.url ?? null,
              plan: body.plan ? outcome.request : null,
            });
          }
          return {
            status: 'granted',
            grant: outcome.grant,
            connection: outcome.connection,
            credential: outcome.credential,
            expiresAt: new Date(outcome.expiresAt).toISOString(),
            connect: connectFor(deps.postgres(), who!.principal.name, outcome.connection, outcome.credential),
          };
        } catch (error) {
          if (error instanceof AccessError) {
            throw new ApiError(error.code === 'unknown-connection' || error.code === 'not-allowed' ? 404 : 400, error.code, error.message);
          }
          if (error instanceof PlanError) throw new ApiError(400, 'invalid-plan', error.message);
          throw error;
        }
      },
    },
    {
      method: 'GET',
      path: '/api/access/requests',
      summary:
        "Requests for access and their state, newest first, a page at a time: the caller's own; admins, approvers and auditors see everyone's.",
      access: 'authenticated',
      query: {
        principal: "Only this principal's requests (another's: admins, approvers and auditors only).",
        connection: 'Only requests for this connection.',
        status: 'Only requests in this state: pending, granted, denied or expired.',
        limit: LIMIT_PARAMETER,
        before: 'The `next` of the page before.',
      },
      response: z.object({ requests: z.array(accessRequestView), next: z.string().nullable() }),
      errors: { 403: ['forbidden'] },
      handler: async ({ who, query }) => {
        const mayReadAll = who!.roles.some((r) => r === 'admin' || r === 'approver' || r === 'auditor');
        if (!mayReadAll && query.principal !== undefined && query.principal !== who!.principal.name) {
          throw new ApiError(403, 'forbidden', 'only admins, approvers and auditors see the requests of others');
        }
        const status = query.status;
        if (status !== undefined && !REQUEST_STATES.includes(status as never)) {
          throw new ApiError(400, 'invalid-query', `status is one of ${REQUEST_STATES.join(', ')}`);
        }
        const limit = pageLimit(query.limit);
        const before = timeCursor(query.before, 'before');
        const rows = await deps.store.listAccessRequests({
          principal: mayReadAll ? query.principal : who!.principal.name,
          connection: query.connection,
          status: status as (typeof REQUEST_STATES)[number] | undefined,
          before: before && { requestedAt: before.at, id: before.id },
          limit: limit + 1,
        });
        const { items, next } = page(rows, limit, (r) => `${r.requestedAt}:${r.id}`);
        return {
          requests: items.map((r) => ({
            request: r.id,
            principal: r.principal,
            connection: r.connection,
            duration: formatDuration(r.durationMs),
            reason: r.reason,
            requestedAt: new Date(r.requestedAt).toISOString(),
            status: r.status,
            decidedBy: r.decidedBy ?? null,
            decidedAt: iso(r.decidedAt),
            decisionReason: r.decisionReason ?? null,
            grant: r.grantId ?? null,
            approval: r.approvalId ?? null,
            plan: r.plan ? r.plan.map((step) => ({ ...step })) : null,
          })),
          next,
        };
      },
    },
    {
      method: 'POST',
      path: '/api/access/requests/:id/credential',
      summary:
        "The credential of the caller's approved access request, once: issues the grant (granted by the approver) until the approval time plus the duration asked for.",
      access: 'authenticated',
      status: 201,
      response: accessGranted,
      errors: { 404: ['unknown-request', 'not-allowed'], 409: ['not-approved', 'already-issued', 'too-long'] },
      handler: async ({ who, params }) => {
        try {
          const granted = await deps.access.credential(who!, params['id'] ?? '');
          return {
            status: 'granted',
            grant: granted.grant,
            connection: granted.connection,
            credential: granted.credential,
            expiresAt: new Date(granted.expiresAt).toISOString(),
            connect: connectFor(deps.postgres(), who!.principal.name, granted.connection, granted.credential),
          };
        } catch (error) {
          if (error instanceof AccessError) {
            throw new ApiError(error.code === 'unknown-request' || error.code === 'not-allowed' ? 404 : 409, error.code, error.message);
          }
          throw error;
        }
      },
    },
    {
      method: 'POST',
      path: '/api/access/plans/:id/finish',
      summary:
        "Marks one's own plan done: its grant is revoked (its sessions end within seconds); a plan still waiting for approval is withdrawn. Finishing a plan that is over already changes nothing.",
      access: 'authenticated',
      response: z.object({ plan: z.string(), status: z.enum(['finished', 'withdrawn', 'over']), grant: z.string().nullable() }),
      errors: { 404: ['unknown-request'] },
      handler: async ({ who, params }) => {
        try {
          const finished = await deps.access.finishPlan(who!, params['id']!);
          return { plan: params['id']!, status: finished.status, grant: finished.grant ?? null };
        } catch (error) {
          if (error instanceof AccessError) throw new ApiError(404, error.code, error.message);
          throw error;
        }
      },
    },
    {
      method: 'GET',
      path: '/api/access/grants',
      summary:
        "Grants, newest first, a page at a time: the caller's own; admins and auditors see anyone's, or all. Live ones unless ?all=true.",
      access: 'authenticated',
      query: {
        principal: "Only this principal's grants (another's: admins and auditors only).",
        connection: 'Only grants on this connection.',
        all: '`true`: expired and revoked grants too; `false` (the default): live ones only.',
        limit: LIMIT_PARAMETER,
        before: 'The `next` of the page before.',
      },
      response: z.object({ grants: z.array(grantView), next: z.string().nullable() }),
      errors: { 403: ['forbidden'] },
      handler: async ({ who, query }) => {
        const mayReadAll = who!.roles.includes('admin') || who!.roles.includes('auditor');
        const principal = mayReadAll ? query.principal : who!.principal.name;
        if (!mayReadAll && query.principal !== undefined && query.principal !== who!.principal.name) {
          throw new ApiError(403, 'forbidden', 'only admins and auditors see the grants of others');
        }
        if (query.all !== undefined && query.all !== 'true' && query.all !== 'false') {
          throw new ApiError(400, 'invalid-query', 'all is true or false');
        }
        const limit = pageLimit(query.limit);
        const before = timeCursor(query.before, 'before');
        const now = deps.clock.now();
        const rows = await deps.store.listGrants({
          ...(principal !== undefined ? { principal } : {}),
          ...(query.connection !== undefined ? { connection: query.connection } : {}),
          ...(query.all === 'true' ? {} : { liveAt: now }),
          ...(before ? { before: { createdAt: before.at, id: before.id } } : {}),
          limit: limit + 1,
        });
        const { items, next } = page(rows, limit, (g) => `${g.createdAt}:${g.id}`);
        return { grants: items.map((g) => grantOf(g, now)), next };
      },
    },
    {
      method: 'DELETE',
      path: '/api/access/grants/:id',
      summary: "Revoke a grant: the caller's own, or any for an admin. Live sessions that use it end within seconds.",
      access: 'authenticated',
      query: { reason: 'Why, for the audit log and the message that ends its sessions.' },
      status: 204,
      response: z.null(),
      errors: { 404: ['unknown-grant'], 409: ['not-live'] },
      handler: async ({ who, params, query }) => {
        const grant = await deps.store.getGrant(params.id ?? '');
        const isAdmin = who!.roles.includes('admin');
        // Someone else's grant is as invisible as one that does not exist.
        if (!grant || (!isAdmin && grant.principal !== who!.principal.name))
          throw new ApiError(404, 'unknown-grant', `no grant ${params.id}`);
        const revoked = await deps.credentials.revoke(grant.id, { by: who!.principal.name, reason: query.reason });
        if (!revoked) throw new ApiError(409, 'not-live', `grant ${grant.id} is already revoked or expired`);
        return null;
      },
    },
    {
      method: 'POST',
      path: '/api/access/revocations',
      summary: 'Revoke every live grant of a principal; its live sessions end within seconds.',
      access: ['admin'],
      body: z.object({ principal: name, reason: z.string().max(1000).optional() }),
      response: z.object({ revoked: z.array(z.string()) }),
      handler: async ({ who, body }: { who: AuthenticatedPrincipal | undefined; body: { principal: string; reason?: string } }) => ({
        revoked: await deps.credentials.revokePrincipal(body.principal, { by: who!.principal.name, reason: body.reason }),
      }),
    },
    {
      method: 'GET',
      path: '/api/users',
      summary: 'The accounts, people and service accounts, by name, a page at a time.',
      access: ['admin', 'auditor'],
      query: {
        kind: 'Only accounts of this kind: user or service-account.',
        limit: LIMIT_PARAMETER,
        after: 'The `next` of the page before (the last name it holds).',
      },
      response: z.object({ users: z.array(accountView), next: z.string().nullable() }),
      handler: async ({ query }) => {
        const kind = query.kind;
        if (kind !== undefined && kind !== 'user' && kind !== 'service-account') {
          throw new ApiError(400, 'invalid-query', 'kind is user or service-account');
        }
        const limit = pageLimit(query.limit);
        const rows = await deps.store.listAccounts({ kind, after: query.after, limit: limit + 1 });
        const { items, next } = page(rows, limit, (a) => a.name);
        return { users: items.map((a) => accountOf(toAccount(a))), next };
      },
    },
    {
      method: 'POST',
      path: '/api/users',
      summary: 'Create a local user (a password for the embedded mode; OIDC users appear on their first login).',
      access: ['admin'],
      status: 201,
      body: z.object({
        name,
        password: z.string().max(1024).optional(),
        roles: z.array(role).optional(),
        groups: z.array(z.string().max(200)).optional(),
      }),
      response: accountView,
      errors: { 400: ['account-weak-password', 'account-invalid-name', 'account-invalid-input'], 409: ['account-exists'] },
      handler: async ({
        who,
        body,
      }: {
        who: AuthenticatedPrincipal | undefined;
        body: { name: string; password?: string; roles?: string[]; groups?: string[] };
      }) => accountOf(await accountCall(() => deps.accounts.createUser({ ...body, roles: body.roles as never }, who!.principal.name))),
    },
    {
      method: 'PUT',
      path: '/api/users/:name/roles',
      summary: 'Set the gateway roles of an account.',
      access: ['admin'],
      body: z.object({ roles: z.array(role) }),
      response: accountView,
      errors: { 400: ['account-wrong-kind', 'account-invalid-input'], 404: ['account-unknown'] },
      handler: async ({
        who,
        params,
        body,
      }: {
        who: AuthenticatedPrincipal | undefined;
        params: Record<string, string>;
        body: { roles: string[] };
      }) => accountOf(await accountCall(() => deps.accounts.setRoles(params.name ?? '', body.roles as never, who!.principal.name))),
    },
    {
      method: 'POST',
      path: '/api/users/:name/disable',
      summary: 'Disable an account: its grants are revoked and its sessions end.',
      access: ['admin'],
      status: 204,
      body: z.object({ reason: z.string().max(1000).optional() }),
      response: z.null(),
      errors: { 404: ['account-unknown'] },
      handler: async ({
        who,
        params,
        body,
      }: {
        who: AuthenticatedPrincipal | undefined;
        params: Record<string, string>;
        body: { reason?: string };
      }) => {
        await accountCall(() => deps.accounts.disable(params.name ?? '', who!.principal.name, body.reason));
        return null;
      },
    },
    {
      method: 'POST',
      path: '/api/users/:name/enable',
      summary: 'Enable a disabled account again (its revoked grants stay revoked).',
      access: ['admin'],
      status: 204,
      response: z.null(),
      errors: { 404: ['account-unknown'] },
      handler: async ({ who, params }) => {
        await accountCall(() => deps.accounts.enable(params.name ?? '', who!.principal.name));
        return null;
      },
    },
    {
      method: 'POST',
      path: '/api/service-accounts',
      summary: 'Create a service account for an agent or a CI job; its key (shown once) can only ask for short-lived grants.',
      access: ['admin'],
      status: 201,
      body: z.object({ name, maxDuration: durationText.optional(), connections: z.array(name).optional() }),
      response: z.object({ account: accountView, key: z.string() }),
      errors: { 400: ['account-invalid-name', 'account-invalid-input'], 409: ['account-exists'] },
      handler: async ({
        who,
        body,
      }: {
        who: AuthenticatedPrincipal | undefined;
        body: { name: string; maxDuration?: string; connections?: string[] };
      }) => {
        const created = await accountCall(() =>
          deps.accounts.createServiceAccount(
            {
              name: body.name,
              roles: ['user'],
              ...(body.maxDuration !== undefined ? { maxGrantMs: parseDuration(body.maxDuration) } : {}),
              ...(body.connections !== undefined ? { connections: body.connections } : {}),
            },
            who!.principal.name,
          ),
        );
        return { account: accountOf(created.account), key: created.key };
      },
    },
    {
      method: 'POST',
      path: '/api/service-accounts/:name/rotate',
      summary: 'Give a service account a new key; the old one stops working at once.',
      access: ['admin'],
      response: z.object({ key: z.string() }),
      errors: { 400: ['account-wrong-kind'], 404: ['account-unknown'] },
      handler: async ({ who, params }) => ({
        key: await accountCall(() => deps.accounts.rotateKey(params.name ?? '', who!.principal.name)),
      }),
    },
  ];
}

/** An AccountError as the API answers it: 404 `account-unknown`, 409 `account-exists`, else 400 `account-<code>`. */
export async function accountCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof AccountError)) throw error;
    const status = error.code === 'unknown' ? 404 : error.code === 'exists' ? 409 : 400;
    throw new ApiError(status, `account-${error.code}`, error.message);
  }
}

export function sessionView(
  issued: { token: string; refreshToken: string; expiresAt: number; refreshExpiresAt: number },
  who: AuthenticatedPrincipal,
) {
  return {
    token: issued.token,
    refreshToken: issued.refreshToken,
    expiresAt: new Date(issued.expiresAt).toISOString(),
    refreshExpiresAt: new Date(issued.refreshExpiresAt).toISOString(),
    principal: who.principal.name,
  };
}

function grantOf(g: GrantRecord, now: number) {
  return {
    grant: g.id,
    principal: g.principal,
    connection: g.connection,
    state: g.revokedAt !== undefined ? ('revoked' as const) : g.expiresAt <= now ? ('expired' as const) : ('live' as const),
    createdAt: new Date(g.createdAt).toISOString(),
    expiresAt: new Date(g.expiresAt).toISOString(),
    grantedBy: g.grantedBy,
    reason: g.reason ?? null,
    revokedAt: iso(g.revokedAt),
    revokedBy: g.revokedBy ?? null,
  };
}

function accountOf(a: Account) {
  return {
    name: a.name,
    kind: a.kind,
    roles: [...a.roles],
    groups: [...a.groups],
    createdAt: new Date(a.createdAt).toISOString(),
    disabledAt: iso(a.disabledAt),
    lastUsedAt: iso(a.lastUsedAt),
    maxGrantDuration: a.maxGrantMs === undefined ? null : formatDuration(a.maxGrantMs),
    connections: a.connections === undefined ? null : [...a.connections],
  };
}

function connectFor(listen: ReturnType<IdentityRouteDeps['postgres']>, principal: string, connection: string, credential: string) {
  if (!listen) return null;
  const { psql, jdbc, env } = connectionStrings(listen, principal, connection, credential);
  return { psql, jdbc, env };
}
