/**
 * The `drawbridge` command. Administrative commands take `--config FILE` and act on the
 * gateway's store directly, as the local administrator; a running gateway sees what they
 * change. Output is for people on a terminal, or JSON with `--json`.
 */

import { ConfigError, loadConfig } from '../config/index.ts';
import { startGateway, StartupError } from '../main.ts';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { Credentials, MintRefused } from '../identity/credentials.ts';
import { systemClock } from '../core/index.ts';
import { VERSION } from '../version.ts';
import { connectionStrings } from '../protocols/pg/connection-strings.ts';
import { runAccess } from './access.ts';
import { runApprovals } from './approvals.ts';
import { runServiceAccounts, runUsers } from './accounts.ts';
import { runAudit } from './audit.ts';
import { runSessions } from './sessions.ts';
import { connections, explainProblem, login, logout, whoami } from './identity.ts';
import { options, UsageError, withLocalStore } from './args.ts';
import { parseDuration } from '../core/duration.ts';

const USAGE = `drawbridge ${VERSION}: just-in-time, inspected, recorded access to databases

Usage:
  drawbridge start [--config drawbridge.yaml]   run the gateway
  drawbridge demo                                run the gateway in front of a demo database
  drawbridge grant --config FILE --principal NAME --connection NAME [--ttl 15m] [--reason TEXT] [--json]
                                                 mint a short-lived credential (printed alone on the first line)

Against a running gateway (--gateway URL, default http://127.0.0.1:7070):
  drawbridge login [--browser]                     log in through the gateway's OIDC provider (device flow, or the browser)
  drawbridge login --user NAME [--password-stdin]  log in with a local account (session saved, 0600)
  drawbridge logout | whoami | connections
  drawbridge access request CONNECTION --reason TEXT [--duration 30m] [--plan plan.yaml] [--json]
                                                 a short-lived credential, with psql/JDBC/PG* strings
  drawbridge access finish PLAN_ID [--json]        your plan is done: its grant ends (one still waiting is withdrawn)
  drawbridge access credential REQUEST_ID [--json]
                                                 the credential of your approved access request (once)
  drawbridge access list [--principal NAME] [--all] [--json]
  drawbridge access revoke GRANT_ID | --principal NAME [--reason TEXT]
  drawbridge access review [--since 30d|DATE] [--until DATE] [--principal NAME] [--connection NAME] [--unused] [--json]
                                                 who can reach what, what they were granted and used; rights never used
                                                 are flagged (admin, auditor)
  drawbridge access review certify PRINCIPAL CONNECTION --note TEXT | revoke PRINCIPAL CONNECTION --note TEXT [--json]
                                                 keep (admin, auditor) or take away (admin: live grants end) the access
  drawbridge approvals list [--status STATUS | --all] [--limit 50] [--before CURSOR] [--watch] [--json]
                                                 pending approvals (held statements, access requests); --watch follows
                                                 requests and decisions as they happen
  drawbridge approvals show ID [--json]
  drawbridge approvals approve ID [--reason TEXT] | deny ID --reason TEXT [--json]
  drawbridge mcp                                   the MCP server for AI agents on stdio (tools: list_connections,
                                                 request_access, describe_connection, query, approval_status, finish_plan)
  Agents set DRAWBRIDGE_TOKEN to a service-account key or an OIDC access token instead of logging in.

On the gateway's host, as the local administrator (--config FILE acts on its store; users and
service-accounts also work without it, through the API, for a logged-in admin):
  drawbridge access list --config FILE [--principal NAME] [--connection NAME] [--all] [--json]
  drawbridge access revoke GRANT_ID | --principal NAME --config FILE [--reason TEXT] [--json]
                                                 end grants now; their live sessions end within seconds
  drawbridge access review [certify|revoke PRINCIPAL CONNECTION --note TEXT] --config FILE [...]
                                                 the access review on the store, decisions as local-admin
  drawbridge users list | create NAME [--role ROLE]... [--group G]... [--password-stdin] | set-password NAME --password-stdin
                 | roles NAME --role ROLE... | disable NAME [--reason TEXT] | enable NAME   --config FILE
  drawbridge service-accounts create NAME [--max-grant 1h] [--connections a,b] | rotate NAME | disable NAME | enable NAME
                                                 --config FILE; a key is printed once, alone on the first line
  drawbridge service-accounts list | show NAME [--since 30d|DATE] [--json]   --config FILE
                                                 limits, key, last use; show: grants, sessions, statements, refusals and
                                                 connections used in the window
  drawbridge service-accounts limits NAME [--max-grant 1h|none] [--connections a,b|any] [--json]   --config FILE
                                                 change its limits; live grants beyond the new ones are revoked
  drawbridge policy check FILE...                validate Cedar policy files against the gateway's schema
  drawbridge policy default-pack                 print the shipped default pack (a start for your own policy file)
  drawbridge policy test --connection NAME --principal NAME [--agent] [--group G]... --sql "STATEMENT" [--policy FILE]... [--json]
                                                 the verdict, the deciding policies and the classification (default pack without --policy)
  drawbridge sessions list --config FILE [--principal NAME] [--connection NAME] [--since 7d|DATE] [--limit 50] [--before CURSOR] [--json]
  drawbridge sessions show SESSION --config FILE [--json]       a session and its statements: outcome, time, rows, errors
  drawbridge sessions replay SESSION --config FILE [--pace] [--rows 10]
                                                 the session as its client saw it: each statement, its answer, its first rows
  drawbridge sessions prune --config FILE [--older-than 30d] [--dry-run] [--json]
                                                 delete the recordings past recording.retention (or --older-than) now;
                                                 live sessions and the audit log are kept
  drawbridge audit verify --config FILE [--public-key FILE]... [--threads N] [--json]
                                                 prove that no audit record was edited, removed, reordered or cut off
                                                 (exit 1 naming the first record that breaks; a long log is verified
                                                 in N parts side by side, by default one a core, at most 8)
  drawbridge audit export --config FILE [--since 7d|DATE] [--until DATE] [--format jsonl] [--output FILE]
                                                 the audit log as JSON lines, with each record's hashes, for a SIEM
  drawbridge version
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest);
      case 'demo':
        // Loaded on demand: the embedded demo database is large and only `demo` needs it.
        return await (await import('./demo.ts')).runDemo(rest);
      case 'grant':
        return await grant(rest);
      case 'access':
        return await runAccess(rest);
      case 'approvals':
        return await runApprovals(rest);
      case 'login':
        return await login(rest);
      case 'logout':
        return await logout(rest);
      case 'whoami':
        return await whoami(rest);
      case 'connections':
        return await connections(rest);
      case 'users':
        return await runUsers(rest);
      case 'policy':
        // Loaded on demand: the SQL parser and the policy engine are WebAssembly.
        return await (await import('./policy.ts')).runPolicy(rest);
      case 'mcp':
        return await (await import('./mcp.ts')).runMcp(rest);
      case 'service-accounts':
        return await runServiceAccounts(rest);
      case 'audit':
        return await runAudit(rest);
      case 'sessions':
        return await runSessions(rest);
      case 'version':
      case '--version':
        process.stdout.write(`${VERSION}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    const problem = explainProblem(error);
    if (problem !== undefined) return problem;
    if (error instanceof StartupError) {
      process.stderr.write(`drawbridge: ${error.message}\n`);
      return 1;
    }
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof RangeError || error instanceof MintRefused) {
      process.stderr.write(`drawbridge: ${error.message}\n${error instanceof UsageError ? `\n${USAGE}` : ''}`);
      return 2;
    }
    throw error;
  }
}

