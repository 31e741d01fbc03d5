/**
 * Outgoing webhooks of approvals: each request and decision is POSTed to every configured URL,
 * as a generic JSON payload (`{event, approval}`, signed with HMAC-SHA256 when a secret is set)
 * or as a Slack incoming-webhook message (`text` and `blocks`: who asks, where, the exact
 * statement, the policy's reason, the preview, and a link to the request).
 *
 * What it guarantees:
 * - Nobody waits for it: `notify` returns at once and the deliveries go on in the background;
 *   a held statement, the API and the data path never wait for a webhook.
 * - A delivery that fails (no answer, a network error, 408, 429 or a 5xx) is tried again after
 *   1 s, 5 s and 25 s, then given up; any other 4xx is given up at once. Each failed attempt is
 *   a log line (the URL's origin only: Slack puts its secret in the path), the last one an error.
 * - The signature covers `<timestamp>.<body>`: `X-Drawbridge-Timestamp` (Unix seconds) and
 *   `X-Drawbridge-Signature: v1=<hex>`; a receiver recomputes it with the shared secret and
 *   refuses old timestamps (docs/approvals.md). Every attempt of one delivery carries the same
 *   `X-Drawbridge-Delivery` id, so that a receiver can drop the repeats.
 *
 * Known limits: deliveries are kept in memory only: those still waiting for a retry when the
 * gateway stops are lost (logged). At most 1000 deliveries wait at once; more are dropped, logged.
 */

import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../core/index.ts';
import type { ApprovalRecord } from '../store/index.ts';
import { approvalView, type ApprovalView } from './view.ts';

export interface WebhookTarget {
  readonly url: string;
  readonly secret?: string | undefined;
  readonly format: 'json' | 'slack';
}

export interface WebhooksOptions {
  readonly targets: readonly WebhookTarget[];
  readonly clock: Clock;
  readonly log?: Logger | undefined;
  /** The link to an approval (the web UI). */
  readonly url: (id: number) => string;
  /** Waits before each retry; default 1 s, 5 s, 25 s. */
  readonly retryDelaysMs?: readonly number[];
  /** How long one attempt may take; default 10 s. */
  readonly attemptTimeoutMs?: number;
}

const MAX_PENDING = 1000;
const DEFAULT_RETRY_DELAYS_MS = [1000, 5000, 25_000];

/** `approval.requested`, or the decision: `approval.approved`, `.denied`, `.expired`, `.cancelled`. */
export const eventName = (approval: ApprovalRecord | ApprovalView): string =>
  `approval.${approval.status === 'pending' ? 'requested' : approval.status}`;

/** The signature header's value for `body` sent at `timestamp` (Unix seconds). */
export function signature(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export class Webhooks {
  readonly #options: WebhooksOptions;
  readonly #delays: readonly number[];
  readonly #closing = new AbortController();
  readonly #pending = new Set<Promise<void>>();

  constructor(options: WebhooksOptions) {
    this.#options = options;
    this.#delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  }

  /** Sends the event to every target, in the background. */
  notify(approval: ApprovalRecord): void {
    if (this.#closing.signal.aborted) return;
    const view = approvalView(approval, this.#options.url(approval.id));
    for (const [index, target] of this.#options.targets.entries()) {
      if (this.#pending.size >= MAX_PENDING) {
        this.#options.log?.error({ webhook: index, approval: approval.id }, 'too many webhook deliveries waiting: this one is dropped');
        continue;
      }
      const delivery = this.#deliver(index, target, view).finally(() => this.#pending.delete(delivery));
      this.#pending.add(delivery);
    }
  }

  /** Waits up to `graceMs` for the deliveries under way, then drops what is left (logged). */
  async close(graceMs = 1000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.#pending]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    this.#closing.abort();
    await Promise.all([...this.#pending]);
  }

  async #deliver(index: number, target: WebhookTarget, view: ApprovalView): Promise<void> {
    const body = JSON.stringify(target.format === 'slack' ? slackMessage(view) : { event: eventName(view), approval: view });
    const delivery = randomUUID();
    const where = { webhook: index, origin: originOf(target.url), approval: view.id, event: eventName(view), delivery };
    for (let attempt = 0; ; attempt++) {
      const failure = await this.#attempt(target, body, delivery);
      if (failure === undefined) return;
      const last = attempt >= this.#delays.length || !failure.retry || this.#closing.signal.aborted;
      if (last) {
        this.#options.log?.error({ ...where, attempts: attempt + 1, reason: failure.reason }, 'an approval webhook was not delivered');
        return;
      }
      this.#options.log?.warn({ ...where, attempt: attempt + 1, reason: failure.reason }, 'an approval webhook failed; trying again');
      if (!(await this.#sleep(this.#delays[attempt]!))) {
        this.#options.log?.error({ ...where, attempts: attempt + 1 }, 'the gateway stopped before an approval webhook was delivered');
        return;
      }
    }
  }

  /** One POST: undefined when delivered, else why and whether to try again. */
  async #attempt(target: WebhookTarget, body: string, delivery: string): Promise<{ reason: string; retry: boolean } | undefined> {
    const timestamp = String(Math.floor(this.#options.clock.now() / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'drawbridge-webhooks',
      'x-drawbridge-delivery': delivery,
      'x-drawbridge-timestamp': timestamp,
    };
    if (target.secret !== undefined) headers['x-drawbridge-signature'] = signature(target.secret, timestamp, body);
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        headers,
        body,
        redirect: 'error',
        signal: AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#options.attemptTimeoutMs ?? 10_000)]),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return undefined;
      const retry = response.status === 408 || response.status === 429 || response.status >= 500;
      return { reason: `answered ${response.status}`, retry };
    } catch (error) {
      return { reason: (error as Error).message, retry: true };
    }
  }

  /** Waits, unless the gateway stops first (false). */
  #sleep(ms: number): Promise<boolean> {
    const signal = this.#closing.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', stop);
        resolve(true);
      }, ms);
      const stop = () => {
        clearTimeout(timer);
        resolve(false);
      };
      signal.addEventListener('abort', stop, { once: true });
    });
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'an invalid URL';
  }
}

