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
  /** When the gateway verified it (the page takes one up to an hour old). */
  readonly verifiedAt: string;
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

export type ReviewProbeKind = 'read' | 'insert' | 'update' | 'delete' | 'ddl' | 'admin' | 'code';

export interface ReviewDecision {
  readonly id: string;
  readonly decision: 'certified' | 'revoked';
  readonly note: string;
  readonly by: string;
  readonly at: string;
  readonly grantsRevoked: readonly string[];
}

/** One principal on one connection in `GET /api/access/review` (docs/review.md). */
export interface ReviewRow {
  readonly principal: string;
  readonly kind: 'user' | 'service-account';
  readonly account: 'active' | 'disabled' | 'none';
  readonly connection: string;
  readonly access: {
    readonly via: 'at-once' | 'approval' | 'grant-only' | 'none';
    readonly why: string;
    readonly maxDuration: string | null;
    readonly approvers: string | null;
  };
  readonly statements: readonly {
    readonly kind: ReviewProbeKind;
    readonly sql: string;
    readonly outcome: 'allow' | 'approval' | 'deny';
    readonly policy: string | null;
  }[];
  readonly grants: {
    readonly issued: number;
    readonly unused: number;
    readonly last: string | null;
    readonly grantedBy: readonly string[];
    readonly live: number;
    readonly liveUnused: readonly string[];
    readonly liveIds: readonly string[];
  };
  readonly usage: {
    readonly sessions: number;
    readonly liveSessions: number;
    readonly lastSession: string | null;
    readonly statements: number;
    readonly byCategory: Readonly<Record<string, number>>;
    readonly byKind: Readonly<Record<string, number>>;
    readonly refused: number;
    readonly tablesRead: readonly string[];
    readonly tablesWritten: readonly string[];
  };
  readonly flags: readonly { readonly code: string; readonly message: string; readonly suggestion: string }[];
  readonly decision: ReviewDecision | null;
}

export interface ReviewReport {
  readonly since: string;
  readonly until: string;
  readonly generatedAt: string;
  readonly policy: { readonly enabled: boolean; readonly version: string | null };
  readonly truncated: boolean;
  readonly summary: { readonly rows: number; readonly flagged: number; readonly certified: number; readonly revoked: number };
  readonly rows: readonly ReviewRow[];
}

/** What `POST /api/access/review/certify` and `/revoke` answer. */
export interface ReviewDecided extends ReviewDecision {
  readonly principal: string;
  readonly connection: string;
}
