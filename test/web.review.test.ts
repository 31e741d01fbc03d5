/**
 * The access review page in a real browser: Debian's Chromium driven by playwright-core, against a
 * gateway started here (SQLite store, the default policy pack) in front of the machine's
 * PostgreSQL (a throwaway database), with sessions made by real clients (`pg`) through the gateway.
 *
 * What a reviewer does, and sees:
 * - an auditor finds "Access review" in the navigation; the page shows every principal on every
 *   connection: the way in, what policy allows, what was granted and used, the flags (bob may
 *   write but only read; carl holds a grant he never used) with their suggestions;
 * - filters by "only rights never used" (the filter goes to the URL);
 * - certifies bob's access with a note (a blank note first: the gateway's refusal is shown), and
 *   the row shows the decision; the auditor has no Revoke button, and no Certify on their own rows;
 * - an admin revokes carl's unused grant and bob's access: bob's live client is cut off, and the
 *   rows say revoked;
 * - a plain user has no such page.
 * No page breaks the Content-Security-Policy or throws. Screenshots: `review-1-report.png`,
 * `review-2-certified.png`, `review-3-revoked.png` in test-results/screenshots/.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { accountToken, callApi } from './support/api.ts';
import { launchBrowser, newPage, shot, signIn as signInAt } from './support/browser.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, type ThrowawayDatabase } from './support/pg-db.ts';

const PASSWORD = 'a long enough password';

let db: ThrowawayDatabase;
let gw: TestGateway;
let browser: Browser;
let ui: string;
const consoleErrors: string[] = [];
let carlsGrant = '';
let bob: { client: pg.Client; ended: Promise<Error & { code?: string }> };

before(async () => {
  db = await createDatabase('webreview');
  await asAdmin(async (client) => {
    await client.query('CREATE TABLE orders (id int PRIMARY KEY, amount numeric)');
    await client.query('INSERT INTO orders VALUES (1, 10), (2, 20)');
  }, db.name);
  gw = await startTestGateway({
    connections: [
      { name: 'orders', database: db.name, access: { maxDurationMs: 4 * 3_600_000, approval: 'none' } },
      { name: 'payments', database: db.name, access: { maxDurationMs: 3_600_000, approval: 'required', approvers: 'dba' } },
    ],
    policies: 'default-pack',
  });
  ui = `http://127.0.0.1:${gw.apiPort}`;
  await gw.gateway.accounts.createUser({ name: 'ada', password: PASSWORD, roles: ['admin'] }, 'test');
  await gw.gateway.accounts.createUser({ name: 'audra', password: PASSWORD, roles: ['auditor'] }, 'test');
  await gw.gateway.accounts.createUser({ name: 'uma', password: PASSWORD, roles: ['user'] }, 'test');
  const ask = async (token: string) => {
    const granted = await callApi(ui, 'POST', '/api/access/requests', token, { connection: 'orders', duration: '1h', reason: 'review' });
    assert.equal(granted.status, 201, JSON.stringify(granted.body));
    return granted.body as { grant: string; credential: string };
  };
  // bob reads, and stays connected; carl is granted access and never connects.
  const forBob = await ask(await accountToken(gw, 'bob'));
  const client = new pg.Client({ host: gw.host, port: gw.pgPort, user: 'bob', database: 'orders', password: forBob.credential });
  const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
  await client.connect();
  await client.query('select sum(amount) from orders');
  bob = { client, ended };
  carlsGrant = (await ask(await accountToken(gw, 'carl'))).grant;
  await eventually(
    async () => (await gw.gateway.store.statementActivity({ since: 0, until: Date.now() + 60_000 }, 10)).length,
    (n) => n === 1,
    10_000,
  );
  browser = await launchBrowser();
});

after(async () => {
  await bob?.client.end().catch(() => {});
  await browser?.close();
  await gw?.close();
  await db?.drop();
});

const signIn = (page: Page, name: string): Promise<void> => signInAt(page, ui, name, PASSWORD);

const navLinks = (page: Page) => page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
const row = (page: Page, principal: string, connection: string) =>
  page.getByRole('row', { name: `${principal} on ${connection}`, exact: true });

describe('the access review page in Chromium', () => {
  test('an auditor reads the review: the way in, what policy allows, what was used, the flags', async () => {
    const { context, page } = await newPage(browser, consoleErrors, { width: 1600, height: 900 });
    try {
      await signIn(page, 'audra');
      assert.deepEqual(await navLinks(page), ['My access', 'Approvals', 'Sessions', 'Audit log', 'Policies', 'Access review']);
      await page.getByRole('link', { name: 'Access review' }).click();
      await page.getByRole('heading', { name: 'Access review' }).waitFor();
      await page.getByText(/\d+ rows, \d+ flagged, 0 certified, 0 revoked\./).waitFor();

      const bobs = row(page, 'bob', 'orders');
      await bobs.getByText('at once').waitFor();
      await bobs.getByText('1 session').waitFor();
      await bobs.getByText('1 read').waitFor();
      await bobs.getByText('tables: orders').waitFor();
      await bobs.getByText('unused-writes').waitFor();
      await bobs.getByText(/bob may write on orders \(insert, update, delete\) but ran no write/).waitFor();
      assert.deepEqual(await bobs.getByRole('list', { name: 'What policy allows bob on orders' }).getByRole('listitem').allTextContents(), [
        'read',
        'insert',
        'update',
        'delete',
        'ddl',
        'admin',
        'code',
      ]);
      const carls = row(page, 'carl', 'orders');
      await carls.getByText('unused-live-grant').waitFor();
      await carls.getByText(new RegExp(`drawbridge access review revoke carl orders`)).waitFor();
      await row(page, 'uma', 'payments').getByText('approval by dba').waitFor();
      await row(page, 'uma', 'payments').getByText('unused-access').waitFor();
      // An auditor certifies, but does not revoke, and never certifies their own access.
      assert.equal(await page.getByRole('button', { name: /^Revoke / }).count(), 0);
      await row(page, 'audra', 'orders').getByText('your own').waitFor();
      await shot(page, 'review-1-report');

      // Only the rows with a flag; the filter is in the address.
      await page.getByLabel('Only rights never used').check();
      await page.getByRole('button', { name: 'Show' }).click();
      await page.waitForURL(/\/review\?unused=true$/);
      await row(page, 'carl', 'orders').waitFor();

      // A blank note: the gateway's refusal, as it wrote it. Then with a note.
      await bobs.getByRole('button', { name: 'Certify bob on orders' }).click();
      const form = page.getByRole('form', { name: 'Certify bob on orders' });
      await form.getByRole('button', { name: 'Certify now' }).click();
      await form.getByRole('alert').filter({ hasText: 'a decision needs a note' }).waitFor();
      await form.getByPlaceholder('why it is still needed').fill('reads the orders for month-end');
      await form.getByRole('button', { name: 'Certify now' }).click();
      await page.getByRole('status').filter({ hasText: "Certified bob's access to orders." }).waitFor();
      await bobs.getByText('certified').first().waitFor();
      await bobs.getByText('by audra').waitFor();
      await bobs.getByText('reads the orders for month-end').waitFor();
      await shot(page, 'review-2-certified');
      const [event] = await gw.gateway.store.listAudit({ action: 'review.certified' });
      assert.deepEqual([event?.actor, event?.subject, event?.details.note], ['audra', 'bob', 'reads the orders for month-end']);
    } finally {
      await context.close();
    }
  });

  test("an admin revokes: carl's unused grant ends, and bob's live client is cut off", async () => {
    const { context, page } = await newPage(browser, consoleErrors, { width: 1600, height: 900 });
    try {
      await signIn(page, 'ada');
      await page.getByRole('link', { name: 'Access review' }).click();
      const carls = row(page, 'carl', 'orders');
      await carls.getByRole('button', { name: 'Revoke carl on orders' }).click();
      await carls.getByPlaceholder('why it is taken away').fill('never used it');
      await carls.getByRole('button', { name: 'Revoke now' }).click();
      await page.getByRole('status').filter({ hasText: "Revoked carl's access to orders: 1 live grant ended" }).waitFor();
      await carls.getByText('revoked', { exact: true }).waitFor();
      assert.equal((await gw.gateway.store.getGrant(carlsGrant))?.revokedBy, 'ada');

      const bobs = row(page, 'bob', 'orders');
      await bobs.getByRole('button', { name: 'Revoke bob on orders' }).click();
      await bobs.getByPlaceholder('why it is taken away').fill('moved teams');
      await bobs.getByRole('button', { name: 'Revoke now' }).press('Enter');
      await page.getByRole('status').filter({ hasText: "Revoked bob's access to orders" }).waitFor();
      const error = await bob.ended;
      assert.equal(error.code, '57P01');
      assert.match(error.message, /was revoked by ada: access review: moved teams/);
      await page.getByText(/2 revoked\./).waitFor();
      await shot(page, 'review-3-revoked');
    } finally {
      await context.close();
    }
  });

  test('a plain user has no access review', async () => {
    const { context, page } = await newPage(browser, consoleErrors);
    try {
      await signIn(page, 'uma');
      assert.deepEqual(await navLinks(page), ['My access', 'Approvals', 'Sessions']);
      await page.goto(`${ui}/review`);
      await page.getByRole('heading', { name: 'Not for your roles' }).waitFor();
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
});
