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
