/**
 * `drawbridge users …` and `drawbridge service-accounts …`. With `--config FILE` they act on
 * the gateway's store as the local administrator (how the first admin comes to exist); without,
 * on a running gateway's API as the logged-in admin. A service account's key is printed once,
 * alone on the first line; only its hash is kept. `service-accounts list | show` print the same
 * views either way (`--json`: exactly what the API answers); `limits` changes an account's
 * limits and revokes its live grants beyond the new ones.
 */

import { StoreAuditLog } from '../audit/audit-log.ts';
import type { Config } from '../config/index.ts';
import { parseDuration, pointInTime } from '../core/duration.ts';
import { systemClock } from '../core/index.ts';
import { AccountError, Accounts, GATEWAY_ROLES, type GatewayRole, type LimitChanges } from '../identity/accounts.ts';
import { Credentials } from '../identity/credentials.ts';
import {
  getServiceAccount,
  listServiceAccounts,
  serviceAccountReport,
  type ServiceAccountReport,
  type ServiceAccountView,
} from '../identity/service-accounts.ts';
import type { Store } from '../store/index.ts';
import { ApiClient } from './api-client.ts';
import { optionsAndArguments, readPassword, UsageError, withLocalStore } from './args.ts';
import { everyPage, table } from './identity.ts';
import { limitsChanged, serviceAccountList, serviceAccountShow } from './service-accounts.ts';

const ADMIN = 'local-admin';

const SPEC = {
  config: { type: 'string' },
  gateway: { type: 'string' },
  role: { type: 'string', multiple: true },
  group: { type: 'string', multiple: true },
  'password-stdin': { type: 'boolean' },
  'max-duration': { type: 'string' },
  'max-grant': { type: 'string' },
  connection: { type: 'string', multiple: true },
  connections: { type: 'string' },
  since: { type: 'string' },
  reason: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** An account as the commands print it, whichever way it was read. */
interface AccountRow {
  readonly name: string;
  readonly kind: string;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly disabled: boolean;
}

/** What the commands need, on the store or through the API. */
interface AccountAdmin {
  list(): Promise<AccountRow[]>;
  createUser(name: string, password: string | undefined, roles: GatewayRole[], groups: string[]): Promise<AccountRow>;
  setPassword(name: string, password: string): Promise<void>;
  setRoles(name: string, roles: GatewayRole[]): Promise<AccountRow>;
  disable(name: string, reason: string | undefined): Promise<void>;
  enable(name: string): Promise<void>;
  createServiceAccount(name: string, maxGrantMs: number | undefined, connections: readonly string[] | undefined): Promise<string>;
  rotateKey(name: string): Promise<string>;
  serviceAccounts(): Promise<ServiceAccountView[]>;
  /** Its usage from `since` (`30d`, an ISO date) to now. AccountError `unknown` when there is none. */
  serviceAccount(name: string, since: string): Promise<ServiceAccountReport>;
  /** AccountError when refused. */
  setLimits(name: string, changes: LimitChanges): Promise<{ account: ServiceAccountView; revokedGrants: string[] }>;
}

export async function runUsers(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  const { values, positionals } = optionsAndArguments(rest, SPEC);
  const name = positionals[0];
  return withAdmin(values, async (admin) => {
    switch (verb) {
      case 'list':
        return print(await admin.list(), values.json);
      case 'create': {
        if (!name) throw new UsageError('users create needs a NAME');
        const password = values['password-stdin'] ? await readPassword() : undefined;
        const account = await admin.createUser(name, password, roles(values.role), values.group ?? []);
        process.stdout.write(values.json ? `${JSON.stringify(account)}\n` : `created user ${account.name} (${account.roles.join(', ')})\n`);
        return 0;
      }
      case 'set-password': {
        if (!name || !values['password-stdin']) throw new UsageError('users set-password NAME --password-stdin');
        await admin.setPassword(name, await readPassword());
        process.stdout.write(`password of ${name} set\n`);
        return 0;
      }
      case 'roles': {
        if (!name) throw new UsageError('users roles NAME --role ROLE [--role ROLE]');
        const account = await admin.setRoles(name, roles(values.role));
        process.stdout.write(`${account.name}: ${account.roles.join(', ')}\n`);
        return 0;
      }
      case 'disable':
        return disable(admin, name, values.reason, 'users');
      case 'enable': {
        if (!name) throw new UsageError('users enable needs a NAME');
        await admin.enable(name);
        process.stdout.write(`enabled ${name}\n`);
        return 0;
      }
      default:
        throw new UsageError(
          verb ? `unknown users verb "${verb}"` : 'users needs a verb: list, create, set-password, roles, disable, enable',
        );
    }
  });
}

export async function runServiceAccounts(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  const { values, positionals } = optionsAndArguments(rest, SPEC);
  const name = positionals[0];
  return withAdmin(values, async (admin) => {
    switch (verb) {
      case 'create': {
        if (!name) throw new UsageError('service-accounts create needs a NAME');
        const limits = limitOptions(values, [...(values.connection ?? [])]);
        const key = await admin.createServiceAccount(name, limits.maxGrantMs ?? undefined, limits.connections ?? undefined);
        printKey(key, `service account ${name}: keep this key secret; it is shown once`, values.json);
        return 0;
      }
      case 'rotate': {
        if (!name) throw new UsageError('service-accounts rotate needs a NAME');
        printKey(await admin.rotateKey(name), `new key for ${name}; the old one no longer works`, values.json);
        return 0;
      }
      case 'disable':
        return disable(admin, name, values.reason, 'service-accounts');
      case 'enable': {
        if (!name) throw new UsageError('service-accounts enable needs a NAME');
        await admin.enable(name);
        process.stdout.write(`enabled ${name}; its key works again (its revoked grants stay revoked)\n`);
        return 0;
      }
      case 'list': {
        const accounts = await admin.serviceAccounts();
        process.stdout.write(values.json ? `${JSON.stringify(accounts)}\n` : serviceAccountList(accounts));
        return 0;
      }
      case 'show':
        if (!name) throw new UsageError('service-accounts show needs a NAME');
        return refused(async () => {
          const report = await admin.serviceAccount(name, values.since ?? '30d');
          process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : serviceAccountShow(report));
        });
      case 'limits': {
        if (!name) throw new UsageError('service-accounts limits needs a NAME');
        if (values['max-duration'] !== undefined || values.connection !== undefined) {
          throw new UsageError('service-accounts limits takes --max-grant 1h|none and --connections a,b|any');
        }
        const changes = limitOptions(values);
        return refused(async () => {
          if (changes.maxGrantMs === undefined && changes.connections === undefined) {
            // Nothing to change: what they are.
            const report = await admin.serviceAccount(name, '30d');
            const { usage: _, ...account } = report;
            process.stdout.write(values.json ? `${JSON.stringify(account)}\n` : limitsChanged(account, undefined));
            return;
          }
          const changed = await admin.setLimits(name, changes);
          process.stdout.write(values.json ? `${JSON.stringify(changed)}\n` : limitsChanged(changed.account, changed.revokedGrants));
        });
      }
      default:
        throw new UsageError(
          verb
            ? `unknown service-accounts verb "${verb}"`
            : 'service-accounts needs a verb: create, rotate, disable, enable, list, show, limits',
        );
    }
  });
}