/** Slack's mrkdwn takes &, < and > as markup: these are escaped. */
const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A code block that the text cannot close early, within Slack's 3,000 characters of a section. */
function codeBlock(text: string): string {
  const fenced = escape(text).replace(/```/g, '`\u200b``');
  return `\`\`\`${fenced.length > 2800 ? `${fenced.slice(0, 2800)}\n… (${fenced.length - 2800} more characters)` : fenced}\`\`\``;
}

/** The one-line summary of an approval event, as Slack's notification text. */
export function summary(view: ApprovalView): string {
  const what =
    view.kind === 'access'
      ? `access to ${view.connection}${view.duration ? ` for ${view.duration}` : ''}`
      : `a statement on ${view.connection}`;
  switch (view.status) {
    case 'pending':
      return `Approval #${view.id}: ${view.requester} asks for ${what}`;
    case 'approved':
      return `Approval #${view.id} approved by ${view.decidedBy ?? 'someone'}: ${view.requester}'s ${view.kind === 'access' ? 'access' : 'statement'} on ${view.connection}${view.decisionReason ? ` (${view.decisionReason})` : ''}`;
    default:
      return `Approval #${view.id} ${view.status}${view.status === 'denied' ? ` by ${view.decidedBy ?? 'someone'}` : ''}: ${view.decisionReason ?? ''}`;
  }
}

/** A Slack incoming-webhook message (https://api.slack.com/messaging/webhooks): `text` and `blocks`. */
export function slackMessage(view: ApprovalView): { text: string; blocks: unknown[] } {
  const text = summary(view);
  const section = (markdown: string) => ({ type: 'section', text: { type: 'mrkdwn', text: markdown } });
  const blocks: unknown[] = [section(`*${escape(text)}*`)];
  if (view.status === 'pending') {
    const fields = [
      `*Requester:* ${escape(view.requester)}`,
      `*Connection:* ${escape(view.connection)}`,
      `*Approvers:* ${escape(view.approvers)}`,
      ...(view.duration ? [`*Duration:* ${escape(view.duration)}`] : []),
    ];
    blocks.push({ type: 'section', fields: fields.map((f) => ({ type: 'mrkdwn', text: f })) });
    if (view.statement !== null) blocks.push(section(codeBlock(view.statement)));
    if (view.params !== null && view.params.length > 0) {
      blocks.push(
        section(`*Parameters:* ${view.params.map((p, i) => `$${i + 1} = ${p === null ? 'NULL' : `\`${escape(p)}\``}`).join(', ')}`),
      );
    }
    blocks.push(section(`*${view.kind === 'access' ? 'Reason' : 'Why it is held'}:* ${escape(view.reason)}`));
    if (view.preview?.text) blocks.push(section(`*Blast radius:* ${escape(view.preview.text)} (EXPLAIN estimate)`));
    else if (view.preview?.error) blocks.push(section(`*Blast radius:* unknown (${escape(view.preview.error)})`));
  }
  blocks.push({
    type: 'actions',
    elements: [{ type: 'button', text: { type: 'plain_text', text: `Open approval #${view.id}` }, url: view.url }],
  });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `<${view.url}|${escape(view.url)}>` }] });
  return { text, blocks };
}
