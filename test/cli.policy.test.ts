/** `drawbridge policy check` and `policy test`, as an administrator runs them. */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

let dir: string;

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, ['bin/drawbridge.js', ...args], { timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-policy-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('drawbridge policy', () => {
  test('test: the default pack refuses DROP TABLE, names the policy, and exits 1', async () => {
    const result = await cli('policy', 'test', '--connection', 'orders-db', '--principal', 'alice', '--sql', 'DROP TABLE orders');
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^1\. drop table: deny by "no-destructive-ddl": DROP TABLE is not allowed on orders-db$/m);
    assert.match(result.stdout, /^verdict: refused$/m);
  });

  test('test: a look-alike is allowed, with its classification', async () => {
    const result = await cli(
      'policy',
      'test',
      '--connection',
      'orders-db',
      '--principal',
      'alice',
      '--sql',
      "SELECT 'DROP TABLE x' FROM orders",
      '--json',
    );
    assert.equal(result.code, 0, result.stderr);
    const body = JSON.parse(result.stdout);
    assert.equal(body.verdict.outcome, 'allow');
    assert.deepEqual(body.classification.statements[0].tablesRead, ['orders']);
  });

  test('test and check with a policy file of our own', async () => {
    const file = join(dir, 'read-only.cedar');
    await writeFile(
      file,
      [
        'permit (principal, action in Drawbridge::Action::"sql:read", resource);',
        '@id("read-only") @reason("this connection is read-only")',
        'forbid (principal, action in Drawbridge::Action::"sql:write", resource);',
        '',
      ].join('\n'),
    );
    assert.equal((await cli('policy', 'check', file)).code, 0);
    const write = await cli(
      'policy',
      'test',
      '--connection',
      'reports',
      '--principal',
      'bob',
      '--policy',
      file,
      '--sql',
      'UPDATE t SET a = 1 WHERE id = 2',
    );
    assert.match(write.stdout, /deny by "read-only": this connection is read-only on reports/);
    const bad = join(dir, 'bad.cedar');
    await writeFile(bad, 'permit (principal, action, resource) when { context.no_such_thing };\n');
    const checked = await cli('policy', 'check', bad);
    assert.equal(checked.code, 1);
    assert.match(checked.stderr, new RegExp(`${bad.replaceAll('/', '\\/')}:1:`));
  });
});
