/**
 * The API of approvals: the list (newest first, paged by a cursor), one approval, the two
 * decisions, and a live stream of requests and decisions (Server-Sent Events). Requesters see
 * their own requests; approvers, admins and auditors see every one. Deciding takes the approver
 * or admin role and membership of the request's approver group, never one's own request; a
 * denial takes a reason (approvals/approvals.ts).
 *
 * The stream sends one `approval` event per request and decision made or recorded by this
 * gateway (the same view as GET /api/approvals/:id) and a comment every 15 s. The caller's token
 * is checked again at each of those: a stream ends when its token is no longer valid. A client
 * that reads too slowly (1,000 events behind) is cut off; one that goes away is unsubscribed at
 * once. Known limit: decisions taken by another gateway on the same store reach this stream only
 * when this gateway holds the statement (it polls for those), not otherwise.
 */

import { z } from 'zod';
import { ApprovalError, type Approvals } from '../approvals/approvals.ts';
import type { AuthenticatedPrincipal } from '../identity/accounts.ts';
import type { ApprovalRecord, ApprovalStatus } from '../store/index.ts';
import { LIMIT_PARAMETER, page, pageLimit } from './paging.ts';
import { ApiError, StreamReply, type AnyRoute, type Authenticate } from './server.ts';

export interface ApprovalRouteDeps {
  readonly approvals: Approvals;
  /** Checks the stream's token again at each heartbeat; without it, a stream lasts as long as its client. */
  readonly authenticate?: Authenticate | undefined;
  /** Between two heartbeats of the stream; default 15 s. */
  readonly heartbeatMs?: number;
}

const HEARTBEAT_MS = 15_000;
/** Events a stream may hold for a client that does not read them; past that it is cut off. */
const MAX_QUEUED = 1000;

const STATUSES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const satisfies readonly ApprovalStatus[];

const approval = z.object({
  id: z.number().int(),
  kind: z.enum(['statement', 'access']),
  status: z.enum(STATUSES),
  requester: z.string(),
  connection: z.string(),
  session: z.string().nullable(),
  /** The held text, exactly as it will run once approved. */
  statement: z.string().nullable(),
  params: z.array(z.string().nullable()).nullable(),
  policy: z.string().nullable(),
  reason: z.string(),
  approvers: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  decidedAt: z.string().nullable(),
  decidedBy: z.string().nullable(),
  decisionReason: z.string().nullable(),
  /** What EXPLAIN on the target says a held statement would change, or why it could not tell. */
  preview: z.object({ rows: z.number().int().optional(), text: z.string().optional(), error: z.string().optional() }).nullable(),
  /** Access approvals: the access request decided, and the duration asked for. */
  request: z.string().nullable(),
  duration: z.string().nullable(),
  url: z.string(),
});

const decision = z.object({ reason: z.string().max(2000).optional() });

const seesAll = (who: AuthenticatedPrincipal): boolean => who.roles.some((r) => r === 'admin' || r === 'approver' || r === 'auditor');

const API_ERRORS: Record<ApprovalError['code'], number> = {
  'unknown-approval': 404,
  'not-pending': 409,
  'self-approval': 403,
  'not-approver': 403,
  'reason-required': 400,
};

