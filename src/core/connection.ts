/** A target the gateway fronts. Credentials for it live only in the gateway's config. */

export type TlsMode = 'disable' | 'require' | 'verify-full';

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
}

export type Connection = PostgresConnection;
