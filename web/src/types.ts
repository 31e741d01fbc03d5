/** What the API answers, as docs/api.md and /api/openapi.json describe it (the UI's own copy: web/ imports nothing from src/). */

export type Role = 'admin' | 'approver' | 'auditor' | 'user';

export interface WhoAmI {
  readonly name: string;
  readonly kind: 'user' | 'service-account';
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly via: string;
}

export interface ConnectionView {
  readonly name: string;
  readonly type: string;
  readonly maxDuration: string;
  readonly approval: 'none' | 'required';
}

export interface AccessGranted {
  readonly status: 'granted';
  readonly grant: string;
  readonly connection: string;
  readonly credential: string;
  readonly expiresAt: string;
  readonly connect: { readonly psql: string; readonly jdbc: string; readonly env: Readonly<Record<string, string>> } | null;
}

export interface AccessPending {
  readonly status: 'pending';
  readonly request: string;
  readonly connection: string;
  readonly duration: string;
}

export interface GrantView {
  readonly grant: string;
  readonly principal: string;
  readonly connection: string;
  readonly state: 'live' | 'expired' | 'revoked';
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly grantedBy: string;
  readonly reason: string | null;
  readonly revokedAt: string | null;
  readonly revokedBy: string | null;
}

export interface AccessRequestView {
  readonly request: string;
  readonly principal: string;
  readonly connection: string;
  readonly duration: string;
  readonly reason: string;
  readonly requestedAt: string;
  readonly status: 'pending' | 'granted' | 'denied' | 'expired';
  readonly decidedBy: string | null;
  readonly grant: string | null;
}

export interface SessionView {
  readonly id: string;
  readonly protocol: string;
  readonly principal: string;
  readonly connection: string;
  readonly grant: string;
  readonly clientAddress: string;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly endReason: string | null;
}

export interface StatementView {
  readonly seq: number;
  readonly text: string;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly rows: number | null;
  readonly outcome: 'ok' | 'error' | 'denied' | 'cancelled';
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly result: {
    readonly columns: readonly string[];
    readonly rows: readonly (readonly (string | null)[])[];
    readonly truncated: boolean;
  } | null;
}

export interface AuditRecord {
  readonly seq: number;
  readonly time: string;
  readonly actor: string;
  readonly action: string;
  readonly subject: string;
  readonly outcome: 'success' | 'failure';
  readonly details: Readonly<Record<string, unknown>>;
  readonly prevHash: string | null;
  readonly hash: string | null;
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly records: number;
  readonly head: { readonly seq: number; readonly hash: string };
  readonly checkpoints: number;
  readonly lastCheckpoint: { readonly seq: number; readonly time: string } | null;
  readonly problem: { readonly kind: 'chain' | 'checkpoint'; readonly seq: number; readonly message: string } | null;
}

export interface PolicyFiles {
  readonly enabled: boolean;
  readonly version: string | null;
  readonly files: readonly { readonly file: string; readonly text: string }[];
}

export interface PolicyOutcome {
  readonly outcome: 'allow' | 'deny' | 'approval';
  readonly policy?: string;
  readonly policies?: readonly string[];
  readonly reason?: string;
  readonly approvers?: string;
}

export interface PolicyTestResult {
  readonly verdict: { readonly outcome: 'allow' | 'deny'; readonly policy?: string; readonly reason?: string };
  readonly version: string;
  readonly decisions: readonly { readonly statement: Readonly<Record<string, unknown>>; readonly outcome: PolicyOutcome }[];
  readonly parseError: string | null;
}

export interface OidcSettings {
  readonly issuer: string;
  readonly clientId: string;
  readonly audience: string;
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';

/** What the target's planner says a held statement would change (`{rows, text}`), or why it could not tell (`{error}`). */
export interface ApprovalPreview {
  readonly rows?: number;
  readonly text?: string;
  readonly error?: string;
}

/** An approval request as `GET /api/approvals/:id` and the live stream answer it. */
export interface ApprovalView {
  readonly id: number;
  readonly kind: 'statement' | 'access';
  readonly status: ApprovalStatus;
  readonly requester: string;
  readonly connection: string;
  readonly session: string | null;
  /** The held text, exactly as it will run once approved (statements). */
  readonly statement: string | null;
  readonly params: readonly (string | null)[] | null;
  readonly policy: string | null;
  readonly reason: string;
  readonly approvers: string;
  /** Absent from gateways without the blast-radius preview. */
  readonly preview?: ApprovalPreview | null;
  /** Access approvals: the access request, and the duration asked for (absent from older gateways). */
  readonly request?: string | null;
  readonly duration?: string | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly decidedAt: string | null;
  readonly decidedBy: string | null;
  readonly decisionReason: string | null;
  readonly url: string;
}
