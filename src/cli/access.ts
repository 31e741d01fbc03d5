/**
 * `drawbridge access …`: the grants on the gateway's store, for the local administrator.
 * Revocation is immediate for new logins; running gateways end the live sessions of a revoked
 * grant when they next look at the store (every second).
 */

import { StoreAuditLog } from '../audit/audit-log.ts';
import { systemClock } from '../core/index.ts';
import { Credentials } from '../identity/credentials.ts';
import type { GrantRecord } from '../store/index.ts';
import { options, optionsAndArguments, UsageError, withLocalStore } from './args.ts';
import { accessCredential, finishPlan, listGrantsRemote, requestAccess, revokeRemote, table } from './identity.ts';

const ADMIN = 'local-admin';

/** Every option any access verb takes: enough to find the positional argument. */
const ANY_OPTIONS = {
  gateway: { type: 'string' },
  config: { type: 'string' },
  principal: { type: 'string' },
  connection: { type: 'string' },
  duration: { type: 'string' },
  reason: { type: 'string' },
  plan: { type: 'string' },
  all: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export async function runAccess(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  // With --config the command acts on the store as the local administrator; without, on a
  // running gateway's API as the logged-in principal.
  const local = rest.some((arg) => arg === '--config' || arg.startsWith('--config='));
  switch (verb) {
    case 'request': {
      const { positionals } = optionsAndArguments(rest, ANY_OPTIONS);
      return requestAccess(
        positionals[0],
        rest.filter((arg) => arg !== positionals[0]),
      );
    }
    case 'finish': {
      const { positionals } = optionsAndArguments(rest, ANY_OPTIONS);
      return finishPlan(
        positionals[0],
        rest.filter((arg) => arg !== positionals[0]),
      );
    }
    case 'credential': {
      const { positionals } = optionsAndArguments(rest, ANY_OPTIONS);
      return accessCredential(
        positionals[0],
        rest.filter((arg) => arg !== positionals[0]),
      );
    }
    case 'list':
      return local ? list(rest) : listGrantsRemote(rest);
    case 'revoke': {
      if (local) return revoke(rest);
      const { positionals } = optionsAndArguments(rest, ANY_OPTIONS);
      return revokeRemote(
        positionals[0],
        rest.filter((arg) => arg !== positionals[0]),
      );
    }
    case 'review':
      // Loaded on demand: the report classifies statements and asks the policies (WebAssembly).
      return (await import('./review.ts')).runReview(rest);
    default:
      throw new UsageError(
        verb === undefined ? 'access needs a verb: request, credential, finish, list, revoke or review' : `unknown access verb "${verb}"`,
      );
  }
}

async function list(args: readonly string[]): Promise<number> {
  const values = options(args, {
    config: { type: 'string' },
    principal: { type: 'string' },
    connection: { type: 'string' },
    all: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (!values.config) throw new UsageError('access list needs --config FILE');
  const now = systemClock.now();
  const grants = await withLocalStore(values.config, (store) =>
    store.listGrants({
      ...(values.principal ? { principal: values.principal } : {}),
      ...(values.connection ? { connection: values.connection } : {}),
      ...(values.all ? {} : { liveAt: now }),
      limit: 1000,
    }),
  );
  if (values.json) {
    process.stdout.write(`${JSON.stringify(grants.map((g) => describe(g, now)))}\n`);
    return 0;
  }
  if (grants.length === 0) {
    process.stdout.write(values.all ? 'no grants\n' : 'no live grants\n');
    return 0;
  }
  const rows = grants.map((g) => {
    const d = describe(g, now);
    return [d.grant, d.principal, d.connection, d.state, d.expiresAt, d.reason ?? ''];
  });
  process.stdout.write(table(['GRANT', 'PRINCIPAL', 'CONNECTION', 'STATE', 'EXPIRES', 'REASON'], rows));
  return 0;
}

async function revoke(args: readonly string[]): Promise<number> {
  const { values, positionals } = optionsAndArguments(args, {
    config: { type: 'string' },
    principal: { type: 'string' },
    reason: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.config) throw new UsageError('access revoke needs --config FILE');
  if ((positionals.length === 1) === (values.principal !== undefined) || positionals.length > 1) {
    throw new UsageError('access revoke takes one grant id, or --principal NAME');
  }
  const request = { by: ADMIN, reason: values.reason };
  const revoked = await withLocalStore(values.config, async (store) => {
    const credentials = new Credentials(store, systemClock, new StoreAuditLog(store, systemClock));
    if (values.principal !== undefined) return credentials.revokePrincipal(values.principal, request);
    const id = positionals[0]!;
    return (await credentials.revoke(id, request)) ? [id] : [];
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ revoked })}\n`);
  } else if (revoked.length === 0) {
    process.stdout.write(
      values.principal !== undefined
        ? `${values.principal} has no live grant\n`
        : `nothing to revoke: ${positionals[0]} is unknown, expired or already revoked\n`,
    );
  } else {
    for (const id of revoked) process.stdout.write(`revoked ${id}\n`);
    process.stdout.write('its live sessions end within seconds\n');
  }
  // Nothing revoked is not a failure of the command, but scripts may want to know.
  return revoked.length > 0 || values.principal !== undefined ? 0 : 1;
}

function describe(g: GrantRecord, now: number) {
  const state = g.revokedAt !== undefined ? 'revoked' : g.expiresAt <= now ? 'expired' : 'live';
  return {
    grant: g.id,
    principal: g.principal,
    connection: g.connection,
    state,
    createdAt: new Date(g.createdAt).toISOString(),
    expiresAt: new Date(g.expiresAt).toISOString(),
    grantedBy: g.grantedBy,
    reason: g.reason,
    ...(g.revokedAt !== undefined
      ? { revokedAt: new Date(g.revokedAt).toISOString(), revokedBy: g.revokedBy, revokeReason: g.revokeReason }
      : {}),
  };
}
