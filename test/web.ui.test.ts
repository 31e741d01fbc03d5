/**
 * The web UI in a real browser: Debian's Chromium driven by playwright-core, against a gateway
 * started here (SQLite store, the default policy pack) in front of the machine's PostgreSQL (a
 * throwaway database with a table holding emails), and a real OIDC provider.
 *
 * What a person does, and sees:
 * - signs in with a local account (a wrong password first: the gateway's detail is shown), and
 *   sees in the navigation only the pages their roles may use;
 * - asks for access to a connection, gets the credential once with psql, JDBC and PG* strings,
 *   and connects with it through the gateway with a real client (`pg`), so there is a session;
 * - watches the grant's expiry count down, opens the session list and the replay of that
 *   session (the statement, its outcome, the rows, the email masked as the client got it);
 * - sees the audit log verified; tests statements on the policy page (allowed, and a DROP denied
 *   by the default pack's policy); revokes the grant, after which the credential stops working;
 * - is sent back to sign-in when the session dies under them (401), and signs out;
 * - signs in with the OIDC provider: authorization code with PKCE in the browser, redirected back
 *   to /auth/callback.
 * No page breaks the Content-Security-Policy, and nothing is kept in localStorage.
 *
 * Screenshots of the main pages go to test-results/screenshots/ (git ignores it); the folder is
 * printed. Chromium is /usr/bin/chromium (or $CHROMIUM); without it the suite fails at once
 * saying so. The UI must be built (`npm run build`, which `npm test` runs first).
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser, newPage as openPage, shot, signIn as signInAt } from './support/browser.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { gatewayOidcYaml, startOidcProvider, UI_CLIENT_ID, type TestOidcProvider } from './support/oidc-provider.ts';
import { asAdmin, createDatabase, eventually, type ThrowawayDatabase } from './support/pg-db.ts';

const PASSWORD = 'a long enough password';
const EMAIL = 'grace.hopper@example.com';

let db: ThrowawayDatabase;
let idp: TestOidcProvider;
let gw: TestGateway;
let browser: Browser;
let ui: string;
/** Console errors of every page (a CSP violation is one). */
const consoleErrors: string[] = [];

before(async () => {
  db = await createDatabase('webui');
  await asAdmin(async (client) => {
    await client.query('CREATE TABLE customers (id int PRIMARY KEY, name text, email text)');
    await client.query(`INSERT INTO customers VALUES (1, 'Grace', '${EMAIL}'), (2, 'Alan', 'alan.turing@example.org')`);
  }, db.name);
  idp = await startOidcProvider();
  gw = await startTestGateway({
    connections: [
      { name: 'orders', database: db.name, access: { maxDurationMs: 4 * 3_600_000, approval: 'none' } },
      { name: 'payments', database: db.name, access: { maxDurationMs: 3_600_000, approval: 'required' } },
    ],
    policies: 'default-pack',
    extraYaml: gatewayOidcYaml(idp, { clientId: UI_CLIENT_ID }),
  });
  ui = `http://127.0.0.1:${gw.apiPort}`;
  await idp.allowUiRedirect(`${ui}/auth/callback`);
  await gw.gateway.accounts.createUser({ name: 'ada', password: PASSWORD, roles: ['admin'] }, 'test');
  await gw.gateway.accounts.createUser({ name: 'uma', password: PASSWORD, roles: ['user'] }, 'test');
  // Fails at once, saying why, without Chromium or a built UI.
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gw?.close();
  await idp?.close();
  await db?.drop();
});

const newPage = (): Promise<{ context: BrowserContext; page: Page }> => openPage(browser, consoleErrors);

const signIn = (page: Page, name: string): Promise<void> => signInAt(page, ui, name, PASSWORD);

const navLinks = (page: Page) => page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();

