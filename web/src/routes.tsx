/**
 * The pages of the signed-in app: their paths, their place in the navigation and who may open
 * them. The navigation shows only the pages the signed-in roles may use; the API checks the roles
 * again on every call (this list is for people, not a control).
 */

import type { ReactNode } from 'react';
import { AccessPage } from './pages/access.tsx';
import { AuditPage } from './pages/audit.tsx';
import { PoliciesPage } from './pages/policies.tsx';
import { SessionReplayPage } from './pages/session-replay.tsx';
import { SessionsPage } from './pages/sessions.tsx';
import type { Role } from './types.ts';

export interface PageRoute {
  /** `/sessions/:id` style. */
  readonly path: string;
  /** Its label in the navigation; none for pages reached by a link (one session's replay). */
  readonly nav?: string;
  /** The roles that may open it (any of them); none: everyone signed in. */
  readonly roles?: readonly Role[];
  readonly page: (params: Readonly<Record<string, string>>) => ReactNode;
}

export const START_PAGE = '/access';

export const ROUTES: readonly PageRoute[] = [
  { path: '/access', nav: 'My access', page: () => <AccessPage /> },
  // ── APPROVALS: reserved place for the approvals inbox (issue 7). ─────────────────────────────
  // It is added when the approvals API lands: GET /api/approvals, GET /api/approvals/:id,
  // POST /api/approvals/:id/approve, POST /api/approvals/:id/deny {reason}, and the live stream
  // GET /api/approvals/stream (Server-Sent Events). Then, here:
  //   { path: '/approvals', nav: 'Approvals', roles: ['admin', 'approver'], page: () => <ApprovalsPage /> },
  //   { path: '/approvals/:id', roles: ['admin', 'approver'], page: ({ id }) => <ApprovalPage id={id!} /> },
  // (the held statement's notice links to /approvals/<id>). No page until then: no made-up data.
  // ─────────────────────────────────────────────────────────────────────────────────────────────
  { path: '/sessions', nav: 'Sessions', page: () => <SessionsPage /> },
  { path: '/sessions/:id', page: ({ id }) => <SessionReplayPage id={id!} /> },
  { path: '/audit', nav: 'Audit log', roles: ['admin', 'auditor'], page: () => <AuditPage /> },
  { path: '/policies', nav: 'Policies', roles: ['admin', 'approver', 'auditor'], page: () => <PoliciesPage /> },
];
