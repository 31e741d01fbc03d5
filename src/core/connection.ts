/** A target the gateway fronts. Credentials for it live only in the gateway's config. */

export type TlsMode = 'disable' | 'require' | 'verify-full';

/** How principals get access to a connection. */
export interface AccessPolicy {
  /** The longest grant a request may get. */
  readonly maxDurationMs: number;
  /** `required`: a request waits for an approver; `none`: it is granted at once. */
  readonly approval: 'none' | 'required';
  /** The group whose members decide a request that waits (default `approvers`). */
  readonly approvers?: string | undefined;
}

export const DEFAULT_ACCESS_POLICY: AccessPolicy = Object.freeze({ maxDurationMs: 3_600_000, approval: 'none' });

export interface PostgresConnection {
  readonly name: string;
  readonly type: 'postgres';
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string | undefined;
  readonly tls: TlsMode;
  /** PEM of the CA to verify the target against (verify-full). */
  readonly ca: string | undefined;
  readonly access: AccessPolicy;
}

export type Connection = PostgresConnection;