async function start(args: readonly string[]): Promise<number> {
  const values = options(args, { config: { type: 'string' } });
  const config = await loadConfig(values.config ?? 'drawbridge.yaml');
  const gateway = await startGateway(config);
  // SIGHUP: read the policy files now (the gateway also looks at them every second).
  const reload = () => void gateway.reloadPolicy();
  process.on('SIGHUP', reload);
  await untilSignal();
  process.off('SIGHUP', reload);
  await gateway.close();
  return 0;
}

export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

async function grant(args: readonly string[]): Promise<number> {
  const values = options(args, {
    config: { type: 'string' },
    principal: { type: 'string' },
    connection: { type: 'string' },
    ttl: { type: 'string' },
    reason: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.config) throw new UsageError('grant needs --config FILE');
  if (!values.principal) throw new UsageError('grant needs --principal NAME');
  if (!values.connection) throw new UsageError('grant needs --connection NAME');
  const ttlMs = parseDuration(values.ttl ?? '15m');
  const { config: configFile, principal } = values;
  await withLocalStore(configFile, async (store, config) => {
    const connection = config.connections.find((candidate) => candidate.name === values.connection);
    if (!connection) throw new UsageError(`connection "${values.connection}" is not in ${configFile}`);
    const minted = await new Credentials(store, systemClock, new StoreAuditLog(store, systemClock)).mint({
      principal,
      connection: connection.name,
      ttlMs,
      grantedBy: 'local-admin',
      reason: values.reason,
    });
    const listen = config.listen.postgres;
    const uri = listen && connectionStrings(listen, principal, connection.name, minted.credential).uri;
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ credential: minted.credential, grant: minted.grantId, expiresAt: new Date(minted.expiresAt).toISOString(), uri })}\n`,
      );
    } else {
      process.stdout.write(`${minted.credential}\n`);
      process.stdout.write(
        `grant ${minted.grantId} for ${principal} on ${connection.name}, expires ${new Date(minted.expiresAt).toISOString()}\n`,
      );
      if (uri) process.stdout.write(`psql "${uri}?password=${minted.credential}"\n`);
    }
  });
  return 0;
}
