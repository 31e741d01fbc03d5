/**
 * The pages of the signed-in app: their paths, their place in the navigation and who may open
 * them. The navigation shows only the pages the signed-in roles may use; the API checks the roles
 * again on every call (this list is for people, not a control).
 */

import type { ComponentType, ReactNode } from 'react';
import { PendingBadge } from './approvals-badge.tsx';
import { AccessPage } from './pages/access.tsx';
import { ApprovalPage } from './pages/approval.tsx';
import { ApprovalsPage } from './pages/approvals.tsx';
import { AuditPage } from './pages/audit.tsx';
import { PoliciesPage } from './pages/policies.tsx';
import { ReviewPage } from './pages/review.tsx';
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
  /** Shown beside its label in the navigation (a count that needs attention). */
  readonly badge?: ComponentType;
  readonly page: (params: Readonly<Record<string, string>>) => ReactNode;
}

export const START_PAGE = '/access';

export const ROUTES: readonly PageRoute[] = [
  { path: '/access', nav: 'My access', page: () => <AccessPage /> },
  // Everyone: the API shows approvers, admins and auditors every request, others their own.
  { path: '/approvals', nav: 'Approvals', badge: PendingBadge, page: () => <ApprovalsPage /> },
  // The link of the held statement's NOTICE.
  { path: '/approvals/:id', page: ({ id }) => <ApprovalPage id={id!} /> },
  { path: '/sessions', nav: 'Sessions', page: () => <SessionsPage /> },
  { path: '/sessions/:id', page: ({ id }) => <SessionReplayPage id={id!} /> },
  { path: '/audit', nav: 'Audit log', roles: ['admin', 'auditor'], page: () => <AuditPage /> },
  { path: '/policies', nav: 'Policies', roles: ['admin', 'approver', 'auditor'], page: () => <PoliciesPage /> },
  { path: '/review', nav: 'Access review', roles: ['admin', 'auditor'], page: () => <ReviewPage /> },
];