/**
 * `--max-grant 1h|none` (`--max-duration` too, for create) and `--connections a,b|any` (an empty
 * value: none), plus create's repeatable `--connection`: absent ones are left out.
 */
function limitOptions(
  values: { 'max-grant'?: string; 'max-duration'?: string; connections?: string },
  repeated: string[] = [],
): LimitChanges {
  if (values['max-grant'] !== undefined && values['max-duration'] !== undefined) {
    throw new UsageError('give --max-grant or --max-duration, not both');
  }
  const max = values['max-grant'] ?? values['max-duration'];
  const listed = values.connections;
  const connections =
    listed === 'any'
      ? null
      : listed === undefined
        ? undefined
        : listed
            .split(',')
            .map((c) => c.trim())
            .filter((c) => c !== '');
  if (connections === null && repeated.length > 0) throw new UsageError('--connections any leaves no room for --connection');
  return {
    ...(max !== undefined && { maxGrantMs: max === 'none' ? null : parseDuration(max) }),
    ...((connections !== undefined || repeated.length > 0) && {
      connections: connections === null ? null : [...(connections ?? []), ...repeated],
    }),
  };
}

/** A refusal of the account layer (no such account, a bad limit) as the API's are printed: exit 1. */
async function refused(run: () => Promise<void>): Promise<number> {
  try {
    await run();
    return 0;
  } catch (error) {
    if (!(error instanceof AccountError)) throw error;
    process.stderr.write(`drawbridge: ${error.message}\n`);
    return 1;
  }
}

async function disable(admin: AccountAdmin, name: string | undefined, reason: string | undefined, noun: string): Promise<number> {
  if (!name) throw new UsageError(`${noun} disable needs a NAME`);
  await admin.disable(name, reason);
  process.stdout.write(`disabled ${name}; its grants are revoked and its sessions end within seconds\n`);
  return 0;
}

async function withAdmin(values: { config?: string; gateway?: string }, run: (admin: AccountAdmin) => Promise<number>): Promise<number> {
  if (values.config) return withLocalStore(values.config, (store, config) => run(localAdmin(store, config)));
  return run(remoteAdmin(await ApiClient.open(values.gateway)));
}

