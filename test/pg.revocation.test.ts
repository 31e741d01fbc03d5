/**
 * Grants end, and the sessions that use them end with them: at expiry, and when an
 * administrator revokes the grant or all of a principal's grants with the CLI, on the same
 * store the running gateway uses. The client sees a FATAL that says why; new logins with the
 * credential fail with 28P01; every step is an audit event.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { startTestGateway, type TestGateway } from './support/gateway.ts';

const run = promisify(execFile);
const NODE = process.execPath;

let gw: TestGateway;

before(async () => {
  gw = await startTestGateway();
});
after(async () => {
  await gw?.close();
});

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(NODE, ['bin/drawbridge.js', ...args], { timeout: 30_000 });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

async function mint(principal: string, ttlMs = 600_000): Promise<{ credential: string; grant: string }> {
  const minted = await gw.gateway.credentials.mint({ principal, connection: 'local', ttlMs, grantedBy: 'test' });
  return { credential: minted.credential, grant: minted.grantId };
}

async function session(principal: string, credential: string) {
  const client = new pg.Client({ host: gw.host, port: gw.pgPort, user: principal, database: 'local', password: credential });
  const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
  await client.connect();
  return { client, ended };
}

async function loginError(principal: string, credential: string): Promise<Error & { code?: string }> {
  const client = new pg.Client({ host: gw.host, port: gw.pgPort, user: principal, database: 'local', password: credential });
  try {
    await client.connect();
  } catch (error) {
    return error as Error & { code?: string };
  }
  await client.end();
  assert.fail('the login unexpectedly succeeded');
}

describe('revocation', () => {
  test('`drawbridge access revoke GRANT` ends the live session within 5 s with a FATAL that says why', async () => {
    const { credential, grant } = await mint('erin');
    const { client, ended } = await session('erin', credential);
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);

    const revokedAt = Date.now();
    const result = await cli('access', 'revoke', grant, '--config', gw.configFile, '--reason', 'INC-4411 closed');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`revoked ${grant}`));

    const error = await ended;
    assert.ok(Date.now() - revokedAt < 5000, `ended after ${Date.now() - revokedAt} ms`);
    assert.equal(error.code, '57P01');
    assert.equal(error.message, `terminating connection: access grant ${grant} was revoked by local-admin: INC-4411 closed`);

    const refused = await loginError('erin', credential);
    assert.equal(refused.code, '28P01');
  });

  test('`drawbridge access revoke --principal` ends every session of the principal, on every grant', async () => {
    const first = await mint('frank');
    const second = await mint('frank');
    const bystander = await mint('grace');
    const a = await session('frank', first.credential);
    const b = await session('frank', second.credential);
    const c = await session('grace', bystander.credential);

    const result = await cli('access', 'revoke', '--principal', 'frank', '--config', gw.configFile, '--json');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(new Set((JSON.parse(result.stdout) as { revoked: string[] }).revoked), new Set([first.grant, second.grant]));

    assert.equal((await a.ended).code, '57P01');
    assert.equal((await b.ended).code, '57P01');
    assert.deepEqual((await c.client.query('select 2 as two')).rows, [{ two: 2 }], 'another principal is untouched');
    await c.client.end();
  });

  test('revoking what is unknown or already revoked says so and exits 1', async () => {
    const { grant } = await mint('heidi');
    assert.equal((await cli('access', 'revoke', grant, '--config', gw.configFile)).code, 0);
    const again = await cli('access', 'revoke', grant, '--config', gw.configFile);
    assert.equal(again.code, 1);
    assert.match(again.stdout, /unknown, expired or already revoked/);
    const usage = await cli('access', 'revoke', '--config', gw.configFile);
    assert.equal(usage.code, 2);
  });

  test('`drawbridge access list` shows live grants, and with --all the revoked ones too', async () => {
    const { grant } = await mint('ivan');
    const live = await cli('access', 'list', '--config', gw.configFile, '--principal', 'ivan', '--json');
    assert.deepEqual(
      (JSON.parse(live.stdout) as { grant: string; state: string }[]).map((g) => [g.grant, g.state]),
      [[grant, 'live']],
    );
    await cli('access', 'revoke', grant, '--config', gw.configFile);
    const none = await cli('access', 'list', '--config', gw.configFile, '--principal', 'ivan');
    assert.equal(none.stdout, 'no live grants\n');
    const all = await cli('access', 'list', '--config', gw.configFile, '--principal', 'ivan', '--all');
    assert.match(all.stdout, /^GRANT +PRINCIPAL +CONNECTION +STATE/);
    assert.match(all.stdout, new RegExp(`${grant} +ivan +local +revoked`));
  });
});

describe('expiry', () => {
  test('a session ends when its grant expires, and the credential no longer logs in', async () => {
    const { credential, grant } = await mint('judy', 1500);
    const { client, ended } = await session('judy', credential);
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
    const error = await ended;
    assert.equal(error.code, '57P01');
    assert.equal(error.message, `terminating connection: access grant ${grant} expired`);
    assert.equal((await loginError('judy', credential)).code, '28P01');
    await gw.gateway.pollRevocations();
    const expired = await gw.gateway.store.listAudit({ subject: grant, action: 'grant.expired' });
    assert.equal(expired.length, 1, 'the expiry is on record, once');
    assert.equal(expired[0]?.details.principal, 'judy');
  });
});

describe('audit events', () => {
  test('issue, login, failed login, revocation and termination are on record', async () => {
    const { credential, grant } = await mint('mallory');
    const { ended } = await session('mallory', credential);
    await loginError('mallory', 'dbr_not-a-real-credential');
    await cli('access', 'revoke', grant, '--config', gw.configFile, '--reason', 'audit test');
    await ended;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const events = await gw.gateway.store.listAudit({ limit: 10_000 });
    const of = (action: string, subject?: string) =>
      events.filter((e) => e.action === action && (subject === undefined || e.subject === subject));
    assert.equal(of('grant.issued', grant).length, 1);
    assert.equal(of('grant.issued', grant)[0]?.details.principal, 'mallory');
    const revoked = of('grant.revoked', grant);
    assert.equal(revoked.length, 1);
    assert.equal(revoked[0]?.actor, 'local-admin');
    assert.equal(revoked[0]?.details.reason, 'audit test');
    const started = events.filter((e) => e.action === 'session.started' && e.details.grant === grant);
    assert.equal(started.length, 1);
    const terminated = of('session.terminated', started[0]?.subject);
    assert.equal(terminated.length, 1);
    assert.match(String(terminated[0]?.details.reason), /was revoked by local-admin: audit test/);
    const failed = events.filter((e) => e.action === 'login.failed' && e.actor === 'mallory');
    assert.ok(failed.length >= 1);
    assert.equal(failed[0]?.outcome, 'failure');
    assert.equal(failed[0]?.details.code, 'auth.failed');
  });
});
