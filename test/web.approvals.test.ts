/**
 * The approvals pages of the web UI in a real browser (Debian's Chromium driven by
 * playwright-core), against a gateway started here in front of the machine's PostgreSQL, with a
 * policy that holds every UPDATE for the group dba, and real clients (`pg`) whose statements wait.
 *
 * What people do, and see:
 * - a client's UPDATE waits, with a NOTICE giving the approval's link; the approver (role approver,
 *   group dba) opens that link, signs in, is brought back to it, sees the statement exactly as
 *   held, who asked, where, why, the approver group, the time left (counting down) and the
 *   blast-radius preview when the gateway gives one, and approves with a reason; the waiting client
 *   gets its result and the row is changed in PostgreSQL;
 * - with the inbox open, new held statements appear without a reload, with their parameters, and
 *   the navigation badge counts them; with the keys (j/k, a, d) the approver tries to approve their
 *   own request (the gateway's refusal is shown as it wrote it), and denies the other with a reason
 *   (the form says it is required, and refuses to send without one); the client gets 42501 with
 *   that reason; the decided requests are listed below with who, when and why;
 * - an auditor sees every request without decision buttons, and replays the client's session from
 *   the Sessions page, where the approved UPDATE ran once;
 * - a plain user sees only their own requests (none).
 * No page breaks the Content-Security-Policy or throws.
 *
 * Screenshots go to test-results/screenshots/ (approvals-*.png), beside those of web.ui.test.ts.
 * Chromium is /usr/bin/chromium (or $CHROMIUM); without it the suite fails at once saying so. The UI
 * must be built (`npm run build`).
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SseParser, type SseEvent } from '../web/src/sse.ts';
import { callApi } from './support/api.ts';
import { launchBrowser, newPage as openPage, shot } from './support/browser.ts';
import { HOLD_UPDATES, PERMIT_ALL, startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';

const PASSWORD = 'a long enough password';

const APPROVED = "update orders set status = 'refunded' where id in (1, 2)";
const DENIED = "update orders set status = 'cancelled' where id = $1";
const OWN = "update orders set status = 'lost' where id = 5";

describe('the SSE parser the UI reads the approvals stream with', () => {
  const stream =
    ': approvals of drawbridge\n\nevent: approval\ndata: {"id":1}\n\r\nevent: approval\r\ndata:{"id":\rdata:  2}\r\r: heartbeat\n\ndata: plain\n\n';
  const want: SseEvent[] = [
    { event: 'approval', data: '{"id":1}' },
    { event: 'approval', data: '{"id":\n 2}' },
    { event: 'message', data: 'plain' },
  ];

  test('gives the same events however the text is split (CRLF, CR and LF, comments, data over two lines)', () => {
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b += 7) {
        const parser = new SseParser();
        const got = [...parser.push(stream.slice(0, a)), ...parser.push(stream.slice(a, b)), ...parser.push(stream.slice(b))];
        assert.deepEqual(got, want, `split at ${a} and ${b}`);
      }
    }
  });

  test('an event is dispatched only at its blank line', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('event: approval\ndata: {}\n'), []);
    assert.deepEqual(parser.push('\n'), [{ event: 'approval', data: '{}' }]);
  });
});

let db: ThrowawayDatabase;
let gw: TestGateway;
let browser: Browser;
let ui: string;
/** Whether the gateway has the live stream (else the UI polls): the page says which. */
let hasStream = false;
const consoleErrors: string[] = [];
const clients: pg.Client[] = [];

