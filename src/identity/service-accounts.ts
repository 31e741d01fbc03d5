/**
 * What an administrator reads about service accounts: each with its limits, the state of its key
 * and when it was last used; and for one, what it did with its access over a window (by default
 * the last 30 days): grants issued, sessions, statements run and refused, and the connections it
 * actually used next to those it may use. The API answers these views as they are
 * (`GET /api/service-accounts[/:name]`) and the CLI prints them (`drawbridge service-accounts list |
 * show`, on the store with `--config` or through the API), so both say the same.
 *
 * Counts in the window are of things that started in it: a grant issued, a session started, a
 * statement started (also in a session that started before the window). "Live" is now, and
 * "last" is the latest ever, whether or not it falls in the window.
 *
 * Known limits: sessions of a gateway that died without ending them stay live in the store; a
 * refused request for access (too long, a connection not allowed) is in the audit log
 * (`access.requested`, failure), not in these figures.
 */

import { formatDuration } from '../core/duration.ts';
import type { AccountRecord, GrantRecord, Store } from '../store/index.ts';
import { toAccount } from './accounts.ts';

export const DEFAULT_USAGE_WINDOW_MS = 30 * 86_400_000;

export interface ServiceAccountView {
  readonly name: string;
  readonly createdAt: string;
  readonly disabledAt: string | null;
  /** The last time its key (or, for an OIDC client, a token) was accepted; to the minute. */
  readonly lastUsedAt: string | null;
  /** The longest grant it gets (the connection's own maximum still applies); null: no limit of its own. */
  readonly maxGrantDuration: string | null;
  /** The only connections it may ask for; null: any. */
  readonly connections: string[] | null;
  /** Its working key; null when it has none (an OIDC client proves itself with its IdP's tokens). */
  readonly key: { readonly id: string; readonly createdAt: string; readonly works: boolean } | null;
  /** Keys ended by rotation. */
  readonly retiredKeys: number;
}

export interface ConnectionUsageView {
  readonly connection: string;
  /** Whether its limits let it ask for this connection now. */
  readonly allowed: boolean;
  readonly grants: number;
  readonly sessions: number;
  readonly statements: number;
  readonly refused: number;
  readonly failed: number;
  /** The latest grant, session or statement on it in the window; null when it was not used in it. */
  readonly lastUsedAt: string | null;
}

export interface UsageView {
  readonly since: string;
  readonly until: string;
  /** The latest of: its key accepted, a grant issued, a session started (ever). */
  readonly lastUsedAt: string | null;
  readonly grants: {
    readonly issued: number;
    readonly live: number;
    readonly last: {
      readonly grant: string;
      readonly connection: string;
      readonly createdAt: string;
      readonly expiresAt: string;
      readonly state: 'live' | 'expired' | 'revoked';
    } | null;
  };
  readonly sessions: { readonly started: number; readonly live: number; readonly lastStartedAt: string | null };
  /** `count` includes the refused (by policy) and the failed (an error from the target). */
  readonly statements: { readonly count: number; readonly refused: number; readonly failed: number };
  /** Every connection it may use and every one it used in the window, by name. */
  readonly connections: ConnectionUsageView[];
}

export type ServiceAccountReport = ServiceAccountView & { readonly usage: UsageView };

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export const grantState = (g: Pick<GrantRecord, 'revokedAt' | 'expiresAt'>, now: number): 'live' | 'expired' | 'revoked' =>
  g.revokedAt !== undefined ? 'revoked' : g.expiresAt <= now ? 'expired' : 'live';

/** Service accounts by name, after `after`, at most `limit`. */
export async function listServiceAccounts(store: Store, page: { after?: string; limit?: number } = {}): Promise<ServiceAccountView[]> {
  const records = await store.listAccounts({ kind: 'service-account', ...page });
  return Promise.all(records.map((r) => serviceAccountView(store, r)));
}

/** Undefined when there is no service account of that name. */
export async function serviceAccountReport(
  store: Store,
  name: string,
  window: { readonly since: number; readonly now: number },
  /** The gateway's connections: what an account without a list of its own may use. */
  configured: readonly string[],
): Promise<ServiceAccountReport | undefined> {
  const record = await store.getAccount(name);
  if (record?.kind !== 'service-account') return undefined;
  const [view, usage] = await Promise.all([serviceAccountView(store, record), store.principalUsage(name, window.since, window.now)]);
  const account = toAccount(record);
  const used = new Map(usage.connections.map((c) => [c.connection, c]));
  const names = [...new Set([...(account.connections ?? configured), ...used.keys()])].sort();
  const total = (key: 'grants' | 'sessions' | 'statements' | 'refused' | 'failed') => usage.connections.reduce((sum, c) => sum + c[key], 0);
  const last = usage.lastGrant;
  const latest = [account.lastUsedAt, last?.createdAt, usage.lastSessionAt].filter((t): t is number => t !== undefined);
  return {
    ...view,
    usage: {
      since: new Date(window.since).toISOString(),
      until: new Date(window.now).toISOString(),
      lastUsedAt: latest.length === 0 ? null : iso(Math.max(...latest)),
      grants: {
        issued: total('grants'),
        live: usage.liveGrants,
        last: last
          ? {
              grant: last.id,
              connection: last.connection,
              createdAt: new Date(last.createdAt).toISOString(),
              expiresAt: new Date(last.expiresAt).toISOString(),
              state: grantState(last, window.now),
            }
          : null,
      },
      sessions: { started: total('sessions'), live: usage.liveSessions, lastStartedAt: iso(usage.lastSessionAt) },
      statements: { count: total('statements'), refused: total('refused'), failed: total('failed') },
      connections: names.map((connection) => {
        const c = used.get(connection);
        return {
          connection,
          allowed: account.connections === undefined || account.connections.includes(connection),
          grants: c?.grants ?? 0,
          sessions: c?.sessions ?? 0,
          statements: c?.statements ?? 0,
          refused: c?.refused ?? 0,
          failed: c?.failed ?? 0,
          lastUsedAt: iso(c?.lastUsedAt),
        };
      }),
    },
  };
}

/** Undefined when there is no service account of that name. */
export async function getServiceAccount(store: Store, name: string): Promise<ServiceAccountView | undefined> {
  const record = await store.getAccount(name);
  return record?.kind === 'service-account' ? serviceAccountView(store, record) : undefined;
}

/** An account as the views show it, with its key read from the store. */
async function serviceAccountView(store: Store, record: AccountRecord): Promise<ServiceAccountView> {
  const a = toAccount(record);
  const keys = await store.listServiceAccountKeys(a.name);
  const working = keys.find((k) => k.revokedAt === undefined);
  return {
    name: a.name,
    createdAt: new Date(a.createdAt).toISOString(),
    disabledAt: iso(a.disabledAt),
    lastUsedAt: iso(a.lastUsedAt),
    maxGrantDuration: a.maxGrantMs === undefined ? null : formatDuration(a.maxGrantMs),
    connections: a.connections === undefined ? null : [...a.connections],
    key: working ? { id: working.id, createdAt: new Date(working.createdAt).toISOString(), works: a.disabledAt === undefined } : null,
    retiredKeys: keys.length - (working ? 1 : 0),
  };
}
