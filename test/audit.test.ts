/**
 * The tamper-evident audit log against both store backends (SQLite in a temporary folder, a
 * throwaway PostgreSQL database): appends from many writers make one chain; an edited field, a
 * removed record, two swapped records and a cut tail are each found and named; and the CLI's
 * `audit verify` and `audit export` as an administrator runs them.
 */

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { StoreAuditLog } from '../src/audit/audit-log.ts';
import { recordHash } from '../src/audit/chain.ts';
import { AuditCheckpoints, loadSigningKey, trustedKeys } from '../src/audit/checkpoints.ts';
import { verifyAuditLog } from '../src/audit/verify.ts';
import { FrozenClock } from '../src/core/index.ts';
import { unbatchAudits } from '../src/store/audit-batches.ts';
import { openStore, type Store } from '../src/store/index.ts';
import { ADMIN, createDatabase, eventually, type ThrowawayDatabase } from './support/pg-db.ts';
import { freePort } from './support/ports.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-audit-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A store of one backend, and raw SQL on it behind the store's back (what an intruder with database access does). */
interface Backend {
  readonly name: string;
  readonly url: string;
  sql(text: string): Promise<void>;
  /** One statement, `$1`… its parameters; its rows. */
  query(text: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
  drop(): Promise<void>;
}

let made = 0;
async function sqliteBackend(): Promise<Backend> {
  const file = join(dir, `state-${++made}.db`);
  return {
    name: 'sqlite',
    url: `sqlite:${file}`,
    async sql(text) {
      const db = new DatabaseSync(file);
      try {
        db.exec(text);
      } finally {
        db.close();
      }
    },
    async query(text, params = []) {
      const db = new DatabaseSync(file);
      try {
        return db.prepare(text.replace(/\$\d+/g, '?')).all(...(params as SQLInputValue[]));
      } finally {
        db.close();
      }
    },
    drop: async () => {},
  };
}

async function postgresBackend(): Promise<Backend> {
  const db: ThrowawayDatabase = await createDatabase('audit');
  return {
    name: 'postgres',
    url: `postgres://${ADMIN.user}@${ADMIN.host}:${ADMIN.port}/${db.name}`,
    async sql(text) {
      const client = new pg.Client({ ...ADMIN, database: db.name });
      await client.connect();
      try {
        await client.query(text);
      } finally {
        await client.end();
      }
    },
    async query(text, params = []) {
      const client = new pg.Client({ ...ADMIN, database: db.name });
      await client.connect();
      try {
        return (await client.query(text, [...params])).rows as Record<string, unknown>[];
      } finally {
        await client.end();
      }
    },
    drop: () => db.drop(),
  };
}

const key = generateKeyPairSync('ed25519');
const trusted = trustedKeys([key.publicKey.export({ type: 'spki', format: 'pem' }).toString()]);

/** `n` events appended as writers do: many at once (one transaction), and from the data path without waiting. */
async function fill(store: Store, n: number): Promise<void> {
  const audit = new StoreAuditLog(store, new FrozenClock(Date.UTC(2026, 11, 1)));
  await Promise.all(
    Array.from({ length: n - 2 }, (_, i) =>
      audit.append({
        actor: `user${i % 4}`,
        action: 'grant.issued',
        subject: `grt_${i}`,
        outcome: 'success',
        details: { connection: 'orders', ttl: i },
      }),
    ),
  );
  audit.note({
    actor: 'gateway',
    action: 'command.denied',
    subject: 'ses_1',
    outcome: 'failure',
    details: { policy: 'no-destructive-ddl' },
  });
  audit.note({ actor: 'gateway', action: 'session.ended', subject: 'ses_1', outcome: 'success', details: { masked: { email: 2 } } });
  await audit.flush();
  await new AuditCheckpoints(store, key.privateKey, new FrozenClock(Date.UTC(2026, 11, 2))).checkpoint();
}

/** A record as a store may keep it in a batch's JSON, whole (store/audit-batches.ts). */
type Stored = [
  seq: number,
  at: number,
  actor: string,
  action: string,
  subject: string,
  outcome: string,
  details: Record<string, unknown>,
  prevHash: string | null,
  hash: string | null,
];

/**
 * Rewrites the log behind the store's back, as an intruder with access to the database would:
 * `edit` gets every record, in order, whole (each with the hash of the one before, which a batch
 * leaves out after its first record), and returns what the log is to hold (one batch, its records
 * written whole, as a store reads them too).
 */
async function editLog(b: Backend, edit: (records: Stored[]) => Stored[]): Promise<void> {
  const batches = await b.query('select first_seq, body from audit_batches order by first_seq');
  const records = edit(
    batches.flatMap((row) =>
      unbatchAudits(Number(row.first_seq), String(row.body)).map((r): Stored => [
        r.seq,
        r.at,
        r.actor,
        r.action,
        r.subject,
        r.outcome,
        { ...r.details },
        r.prevHash,
        r.hash,
      ]),
    ),
  );
  await b.query('delete from audit_batches');
  if (records.length === 0) return;
  const at = records.map((r) => r[1]);
  await b.query('insert into audit_batches (first_seq, last_seq, first_at, last_at, last_hash, body) values ($1, $2, $3, $4, $5, $6)', [
    records[0]![0],
    records.at(-1)![0],
    Math.min(...at),
    Math.max(...at),
    records.at(-1)![8],
    JSON.stringify(records),
  ]);
}

/** `record` with its field at `index` set to `value`. */
function changed(record: Stored, index: number, value: unknown): Stored {
  const copy = [...record] as Stored;
  copy[index] = value as never;
  return copy;
}

/** Verifies the log of `backend` after `tamper` ran on it with the store closed. */
async function afterTampering(backend: Backend, tamper: (records: Stored[]) => Stored[]) {
  let store = await openStore(backend.url);
  await fill(store, 30);
  assert.equal((await verifyAuditLog(store, trusted)).ok, true);
  await store.close();
  await editLog(backend, tamper);
  store = await openStore(backend.url);
  try {
    return await verifyAuditLog(store, trusted);
  } finally {
    await store.close();
  }
}

for (const make of [sqliteBackend, postgresBackend]) {
  describe(`the audit chain on ${make === sqliteBackend ? 'SQLite' : 'PostgreSQL'}`, () => {
    const backends: Backend[] = [];
    const backend = async () => {
      const b = await make();
      backends.push(b);
      return b;
    };
    after(() => Promise.all(backends.map((b) => b.drop())));

    test('what was written verifies, up to the signed head, in one pass and in parts on threads', async () => {
      const { url } = await backend();
      const store = await openStore(url);
      try {
        await fill(store, 30);
        const report = await verifyAuditLog(store, trusted);
        assert.equal(report.ok, true, JSON.stringify(report.problem));
        assert.equal(report.records, 30);
        assert.deepEqual(report.lastCheckpoint, { seq: 30, at: Date.UTC(2026, 11, 2) });
        // Three parts, each on a thread with a connection of its own: the same report.
        assert.deepEqual(await verifyAuditLog(store, trusted, { threads: 3, url, splitFrom: 1 }), report);
        const records = await store.listAudit({ limit: 100 });
        assert.deepEqual(
          records.map((r) => r.seq),
          Array.from({ length: 30 }, (_, i) => i + 1),
        );
        assert.deepEqual(records.at(-1)?.details, { masked: { email: 2 } });
      } finally {
        await store.close();
      }
    });

    test('an edited field is found, naming the record', async () => {
      const edited = await backend();
      const report = await afterTampering(edited, (records) =>
        records.map((r) => (r[0] === 7 ? changed(r, 6, { connection: 'orders', ttl: 999 }) : r)),
      );
      const store = await openStore(edited.url);
      try {
        assert.deepEqual(await verifyAuditLog(store, trusted, { threads: 3, url: edited.url, splitFrom: 1 }), report);
      } finally {
        await store.close();
      }
      assert.equal(report.ok, false);
      assert.deepEqual(report.problem, {
        kind: 'chain',
        seq: 7,
        reason: 'edited',
        message: 'record 7 was changed after it was written: its contents do not match its hash',
      });
      const actor = await afterTampering(await backend(), (records) =>
        records.map((r) => (r[0] === 12 ? changed(r, 2, 'someone-else') : r)),
      );
      assert.equal(actor.problem?.seq, 12);
    });

    test('a removed record is found', async () => {
      const report = await afterTampering(await backend(), (records) => records.filter((r) => r[0] !== 5));
      assert.equal(report.problem?.seq, 5);
      assert.match(report.problem!.message, /record 5 is missing \(the log goes from 4 to 6\)/);
    });

    test('a record cut out of a batch as the store writes it, the numbers after it closed up, is found', async () => {
      const b = await backend();
      let store = await openStore(b.url);
      await fill(store, 30);
      await store.close();
      // The first batch (the 28 grants, one append): its records after the first do not carry the
      // hash of the one before. Cut out its fifth and number the rest down, leaving no gap.
      const [first] = await b.query('select first_seq, body from audit_batches order by first_seq limit 1');
      const tuples = JSON.parse(String(first!.body)) as unknown[][];
      assert.ok(tuples.length > 6 && tuples.slice(1).every((t) => t.length === 8), 'a batch as chainInBatches writes it');
      const cut = tuples.filter((t) => t[0] !== 5).map((t) => ((t[0] as number) > 5 ? [(t[0] as number) - 1, ...t.slice(1)] : t));
      await b.query('update audit_batches set body = $1, last_seq = $2 where first_seq = $3', [
        JSON.stringify(cut),
        cut.at(-1)![0],
        first!.first_seq,
      ]);
      store = await openStore(b.url);
      try {
        const report = await verifyAuditLog(store, trusted);
        assert.deepEqual(report.problem, {
          kind: 'chain',
          seq: 5,
          reason: 'edited',
          message: 'record 5 was changed after it was written: its contents do not match its hash',
        });
      } finally {
        await store.close();
      }
    });

    test('two swapped records are found', async () => {
      // Each takes the other's place and number.
      const report = await afterTampering(await backend(), (records) =>
        records.map((r, i) => (r[0] === 3 ? changed(records[i + 1]!, 0, 3) : r[0] === 4 ? changed(records[i - 1]!, 0, 4) : r)),
      );
      assert.equal(report.ok, false);
      assert.equal(report.problem?.seq, 3);
    });

    test('a tail cut off is found by the signed checkpoint', async () => {
      const report = await afterTampering(await backend(), (records) => records.filter((r) => r[0] <= 25));
      assert.equal(report.ok, false);
      assert.equal(report.problem?.kind, 'checkpoint');
      assert.match(
        report.problem!.message,
        /the log ends at record 25, but a checkpoint signed .* covers records up to 30: records were cut off the end/,
      );
    });

    test('a read of a long log scans it a window at a time, giving the event loop turns between windows', async () => {
      const b = await backend();
      const store = await openStore(b.url);
      try {
        await fill(store, 30);
        // Batches far apart in seq, put in behind the store's back: what a long log's reads cross.
        const far = [100_001, 250_001];
        for (const seq of far) {
          const record = [seq, seq, 'alice', 'policy.changed', 'policy', 'success', { version: seq }, 'a'.repeat(64), 'b'.repeat(64)];
          await b.query(
            'insert into audit_batches (first_seq, last_seq, first_at, last_at, last_hash, body) values ($1, $2, $3, $4, $5, $6)',
            [seq, seq, seq, seq, 'b'.repeat(64), JSON.stringify([record])],
          );
        }
        let turned = false;
        setImmediate(() => (turned = true));
        const found = await store.listAudit({ action: 'policy.changed', limit: 10 });
        assert.ok(turned, 'the event loop had a turn while the read crossed the log');
        assert.deepEqual(
          found.map((r) => [r.seq, r.details]),
          far.map((seq) => [seq, { version: seq }]),
        );
        assert.deepEqual(
          (await store.listAudit({ afterSeq: 30, limit: 10 })).map((r) => r.seq),
          far,
        );
        assert.deepEqual(
          (await store.listAudit({ afterSeq: far[0], limit: 10 })).map((r) => r.seq),
          [far[1]],
        );
        assert.deepEqual(
          (await store.listAudit({ afterSeq: 29, limit: 2 })).map((r) => r.seq),
          [30, far[0]],
        );
        assert.deepEqual(await store.listAudit({ afterSeq: far[1], limit: 10 }), []);
      } finally {
        await store.close();
      }
    });

    test('a checkpoint made with another key is not trusted', async () => {
      const store = await openStore((await backend()).url);
      try {
        await fill(store, 3);
        const intruder = generateKeyPairSync('ed25519').privateKey;
        await store.appendAudit({ at: 1, actor: 'x', action: 'logout', subject: 'x', outcome: 'success', details: {} });
        await new AuditCheckpoints(store, intruder, new FrozenClock()).checkpoint();
        const report = await verifyAuditLog(store, trusted);
        assert.equal(report.problem?.kind, 'checkpoint');
        assert.match(report.problem!.message, /not a trusted key/);
      } finally {
        await store.close();
      }
    });
  });
}

test('PostgreSQL: two gateways appending at once make one chain', async () => {
  const b = await postgresBackend();
  const [one, two] = [await openStore(b.url), await openStore(b.url)];
  try {
    await Promise.all([fill(one, 40), fill(two, 40)]);
    const report = await verifyAuditLog(one, trusted);
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.equal(report.records, 80);
  } finally {
    await one.close();
    await two.close();
    await b.drop();
  }
});

test('SQLite: a log of many pages verifies, and a break on a later page is named', async () => {
  const b = await sqliteBackend();
  let store = await openStore(b.url);
  await fill(store, 5_000); // one turn of the event loop: one transaction of more rows than one INSERT may carry
  assert.equal((await verifyAuditLog(store, trusted)).records, 5_000);
  await store.close();
  await editLog(b, (records) => records.filter((r) => r[0] !== 2345));
  store = await openStore(b.url);
  try {
    const report = await verifyAuditLog(store, trusted);
    assert.equal(report.problem?.seq, 2345);
    assert.equal(report.head.seq, 2344);
  } finally {
    await store.close();
  }
});

test('SQLite: records written before the chain are chained when the store is upgraded', async () => {
  const b = await sqliteBackend();
  let store = await openStore(b.url);
  await fill(store, 5);
  await store.close();
  // The store as it was before the chain: no hashes, no checkpoints, every migration since undone (add each new one here).
  await b.sql(
    "create table audit_events (seq integer primary key not null, at bigint not null, actor text not null, action text not null, subject text not null, outcome text not null check (outcome in ('success', 'failure')), details text not null, prev_hash text, hash text); insert into audit_events select r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4, r.value ->> 5, r.value -> 6, null, null from audit_batches, json_each(audit_batches.body) r where r.value ->> 0 != 2; create index audit_events_at on audit_events (at, seq); drop table audit_batches; drop table audit_checkpoints; drop table statement_batches; create table statements (session_id text not null references sessions(id) on delete cascade, seq integer not null, text text not null, started_at bigint not null, duration_ms double precision not null, rows bigint, outcome text not null, error_code text, error_message text, primary key (session_id, seq)) without rowid; drop index sessions_ended; drop table approvals; alter table access_requests drop column approval_id; alter table access_requests drop column decision_reason; alter table access_requests drop column plan; alter table grants drop column plan; drop table review_decisions; drop index grants_created; drop index grants_principal_created; delete from drawbridge_migration where name >= '0007';",
  );
  store = await openStore(b.url);
  try {
    const report = await verifyAuditLog(store, trusted);
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.equal(report.records, 4);
  } finally {
    await store.close();
  }
});

describe('drawbridge audit verify and export', () => {
  function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) =>
      execFile(process.execPath, ['bin/drawbridge.js', ...args], { timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
  }

  test('verify passes on a log as written, fails naming the record after an edit; export writes JSON lines anyone can check', async () => {
    const b = await sqliteBackend();
    const config = join(dir, 'cli.yaml');
    const keyFile = join(dir, 'cli-key.pem');
    await writeFile(config, `store: ${b.url}\naudit:\n  signing_key: ${keyFile}\n`);
    const store = await openStore(b.url);
    const audit = new StoreAuditLog(store, new FrozenClock(Date.UTC(2026, 10, 20)));
    for (let i = 0; i < 12; i++)
      await audit.append({ actor: 'alice', action: 'grant.issued', subject: `grt_${i}`, outcome: 'success', details: { i } });
    await new AuditCheckpoints(store, loadSigningKey(keyFile), new FrozenClock()).checkpoint();
    await store.close();

    const ok = await cli('audit', 'verify', '--config', config);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^audit log verified: 12 records, head 12 \([0-9a-f]{16}…\), 1 signed checkpoint, the last at record 12/);

    const exported = await cli('audit', 'export', '--config', config, '--since', '2026-11-01');
    assert.equal(exported.code, 0, exported.stderr);
    const lines = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 12);
    // The chain holds in the export alone: each line's hash from its fields and the line before.
    let prev = lines[0].prev_hash;
    for (const l of lines) {
      assert.equal(l.prev_hash, prev);
      assert.equal(recordHash(l, prev), l.hash);
      prev = l.hash;
    }
    assert.equal((await cli('audit', 'export', '--config', config, '--since', '2026-12-01')).stdout, '');

    await editLog(b, (records) => records.map((r) => (r[0] === 4 ? changed(r, 4, 'grt_hidden') : r)));
    const broken = await cli('audit', 'verify', '--config', config);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, /^audit log BROKEN at record 4: record 4 was changed after it was written/);
    const json = JSON.parse((await cli('audit', 'verify', '--config', config, '--json')).stdout);
    assert.equal(json.problem.seq, 4);
    assert.equal(JSON.parse((await cli('audit', 'verify', '--config', config, '--threads', '3', '--json')).stdout).problem.seq, 4);
    const badThreads = await cli('audit', 'verify', '--config', config, '--threads', '0');
    assert.equal(badThreads.code, 2);
    assert.match(badThreads.stderr, /--threads must be 1 to 64/);
    assert.ok((await readFile(`${keyFile}.pub`, 'utf8')).startsWith('-----BEGIN PUBLIC KEY-----'));
  });
});