before(async () => {
  db = await createDatabase('webapprovals');
  await asAdmin(async (c) => {
    await c.query('create table orders (id int primary key, status text not null)');
    await c.query("insert into orders select g, 'paid' from generate_series(1, 10) g");
    await c.query('analyze orders');
  }, db.name);
  gw = await startTestGateway({ connections: [{ name: 'app', database: db.name }], policies: [PERMIT_ALL, HOLD_UPDATES] });
  ui = `http://127.0.0.1:${gw.apiPort}`;
  await gw.gateway.accounts.createUser({ name: 'dana', password: PASSWORD, roles: ['approver'], groups: ['dba'] }, 'test');
  await gw.gateway.accounts.createUser({ name: 'aude', password: PASSWORD, roles: ['auditor'] }, 'test');
  await gw.gateway.accounts.createUser({ name: 'uma', password: PASSWORD, roles: ['user'] }, 'test');
  const openapi = (await callApi(ui, 'GET', '/api/openapi.json', undefined)).body as { paths: Record<string, unknown> };
  hasStream = '/api/approvals/stream' in openapi.paths;
  // Fails at once, saying why, without Chromium or a built UI.
  browser = await launchBrowser();
});

after(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await browser?.close();
  await gw?.close();
  await db?.drop();
});

const newPage = (): Promise<{ context: BrowserContext; page: Page }> => openPage(browser, consoleErrors, { width: 1366, height: 900 });

async function signIn(page: Page, name: string, heading = 'My access'): Promise<void> {
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('heading', { name: heading, exact: true }).waitFor();
}

/** `promise`, or a failure naming `what` after `ms`: a test that fails does not hang on a held client. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A client through the gateway as `principal`, kept to be ended after the suite. */
async function client(principal: string): Promise<pg.Client> {
  const c = await gatewayClient(gw, 'app', principal);
  c.on('error', () => {});
  clients.push(c);
  return c;
}

/** The NOTICE that names the approval a client waits for: its number and link. */
function waitingFor(c: pg.Client): Promise<{ id: number; url: string }> {
  return within(
    new Promise((resolve) =>
      c.on('notice', (notice) => {
        const m = /^waiting for approval #(\d+) \((http:\/\/[^)]+\/approvals\/\d+)\)/.exec(notice.message ?? '');
        if (m) resolve({ id: Number(m[1]), url: m[2]! });
      }),
    ),
    10_000,
    'the NOTICE naming the approval',
  );
}

const statusOf = async (id: number): Promise<string> =>
  (await asAdmin((c) => c.query<{ status: string }>('select status from orders where id = $1', [id]), db.name)).rows[0]!.status;

const navBadge = (page: Page) => page.getByRole('navigation', { name: 'Main' }).locator('.nav-badge');

