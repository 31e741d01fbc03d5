/**
 * `drawbridge users …` and `drawbridge service-accounts …` for the local administrator, on
 * the gateway's store (--config FILE): how the first admin comes to exist, and how agents get
 * their keys. A key is printed once, alone on the first line; only its hash is kept.
 */

import { StoreAuditLog } from '../audit/audit-log.ts';
import { parseDuration } from '../core/duration.ts';
import { systemClock } from '../core/index.ts';
import { AccountError, GATEWAY_ROLES, Accounts, type Account, type GatewayRole } from '../identity/accounts.ts';
import { Credentials } from '../identity/credentials.ts';
import type { Store } from '../store/index.ts';
import { optionsAndArguments, UsageError, withLocalStore } from './args.ts';
import { table } from './identity.ts';

const ADMIN = 'local-admin';

const SPEC = {
  config: { type: 'string' },
  role: { type: 'string', multiple: true },
  group: { type: 'string', multiple: true },
  'password-stdin': { type: 'boolean' },
  'max-duration': { type: 'string' },
  connection: { type: 'string', multiple: true },
  reason: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export async function runUsers(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  const { values, positionals } = optionsAndArguments(rest, SPEC);
  if (!values.config) throw new UsageError("users needs --config FILE (the gateway's store)");
  const name = positionals[0];
  return withLocalStore(values.config, async (store) => {
    const accounts = accountsOn(store);
    switch (verb) {
      case 'list': {
        const all = await accounts.list();
        if (values.json) process.stdout.write(`${JSON.stringify(all)}\n`);
        else process.stdout.write(table(['NAME', 'KIND', 'ROLES', 'GROUPS', 'STATE'], all.map(row)));
        return 0;
      }
      case 'create': {
        if (!name) throw new UsageError('users create needs a NAME');
        const password = values['password-stdin'] ? (await readStdin()).replace(/\r?\n$/, '') : undefined;
        const account = await call(() =>
          accounts.createUser({ name, ...(password ? { password } : {}), roles: roles(values.role), groups: values.group ?? [] }, ADMIN),
        );
        process.stdout.write(values.json ? `${JSON.stringify(account)}\n` : `created user ${account.name} (${account.roles.join(', ')})\n`);
        return 0;
      }
      case 'set-password': {
        if (!name || !values['password-stdin']) throw new UsageError('users set-password NAME --password-stdin');
        await call(async () => accounts.setPassword(name, (await readStdin()).replace(/\r?\n$/, ''), ADMIN));
        process.stdout.write(`password of ${name} set\n`);
        return 0;
      }
      case 'roles': {
        if (!name) throw new UsageError('users roles NAME --role ROLE [--role ROLE]');
        const account = await call(() => accounts.setRoles(name, roles(values.role), ADMIN));
        process.stdout.write(`${account.name}: ${account.roles.join(', ')}\n`);
        return 0;
      }
      case 'disable':
      case 'enable': {
        if (!name) throw new UsageError(`users ${verb} needs a NAME`);
        if (verb === 'disable') await call(() => accounts.disable(name, ADMIN, values.reason));
        else await call(() => accounts.enable(name, ADMIN));
        process.stdout.write(
          verb === 'disable' ? `disabled ${name}; its grants are revoked and its sessions end within seconds\n` : `enabled ${name}\n`,
        );
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
  if (!values.config) throw new UsageError("service-accounts needs --config FILE (the gateway's store)");
  const name = positionals[0];
  return withLocalStore(values.config, async (store) => {
    const accounts = accountsOn(store);
    switch (verb) {
      case 'create': {
        if (!name) throw new UsageError('service-accounts create needs a NAME');
        const created = await call(() =>
          accounts.createServiceAccount(
            {
              name,
              roles: roles(values.role),
              ...(values['max-duration'] ? { maxGrantMs: parseDuration(values['max-duration']) } : {}),
              ...(values.connection ? { connections: values.connection } : {}),
            },
            ADMIN,
          ),
        );
        printKey(created.key, `service account ${created.account.name}: keep this key secret; it is shown once`, values.json);
        return 0;
      }
      case 'rotate': {
        if (!name) throw new UsageError('service-accounts rotate needs a NAME');
        printKey(await call(() => accounts.rotateKey(name, ADMIN)), `new key for ${name}; the old one no longer works`, values.json);
        return 0;
      }
      case 'disable': {
        if (!name) throw new UsageError('service-accounts disable needs a NAME');
        await call(() => accounts.disable(name, ADMIN, values.reason));
        process.stdout.write(`disabled ${name}; its grants are revoked and its sessions end within seconds\n`);
        return 0;
      }
      case 'list': {
        const all = (await accounts.list()).filter((a) => a.kind === 'service-account');
        if (values.json) process.stdout.write(`${JSON.stringify(all)}\n`);
        else process.stdout.write(table(['NAME', 'KIND', 'ROLES', 'GROUPS', 'STATE'], all.map(row)));
        return 0;
      }
      default:
        throw new UsageError(
          verb ? `unknown service-accounts verb "${verb}"` : 'service-accounts needs a verb: create, rotate, disable, list',
        );
    }
  });
}

function accountsOn(store: Store): Accounts {
  const audit = new StoreAuditLog(store, systemClock);
  return new Accounts(store, systemClock, audit, new Credentials(store, systemClock, audit));
}

function roles(given: readonly string[] | undefined): GatewayRole[] {
  const list = given ?? ['user'];
  for (const role of list) {
    if (!(GATEWAY_ROLES as readonly string[]).includes(role))
      throw new UsageError(`unknown role "${role}" (roles: ${GATEWAY_ROLES.join(', ')})`);
  }
  return list as GatewayRole[];
}

async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof AccountError) throw new UsageError(error.message);
    throw error;
  }
}

function row(a: Account): string[] {
  return [a.name, a.kind, a.roles.join(','), a.groups.join(','), a.disabledAt === undefined ? 'enabled' : 'disabled'];
}

function printKey(key: string, note: string, json: boolean | undefined): void {
  if (json) process.stdout.write(`${JSON.stringify({ key })}\n`);
  else process.stdout.write(`${key}\n${note}\n`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