describe('the audit API', () => {
  test('auditors page through the records with a cursor and filters, and verify the chain; users may not', async () => {
    const { startTestGateway } = await import('./support/gateway.ts');
    const { accountToken, callApi } = await import('./support/api.ts');
    const gw = await startTestGateway();
    try {
      const api = `http://127.0.0.1:${gw.apiPort}`;
      const [auditor, user] = [await accountToken(gw, 'audra', ['auditor']), await accountToken(gw, 'uma')];
      for (let i = 0; i < 5; i++) await gw.mint(`p${i}`, 'local');

      const first = await callApi(api, 'GET', '/api/audit?limit=3', auditor);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.deepEqual(
        first.body.records.map((r: { seq: number }) => r.seq),
        [1, 2, 3],
      );
      assert.equal(first.body.next, 3);
      const all = (await callApi(api, 'GET', '/api/audit?limit=1000', auditor)).body;
      assert.equal(all.next, null);
      const rest = (await callApi(api, 'GET', `/api/audit?after=${first.body.next}&limit=1000`, auditor)).body;
      assert.deepEqual(rest.records, all.records.slice(3));
      const grants = (await callApi(api, 'GET', '/api/audit?action=grant.issued&since=1d', auditor)).body.records;
      assert.deepEqual(
        grants.map((r: { subject: string; actor: string }) => r.actor),
        ['test', 'test', 'test', 'test', 'test'],
      );
      assert.match(grants[0].time, /^\d{4}-\d\d-\d\dT/);
      assert.equal(grants[0].hash.length, 64);

      const verified = await callApi(api, 'GET', '/api/audit/verify', auditor);
      assert.equal(verified.status, 200);
      assert.equal(verified.body.ok, true, JSON.stringify(verified.body.problem));
      assert.equal(verified.body.records, all.records.length);
      // Requests that come while a verification runs share it: the log is read once for three.
      // The first verification is held at its start until the other two requests are in.
      const store = gw.gateway.store;
      const listCheckpoints = store.listAuditCheckpoints.bind(store);
      let verifications = 0;
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      store.listAuditCheckpoints = async () => {
        verifications++;
        await held;
        return listCheckpoints();
      };
      try {
        const one = callApi(api, 'GET', '/api/audit/verify', auditor);
        await eventually(
          async () => verifications,
          (n) => n === 1,
        );
        // Two more while it is held: they wait for it rather than start their own (the count stays 1).
        const two = [callApi(api, 'GET', '/api/audit/verify', auditor), callApi(api, 'GET', '/api/audit/verify', auditor)];
        await sleep(300);
        assert.equal(verifications, 1);
        release();
        const three = await Promise.all([one, ...two]);
        assert.deepEqual(
          three.map((r) => [r.status, r.body]),
          [1, 2, 3].map(() => [200, three[0]!.body]),
        );
        assert.deepEqual({ ...three[0]!.body, verifiedAt: verified.body.verifiedAt }, verified.body);
        assert.equal(verifications, 1);
        // A verification finished within ?recent= answers without reading the log again.
        assert.deepEqual((await callApi(api, 'GET', '/api/audit/verify?recent=1h', auditor)).body, three[0]!.body);
        assert.equal(verifications, 1);
        assert.equal((await callApi(api, 'GET', '/api/audit/verify', auditor)).body.ok, true);
        assert.equal(verifications, 2, 'once it has answered, the next request verifies again');
      } finally {
        store.listAuditCheckpoints = listCheckpoints;
      }
      // What ?recent= answers says when it was verified, and up to which record: not the records since.
      await gw.mint('late', 'local');
      const remembered = (await callApi(api, 'GET', '/api/audit/verify?recent=1h', auditor)).body;
      const fresh = (await callApi(api, 'GET', '/api/audit/verify', auditor)).body;
      assert.ok(fresh.head.seq > remembered.head.seq, `${fresh.head.seq} after ${remembered.head.seq}`);
      assert.ok(Date.parse(fresh.verifiedAt) >= Date.parse(remembered.verifiedAt));
      assert.deepEqual((await callApi(api, 'GET', '/api/audit/verify?recent=1h', auditor)).body, fresh);
      const soon = await callApi(api, 'GET', '/api/audit/verify?recent=soon', auditor);
      assert.equal(soon.status, 400);
      assert.equal(soon.body.code, 'invalid-query');

      // The export as JSON lines: every record, its hashes, the chain recomputable from the lines alone.
      const exported = await fetch(`${api}/api/audit/export?since=1d`, { headers: { authorization: `Bearer ${auditor}` } });
      assert.equal(exported.status, 200);
      assert.match(exported.headers.get('content-type') ?? '', /^application\/x-ndjson/);
      const lines = (await exported.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.ok(lines.length >= all.records.length, `${lines.length} lines for ${all.records.length} records`);
      for (const [i, l] of lines.entries()) {
        assert.equal(l.seq, i + 1);
        assert.equal(recordHash(l, l.prev_hash), l.hash);
        if (i > 0) assert.equal(l.prev_hash, lines[i - 1].hash);
      }
      assert.equal((await fetch(`${api}/api/audit/export`, { headers: { authorization: `Bearer ${user}` } })).status, 403);
      assert.equal((await fetch(`${api}/api/audit/export?until=later`, { headers: { authorization: `Bearer ${auditor}` } })).status, 400);
      const doc = (await callApi(api, 'GET', '/api/openapi.json', undefined)).body;
      assert.ok(doc.paths['/api/audit/export'].get.responses['200'].content['application/x-ndjson']);

      assert.equal((await callApi(api, 'GET', '/api/audit', user)).status, 403);
      assert.equal((await callApi(api, 'GET', '/api/audit/verify', undefined)).status, 401);
      const bad = await callApi(api, 'GET', '/api/audit?since=yesterday', auditor);
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'invalid-query');
    } finally {
      await gw.close();
    }
  });
});

