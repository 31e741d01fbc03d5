import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, defaultConfig, loadConfig, parseConfig, type Config } from './index.ts';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
const CA = '-----BEGIN CERTIFICATE-----\nCA==\n-----END CERTIFICATE-----\n';

let dir = '';
let file = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-config-'));
  file = join(dir, 'drawbridge.yaml');
  await writeFile(join(dir, 'tls.crt'), CERT);
  await writeFile(join(dir, 'tls.key'), KEY);
  await writeFile(join(dir, 'ca.pem'), CA);
  await writeFile(join(dir, 'secret.txt'), 's3cret\n\n');
  await writeFile(join(dir, 'crlf.txt'), 'pw\r\n');
  await writeFile(join(dir, 'guardrails.cedar'), 'permit (principal, action, resource);\n');
});
after(() => rm(dir, { recursive: true, force: true }));

/** Parses `lines` as drawbridge.yaml in the temp folder; messages name the file "drawbridge.yaml". */
function parse(lines: string[], env: Record<string, string> = {}): Config {
  return parseConfig(lines.join('\n') + '\n', join(dir, 'drawbridge.yaml'), env);
}

/** The error lines of a config that must fail, with the temp folder shortened to "<dir>". */
function errorsOf(lines: string[], env: Record<string, string> = {}): string[] {
  try {
    parse(lines, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.message, err.errors.join('\n'));
    return err.errors.map((e) => e.replaceAll(`${dir}/`, '<dir>/'));
  }
  assert.fail('expected the config to be refused');
}

const CONNECTION = [
  'connections:',
  '  - name: orders-db',
  '    type: postgres',
  '    host: 127.0.0.1',
  '    database: orders',
  '    user: app_owner',
];

