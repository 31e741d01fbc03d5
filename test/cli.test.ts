/**
 * The `drawbridge` command as a user runs it: a child process, its exit code and what it
 * prints. The last test starts the gateway in front of the machine's PostgreSQL
 * (127.0.0.1:5432, trust) and logs in with a credential minted by `grant`.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { VERSION } from '../src/version.ts';
import { freePort } from './support/ports.ts';

const ROOT = resolve(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const BIN = join(ROOT, 'bin/drawbridge.js');
const CREDENTIAL = /^dbr_[A-Za-z0-9_-]{43}$/;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function spawnCli(args: readonly string[]): ChildProcess {
  return spawn(NODE, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
}

async function run(...args: string[]): Promise<Run> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

/** One request on its own connection, so no idle keep-alive socket outlives the gateway. */
async function getJson(url: string): Promise<unknown> {
  const request = get(url, { agent: false });
  const [response] = (await once(request, 'response')) as [IncomingMessage];
  let body = '';
  for await (const chunk of response.setEncoding('utf8')) body += chunk;
  assert.equal(response.statusCode, 200);
  return JSON.parse(body);
}

/** A gateway's drawbridge.yaml in `dir`, in front of the machine's PostgreSQL as `local`. */
async function writeGatewayConfig(dir: string, ports: { api: number; postgres: number }, name: string, store: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(
    file,
    [
      `store: sqlite:${join(dir, store)}`,
      'listen:',
      `  api: 127.0.0.1:${ports.api}`,
      `  postgres: 127.0.0.1:${ports.postgres}`,
      'log:',
      '  level: info',
      'connections:',
      '  - name: local',
      '    type: postgres',
      '    host: 127.0.0.1',
      '    port: 5432',
      '    database: postgres',
      '    user: postgres',
      '    tls: disable',
      '',
    ].join('\n'),
  );
  return file;
}

