/**
 * The browser the web UI's tests drive: Debian's Chromium (/usr/bin/chromium, or $CHROMIUM)
 * through playwright-core, headless, with the network calls of its own turned off (this machine's
 * network is closed). Pages record their console errors and uncaught exceptions (a CSP violation
 * is one), and screenshots go to test-results/screenshots/ (ignored by git).
 */

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { WEB_ROOT } from '../../src/api/web-ui.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = fileURLToPath(new URL('../../test-results/screenshots/', import.meta.url));

/**
 * Fails at once, saying why, when Chromium is missing or the UI is not built, rather than time
 * out; makes the screenshots' folder and prints it; then starts the browser.
 */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: apt-get install -y chromium (.ci/run does), or set CHROMIUM=/path/to/chromium`,
    );
  }
  if (!existsSync(`${WEB_ROOT}/index.html`))
    throw new Error(`the web UI is not built in ${WEB_ROOT}: run npm run build (or npm run build:web)`);
  await mkdir(SCREENSHOTS, { recursive: true });
  console.log(`screenshots: ${SCREENSHOTS}`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page in a context of its own, whose console errors and uncaught exceptions go to `errors`. */
export async function newPage(
  browser: Browser,
  errors: string[],
  viewport = { width: 1366, height: 800 },
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', (message: ConsoleMessage) => {
    if (message.type() === 'error') errors.push(`${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`${page.url()}: ${error.message}`));
  return { context, page };
}

/** The whole page, as `<name>.png` in the screenshots' folder. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

/** Signs in at `ui` with a local account's name and password, and waits for the start page (My access). */
export async function signIn(page: Page, ui: string, name: string, password: string): Promise<void> {
  await page.goto(`${ui}/`);
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('heading', { name: 'My access' }).waitFor();
}