describe('approvals in the web UI', () => {
  let context: BrowserContext;
  let page: Page;
  let etl: pg.Client;
  let firstId = 0;
  let deniedId = 0;

  before(async () => {
    ({ context, page } = await newPage());
    etl = await client('etl-bot');
  });

  after(async () => {
    await context?.close();
  });

  test(
    'the approver opens the link of the NOTICE, signs in, comes back to it, sees the exact statement and approves: the client gets its result',
    { timeout: 60_000 },
    async () => {
      const notice = waitingFor(etl);
      const update = etl.query(APPROVED);
      update.catch(() => {});
      const { id, url } = await notice;
      firstId = id;
      assert.equal(url, `${ui}/approvals/${id}`);

      // Not signed in: the sign-in page, then back to the approval.
      await page.goto(url);
      await page.getByRole('heading', { name: 'Sign in to Drawbridge' }).waitFor();
      assert.equal(new URL(page.url()).search, `?next=${encodeURIComponent(`/approvals/${id}`)}`);
      await signIn(page, 'dana', `Approval #${id}`);
      assert.equal(new URL(page.url()).pathname, `/approvals/${id}`);

      const detail = page.getByRole('article', { name: `Approval #${id}` });
      assert.equal(await detail.locator('pre.held-statement').textContent(), APPROVED);
      await detail.locator('.requester').getByText('etl-bot').waitFor();
      await detail.getByText('held by policy "updates-need-a-dba": an UPDATE on app needs the approval of dba').waitFor();
      await detail.getByText('group dba').waitFor();
      const countdown = detail.locator('.outcome time.countdown');
      const before = await countdown.textContent();
      assert.match(before ?? '', /^(9|10):\d\d$/);
      await page.waitForTimeout(1100);
      assert.notEqual(await countdown.textContent(), before, 'the time left counts down');
      // The blast-radius preview, when the gateway makes one.
      const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('drawbridge.session')!).token as string);
      const view = (await callApi(ui, 'GET', `/api/approvals/${id}`, token)).body as { preview?: { text?: string; error?: string } | null };
      if (view.preview?.text) await detail.locator('.preview').getByText(view.preview.text).waitFor();
      else if (view.preview?.error) await detail.locator('.preview').getByText('unknown').waitFor();
      else assert.equal(await detail.locator('.preview').count(), 0);
      await shot(page, 'approvals-1-detail');

      await detail.getByRole('button', { name: `Approve #${id}` }).click();
      await detail.getByLabel(/Reason/).fill('ticket OPS-7');
      await detail.getByRole('button', { name: `Approve #${id}` }).click();
      await detail
        .locator('.outcome')
        .getByText(/Approved\s+by\s+dana/)
        .waitFor();
      await detail.locator('.outcome').getByText('ticket OPS-7').waitFor();
      assert.equal(await detail.getByRole('button', { name: `Deny #${id}` }).count(), 0, 'decided: no more buttons');

      assert.equal((await within(update, 10_000, 'the approved UPDATE')).rowCount, 2);
      assert.equal(await statusOf(1), 'refunded');
      assert.equal(await statusOf(2), 'refunded');
      assert.equal((await etl.query('select 1 as one')).rows[0].one, 1, 'the session goes on');
    },
  );

  test(
    'the inbox: new requests appear live with the badge; the gateway refuses one’s own; denied with the keys and a reason, the client gets 42501',
    { timeout: 60_000 },
    async () => {
      await page
        .getByRole('navigation', { name: 'Main' })
        .getByRole('link', { name: /^Approvals/ })
        .click();
      await page.getByRole('heading', { name: 'Approvals', exact: true }).waitFor();
      await page.getByText('Nothing waits for a decision.').waitFor();
      await page.getByText(hasStream ? 'Live: requests and decisions appear as they happen.' : 'Live: checked every 2 seconds.').waitFor();
      assert.equal(await navBadge(page).count(), 0);
      // Set on this page: still there later means the page was not reloaded.
      await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 7));

      // A prepared UPDATE, held with its parameter, from the client of the first test...
      const notice = waitingFor(etl);
      const denied = etl.query({ text: DENIED, values: [3] });
      denied.catch(() => {});
      deniedId = (await notice).id;
      // ...and one of dana's own, from a client of hers.
      const own = await client('dana');
      const ownNotice = waitingFor(own);
      own.query(OWN).catch(() => {});
      const ownId = (await ownNotice).id;

      const cards = page.getByRole('list', { name: /Requests waiting for a decision/ }).getByRole('listitem');
      const deniedCard = page.getByRole('listitem', { name: `Approval #${deniedId}: etl-bot on app` });
      const ownCard = page.getByRole('listitem', { name: `Approval #${ownId}: dana on app` });
      await ownCard.waitFor();
      await deniedCard.waitFor();
      await until(async () => (await cards.count()) === 2, 'two cards');
      await until(async () => (await navBadge(page).textContent()) === '2 pending', 'the badge says 2 pending');
      assert.equal(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker), 7, 'no reload');
      assert.equal(await deniedCard.locator('pre.held-statement').textContent(), DENIED);
      assert.deepEqual(await deniedCard.locator('.params').locator('dt, dd').allTextContents(), ['$1', '3']);
      await deniedCard.locator('time.countdown').waitFor();
      await shot(page, 'approvals-2-inbox');

      // The keys: the first (oldest) is selected; j moves to dana's own, a opens Approve.
      await until(async () => (await deniedCard.getAttribute('aria-current')) === 'true', 'the oldest is selected');
      await page.keyboard.press('j');
      await until(async () => (await ownCard.getAttribute('aria-current')) === 'true', 'j selects the next');
      await page.keyboard.press('a');
      await ownCard.getByLabel(/Reason/).waitFor();
      await ownCard.getByRole('button', { name: `Approve #${ownId}` }).click();
      await ownCard
        .getByRole('alert')
        .filter({ hasText: `approval #${ownId} is your own request: someone else decides it` })
        .waitFor();
      await ownCard.getByLabel(/Reason/).press('Escape');
      await ownCard.getByRole('button', { name: `Deny #${ownId}` }).waitFor();
      const approveOwn = ownCard.getByRole('button', { name: `Approve #${ownId}` });
      await until(() => approveOwn.evaluate((e) => e === e.ownerDocument.activeElement), 'Escape gives the focus back to the buttons');
      // Escape, and the focus put elsewhere before the browser runs the timer that gives it back (as
      // a key handled first would): it stays where it was put.
      await page.keyboard.press('a');
      await ownCard.getByLabel(/Reason/).waitFor();
      await page.evaluate(
        `document.querySelector('[data-approval="${ownId}"] textarea').dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true })),
         document.querySelector('[data-approval="${deniedId}"]').focus()`,
      );
      await approveOwn.waitFor();
      // A timer set now runs after the one Escape set.
      await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 0)));
      assert.ok(await deniedCard.evaluate((e) => e === e.ownerDocument.activeElement), 'the focus stays where it was put');
      await page.keyboard.press('j'); // back to dana's own, for the keys below
      await until(async () => (await ownCard.getAttribute('aria-current')) === 'true', 'j selects the next');

      // k back to etl-bot's; d opens Deny, which needs a reason.
      await page.keyboard.press('k');
      await until(async () => (await deniedCard.getAttribute('aria-current')) === 'true', 'k selects the one before');
      await page.keyboard.press('d');
      const reason = deniedCard.getByLabel(/Reason/);
      await reason.waitFor();
      assert.match((await deniedCard.locator('label').textContent()) ?? '', /Reason \(required\)/);
      await until(() => reason.evaluate((e) => e === e.ownerDocument.activeElement), 'the reason has the focus');
      await deniedCard.getByRole('button', { name: `Deny #${deniedId}` }).click();
      await deniedCard.getByRole('alert').filter({ hasText: 'A denial needs a reason' }).waitFor();
      await reason.fill('use the refund job');
      await reason.press('Control+Enter');

      await assert.rejects(within(denied, 10_000, 'the denied UPDATE'), (error: Error & { code?: string }) => {
        assert.equal(error.code, '42501');
        assert.equal(error.message, `approval #${deniedId} was denied by dana: use the refund job`);
        return true;
      });
      assert.equal(await statusOf(3), 'paid');
      await page
        .getByRole('status')
        .filter({ hasText: `#${deniedId} denied: use the refund job` })
        .waitFor();
      await deniedCard.waitFor({ state: 'detached' });
      await until(async () => (await navBadge(page).textContent()) === '1 pending', 'the badge says 1 pending');

      // dana's own leaves when its client does: cancelled, and the badge is gone.
      await own.end();
      await ownCard.waitFor({ state: 'detached', timeout: 15_000 });
      await navBadge(page).waitFor({ state: 'detached' });
      const decided = page.getByRole('table').filter({ hasText: 'Decided by' });
      const row = (id: number) => decided.getByRole('row').filter({ has: page.getByRole('link', { name: `Open approval #${id}` }) });
      await row(deniedId).getByText('use the refund job').waitFor();
      await row(deniedId).getByText('denied').waitFor();
      await row(ownId).getByText('cancelled').waitFor();
      await row(firstId).getByText('ticket OPS-7').waitFor();
      await row(firstId).getByText('approved').waitFor();
      assert.equal(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker), 7, 'still no reload');
      await shot(page, 'approvals-3-decided');
    },
  );

  test(
    'an auditor sees every request without decision buttons, and replays the client’s session with the approved UPDATE',
    { timeout: 60_000 },
    async () => {
      await etl.end();
      const { context: auditing, page: auditor } = await newPage();
      try {
        await auditor.goto(`${ui}/approvals/${deniedId}`);
        await signIn(auditor, 'aude', `Approval #${deniedId}`);
        await auditor
          .locator('.outcome')
          .getByText(/Denied\s+by\s+dana/)
          .waitFor();
        await auditor.getByRole('link', { name: /^Approvals/ }).click();
        await auditor.getByRole('link', { name: `Open approval #${firstId}` }).waitFor();
        await auditor.getByText('Every approval request and how it ended.').waitFor();
        assert.equal(await auditor.getByRole('button', { name: /^(Approve|Deny) #/ }).count(), 0);

        await auditor.getByRole('link', { name: 'Sessions' }).click();
        await auditor.getByRole('heading', { name: 'Sessions' }).waitFor();
        await auditor.getByLabel('Principal').fill('etl-bot');
        await auditor.getByRole('button', { name: 'Show' }).click();
        await auditor.getByRole('row').filter({ hasText: 'etl-bot' }).getByRole('link').click();
        await auditor.getByRole('heading', { name: 'Session replay' }).waitFor();
        const approved = auditor.getByRole('listitem', { name: /Statement \d+: ok/ }).filter({ hasText: APPROVED });
        await approved.getByText('2 rows').waitFor();
        assert.equal(await approved.count(), 1, 'the approved UPDATE ran once');
        await auditor
          .getByRole('listitem', { name: /Statement \d+: denied/ })
          .filter({ hasText: DENIED })
          .waitFor();
        await shot(auditor, 'approvals-4-replay');
      } finally {
        await auditing.close();
      }
    },
  );
});

/** Polls `probe` until it holds (the page renders after a key, not within it); fails after 5 s. */
async function until(probe: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await probe())) {
    if (Date.now() > deadline) assert.fail(`not so after 5 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test('without the live stream (an older gateway), the inbox reads the pending list every 2 s', { timeout: 60_000 }, async () => {
  const { context, page } = await newPage();
  // The stream answers as a gateway without it would.
  await page.route('**/api/approvals/stream', (route) =>
    route.fulfill({
      status: 404,
      contentType: 'application/problem+json',
      body: JSON.stringify({ status: 404, code: 'not-found', detail: 'no such route' }),
    }),
  );
  const c = await client('etl-bot');
  try {
    await page.goto(`${ui}/approvals`);
    await signIn(page, 'dana', 'Approvals');
    await page.getByText('Live: checked every 2 seconds.').waitFor();
    const notice = waitingFor(c);
    c.query("update orders set status = 'refunded' where id = 9").catch(() => {});
    const { id } = await notice;
    const card = page.getByRole('listitem', { name: `Approval #${id}: etl-bot on app` });
    await card.waitFor({ timeout: 5_000 });
    await until(async () => (await navBadge(page).textContent()) === '1 pending', 'the badge says 1 pending');
    // j selects (and focuses) it, Enter opens it.
    await page.keyboard.press('j');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: `Approval #${id}` }).waitFor();
    await c.end();
    // Gone from the pending list: read again by its id, so the page shows how it ended.
    await page.locator('.outcome').getByText('Cancelled').waitFor({ timeout: 5_000 });
    await page.goBack();
    await page
      .getByRole('row')
      .filter({ has: page.getByRole('link', { name: `Open approval #${id}` }) })
      .getByText('cancelled')
      .waitFor();
    assert.equal(await card.count(), 0);
  } finally {
    await context.close();
  }
});

test('a plain user sees the Approvals page with only their own requests, and no decision buttons', async () => {
  const { context, page } = await newPage();
  try {
    await page.goto(`${ui}/approvals`);
    await signIn(page, 'uma', 'Approvals');
    await page.getByText('Your statements and access requests that wait for an approver').waitFor();
    await page.getByText('Nothing waits for a decision.').waitFor();
    await page.getByText('None yet.').waitFor();
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