// Each test is its own child process; they share only the store, which allows concurrent writers.
describe('drawbridge CLI', { concurrency: 4 }, () => {
  let dir: string;
  let config: string;
  let ports: { api: number; postgres: number };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drawbridge-cli-'));
    ports = { api: await freePort(), postgres: await freePort() };
    config = await writeConfig('drawbridge.yaml', 'state.db');
    // Create the store before the tests run concurrently (see the migration race below).
    const first = await run('grant', '--config', config, '--principal', 'setup', '--connection', 'local');
    assert.equal(first.code, 0, first.stderr);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const writeConfig = (name: string, store: string) => writeGatewayConfig(dir, ports, name, store);

  it('without arguments prints the usage and exits 2', async () => {
    const result = await run();
    assert.equal(result.code, 2);
    assert.match(result.stdout, /^drawbridge .*\n\nUsage:\n/);
    assert.match(result.stdout, /drawbridge grant --config FILE/);
  });

  it('help prints the usage and exits 0', async () => {
    const result = await run('help');
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Usage:/);
  });

  it('version prints the version', async () => {
    const result = await run('version');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, `${VERSION}\n`);
  });

  it('an unknown command exits 2 and names it', async () => {
    const result = await run('frobnicate');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^drawbridge: unknown command "frobnicate"\n/);
    assert.match(result.stderr, /Usage:/);
  });

  it('grant without --config exits 2', async () => {
    const result = await run('grant', '--principal', 'alice', '--connection', 'local');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /grant needs --config FILE/);
    assert.equal(result.stdout, '');
  });

  it('grant with an unknown option exits 2', async () => {
    const result = await run('grant', '--config', config, '--principal', 'alice', '--connection', 'local', '--frob');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--frob/);
  });

  it('grant prints the credential alone on the first line, then what it is for', async () => {
    const result = await run('grant', '--config', config, '--principal', 'alice', '--connection', 'local', '--ttl', '5m');
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, CREDENTIAL);
    assert.match(lines[1]!, /^grant grt_\w+ for alice on local, expires \d{4}-\d\d-\d\dT/);
    assert.equal(lines[2], `psql "postgresql://alice@127.0.0.1:${ports.postgres}/local?password=${lines[0]}"`);
  });

  it('grant --json prints the credential, grant, expiry and URI', async () => {
    const before = Date.now();
    const result = await run('grant', '--config', config, '--principal', 'alice', '--connection', 'local', '--ttl', '1h', '--json');
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1);
    const output = JSON.parse(lines[0]!);
    assert.deepEqual(Object.keys(output).sort(), ['credential', 'expiresAt', 'grant', 'uri']);
    assert.match(output.credential, CREDENTIAL);
    assert.match(output.grant, /^grt_/);
    const expiresAt = Date.parse(output.expiresAt);
    assert.ok(expiresAt >= before + 3_600_000 && expiresAt <= Date.now() + 3_600_000, output.expiresAt);
    assert.equal(output.uri, `postgresql://alice@127.0.0.1:${ports.postgres}/local`);
  });

  it('grant for a connection the config does not name exits 2', async () => {
    const result = await run('grant', '--config', config, '--principal', 'alice', '--connection', 'elsewhere');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /connection "elsewhere" is not in /);
    assert.equal(result.stdout, '');
  });

  it('grant with a bad --ttl exits 2 before minting anything', async () => {
    for (const ttl of ['15', 'forever', '0s']) {
      const result = await run('grant', '--config', config, '--principal', 'alice', '--connection', 'local', '--ttl', ttl);
      assert.equal(result.code, 2, ttl);
      assert.match(result.stderr, /is not a duration/);
      assert.equal(result.stdout, '');
    }
  });

  it('grant with a ttl past the largest date exits 2 without printing a credential', async () => {
    // A store of its own: the grant this mints breaks later logins of its principal.
    const isolated = await writeConfig('isolated.yaml', 'isolated.db');
    const result = await run('grant', '--config', isolated, '--principal', 'alice', '--connection', 'local', '--ttl', '300000000d');
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /is not a duration/);
  });

  it('grants made at the same time on a fresh store all succeed', async () => {
    const fresh = await writeConfig('fresh.yaml', 'fresh.db');
    const results = await Promise.all(
      Array.from({ length: 4 }, () => run('grant', '--config', fresh, '--principal', 'alice', '--connection', 'local')),
    );
    for (const result of results) assert.equal(result.code, 0, result.stderr);
  });

  it('a bad config file exits 2 with file:line:col: path: reason', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, ['store: "sqlite::memory:"', 'postgres:', '  auth: md5', 'connections: []', ''].join('\n'));
    for (const args of [
      ['grant', '--config', bad, '--principal', 'alice', '--connection', 'local'],
      ['start', '--config', bad],
    ]) {
      const result = await run(...args);
      assert.equal(result.code, 2, args[0]);
      assert.equal(result.stderr, `drawbridge: ${bad}:3:9: postgres.auth: expected one of scram-sha-256, password, got "md5"\n`);
    }
  });

  it('a missing config file exits 2', async () => {
    const result = await run('grant', '--config', join(dir, 'missing.yaml'), '--principal', 'alice', '--connection', 'local');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /missing\.yaml: cannot read the config file \(ENOENT\)/);
  });

  it('start serves a client that logs in with a credential from grant, and SIGTERM stops it with exit 0', async () => {
    const gateway = spawnCli(['start', '--config', config]);
    let stdout = '';
    let stderr = '';
    gateway.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const closed = once(gateway, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      await new Promise<void>((resolve, reject) => {
        gateway.stdout!.setEncoding('utf8').on('data', (text: string) => {
          stdout += text;
          if (stdout.includes('drawbridge started')) resolve();
        });
        void closed.then(([code]) => reject(new Error(`gateway exited with ${code}: ${stderr}${stdout}`)));
      });
      const started = JSON.parse(stdout.split('\n').find((line) => line.includes('drawbridge started'))!);
      assert.equal(started.postgres, `127.0.0.1:${ports.postgres}`);
      assert.equal(started.api, `127.0.0.1:${ports.api}`);

      assert.deepEqual(await getJson(`http://127.0.0.1:${ports.api}/healthz`), { status: 'ok', version: VERSION });

      const minted = await run('grant', '--config', config, '--principal', 'alice', '--connection', 'local', '--json');
      assert.equal(minted.code, 0, minted.stderr);
      const { credential } = JSON.parse(minted.stdout);

      const client = new pg.Client({ host: '127.0.0.1', port: ports.postgres, user: 'alice', database: 'local', password: credential });
      await client.connect();
      try {
        const result = await client.query('select 1 as one');
        assert.deepEqual(result.rows, [{ one: 1 }]);
      } finally {
        await client.end();
      }

      // A credential is good only for the principal it was minted for.
      const refused = new pg.Client({ host: '127.0.0.1', port: ports.postgres, user: 'bob', database: 'local', password: credential });
      refused.on('error', () => {}); // the gateway closes the connection after the FATAL error
      await assert.rejects(refused.connect(), (error: Error & { code?: string }) => {
        assert.equal(error.code, '28P01');
        return true;
      });
    } finally {
      if (gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGTERM');
    }
    const [code, signal] = await closed;
    assert.equal(signal, null);
    assert.equal(code, 0, stderr);
  });
});