describe('valid configuration', () => {
  test('a complete file resolves to the Config the gateway uses', () => {
    const config = parse(
      [
        'store: sqlite:/var/lib/drawbridge/state.db',
        'listen:',
        '  api: 127.0.0.1:7070',
        '  postgres: "[::1]:0"',
        'tls:',
        '  cert: ./tls.crt',
        `  key: ${dir}/tls.key`,
        'postgres:',
        '  auth: password',
        '  max_message_length: 16MiB',
        'log:',
        '  level: debug',
        'connections:',
        '  - name: orders-db',
        '    type: postgres',
        '    host: db.internal',
        '    port: 6432',
        '    database: orders',
        '    user: app_owner',
        '    password: ${env:ORDERS_DB_PASSWORD}',
        '    tls: verify-full',
        '    ca: ca.pem',
        '    access:',
        '      max_duration: 30m',
        '      approval: required',
        '      approvers: dba',
        '  - name: Reports.replica_2',
        '    type: postgres',
        '    host: localhost',
        '    database: reports',
        '    user: reader',
        'oidc:',
        '  issuer: https://idp.example.com/realms/acme',
        '  audience: drawbridge',
        '  client_id: drawbridge-cli',
        '  allowed_client_ids: [etl-agent]',
        '  groups_claim: realm_access.roles',
        '  role_groups:',
        '    admin: [dba-admins]',
        '    approver: [dbas]',
        'policy:',
        '  files: [guardrails.cedar]',
        'masking:',
        '  strategies: { ssn: hash }',
        '  salt: a salt of sixteen or more',
        '  custom:',
        '    - name: employee-id',
        '      pattern: E-[0-9]{6}',
        '  columns:',
        "    - { column: 'secret_*', action: mask, strategy: hash }",
        'recording:',
        '  retention:',
        '    max_age: 90d',
        '    max_size: 10GiB',
        '    interval: 30m',
        'approvals:',
        '  timeout: 5m',
        '  access_timeout: 8h',
        '  url: https://drawbridge.example.com',
        '  webhooks:',
        '    - url: https://hooks.example.com/drawbridge',
        '      secret: ${env:WEBHOOK_SECRET}',
        '    - url: https://hooks.slack.com/services/T0/B0/x',
        '      format: slack',
        'audit:',
        '  signing_key: keys/audit.pem',
        '  checkpoint_interval: 30s',
        '  statements: all',
        '  acknowledge: after-commit',
      ],
      { ORDERS_DB_PASSWORD: 'pw-from-env', WEBHOOK_SECRET: 'whsec-from-env' },
    );
    assert.deepEqual(config, {
      file,
      store: 'sqlite:/var/lib/drawbridge/state.db',
      listen: { api: { host: '127.0.0.1', port: 7070 }, postgres: { host: '::1', port: 0 } },
      tls: { cert: CERT, key: KEY },
      postgres: { auth: 'password', maxMessageLength: 16 * 1024 * 1024 },
      log: { level: 'debug' },
      connections: [
        {
          name: 'orders-db',
          type: 'postgres',
          host: 'db.internal',
          port: 6432,
          database: 'orders',
          user: 'app_owner',
          password: 'pw-from-env',
          tls: 'verify-full',
          ca: CA,
          access: { maxDurationMs: 30 * 60_000, approval: 'required', approvers: 'dba' },
        },
        {
          name: 'Reports.replica_2',
          type: 'postgres',
          host: 'localhost',
          port: 5432,
          database: 'reports',
          user: 'reader',
          password: undefined,
          tls: 'disable',
          ca: undefined,
          access: { maxDurationMs: 3_600_000, approval: 'none', approvers: 'approvers' },
        },
      ],
      oidc: {
        issuer: 'https://idp.example.com/realms/acme',
        audience: 'drawbridge',
        clientId: 'drawbridge-cli',
        allowedClientIds: ['etl-agent'],
        groupsClaim: 'realm_access.roles',
        usernameClaim: undefined,
        algorithms: undefined,
        roleGroups: { admin: ['dba-admins'], approver: ['dbas'], auditor: [], user: [] },
      },
      policy: { enabled: true, files: [join(dir, 'guardrails.cedar')] },
      masking: {
        enabled: true,
        plan: { strategies: { ssn: 'hash' }, salt: 'a salt of sixteen or more', custom: [{ name: 'employee-id', pattern: 'E-[0-9]{6}' }] },
        columns: [{ column: 'secret_*', action: 'mask', strategy: 'hash' }],
      },
      approvals: {
        timeoutMs: 300_000,
        accessTimeoutMs: 8 * 3_600_000,
        url: 'https://drawbridge.example.com',
        webhooks: [
          { url: 'https://hooks.example.com/drawbridge', secret: 'whsec-from-env', format: 'json' },
          { url: 'https://hooks.slack.com/services/T0/B0/x', secret: undefined, format: 'slack' },
        ],
      },
      audit: {
        signingKeyFile: join(dir, 'keys/audit.pem'),
        checkpointIntervalMs: 30_000,
        sinks: [],
        statements: 'all',
        acknowledge: 'after-commit',
      },
      recording: {
        enabled: true,
        maxResultBytes: 65_536,
        retention: { maxAgeMs: 90 * 86_400_000, maxBytes: 10 * 1024 ** 3, intervalMs: 1_800_000 },
      },
      warnings: [],
    });
  });

  test('audit sinks: a file, syslog over udp or tcp with a facility; each names one target', () => {
    const config = parse([
      'audit:',
      '  sinks:',
      '    - file: audit.jsonl',
      '    - syslog: udp://127.0.0.1:514',
      '    - syslog: tcp://[::1]:6514',
      '      facility: local3',
    ]);
    assert.deepEqual(config.audit.sinks, [
      { kind: 'file', path: join(dir, 'audit.jsonl') },
      { kind: 'syslog', transport: 'udp', host: '127.0.0.1', port: 514, facility: 10 },
      { kind: 'syslog', transport: 'tcp', host: '::1', port: 6514, facility: 19 },
    ]);
    // The shape first (every field of every sink), then what holds across fields.
    const shape = errorsOf(['audit:', '  sinks:', '    - syslog: http://siem:514', '    - syslog: udp://h:1', '      facility: nope']);
    assert.equal(shape.length, 2, shape.join('\n'));
    assert.match(shape[0]!, /audit\.sinks\[0\]\.syslog: expected udp:\/\/host:port or tcp:\/\/host:port, got "http:\/\/siem:514"/);
    assert.match(shape[1]!, /audit\.sinks\[1\]\.facility: expected one of kern, user, .*, got "nope"/);
    const sense = errorsOf(['audit:', '  sinks:', '    - file: a', '      syslog: udp://h:1', '    - file: b', '      facility: auth']);
    assert.deepEqual(
      sense.map((e) => e.replace(/^.*?: audit/, 'audit')),
      ['audit.sinks[0]: needs exactly one of file or syslog', 'audit.sinks[1].facility: is only for syslog'],
    );
  });

  test('recording.max_result_size: bytes or a size, 0 for none, at most 16MiB', () => {
    assert.equal(parse(['recording:', '  max_result_size: 1MiB']).recording.maxResultBytes, 1024 * 1024);
    assert.equal(parse(['recording:', '  max_result_size: 0']).recording.maxResultBytes, 0);
    assert.match(errorsOf(['recording:', '  max_result_size: 1GiB'])[0]!, /recording\.max_result_size: expected a size from 0 to 16MiB/);
    const off = parse(['recording:', '  enabled: false']);
    assert.equal(off.recording.enabled, false);
    assert.match(off.warnings.join('\n'), /recording\.enabled: false: sessions and the statements they run are not recorded/);
  });

  test('recording.retention: none by default (kept forever), an age, a size, how often', () => {
    assert.deepEqual(parse([]).recording.retention, { maxAgeMs: undefined, maxBytes: undefined, intervalMs: 3_600_000 });
    const retention = (...lines: string[]) => parse(['recording:', '  retention:', ...lines.map((l) => `    ${l}`)]).recording.retention;
    assert.deepEqual(retention('max_age: 30d'), { maxAgeMs: 30 * 86_400_000, maxBytes: undefined, intervalMs: 3_600_000 });
    assert.equal(retention('max_size: 500MiB').maxBytes, 500 * 1024 * 1024);
    assert.equal(retention('max_size: 2TiB').maxBytes, 2 * 1024 ** 4);
    assert.equal(retention('max_size: 1048576').maxBytes, 1024 * 1024);
    assert.equal(retention('interval: 15m').intervalMs, 900_000);
    assert.deepEqual(parse(['recording:', '  retention:']).recording.retention, parse([]).recording.retention);
  });

  test('recording.retention: a bad age, size or interval names the file, line, path and reason', () => {
    const errors = errorsOf([
      'recording:',
      '  retention:',
      '    max_age: 90 days',
      '    max_size: 10GB',
      '    interval: 10s',
      '    keep: forever',
    ]);
    assert.deepEqual(errors, [
      '<dir>/drawbridge.yaml:3:14: recording.retention.max_age: expected a duration from 1h to 36500d, such as 30d or 90d, got "90 days"',
      '<dir>/drawbridge.yaml:4:15: recording.retention.max_size: expected a size of at least 1MiB, such as 500MiB or 10GiB (or an integer number of bytes), got "10GB"',
      '<dir>/drawbridge.yaml:5:15: recording.retention.interval: expected a duration from 1m to 7d, such as 1h, got "10s"',
      errors[3]!,
    ]);
    assert.match(errors[3]!, /^<dir>\/drawbridge\.yaml:6:5: recording\.retention\.keep: /);
    assert.match(errorsOf(['recording:', '  retention:', '    max_size: 1000'])[0]!, /max_size: expected a size of at least 1MiB/);
    assert.match(errorsOf(['recording:', '  retention:', '    max_age: 30m'])[0]!, /max_age: expected a duration from 1h/);
    assert.match(errorsOf(['recording:', '  retention:', '    max_size: 99999999TiB'])[0]!, /max_size: expected a size/);
  });

  test('the audit signing key is beside the SQLite store by default, else beside the configuration', () => {
    assert.equal(parse(['store: sqlite:state/db.sqlite']).audit.signingKeyFile, join(dir, 'state', 'audit-signing-key.pem'));
    assert.equal(parse(['store: postgres://db/drawbridge']).audit.signingKeyFile, join(dir, '.drawbridge', 'audit-signing-key.pem'));
    assert.equal(parse([]).audit.checkpointIntervalMs, 10_000);
  });

  test('audit: every statement on record, answered within the commit delay, by default; refusals only is warned', () => {
    const defaults = parse([]);
    assert.equal(defaults.audit.statements, 'all');
    assert.equal(defaults.audit.acknowledge, 'at-once');
    assert.doesNotMatch(defaults.warnings.join('\n'), /audit\./);
    assert.equal(parse(['audit:', '  acknowledge: after-commit']).audit.acknowledge, 'after-commit');
    const weaker = parse(['audit:', '  statements: refused']);
    assert.match(weaker.warnings.join('\n'), /audit\.statements: refused: statements that run are not in the audit log/);
    assert.match(errorsOf(['audit:', '  statements: some'])[0]!, /audit\.statements: /);
    assert.match(errorsOf(['audit:', '  acknowledge: later'])[0]!, /audit\.acknowledge: /);
  });

  test('an empty file gives the defaults', () => {
    assert.deepEqual(parse(['# nothing here']), { ...defaultConfig, file });
    assert.deepEqual(defaultConfig.listen, {
      api: { host: '127.0.0.1', port: 7070 },
      postgres: { host: '127.0.0.1', port: 15432 },
    });
    assert.equal(defaultConfig.store, 'sqlite:./.drawbridge/state.db');
    assert.deepEqual(defaultConfig.postgres, { auth: 'scram-sha-256', maxMessageLength: 64 * 1024 * 1024 });
    assert.equal(defaultConfig.log.level, 'info');
  });

  test('within listen, an omitted or null postgres disables that listener', () => {
    assert.equal(parse(['listen:', '  api: 127.0.0.1:0']).listen.postgres, undefined);
    assert.equal(parse(['listen:', '  postgres: null']).listen.postgres, undefined);
    assert.deepEqual(parse(['listen:', '  postgres:']).listen, { api: { host: '127.0.0.1', port: 7070 }, postgres: undefined });
    assert.deepEqual(parse(['listen:', '  postgres: 5433']).listen.postgres, { host: '127.0.0.1', port: 5433 });
  });

  test('store URLs: relative sqlite paths resolve against the config folder', () => {
    assert.equal(parse(['store: sqlite:state/db.sqlite']).store, `sqlite:${dir}/state/db.sqlite`);
    assert.equal(parse(['store: "sqlite::memory:"']).store, 'sqlite::memory:');
    assert.equal(
      parse(['store: postgres://drawbridge:${env:PGPASS}@db:5432/drawbridge'], { PGPASS: 'x' }).store,
      'postgres://drawbridge:x@db:5432/drawbridge',
    );
  });

  test('max_message_length accepts integers and KiB/MiB/GiB sizes', () => {
    const size = (v: string) => parse(['postgres:', `  max_message_length: ${v}`]).postgres.maxMessageLength;
    assert.equal(size('1024'), 1024);
    assert.equal(size('512KiB'), 512 * 1024);
    assert.equal(size('1GiB'), 1024 ** 3);
  });

  test('loadConfig reads the file from disk', async () => {
    await writeFile(file, 'log:\n  level: warn\n');
    const config = await loadConfig(file, {});
    assert.equal(config.log.level, 'warn');
    assert.equal(config.file, file);
  });

  test('the result is deeply frozen', () => {
    const config = parse([...CONNECTION]);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.listen.api));
    assert.ok(Object.isFrozen(config.connections));
    assert.ok(Object.isFrozen(config.connections[0]));
    assert.ok(Object.isFrozen(config.warnings));
    assert.throws(() => {
      (config.connections[0] as { host: string }).host = 'evil.example.com';
    }, TypeError);
    assert.ok(Object.isFrozen(defaultConfig.postgres));
  });
});

