/**
 * An approval as every channel shows it: the API (GET /api/approvals/:id), the live stream,
 * the webhooks and the CLI. One shape, so that a script reading one reads them all.
 */

import { formatDuration } from '../core/duration.ts';
import type { ApprovalKind, ApprovalRecord, ApprovalStatus } from '../store/index.ts';

/** What the target said a held statement would touch (approvals/preview.ts), or why it could not. */
// A type, not an interface: it is stored as a JSON record (NewApproval.preview).
export type Preview = {
  /** The planner's estimate of the rows the statement would change. */
  readonly rows?: number;
  /** `about 1,204 rows would change`. */
  readonly text?: string;
  /** Why there is no estimate (the request goes on without one). */
  readonly error?: string;
};

export interface ApprovalView {
  readonly id: number;
  readonly kind: ApprovalKind;
  readonly status: ApprovalStatus;
  readonly requester: string;
  readonly connection: string;
  readonly session: string | null;
  /** The held text, exactly as it will run once approved. */
  readonly statement: string | null;
  readonly params: (string | null)[] | null;
  readonly policy: string | null;
  readonly reason: string;
  readonly approvers: string;
  readonly preview: Preview | null;
  /** Access approvals: the access request it decides, and the duration asked for. */
  readonly request: string | null;
  readonly duration: string | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly decidedAt: string | null;
  readonly decidedBy: string | null;
  readonly decisionReason: string | null;
  /** Where a person decides it (the web UI). */
  readonly url: string;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** Only the known fields of a stored preview, each of its type. */
export function previewOf(stored: Readonly<Record<string, unknown>> | undefined): Preview | null {
  if (stored === undefined) return null;
  const { rows, text, error } = stored;
  return {
    ...(typeof rows === 'number' ? { rows } : {}),
    ...(typeof text === 'string' ? { text } : {}),
    ...(typeof error === 'string' ? { error } : {}),
  };
}

export function approvalView(a: ApprovalRecord, url: string): ApprovalView {
  return {
    id: a.id,
    kind: a.kind,
    status: a.status,
    requester: a.requester,
    connection: a.connection,
    session: a.sessionId ?? null,
    statement: a.statement ?? null,
    params: a.params === undefined ? null : [...a.params],
    policy: a.policy ?? null,
    reason: a.reason,
    approvers: a.approvers,
    preview: previewOf(a.preview),
    request: a.requestId ?? null,
    duration: a.durationMs === undefined ? null : formatDuration(a.durationMs),
    createdAt: iso(a.createdAt)!,
    expiresAt: iso(a.expiresAt)!,
    decidedAt: iso(a.decidedAt),
    decidedBy: a.decidedBy ?? null,
    decisionReason: a.decisionReason ?? null,
    url,
  };
}