describe('drawbridge as a command', () => {
  it('runs node with --liftoff-only: compiling the SQL parser never takes V8 hundreds of MB', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-command-'));
    const ports = { api: await freePort(), postgres: await freePort() };
    const config = await writeGatewayConfig(dir, ports, 'drawbridge.yaml', 'state.db');
    // The file itself, as a shell or npm's link to it runs it: its first line names node and the flag.
    const env = { ...process.env, PATH: `${dirname(NODE)}:${process.env['PATH'] ?? ''}` };
    const gateway = spawn(BIN, ['start', '--config', config], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    gateway.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    gateway.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    const closed = once(gateway, 'close');
    try {
      const deadline = Date.now() + 30_000;
      while (!output.includes('drawbridge started')) {
        assert.equal(gateway.exitCode, null, output);
        assert.ok(Date.now() < deadline, `the gateway did not start within 30 s: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(readFileSync(`/proc/${gateway.pid}/cmdline`, 'utf8').split('\0').includes('--liftoff-only'));
      assert.doesNotMatch(output, /without --liftoff-only/);

      const minted = await run('grant', '--config', config, '--principal', 'alice', '--connection', 'local');
      assert.equal(minted.code, 0, minted.stderr);
      const client = new pg.Client({
        host: '127.0.0.1',
        port: ports.postgres,
        user: 'alice',
        database: 'local',
        password: minted.stdout.split('\n')[0],
      });
      await client.connect();
      try {
        // Each of another shape, so that each is parsed (the verdict cache keys on the shape).
        for (let i = 0; i < 300; i++) {
          const { rows } = await client.query(`select ${'1 + '.repeat(i % 40)}1 as c${i}, n from generate_series(1, ${(i % 17) + 1}) as n`);
          assert.equal(rows.length, (i % 17) + 1);
        }
      } finally {
        await client.end();
      }
      await new Promise((resolve) => setTimeout(resolve, 1000)); // a compilation under way has peaked by now
      const peak = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${gateway.pid}/status`, 'utf8'))![1]) * 1024;
      // With V8's optimising tier for WebAssembly, these statements take the gateway to about 750 MB
      // (the parser's compilation alone about 500 MB); without it, to about 190 MB.
      assert.ok(peak < 450 * 2 ** 20, `peak RSS ${Math.round(peak / 2 ** 20)} MB`);
    } finally {
      gateway.kill('SIGTERM');
      await closed;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