describe('the web UI in Chromium', () => {
  let page: Page;
  let context: BrowserContext;
  let credential = '';

  before(async () => {
    ({ page, context } = await newPage());
  });

  after(async () => {
    await context?.close();
  });

  test('sign in with a local account: a wrong password shows the gateway detail, then the right one opens My access', async () => {
    await page.goto(`${ui}/sessions`);
    // Not signed in: the sign-in page, which offers the OIDC provider too.
    await page.getByRole('heading', { name: 'Sign in to Drawbridge' }).waitFor();
    assert.match(page.url(), /\/signin\?next=%2Fsessions$/);
    await page.getByRole('button', { name: `Sign in with 127.0.0.1:${idp.port}` }).waitFor();
    await shot(page, '01-sign-in');
    await page.getByLabel('User name').fill('ada');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong user name or password' }).waitFor();
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Password').press('Enter');
    // Back where the person was going.
    await page.getByRole('heading', { name: 'Sessions' }).waitFor();
    assert.deepEqual(await navLinks(page), ['My access', 'Approvals', 'Sessions', 'Audit log', 'Policies', 'Access review']);
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('drawbridge.session'), local: localStorage.length }));
    assert.match(stored.session ?? '', /"token":"dbr_ses_/);
    assert.equal(stored.local, 0);
  });

  test('request access: the credential once, with psql, JDBC and PG* strings; a real client connects with it', async () => {
    await page.getByRole('link', { name: 'My access' }).click();
    await page.getByRole('heading', { name: 'My access' }).waitFor();
    await page
      .getByRole('row', { name: /orders/ })
      .getByText('granted at once')
      .waitFor();
    await page
      .getByRole('row', { name: /payments/ })
      .getByText('needs approval')
      .waitFor();
    await shot(page, '02-access');
    await page.getByRole('button', { name: 'Request access to orders' }).click();
    await page.getByLabel(/Reason/).fill('INC-4411 refund check');
    await page.getByLabel(/For how long/).selectOption('30m');
    await page.getByRole('button', { name: 'Request access', exact: true }).click();
    await page.getByRole('heading', { name: 'Access granted to orders' }).waitFor();
    credential = await page.getByLabel('Password', { exact: true }).inputValue();
    assert.match(credential, /^dbr_/);
    const psql = await page.getByLabel('psql', { exact: true }).inputValue();
    assert.equal(psql, `psql 'postgresql://ada@127.0.0.1:${gw.pgPort}/orders?password=${credential}'`);
    assert.match(
      await page.getByLabel('JDBC URL', { exact: true }).inputValue(),
      new RegExp(`^jdbc:postgresql://127\\.0\\.0\\.1:${gw.pgPort}/orders\\?user=ada&password=`),
    );
    const env = await page.getByLabel('Environment (PG* variables)', { exact: true }).inputValue();
    assert.match(env, new RegExp(`export PGPORT='${gw.pgPort}'`));
    assert.match(env, /export PGPASSWORD='dbr_/);
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    await page.getByRole('button', { name: 'Copy psql' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), psql);
    await shot(page, '03-credential');

    // The credential, as the UI showed it, in a real client.
    const client = new pg.Client({ host: '127.0.0.1', port: gw.pgPort, user: 'ada', database: 'orders', password: credential });
    await client.connect();
    const rows = await client.query('select id, name, email from customers order by id');
    assert.equal(rows.rows.length, 2);
    await client.end();
    await eventually(
      () => gw.gateway.store.listSessions({ principal: 'ada' }),
      (s) => s.length === 1 && s[0]!.endedAt !== undefined,
      10_000,
    );

    await page.getByRole('button', { name: 'Done, I have copied it' }).click();
    const grant = page.getByRole('row', { name: /orders/ }).filter({ has: page.locator('time.countdown') });
    const before = await grant.locator('time.countdown').textContent();
    assert.match(before ?? '', /^(29|30):\d\d$/);
    await page.waitForTimeout(1200);
    assert.notEqual(await grant.locator('time.countdown').textContent(), before, 'the expiry counts down');
  });

  test('sessions: the list, then the replay with the statement, its outcome and the masked rows', async () => {
    await page.getByRole('link', { name: 'Sessions' }).click();
    await page.getByRole('heading', { name: 'Sessions' }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'orders' }).filter({ hasText: 'ada' });
    await row.waitFor();
    await shot(page, '04-sessions');
    // Filters go to the URL and to the API.
    await page.getByLabel('Connection').selectOption('payments');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByText('No sessions match.').waitFor();
    assert.match(page.url(), /\/sessions\?connection=payments$/);
    await page.goBack();
    await row.getByRole('link').click();
    await page.getByRole('heading', { name: 'Session replay' }).waitFor();
    const statement = page
      .getByRole('listitem', { name: /Statement \d+: ok/ })
      .filter({ hasText: 'select id, name, email from customers' });
    await statement.waitFor();
    await statement.getByText('2 rows').waitFor();
    const cells = await statement.locator('.result td').allTextContents();
    assert.ok(cells.includes('Grace'), cells.join(' | '));
    assert.ok(!cells.includes(EMAIL), `the email is masked in the recording: ${cells.join(' | ')}`);
    assert.ok(
      cells.some((c) => /\*/.test(c) && c.endsWith('.com')),
      `a masked email: ${cells.join(' | ')}`,
    );
    await shot(page, '05-session-replay');
    // Play shows the statements again from the start, at their pace.
    await page.getByRole('button', { name: 'Play from the start' }).click();
    await page.getByText(/\d+ of \d+ shown/).waitFor();
    await page.getByRole('button', { name: 'Play from the start' }).waitFor({ timeout: 15_000 });
  });

  test('audit log: verified, with the records of what just happened', async () => {
    // The page takes the gateway's last verification if it is recent; "Verify again" reads the log now.
    const verifications: string[] = [];
    const asked = (request: { url(): string }) => {
      const url = new URL(request.url());
      if (url.pathname === '/api/audit/verify') verifications.push(url.search);
    };
    page.on('request', asked);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page
      .getByRole('status')
      .filter({ hasText: /Audit log verified at .+: \d+ records/ })
      .waitFor();
    assert.deepEqual(verifications, ['?recent=1h']);
    await page.getByRole('cell', { name: 'grant.issued' }).first().waitFor();
    await shot(page, '06-audit');
    await page.getByRole('button', { name: 'Verify again' }).click();
    await eventually(
      async () => verifications,
      (v) => v.length === 2,
    );
    assert.equal(verifications[1], '');
    await page.getByRole('status').filter({ hasText: 'Audit log verified at' }).waitFor();
    page.off('request', asked);
    await page.getByLabel('Action').fill('login.failed');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('cell', { name: 'login.failed' }).first().waitFor();
    // The filtered page replaces the first one when it arrives (the first held a login.failed too).
    await page.getByRole('cell', { name: 'grant.issued' }).first().waitFor({ state: 'detached' });
    assert.equal(await page.getByRole('cell', { name: 'grant.issued' }).count(), 0);
  });

  test('policy test page: a read is allowed, a DROP is denied by the default pack, with the classification', async () => {
    await page.getByRole('link', { name: 'Policies' }).click();
    await page.getByRole('heading', { name: 'Policies', exact: true }).waitFor();
    await page.getByText('default-pack.cedar').waitFor();
    await page.getByLabel('Connection').selectOption('orders');
    await page.getByLabel(/^SQL/).fill('select * from customers');
    await page.getByRole('button', { name: 'Test' }).click();
    await page.getByRole('heading', { name: /Verdict: allowed/ }).waitFor();
    await page.getByLabel(/^SQL/).fill('DROP TABLE customers');
    await page.getByLabel(/^SQL/).press('Control+Enter');
    const verdict = page.getByRole('heading', { name: /Verdict: denied/ });
    await verdict.waitFor();
    assert.match((await verdict.textContent()) ?? '', /no-destructive-ddl/);
    await shot(page, '07-policies');
    // A refusal shows the gateway's detail.
    await page.getByLabel('Principal').fill('');
    await page.getByLabel('Principal').fill('x'.repeat(64));
    await page.getByRole('button', { name: 'Test' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: /principal/ })
      .waitFor();
  });

  test('a long session: the replay loads a thousand statements, and the next ones when asked', async () => {
    const credential = await gw.mint('bob', 'orders');
    const client = new pg.Client({ host: '127.0.0.1', port: gw.pgPort, user: 'bob', database: 'orders', password: credential });
    await client.connect();
    for (let i = 1; i <= 1001; i++) await client.query(`select ${i} as n`);
    await client.query('select count(*) from customers');
    await client.end();
    const [session] = await eventually(
      () => gw.gateway.store.listSessions({ principal: 'bob' }),
      (s) => s.length === 1 && s[0]!.endedAt !== undefined,
      10_000,
    );
    await page.goto(`${ui}/sessions/${session!.id}`);
    await page.getByRole('heading', { name: 'Session replay' }).waitFor();
    await page.getByText('1000 of 1000 shown').waitFor();
    await page.getByText('loaded, more to load').waitFor();
    const last = page.getByRole('listitem', { name: /Statement 1002: ok/ });
    assert.equal(await last.count(), 0, 'the last statement is on the next page');
    await page.getByRole('button', { name: 'Load the next 1000 statements' }).click();
    await last.getByText('select count(*) from customers').waitFor();
    await page.getByText('1002 of 1002 shown').waitFor();
    assert.equal(await page.getByRole('button', { name: /Load the next/ }).count(), 0, 'nothing more to load');
    assert.equal(await page.getByText('loaded, more to load').count(), 0);
  });

  test('revoke my grant: it leaves the list and the credential stops working', async () => {
    await page.getByRole('link', { name: 'My access' }).click();
    const grant = page.getByRole('row', { name: /orders/ }).filter({ has: page.locator('time.countdown') });
    await grant.getByRole('button', { name: 'Revoke the grant on orders' }).click();
    await grant.getByPlaceholder('why (optional)').fill('done');
    await grant.getByRole('button', { name: 'Revoke now' }).click();
    await page.getByText('You hold no live grant.').waitFor();
    const client = new pg.Client({ host: '127.0.0.1', port: gw.pgPort, user: 'ada', database: 'orders', password: credential });
    await assert.rejects(client.connect());
  });

  test('a session that dies under the page (401) leads back to sign-in with the reason; sign out ends it', async () => {
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('drawbridge.session')!).token as string);
    // Ended elsewhere (another tab's sign-out): the token and its refresh family are dead.
    const out = await fetch(`${ui}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(out.status, 204);
    await page.getByRole('link', { name: 'Sessions' }).click();
    await page.getByRole('heading', { name: 'Sign in to Drawbridge' }).waitFor();
    await page.getByText('Your session has ended. Sign in again.').waitFor();
    await signIn(page, 'ada');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Drawbridge' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('drawbridge.session')), null);
    await page.goto(`${ui}/audit`);
    await page.getByRole('heading', { name: 'Sign in to Drawbridge' }).waitFor();
  });
});

test('a user sees only the pages of their roles', async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, 'uma');
    assert.deepEqual(await navLinks(page), ['My access', 'Approvals', 'Sessions']);
    await page.goto(`${ui}/audit`);
    await page.getByRole('heading', { name: 'Not for your roles' }).waitFor();
    // The sessions filter has no principal field for someone who sees only their own.
    await page.getByRole('link', { name: 'Sessions' }).click();
    await page.getByText('You see your own sessions.').waitFor();
    assert.equal(await page.getByLabel('Principal').count(), 0);
  } finally {
    await context.close();
  }
});

test('sign in with the OIDC provider: authorization code with PKCE in the browser, back to /auth/callback', async () => {
  const { context, page } = await newPage();
  try {
    await page.goto(`${ui}/policies`);
    await page.getByRole('button', { name: `Sign in with 127.0.0.1:${idp.port}` }).click();
    // The provider's (stand-in) login page: the person types who they are.
    await page.getByLabel('Subject').fill('user-alice');
    await page.getByRole('button', { name: 'Continue' }).click();
    // Alice is in the provider's group dba, which the gateway maps to admin; back where she was going.
    await page.getByRole('heading', { name: 'Policies', exact: true }).waitFor({ timeout: 20_000 });
    assert.match((await page.locator('.me').textContent()) ?? '', /alice/);
    assert.equal(new URL(page.url()).pathname, '/policies');
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('drawbridge.session'),
      pending: sessionStorage.getItem('drawbridge.oidc-pending'),
      local: localStorage.length,
    }));
    assert.match(stored.session ?? '', /"principal":"alice"/);
    assert.equal(stored.pending, null, 'the PKCE verifier is used once and forgotten');
    assert.equal(stored.local, 0);
    const whoami = await fetch(`${ui}/api/whoami`, {
      headers: { authorization: `Bearer ${JSON.parse(stored.session!).token}` },
    });
    assert.equal(((await whoami.json()) as { via: string }).via, 'session');
    await shot(page, '08-signed-in-with-oidc');
  } finally {
    await context.close();
  }
});

test('no page broke the Content-Security-Policy or threw', () => {
  assert.deepEqual(
    consoleErrors.filter((e) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(e)),
    [],
  );
});
