import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { FrozenClock } from '../core/index.ts';
import type { ApprovalRecord } from '../store/index.ts';
import { approvalView } from './view.ts';
import { signature, slackMessage, Webhooks } from './webhooks.ts';

const T0 = Date.UTC(2026, 10, 3, 9, 12, 41);

const approval: ApprovalRecord = {
  id: 42,
  kind: 'statement',
  status: 'pending',
  requester: 'etl-bot',
  connection: 'orders-db',
  sessionId: 'ses_1',
  requestId: undefined,
  statement: "update orders set note = '<b>&```' where id = $1",
  params: ['7'],
  policy: 'writes',
  reason: 'held by policy "writes"',
  approvers: 'dba',
  preview: { rows: 1, text: 'about 1 row would change' },
  durationMs: undefined,
  createdAt: T0,
  expiresAt: T0 + 600_000,
  decidedAt: undefined,
  decidedBy: undefined,
  decisionReason: undefined,
};

test('the signature is the hex HMAC-SHA256 of "<timestamp>.<body>"', () => {
  const expected = createHmac('sha256', 's3cret').update('1700000000.{"a":1}').digest('hex');
  assert.equal(signature('s3cret', '1700000000', '{"a":1}'), `v1=${expected}`);
});

test("a Slack message escapes the statement's markup and cannot close its code block early", () => {
  const { text, blocks } = slackMessage(approvalView(approval, 'https://gw.example/approvals/42'));
  assert.equal(text, 'Approval #42: etl-bot asks for a statement on orders-db');
  const all = JSON.stringify(blocks);
  assert.ok(all.includes("```update orders set note = '&lt;b&gt;&amp;`\u200b``' where id = $1```"), all);
  assert.ok(all.includes('$1 = `7`'), all);
  assert.ok(all.includes('about 1 row would change'), all);
  assert.ok(all.includes('"url":"https://gw.example/approvals/42"'), all);
  const decided = slackMessage(
    approvalView({ ...approval, status: 'denied', decidedBy: 'dana', decisionReason: 'use the job', decidedAt: T0 + 1 }, 'u'),
  );
  assert.equal(decided.text, 'Approval #42 denied by dana: use the job');
});

test('a 4xx is not retried; a 5xx is, up to the bound; both are logged, never thrown', async () => {
  const seen: string[] = [];
  const server = createServer((request, response) => {
    seen.push(request.url ?? '');
    response.writeHead(request.url === '/gone' ? 410 : 500).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const logged: string[] = [];
  const log = { warn: (_: unknown, m: string) => logged.push(`warn ${m}`), error: (_: unknown, m: string) => logged.push(`error ${m}`) };
  const hooks = new Webhooks({
    targets: [
      { url: `${base}/gone`, format: 'json' },
      { url: `${base}/down`, secret: 'x', format: 'json' },
    ],
    clock: new FrozenClock(T0),
    log: log as never,
    url: (id) => `${base}/approvals/${id}`,
    retryDelaysMs: [10, 10],
  });
  try {
    hooks.notify(approval);
    await hooks.close(2000);
    assert.deepEqual(seen.filter((p) => p === '/gone').length, 1);
    assert.deepEqual(seen.filter((p) => p === '/down').length, 3);
    assert.deepEqual(logged.sort(), [
      'error an approval webhook was not delivered',
      'error an approval webhook was not delivered',
      'warn an approval webhook failed; trying again',
      'warn an approval webhook failed; trying again',
    ]);
  } finally {
    server.close();
  }
});