describe('audit sinks', () => {
  test('a running gateway copies each record as it is committed to syslog over UDP and to a file', async () => {
    const { createSocket } = await import('node:dgram');
    const { startTestGateway } = await import('./support/gateway.ts');
    const server = createSocket('udp4');
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const messages: string[] = [];
    server.on('message', (m) => messages.push(m.toString('utf8')));
    const file = join(dir, 'sink.jsonl');
    const gw = await startTestGateway({
      extraYaml: [
        'audit:',
        '  sinks:',
        `    - syslog: udp://127.0.0.1:${server.address().port}`,
        '      facility: local3',
        `    - file: ${file}`,
      ],
    });
    try {
      await gw.mint('sid', 'local');
      const grant = (m: string) => m.includes('"action":"grant.issued"') && m.includes('"actor":"test"');
      for (const deadline = Date.now() + 5000; Date.now() < deadline && !messages.some(grant);) await new Promise((r) => setTimeout(r, 50));
      const message = messages.find(grant);
      assert.ok(message, `no grant.issued among ${messages.length} syslog messages`);
      assert.equal(Number(/^<(\d+)>1 /.exec(message)![1]), 19 * 8 + 6);
      const [stored] = (await gw.gateway.store.listAudit({ action: 'grant.issued' })).filter((r) => r.actor === 'test');
      assert.ok(
        message.endsWith(
          JSON.stringify({
            seq: stored!.seq,
            time: new Date(stored!.at).toISOString(),
            at: stored!.at,
            actor: stored!.actor,
            action: stored!.action,
            subject: stored!.subject,
            outcome: stored!.outcome,
            details: stored!.details,
            prev_hash: stored!.prevHash,
            hash: stored!.hash,
          }),
        ),
      );
    } finally {
      await gw.close();
      server.close();
    }
    const lines = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.action === 'grant.issued' && l.actor === 'test'));
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
  });
});

