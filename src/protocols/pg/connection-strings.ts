/**
 * What a person pastes to connect through the gateway with a fresh credential: the psql URI,
 * the JDBC URL and the PG* variables. Written once for every place that prints them (the API,
 * `drawbridge grant`, the demo).
 */

import { hostname } from 'node:os';

/** A host a client can dial: a wildcard listener is reached through this machine's name. */
export function dialableHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return hostname();
  return host.includes(':') ? `[${host}]` : host;
}

export interface ConnectionStrings {
  /** The psql URI without the password. */
  readonly uri: string;
  readonly psql: string;
  readonly jdbc: string;
  readonly env: Readonly<Record<string, string>>;
}

export function connectionStrings(
  listen: { readonly host: string; readonly port: number },
  principal: string,
  connection: string,
  credential: string,
  options: { readonly sslmode?: 'require' } = {},
): ConnectionStrings {
  const host = dialableHost(listen.host);
  const user = encodeURIComponent(principal);
  const database = encodeURIComponent(connection);
  const ssl = options.sslmode ? `&sslmode=${options.sslmode}` : '';
  const uri = `postgresql://${user}@${host}:${listen.port}/${database}`;
  return {
    uri,
    psql: `${uri}?password=${credential}${ssl}`,
    jdbc: `jdbc:postgresql://${host}:${listen.port}/${database}?user=${user}&password=${credential}${ssl}`,
    env: {
      PGHOST: host.replace(/^\[|\]$/g, ''),
      PGPORT: String(listen.port),
      PGUSER: principal,
      PGDATABASE: connection,
      PGPASSWORD: credential,
    },
  };
}
