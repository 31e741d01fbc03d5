import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceAccountReport, ServiceAccountView } from '../identity/service-accounts.ts';
import { describeLimits, limitsChanged, serviceAccountList, serviceAccountShow } from './service-accounts.ts';

const etl: ServiceAccountView = {
  name: 'etl-bot',
  createdAt: '2026-11-01T08:00:00.000Z',
  disabledAt: null,
  lastUsedAt: '2026-11-22T05:57:00.000Z',
  maxGrantDuration: '15m',
  connections: ['orders-db', 'billing-db'],
  key: { id: 'sak_3b1f', createdAt: '2026-11-20T10:00:00.000Z', works: true },
  retiredKeys: 1,
};

const report: ServiceAccountReport = {
  ...etl,
  usage: {
    since: '2026-10-23T06:02:00.000Z',
    until: '2026-11-22T06:02:00.000Z',
    lastUsedAt: '2026-11-22T05:58:10.000Z',
    grants: {
      issued: 3,
      live: 1,
      last: {
        grant: 'grt_91bd',
        connection: 'orders-db',
        createdAt: '2026-11-22T05:57:21.000Z',
        expiresAt: '2026-11-22T06:07:21.000Z',
        state: 'live',
      },
    },
    sessions: { started: 2, live: 0, lastStartedAt: '2026-11-22T05:58:10.000Z' },
    statements: { count: 5, refused: 1, failed: 0 },
    connections: [
      { connection: 'billing-db', allowed: true, grants: 0, sessions: 0, statements: 0, refused: 0, failed: 0, lastUsedAt: null },
      {
        connection: 'orders-db',
        allowed: true,
        grants: 3,
        sessions: 2,
        statements: 5,
        refused: 1,
        failed: 0,
        lastUsedAt: '2026-11-22T05:58:12.000Z',
      },
    ],
  },
};

describe('service-accounts on a terminal', () => {
  it('says what the limits let it have', () => {
    assert.equal(describeLimits(etl), 'grants of at most 15m, on orders-db, billing-db only');
    assert.equal(
      describeLimits({ maxGrantDuration: null, connections: null }),
      "grants up to each connection's max_duration, on any connection",
    );
    assert.equal(describeLimits({ maxGrantDuration: '1h', connections: [] }), 'grants of at most 1h, on no connection');
  });

  it('lists accounts in a table', () => {
    const oidc: ServiceAccountView = {
      ...etl,
      name: 'idp-agent',
      disabledAt: '2026-11-21T00:00:00.000Z',
      lastUsedAt: null,
      maxGrantDuration: null,
      connections: null,
      key: null,
      retiredKeys: 0,
    };
    assert.equal(
      serviceAccountList([etl, oidc]),
      [
        'NAME       STATE     MAX GRANT       CONNECTIONS           KEY MADE (UTC)       LAST USED (UTC)',
        'etl-bot    enabled   15m             orders-db,billing-db  2026-11-20 10:00:00  2026-11-22 05:57:00',
        'idp-agent  disabled  connection max  any                   no key               never',
        '',
      ].join('\n'),
    );
    assert.equal(serviceAccountList([]), 'no service accounts\n');
  });

  it('shows an account, its usage in the window, and the connections it may use but did not', () => {
    assert.equal(
      serviceAccountShow(report),
      [
        'etl-bot: service account, enabled, created 2026-11-01 08:00:00',
        '  limits      grants of at most 15m, on orders-db, billing-db only',
        '  key         sak_3b1f, made 2026-11-20 10:00:00; 1 key before it ended by rotation',
        '  last used   2026-11-22 05:58:10 (its key 2026-11-22 05:57:00)',
        '',
        'usage from 2026-10-23 06:02:00 to 2026-11-22 06:02:00 UTC (30d):',
        '  grants      3 issued, 1 live now; last grt_91bd on orders-db, 2026-11-22 05:57:21, live (expires 2026-11-22 06:07:21)',
        '  sessions    2 started, 0 live now; last started 2026-11-22 05:58:10',
        '  statements  5, of which 1 refused by the gateway and 0 failed on the target',
        '',
        'CONNECTION  ALLOWED  GRANTS  SESSIONS  STATEMENTS  REFUSED  FAILED  LAST USED (UTC)',
        'billing-db  yes      0       0         0           0        0       -',
        'orders-db   yes      3       2         5           1        0       2026-11-22 05:58:12',
        'allowed but not used in these 30d: billing-db',
        '',
      ].join('\n'),
    );
    const idle = serviceAccountShow({ ...report, connections: [], usage: { ...report.usage, connections: [] } });
    assert.match(idle, /no connection: it may ask for none, and used none\n$/);
  });

  it('says what a change of limits revoked', () => {
    assert.equal(limitsChanged(etl, undefined), 'etl-bot: grants of at most 15m, on orders-db, billing-db only\n');
    assert.match(limitsChanged(etl, []), /\nno live grant was beyond the new limits\n$/);
    assert.match(
      limitsChanged(etl, ['grt_a', 'grt_b']),
      /\nrevoked 2 live grants beyond the new limits \(their sessions end within seconds\): grt_a, grt_b\n$/,
    );
  });
});