describe('secrets by reference', () => {
  const password = (value: string, env: Record<string, string> = {}) =>
    parse([...CONNECTION, `    password: ${value}`], env).connections[0]?.password;

  test('${env:NAME} and ${file:PATH} are replaced, inside larger strings too', () => {
    assert.equal(password('${env:PW}', { PW: 'from-env' }), 'from-env');
    assert.equal(password('"a-${env:PW}-b"', { PW: 'x' }), 'a-x-b');
    assert.equal(password('${env:EMPTY}', { EMPTY: '' }), '');
  });

  test('file references resolve against the config folder and lose one trailing newline', () => {
    assert.equal(password('${file:secret.txt}'), 's3cret\n');
    assert.equal(password(`\${file:${dir}/crlf.txt}`), 'pw');
  });

  test('$${ writes a literal ${', () => {
    assert.equal(password('"$${env:PW}"', { PW: 'no' }), '${env:PW}');
    assert.equal(password('"pa$$${x"'), 'pa$${x');
    assert.equal(password('just$dollars'), 'just$dollars');
  });

  test('a reference may name the TLS material or carry the PEM itself', () => {
    const config = parse(['tls:', '  cert: ${env:CERT_PATH}', '  key: ${file:tls.key}'], { CERT_PATH: 'tls.crt' });
    assert.deepEqual(config.tls, { cert: CERT, key: KEY.slice(0, -1) });
  });

  test('unresolvable references are errors, with their position', () => {
    assert.deepEqual(
      errorsOf([
        ...CONNECTION,
        '    password: ${env:ORDERS_DB_PASSWORD}',
        '  - name: b',
        '    type: postgres',
        '    host: ${file:missing.txt}',
        '    database: "${vault:x}"',
        '    user: "${env:USER"',
      ]),
      [
        'drawbridge.yaml:7:15: connections[0].password: environment variable ORDERS_DB_PASSWORD is not set',
        `drawbridge.yaml:10:11: connections[1].host: cannot read file <dir>/missing.txt (ENOENT)`,
        'drawbridge.yaml:11:15: connections[1].database: unknown reference "${vault:x}"; expected ${env:NAME} or ${file:PATH} (write "$${" for a literal "${")',
        'drawbridge.yaml:12:11: connections[1].user: unterminated "${" (write "$${" for a literal "${")',
      ].map((e) => e.replace('drawbridge.yaml', '<dir>/drawbridge.yaml')),
    );
  });

  test("administrative commands may go without the targets' passwords, and only those", () => {
    const lines = [
      'store: ${env:STORE_URL}',
      'connections:',
      '  - name: orders-db',
      '    type: postgres',
      '    host: 127.0.0.1',
      '    database: orders',
      '    user: app_owner',
      '    password: ${env:ORDERS_DB_PASSWORD}',
    ];
    const config = parseConfig(lines.join('\n'), file, { STORE_URL: 'sqlite::memory:' }, { withoutTargetSecrets: true });
    assert.equal(config.connections[0]?.password, undefined);
    assert.throws(() => parseConfig(lines.join('\n'), file, {}, { withoutTargetSecrets: true }), /STORE_URL/);
    assert.throws(() => parseConfig(lines.join('\n'), file, { STORE_URL: 'sqlite::memory:' }), /ORDERS_DB_PASSWORD/);
  });

  test('a value that came from a reference is not echoed in errors', () => {
    assert.deepEqual(errorsOf([...CONNECTION, '    port: ${env:PORT}'], { PORT: 'hunter2' }), [
      '<dir>/drawbridge.yaml:7:11: connections[0].port: expected an integer from 1 to 65535, got the value of "${env:PORT}"',
    ]);
    assert.equal(parse([...CONNECTION, '    port: ${env:PORT}'], { PORT: '6543' }).connections[0]?.port, 6543);
  });
});

