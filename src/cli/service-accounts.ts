/**
 * How `drawbridge service-accounts list | show | limits` print on a terminal: the views of
 * identity/service-accounts.ts (the same JSON the API answers and `--json` prints), as text.
 */

import { formatDuration } from '../core/duration.ts';
import type { ServiceAccountReport, ServiceAccountView } from '../identity/service-accounts.ts';
import { table } from './identity.ts';

/** `2026-11-22 05:58:01` (UTC), or `never`. */
const at = (iso: string | null): string => (iso === null ? 'never' : iso.replace('T', ' ').slice(0, 19));
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** What its limits let it have, in one line. */
export function describeLimits(a: Pick<ServiceAccountView, 'maxGrantDuration' | 'connections'>): string {
  const grants = a.maxGrantDuration === null ? "grants up to each connection's max_duration" : `grants of at most ${a.maxGrantDuration}`;
  const connections =
    a.connections === null ? 'on any connection' : a.connections.length === 0 ? 'on no connection' : `on ${a.connections.join(', ')} only`;
  return `${grants}, ${connections}`;
}

function describeKey(a: ServiceAccountView): string {
  if (a.key === null) return 'none (an OIDC client proves itself with its IdP\u2019s tokens)';
  const retired = a.retiredKeys > 0 ? `; ${plural(a.retiredKeys, 'key')} before it ended by rotation` : '';
  return `${a.key.id}, made ${at(a.key.createdAt)}${a.key.works ? '' : ' (stopped while the account is disabled)'}${retired}`;
}

export function serviceAccountList(accounts: readonly ServiceAccountView[]): string {
  if (accounts.length === 0) return 'no service accounts\n';
  return table(
    ['NAME', 'STATE', 'MAX GRANT', 'CONNECTIONS', 'KEY MADE (UTC)', 'LAST USED (UTC)'],
    accounts.map((a) => [
      a.name,
      a.disabledAt === null ? 'enabled' : 'disabled',
      a.maxGrantDuration ?? 'connection max',
      a.connections === null ? 'any' : a.connections.length === 0 ? 'none' : a.connections.join(','),
      a.key === null ? 'no key' : at(a.key.createdAt),
      at(a.lastUsedAt),
    ]),
  );
}

export function serviceAccountShow(r: ServiceAccountReport): string {
  const u = r.usage;
  const window = formatDuration(Date.parse(u.until) - Date.parse(u.since));
  const last = u.grants.last;
  const state = r.disabledAt === null ? 'enabled' : `disabled since ${at(r.disabledAt)}`;
  const lines = [
    `${r.name}: service account, ${state}, created ${at(r.createdAt)}`,
    `  limits      ${describeLimits(r)}`,
    `  key         ${describeKey(r)}`,
    `  last used   ${at(u.lastUsedAt)}${r.lastUsedAt === null || r.lastUsedAt === u.lastUsedAt ? '' : ` (its key ${at(r.lastUsedAt)})`}`,
    '',
    `usage from ${at(u.since)} to ${at(u.until)} UTC (${window}):`,
    `  grants      ${u.grants.issued} issued, ${u.grants.live} live now${
      last ? `; last ${last.grant} on ${last.connection}, ${at(last.createdAt)}, ${last.state} (expires ${at(last.expiresAt)})` : ''
    }`,
    `  sessions    ${u.sessions.started} started, ${u.sessions.live} live now; last started ${at(u.sessions.lastStartedAt)}`,
    `  statements  ${u.statements.count}, of which ${u.statements.refused} refused by the gateway and ${u.statements.failed} failed on the target`,
    '',
  ];
  let text = `${lines.join('\n')}\n`;
  if (u.connections.length === 0) return `${text}no connection: it may ask for none, and used none\n`;
  text += table(
    ['CONNECTION', 'ALLOWED', 'GRANTS', 'SESSIONS', 'STATEMENTS', 'REFUSED', 'FAILED', 'LAST USED (UTC)'],
    u.connections.map((c) => [
      c.connection,
      c.allowed ? 'yes' : 'no',
      String(c.grants),
      String(c.sessions),
      String(c.statements),
      String(c.refused),
      String(c.failed),
      c.lastUsedAt === null ? '-' : at(c.lastUsedAt),
    ]),
  );
  const unused = u.connections.filter((c) => c.allowed && c.lastUsedAt === null).map((c) => c.connection);
  if (unused.length > 0) text += `allowed but not used in these ${window}: ${unused.join(', ')}\n`;
  return text;
}

/** Its limits; after a change (`revoked` given), also what the change revoked. */
export function limitsChanged(account: ServiceAccountView, revoked: readonly string[] | undefined): string {
  const head = `${account.name}: ${describeLimits(account)}\n`;
  if (revoked === undefined) return head;
  if (revoked.length === 0) return `${head}no live grant was beyond the new limits\n`;
  return `${head}revoked ${plural(revoked.length, 'live grant')} beyond the new limits (their sessions end within seconds): ${revoked.join(', ')}\n`;
}