export function approvalRoutes(deps: ApprovalRouteDeps): AnyRoute[] {
  const view = (a: ApprovalRecord): z.infer<typeof approval> => deps.approvals.view(a);

  const idOf = (value: string | undefined): number => {
    const id = /^\d{1,15}$/.test(value ?? '') ? Number(value) : NaN;
    if (!(id >= 1)) throw new ApiError(404, 'unknown-approval', `there is no approval ${JSON.stringify(value)}`);
    return id;
  };

  const decide = async (who: AuthenticatedPrincipal, id: number, what: 'approve' | 'deny', reason: string | undefined) => {
    try {
      return view(await deps.approvals.decide(id, who, what, reason));
    } catch (error) {
      if (error instanceof ApprovalError) throw new ApiError(API_ERRORS[error.code], error.code, error.message);
      throw error;
    }
  };

  /** The live stream of one caller: what it may see, as events, until it leaves or its token ends. */
  const stream = (first: AuthenticatedPrincipal, authorization: string | undefined): StreamReply => {
    let who = first;
    const queue: string[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(heartbeat);
      unsubscribe();
      wake?.();
    };
    const push = (item: string) => {
      if (done) return;
      if (queue.length >= MAX_QUEUED) return finish();
      queue.push(item);
      wake?.();
    };
    const unsubscribe = deps.approvals.listen((_event, a) => {
      if (seesAll(who) || a.requester === who.principal.name) push(`event: approval\ndata: ${JSON.stringify(view(a))}\n`);
    }, finish);
    const heartbeat = setInterval(() => {
      void (async () => {
        const again = deps.authenticate ? await deps.authenticate(authorization).catch(() => undefined) : who;
        if (!again) return finish();
        who = again;
        push(': heartbeat\n');
      })();
    }, deps.heartbeatMs ?? HEARTBEAT_MS);
    heartbeat.unref();
    async function* events(): AsyncGenerator<string> {
      try {
        // At once, so that the client has the headers before the first event.
        yield ': approvals of drawbridge\n';
        for (;;) {
          while (queue.length > 0) yield queue.shift()!;
          if (done) return;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        finish();
      }
    }
    return new StreamReply(events(), { closed: finish, headers: { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } });
  };

  return [
    {
      method: 'GET',
      path: '/api/approvals/stream',
      summary:
        "Requests and decisions as they happen, as Server-Sent Events: one `approval` event (the approval, as GET /api/approvals/{id} answers it) per request and decision, the caller's own or every one for approvers, admins and auditors; a comment every 15 s.",
      access: 'authenticated',
      produces: 'text/event-stream',
      response: approval,
      handler: ({ who, authorization }) => stream(who!, authorization),
    },
    {
      method: 'GET',
      path: '/api/approvals',
      summary: "Approval requests, newest first, a page at a time: the caller's own, or every one for approvers, admins and auditors.",
      access: 'authenticated',
      query: {
        status: `Only approvals in this state: ${STATUSES.join(', ')}.`,
        limit: LIMIT_PARAMETER,
        before: 'The `next` of the page before.',
      },
      response: z.object({ approvals: z.array(approval), next: z.string().nullable() }),
      handler: async ({ who, query }) => {
        const status = query['status'];
        if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
          throw new ApiError(400, 'invalid-query', `status must be one of ${STATUSES.join(', ')}`);
        }
        const limit = pageLimit(query['limit']);
        const before = query['before'];
        if (before !== undefined && !/^\d{1,15}$/.test(before)) throw new ApiError(400, 'invalid-query', 'before must be the `next` of the page before');
        const rows = await deps.approvals.list({
          status: status as ApprovalStatus | undefined,
          requester: seesAll(who!) ? undefined : who!.principal.name,
          beforeId: before === undefined ? undefined : Number(before),
          limit: limit + 1,
        });
        const { items, next } = page(rows, limit, (a) => String(a.id));
        return { approvals: items.map(view), next };
      },
    },
    {
      method: 'GET',
      path: '/api/approvals/:id',
      summary: "One approval request: the held statement exactly as it would run, who asked, who may decide, and the decision.",
      access: 'authenticated',
      response: approval,
      errors: { 404: ['unknown-approval'] },
      handler: async ({ who, params }) => {
        const found = await deps.approvals.get(idOf(params['id']));
        // Another's request is answered as if it did not exist, unless the caller sees all.
        if (!found || (!seesAll(who!) && found.requester !== who!.principal.name)) {
          throw new ApiError(404, 'unknown-approval', `there is no approval ${JSON.stringify(params['id'])}`);
        }
        return view(found);
      },
    },
    {
      method: 'POST',
      path: '/api/approvals/:id/approve',
      summary: 'Approves a pending request: the held statement runs, once, exactly as held.',
      access: ['approver', 'admin'],
      body: decision,
      response: approval,
      errors: { 403: ['self-approval', 'not-approver'], 404: ['unknown-approval'], 409: ['not-pending'] },
      handler: async ({ who, params, body }) => decide(who!, idOf(params['id']), 'approve', body?.reason),
    },
    {
      method: 'POST',
      path: '/api/approvals/:id/deny',
      summary: 'Denies a pending request, with a reason the requester is told.',
      access: ['approver', 'admin'],
      body: decision,
      response: approval,
      errors: { 400: ['reason-required'], 403: ['self-approval', 'not-approver'], 404: ['unknown-approval'], 409: ['not-pending'] },
      handler: async ({ who, params, body }) => decide(who!, idOf(params['id']), 'deny', body?.reason),
    },
  ];
}