function localAdmin(store: Store, config: Config): AccountAdmin {
  const audit = new StoreAuditLog(store, systemClock);
  const accounts = new Accounts(store, systemClock, audit, new Credentials(store, systemClock, audit));
  const rowOf = (a: {
    name: string;
    kind: string;
    roles: readonly string[];
    groups: readonly string[];
    disabledAt: number | undefined;
  }): AccountRow => ({
    name: a.name,
    kind: a.kind,
    roles: a.roles,
    groups: a.groups,
    disabled: a.disabledAt !== undefined,
  });
  return {
    list: async () => (await local(() => accounts.list())).map(rowOf),
    createUser: async (name, password, roles, groups) =>
      rowOf(await local(() => accounts.createUser({ name, ...(password ? { password } : {}), roles, groups }, ADMIN))),
    setPassword: (name, password) => local(() => accounts.setPassword(name, password, ADMIN)),
    setRoles: async (name, roles) => rowOf(await local(() => accounts.setRoles(name, roles, ADMIN))),
    disable: (name, reason) => local(() => accounts.disable(name, ADMIN, reason)),
    enable: (name) => local(() => accounts.enable(name, ADMIN)),
    createServiceAccount: async (name, maxGrantMs, connections) =>
      (
        await local(() =>
          accounts.createServiceAccount(
            { name, ...(maxGrantMs !== undefined ? { maxGrantMs } : {}), ...(connections ? { connections } : {}) },
            ADMIN,
          ),
        )
      ).key,
    rotateKey: (name) => local(() => accounts.rotateKey(name, ADMIN)),
    serviceAccounts: () => listServiceAccounts(store),
    serviceAccount: async (name, since) => {
      const now = systemClock.now();
      const report = await serviceAccountReport(
        store,
        name,
        { since: Math.min(pointInTime(since, now), now), now },
        config.connections.map((c) => c.name),
      );
      if (!report) throw new AccountError('unknown', `no service account named ${name}`);
      return report;
    },
    setLimits: async (name, changes) => {
      const { revoked } = await accounts.setLimits(name, changes, ADMIN);
      return { account: (await getServiceAccount(store, name))!, revokedGrants: [...revoked] };
    },
  };
}

function remoteAdmin(client: ApiClient): AccountAdmin {
  type View = { name: string; kind: string; roles: string[]; groups: string[]; disabledAt: string | null };
  const rowOf = (a: View): AccountRow => ({
    name: a.name,
    kind: a.kind,
    roles: a.roles,
    groups: a.groups,
    disabled: a.disabledAt !== null,
  });
  const path = (name: string) => `/api/users/${encodeURIComponent(name)}`;
  return {
    list: async () => (await everyPage<View>(client, '/api/users', new URLSearchParams(), 'users', 'after')).map(rowOf),
    createUser: async (name, password, roles, groups) =>
      rowOf((await client.call<View>('POST', '/api/users', { name, ...(password ? { password } : {}), roles, groups })).body),
    setPassword: () => {
      throw new UsageError('users set-password works on the gateway host, with --config FILE');
    },
    setRoles: async (name, roles) => rowOf((await client.call<View>('PUT', `${path(name)}/roles`, { roles })).body),
    disable: async (name, reason) => void (await client.call('POST', `${path(name)}/disable`, reason ? { reason } : {})),
    enable: async (name) => void (await client.call('POST', `${path(name)}/enable`)),
    createServiceAccount: async (name, maxGrantMs, connections) =>
      (
        await client.call<{ key: string }>('POST', '/api/service-accounts', {
          name,
          ...(maxGrantMs !== undefined ? { maxDuration: `${maxGrantMs}ms` } : {}),
          ...(connections ? { connections } : {}),
        })
      ).body.key,
    rotateKey: async (name) =>
      (await client.call<{ key: string }>('POST', `/api/service-accounts/${encodeURIComponent(name)}/rotate`)).body.key,
    serviceAccounts: () =>
      everyPage<ServiceAccountView>(client, '/api/service-accounts', new URLSearchParams(), 'serviceAccounts', 'after'),
    serviceAccount: async (name, since) =>
      (
        await client.call<ServiceAccountReport>(
          'GET',
          `/api/service-accounts/${encodeURIComponent(name)}?${new URLSearchParams({ since })}`,
        )
      ).body,
    setLimits: async (name, changes) =>
      (
        await client.call<{ account: ServiceAccountView; revokedGrants: string[] }>(
          'PUT',
          `/api/service-accounts/${encodeURIComponent(name)}/limits`,
          {
            ...(changes.maxGrantMs !== undefined && {
              maxGrantDuration: changes.maxGrantMs === null ? null : `${changes.maxGrantMs}ms`,
            }),
            ...(changes.connections !== undefined && { connections: changes.connections }),
          },
        )
      ).body,
  };
}

function roles(given: readonly string[] | undefined): GatewayRole[] {
  const list = given ?? ['user'];
  for (const role of list) {
    if (!(GATEWAY_ROLES as readonly string[]).includes(role))
      throw new UsageError(`unknown role "${role}" (roles: ${GATEWAY_ROLES.join(', ')})`);
  }
  return list as GatewayRole[];
}

async function local<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof AccountError) throw new UsageError(error.message);
    throw error;
  }
}

function print(rows: readonly AccountRow[], json: boolean | undefined): number {
  if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  else {
    process.stdout.write(
      table(
        ['NAME', 'KIND', 'ROLES', 'GROUPS', 'STATE'],
        rows.map((a) => [a.name, a.kind, a.roles.join(','), a.groups.join(','), a.disabled ? 'disabled' : 'enabled']),
      ),
    );
  }
  return 0;
}

function printKey(key: string, note: string, json: boolean | undefined): void {
  if (json) process.stdout.write(`${JSON.stringify({ key })}\n`);
  else process.stdout.write(`${key}\n${note}\n`);
}
