/**
 * `drawbridge users …` and `drawbridge service-accounts …`. With `--config FILE` they act on
 * the gateway's store as the local administrator (how the first admin comes to exist); without,
 * on a running gateway's API as the logged-in admin. A service account's key is printed once,
 * alone on the first line; only its hash is kept.
 */

import { StoreAuditLog } from '../audit/audit-log.ts';
import { parseDuration } from '../core/duration.ts';
import { systemClock } from '../core/index.ts';
import { AccountError, Accounts, GATEWAY_ROLES, type GatewayRole } from '../identity/accounts.ts';
import { Credentials } from '../identity/credentials.ts';
import { ApiClient } from './api-client.ts';
import { optionsAndArguments, readPassword, UsageError, withLocalStore } from './args.ts';
import { everyPage, table } from './identity.ts';

const ADMIN = 'local-admin';

const SPEC = {
  config: { type: 'string' },
  gateway: { type: 'string' },
  role: { type: 'string', multiple: true },
  group: { type: 'string', multiple: true },
  'password-stdin': { type: 'boolean' },
  'max-duration': { type: 'string' },
  connection: { type: 'string', multiple: true },
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
  createServiceAccount(name: string, maxGrantMs: number | undefined, connections: string[] | undefined): Promise<string>;
  rotateKey(name: string): Promise<string>;
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
        const maxGrantMs = values['max-duration'] ? parseDuration(values['max-duration']) : undefined;
        const key = await admin.createServiceAccount(name, maxGrantMs, values.connection);
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
      case 'list':
        return print(
          (await admin.list()).filter((a) => a.kind === 'service-account'),
          values.json,
        );
      default:
        throw new UsageError(
          verb ? `unknown service-accounts verb "${verb}"` : 'service-accounts needs a verb: create, rotate, disable, list',
        );
    }
  });
}

async function disable(admin: AccountAdmin, name: string | undefined, reason: string | undefined, noun: string): Promise<number> {
  if (!name) throw new UsageError(`${noun} disable needs a NAME`);
  await admin.disable(name, reason);
  process.stdout.write(`disabled ${name}; its grants are revoked and its sessions end within seconds\n`);
  return 0;
}

async function withAdmin(values: { config?: string; gateway?: string }, run: (admin: AccountAdmin) => Promise<number>): Promise<number> {
  if (values.config) return withLocalStore(values.config, (store) => run(localAdmin(store)));
  return run(remoteAdmin(await ApiClient.open(values.gateway)));
}

function localAdmin(store: Parameters<Parameters<typeof withLocalStore>[1]>[0]): AccountAdmin {
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
