/**
 * A private, throwaway PostgreSQL cluster for integration tests that need things the
 * machine's shared PostgreSQL (127.0.0.1:5432, trust, no TLS) must not be changed to do:
 * TLS with our own certificate, SCRAM / md5 / cleartext password users.
 *
 * Guarantees: the cluster lives in a fresh temp folder, listens on a free port on
 * 127.0.0.1 only, and `stop()` shuts it down (immediate mode) and deletes the folder. If
 * the test process exits without calling `stop()`, an exit hook does the same.
 * pg_hba: the superuser `postgres` is trusted over the Unix socket and TCP; each listed
 * user gets `host all <name> 127.0.0.1/32 <method>` (TLS and plaintext), in order.
 *
 * Limits: needs the PostgreSQL server binaries (/usr/lib/postgresql/<v>/bin, or PG_BIN).
 * PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` OS
 * user via `runuser`. Durability is switched off (fsync=off) for speed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chown, chmod, mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './ports.ts';

const run = promisify(execFile);

export interface PrivatePostgresUser {
  name: string;
  password: string;
  method: 'scram-sha-256' | 'md5' | 'password';
}

export interface PrivatePostgresOptions {
  /** Server certificate and key (PEM); when given, ssl=on. */
  tls?: { cert: string; key: string };
  users?: PrivatePostgresUser[];
  /** Extra pg_hba.conf lines, placed before the per-user lines (first match wins). */
  hba?: string[];
}

export interface PrivatePostgres {
  host: '127.0.0.1';
  port: number;
  /** Trusted over TCP from 127.0.0.1, no password. */
  superuser: string;
  /** Server major version, e.g. 15. */
  version: number;
  dataDir: string;
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';

function serverBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) throw new Error('PostgreSQL server binaries not found; set PG_BIN');
  return join(root, versions[0], 'bin');
}

export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const bin = serverBinDir();
  const asRoot = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root: run its tools as the postgres OS user.
  const command = (tool: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args];

  const base = await mkdtemp(join(tmpdir(), 'drawbridge-pg-'));
  const dataDir = join(base, 'data');
  const logFile = join(base, 'postgres.log');
  const pgCtl = (args: string[]) => {
    const [file, argv] = command('pg_ctl', args);
    return run(file, argv, { cwd: base });
  };
  let started = false;
  const cleanupSync = () => {
    if (started) {
      const [file, argv] = command('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      try {
        execFileSync(file, argv, { cwd: base, stdio: 'ignore' });
      } catch {
        // already stopped
      }
    }
    rmSync(base, { recursive: true, force: true });
  };
  process.once('exit', cleanupSync);

  try {
    const owner = asRoot
      ? {
          uid: Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
          gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
        }
      : undefined;
    if (owner) await chown(base, owner.uid, owner.gid);
    const [initdb, initArgs] = command('initdb', [
      '-D',
      dataDir,
      '-U',
      SUPERUSER,
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    await run(initdb, initArgs, { cwd: base });

    const conf: string[] = [
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${base}'`,
      "password_encryption = 'scram-sha-256'",
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 50',
      "shared_buffers = '16MB'",
    ];
    if (options.tls) {
      const write = async (name: string, text: string) => {
        const path = join(dataDir, name);
        await writeFile(path, text, { mode: 0o600 });
        // PostgreSQL insists that the key belongs to it and is not group/world readable.
        if (owner) await chown(path, owner.uid, owner.gid);
        await chmod(path, 0o600);
      };
      await write('server.crt', options.tls.cert);
      await write('server.key', options.tls.key);
      conf.push('ssl = on', "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'");
    }
    await appendFile(join(dataDir, 'postgresql.conf'), `\n# drawbridge private test cluster\n${conf.join('\n')}\n`);

    const users = options.users ?? [];
    for (const user of users) {
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(user.name)) throw new Error(`unsupported user name ${user.name}`);
    }
    const hba = [
      'local all all trust',
      `host all ${SUPERUSER} 127.0.0.1/32 trust`,
      ...(options.hba ?? []),
      ...users.map((u) => `host all "${u.name}" 127.0.0.1/32 ${u.method}`),
    ];
    await writeFile(join(dataDir, 'pg_hba.conf'), hba.join('\n') + '\n');

    // The free port may be taken between probing and binding: retry with another.
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      try {
        await pgCtl(['-D', dataDir, '-l', logFile, '-w', '-t', '30', '-o', `-p ${port}`, 'start']);
        started = true;
        break;
      } catch (error) {
        if (attempt >= 2) {
          const log = await run('tail', ['-n', '20', logFile]).then(
            (r) => r.stdout,
            () => '',
          );
          throw new Error(`private PostgreSQL did not start: ${(error as Error).message}\n${log}`);
        }
      }
    }

    const admin = new pg.Client({ host: base, port, user: SUPERUSER, database: 'postgres' });
    await admin.connect();
    let version: number;
    try {
      version = Number((await admin.query('SHOW server_version_num')).rows[0].server_version_num) / 10000;
      for (const user of users) {
        // md5 authentication needs an md5 verifier; scram and cleartext work with scram.
        await admin.query(`SET password_encryption = '${user.method === 'md5' ? 'md5' : 'scram-sha-256'}'`);
        await admin.query(`CREATE ROLE ${admin.escapeIdentifier(user.name)} LOGIN PASSWORD ${admin.escapeLiteral(user.password)}`);
      }
    } finally {
      await admin.end();
    }

    let stopped: Promise<void> | undefined;
    return {
      host: '127.0.0.1',
      port,
      superuser: SUPERUSER,
      version: Math.floor(version),
      dataDir,
      stop() {
        stopped ??= (async () => {
          process.removeListener('exit', cleanupSync);
          try {
            await pgCtl(['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
          } finally {
            started = false;
            await rm(base, { recursive: true, force: true });
          }
        })();
        return stopped;
      },
    };
  } catch (error) {
    process.removeListener('exit', cleanupSync);
    cleanupSync();
    throw error;
  }
}