describe('errors name the file, line:column, path and reason', () => {
  const F = '<dir>/drawbridge.yaml';

  test('a wrong type', () => {
    assert.deepEqual(errorsOf([...CONNECTION, '    port: abc']), [
      `${F}:7:11: connections[0].port: expected an integer from 1 to 65535, got "abc"`,
    ]);
  });

  test('every error is reported, one per line, in file order', () => {
    assert.deepEqual(
      errorsOf([
        'store: mysql://x',
        'listen:',
        '  api: 127.0.0.1:99999',
        '  postgres: [::1]',
        'postgres:',
        '  auth: md5',
        '  max_message_length: 12MB',
        'log:',
        '  levle: info',
        'tls:',
        '  cert: ./nope.crt',
        'connections:',
        '  - name: -bad',
        '    type: mysql',
        '    hots: db',
        '    database: 5',
        '    user: u',
        '    tls: verify-ca',
        '  - orders',
      ]),
      [
        `${F}:1:8: store: expected sqlite:<path>, "sqlite::memory:" (quoted) or postgres://user:password@host:port/database, got "mysql://x"`,
        `${F}:3:8: listen.api: expected host:port with a port from 0 to 65535 (quote IPv6 as "[::1]:7070"), got "127.0.0.1:99999"`,
        `${F}:4:13: listen.postgres: expected host:port with a port from 0 to 65535 (quote IPv6 as "[::1]:7070"), got a list`,
        `${F}:6:9: postgres.auth: expected one of scram-sha-256, password, got "md5"`,
        `${F}:7:23: postgres.max_message_length: expected a size from 1KiB to 1GiB (an integer number of bytes, or e.g. 64MiB), got "12MB"`,
        `${F}:9:3: log.levle: unknown key (did you mean "level"?)`,
        `${F}:11:3: tls.key: is required`,
        `${F}:13:5: connections[0].host: is required`,
        `${F}:13:11: connections[0].name: expected a name of 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit, got "-bad"`,
        `${F}:14:11: connections[0].type: expected one of postgres, got "mysql"`,
        `${F}:15:5: connections[0].hots: unknown key (did you mean "host"?)`,
        `${F}:16:15: connections[0].database: expected a non-empty string, got 5`,
        `${F}:18:10: connections[0].tls: expected one of disable, require, verify-full, got "verify-ca"`,
        `${F}:19:5: connections[1]: expected a mapping, got "orders"`,
      ],
    );
  });

  test('unknown keys at the top level', () => {
    assert.deepEqual(errorsOf(['conections: []', 'stroe: sqlite:x', 'color: blue']), [
      `${F}:1:1: conections: unknown key (did you mean "connections"?)`,
      `${F}:2:1: stroe: unknown key (did you mean "store"?)`,
      `${F}:3:1: color: unknown key`,
    ]);
  });

  test('a section of the wrong shape', () => {
    assert.deepEqual(errorsOf(['listen: 7070', 'connections: {}']), [
      `${F}:1:9: listen: expected a mapping, got 7070`,
      `${F}:2:14: connections: expected a list, got a mapping`,
    ]);
    assert.deepEqual(errorsOf(['- a', '- b']), [`${F}:1:1: expected a mapping, got a list`]);
  });

  test('a Unix socket directory as host, which cannot use TLS', () => {
    const lines = (tls: string) => [
      'connections:',
      '  - name: local',
      '    type: postgres',
      '    host: /var/run/postgresql',
      '    database: app',
      '    user: app',
      `    tls: ${tls}`,
    ];
    assert.equal(parse(lines('disable')).connections[0]?.host, '/var/run/postgresql');
    assert.deepEqual(errorsOf(lines('require')), [
      `${F}:7:10: connections[0].tls: must be "disable" for a Unix socket (PostgreSQL has no TLS on Unix sockets)`,
    ]);
  });

  test('access policies: durations and approval modes are checked', () => {
    const lines = (access: string[]) => [
      'connections:',
      '  - name: app',
      '    type: postgres',
      '    host: 127.0.0.1',
      '    database: app',
      '    user: app',
      '    access:',
      ...access,
    ];
    assert.deepEqual(errorsOf(lines(['      max_duration: forever', '      approval: maybe'])), [
      `${F}:8:21: connections[0].access.max_duration: expected a duration such as 15m, 1h or 8h (at most 366d), got "forever"`,
      `${F}:9:17: connections[0].access.approval: expected one of none, required, got "maybe"`,
    ]);
  });

  test('policy: files must be readable, enabled must be a boolean', () => {
    assert.deepEqual(errorsOf(['policy:', '  enabled: maybe']), [`${F}:2:12: policy.enabled: expected true or false, got "maybe"`]);
    assert.deepEqual(errorsOf(['policy:', '  files: [guardrails.cedar, missing.cedar]']), [
      `${F}:2:29: policy.files[1]: cannot read <dir>/missing.cedar (ENOENT)`,
    ]);
  });

  test('masking: strategies, country and custom detectors are checked', () => {
    assert.deepEqual(
      errorsOf([
        'masking:',
        '  strategies: { email: blur }',
        '  default_country: usa',
        '  custom:',
        '    - name: "bad name!"',
        '      pattern: x',
      ]),
      [
        `${F}:2:24: masking.strategies.email: expected one of partial, full, hash, null, got "blur"`,
        `${F}:3:20: masking.default_country: expected a two-letter country code such as US or DE, got "usa"`,
        `${F}:5:13: masking.custom[0].name: expected a name of letters, digits or "-", got "bad name!"`,
      ],
    );
  });

  test('duplicate connection names (case-insensitive)', () => {
    assert.deepEqual(errorsOf([...CONNECTION, ...CONNECTION.slice(1).map((l) => l.replace('orders-db', 'Orders-DB'))]), [
      `${F}:7:11: connections[1].name: duplicate connection name "Orders-DB" (also connections[0].name)`,
    ]);
  });

  test('a CA without verify-full, and unreadable or non-PEM files', async () => {
    await writeFile(join(dir, 'not-pem.txt'), 'hello\n');
    assert.deepEqual(
      errorsOf([
        'tls:',
        '  cert: ./not-pem.txt',
        '  key: ./missing.key',
        ...CONNECTION,
        '    ca: ./ca.pem',
        '  - name: b',
        '    type: postgres',
        '    host: 127.0.0.1',
        '    database: b',
        '    user: u',
        '    tls: verify-full',
        '    ca: ./missing-ca.pem',
      ]),
      [
        `${F}:2:9: tls.cert: expected a PEM certificate`,
        `${F}:3:8: tls.key: cannot read <dir>/missing.key (ENOENT)`,
        `${F}:10:9: connections[0].ca: is only used with tls: verify-full (tls is "disable")`,
        `${F}:17:9: connections[1].ca: cannot read <dir>/missing-ca.pem (ENOENT)`,
      ],
    );
  });

  test('YAML syntax errors carry line:column', () => {
    assert.deepEqual(errorsOf(['listen:', '  api: 127.0.0.1:7070', '  api: 127.0.0.1:7071']), [`${F}:3:3: Map keys must be unique`]);
    assert.deepEqual(errorsOf(['log:', '  level: "info']), [`${F}:3:1: Missing closing "quote`]);
    assert.deepEqual(errorsOf(['listen:', '  api: [::1]:7070']), [`${F}:2:13: Unexpected scalar at node end`]);
  });

  test('sizes out of range', () => {
    assert.deepEqual(errorsOf(['postgres:', '  max_message_length: 2GiB']), [
      `${F}:2:23: postgres.max_message_length: expected a size from 1KiB to 1GiB (an integer number of bytes, or e.g. 64MiB), got "2GiB"`,
    ]);
    assert.deepEqual(errorsOf(['postgres:', '  max_message_length: 100']), [
      `${F}:2:23: postgres.max_message_length: expected a size from 1KiB to 1GiB (an integer number of bytes, or e.g. 64MiB), got 100`,
    ]);
  });

  test('loadConfig names an unreadable file', async () => {
    const missing = join(dir, 'nope.yaml');
    await assert.rejects(loadConfig(missing, {}), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${missing}: cannot read the config file (ENOENT)`);
      return true;
    });
  });
});

describe('warnings for insecure choices', () => {
  const F = '<dir>/drawbridge.yaml';
  const warnings = (lines: string[]) => parse(lines).warnings.map((w) => w.replaceAll(`${dir}/`, '<dir>/'));

  test('masking turned off', () => {
    assert.deepEqual(warnings(['masking:', '  enabled: false']), [
      `${F}:2:12: masking.enabled: false: results leave the gateway unmasked, sensitive values included`,
    ]);
  });

  test('guardrails turned off', () => {
    assert.deepEqual(warnings(['policy:', '  enabled: false']), [
      `${F}:2:12: policy.enabled: false: guardrails are off, every statement a grant holder sends reaches the target`,
    ]);
  });

  test('none for the loopback defaults', () => {
    assert.deepEqual(warnings([...CONNECTION]), []);
    assert.deepEqual(defaultConfig.warnings, []);
  });

  test('cleartext to a remote target, cleartext passwords, exposed listeners', () => {
    assert.deepEqual(
      warnings([
        'listen:',
        '  api: 0.0.0.0:7070',
        '  postgres: "[::]:15432"',
        'postgres:',
        '  auth: password',
        'connections:',
        '  - name: a',
        '    type: postgres',
        '    host: db.example.com',
        '    database: a',
        '    user: u',
        '  - name: b',
        '    type: postgres',
        '    host: 10.0.0.5',
        '    database: b',
        '    user: u',
        '    tls: disable',
        '  - name: c',
        '    type: postgres',
        '    host: 10.0.0.6',
        '    database: c',
        '    user: u',
        '    tls: require',
      ]),
      [
        `${F}:2:8: listen.api: 0.0.0.0:7070 is reachable from other hosts and no tls is configured: credentials and data cross the network in cleartext`,
        `${F}:3:13: listen.postgres: [::]:15432 is reachable from other hosts and no tls is configured: credentials and data cross the network in cleartext`,
        `${F}:5:9: postgres.auth: cleartext password authentication with no tls configured: only loopback clients can log in, and their passwords are not encrypted`,
        `${F}:7:5: connections[0].tls: "disable" (the default) sends the target password and all data to db.example.com, which is not a loopback address, in cleartext; use verify-full`,
        `${F}:17:10: connections[1].tls: "disable" (the default) sends the target password and all data to 10.0.0.5, which is not a loopback address, in cleartext; use verify-full`,
      ],
    );
  });

  test('tls on the listeners silences the listener and password warnings', () => {
    assert.deepEqual(
      warnings(['listen:', '  api: 0.0.0.0:7070', 'tls:', '  cert: tls.crt', '  key: tls.key', 'postgres:', '  auth: password']),
      [],
    );
  });
});