describe('a gateway killed mid-stream', () => {
  /**
   * With `after-commit`, every statement that was answered is on record; with `at-once` (where the
   * store's writer thread commits), those answered up to the commit delay before the kill may not
   * be, so only those answered a second or more before it are held to it (a bound far above 5 ms,
   * for a loaded machine).
   */
  async function killMidStream(acknowledge: 'after-commit' | 'at-once'): Promise<void> {
    const home = await mkdtemp(join(dir, 'crash-'));
    const [api, postgres] = [await freePort(), await freePort()];
    const config = join(home, 'drawbridge.yaml');
    await writeFile(
      config,
      [
        'store: sqlite:state.db',
        'listen:',
        `  api: 127.0.0.1:${api}`,
        `  postgres: 127.0.0.1:${postgres}`,
        'log:',
        '  level: info',
        'postgres:',
        '  auth: password',
        'audit:',
        `  acknowledge: ${acknowledge}`,
        'connections:',
        '  - { name: local, type: postgres, host: 127.0.0.1, port: 5432, database: postgres, user: postgres }',
        '',
      ].join('\n'),
    );
    const cliRun = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, ['bin/drawbridge.js', ...args], { timeout: 60_000 }, (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    const startGateway = async () => {
      const child = spawn(process.execPath, ['bin/drawbridge.js', 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout!.setEncoding('utf8').on('data', (text: string) => {
          out += text;
          if (out.includes('drawbridge started')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`gateway exited with ${code}: ${out}`)));
      });
      return child;
    };
    const grant = async (principal: string) => {
      const r = await cliRun('grant', '--config', config, '--principal', principal, '--connection', 'local', '--json');
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { credential: string; grant: string };
    };

    const gateway = await startGateway();
    const { credential } = await grant('mallory');
    const client = new pg.Client({ host: '127.0.0.1', port: postgres, user: 'mallory', database: 'local', password: credential });
    await client.connect();
    client.on('error', () => {});
    /** When each refusal was answered. */
    const refused: number[] = [];
    let running = true;
    const refusals = (async () => {
      while (running) {
        try {
          await client.query('DROP TABLE orders');
        } catch (error) {
          if ((error as { code?: string }).code !== '42501') return;
          refused.push(Date.now());
        }
      }
    })();
    // Another client runs statements that are allowed: each is answered once its record is committed.
    const { credential: worker } = await grant('worker');
    const runner = new pg.Client({ host: '127.0.0.1', port: postgres, user: 'worker', database: 'local', password: worker });
    await runner.connect();
    runner.on('error', () => {});
    /** Each statement answered, and when. */
    const ran: { i: number; at: number }[] = [];
    const statements = (async () => {
      for (let i = 0; running; i++) {
        try {
          await runner.query(`select 'crash-mark-${i}'`);
        } catch {
          return;
        }
        ran.push({ i, at: Date.now() });
      }
    })();
    // Administrative commands append from other processes meanwhile; each answers after its record is committed.
    const acknowledged: string[] = [];
    for (let i = 0; i < 4; i++) acknowledged.push((await grant(`p${i}`)).grant);
    if (acknowledge === 'at-once') await sleep(1500); // statements answered a second before the kill, and more
    const killedAt = Date.now();
    const heldTo = acknowledge === 'at-once' ? killedAt - 1000 : killedAt;
    gateway.kill('SIGKILL');
    await once(gateway, 'exit');
    running = false;
    await Promise.all([refusals, statements]);
    await client.end().catch(() => {});
    await runner.end().catch(() => {});
    assert.ok(
      refused.some((at) => at <= heldTo),
      'the client was refused before the kill',
    );
    assert.ok(
      ran.some((r) => r.at <= heldTo),
      'statements ran before the kill',
    );

    const verified = await cliRun('audit', 'verify', '--config', config, '--json');
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const store = await openStore(`sqlite:${join(home, 'state.db')}`);
    try {
      const issued = (await store.listAudit({ action: 'grant.issued', limit: 1000 })).map((r) => r.subject);
      for (const id of acknowledged) assert.ok(issued.includes(id), `grant ${id} was acknowledged but is not on record`);
      const denied = await store.listAudit({ action: 'command.denied', limit: 100_000 });
      const owed = refused.filter((at) => at <= heldTo).length;
      assert.ok(denied.length >= owed, `${owed} refusals were answered, ${denied.length} are on record`);
      const allowed = new Set(
        (await store.listAudit({ action: 'command.allowed', limit: 100_000 })).map((r) => String(r.details['statement'])),
      );
      for (const { i, at } of ran) {
        if (at <= heldTo) assert.ok(allowed.has(`select 'crash-mark-${i}'`), `statement ${i} was answered but is not on record`);
      }
    } finally {
      await store.close();
    }

    // After a restart the chain goes on from where it was cut, and a normal stop signs the head.
    const again = await startGateway();
    await grant('after-restart');
    again.kill('SIGTERM');
    await once(again, 'exit');
    const after = JSON.parse((await cliRun('audit', 'verify', '--config', config, '--json')).stdout);
    assert.equal(after.ok, true, JSON.stringify(after.problem));
    assert.equal(after.lastCheckpoint.seq, after.head.seq);
  }

  test('SIGKILL while the data path and administrative commands append (after-commit): the chain verifies, every acknowledged record is there, and it goes on after a restart', () =>
    killMidStream('after-commit'));

  test("SIGKILL while the store's writer thread commits (at-once): the chain verifies, what was answered a second before is there, and it goes on after a restart", () =>
    killMidStream('at-once'));
});
