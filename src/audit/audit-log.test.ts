import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { FrozenClock } from '../core/index.ts';
import { openStore, type Store } from '../store/index.ts';
import { COMMIT_DELAY_MS, StoreAuditLog } from './audit-log.ts';

const event = (subject: string) => ({ actor: 'alice', action: 'command.allowed', subject, outcome: 'success' }) as const;
const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('StoreAuditLog group commit', () => {
  let store: Store;
  let audit: StoreAuditLog;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    audit = new StoreAuditLog(store, new FrozenClock(Date.UTC(2026, 11, 4)));
    mock.timers.enable({ apis: ['setTimeout'] });
  });

  afterEach(async () => {
    mock.timers.reset();
    await audit.close();
    await store.close();
  });

  const committed = async () => (await store.listAudit({ limit: 100 })).map((r) => r.subject);

  it(`commits what nobody waits for ${COMMIT_DELAY_MS} ms after the first of it, in one transaction`, async () => {
    audit.note(event('ses_1'));
    audit.note(event('ses_2'));
    for (let i = 0; i < 3; i++) await turn();
    assert.deepEqual(await committed(), [], 'not before the delay');
    mock.timers.tick(COMMIT_DELAY_MS);
    for (let i = 0; i < 3; i++) await turn();
    assert.deepEqual(await committed(), ['ses_1', 'ses_2']);
    const records = await store.listAudit({ limit: 100 });
    assert.equal(records[1]!.prevHash, records[0]!.hash, 'chained');
  });

  it('commits at once what someone waits for (append, commit, flush), with whatever else is queued', async () => {
    audit.note(event('ses_1'));
    await audit.append(event('ses_2')); // the delay's timer never fires here: it is mocked
    assert.deepEqual(await committed(), ['ses_1', 'ses_2']);
    audit.note(event('ses_4'));
    audit.commit();
    await audit.flush();
    assert.deepEqual(await committed(), ['ses_1', 'ses_2', 'ses_4']);
    audit.note(event('ses_3'));
    await audit.flush();
    assert.deepEqual(await committed(), ['ses_1', 'ses_2', 'ses_4', 'ses_3']);
  });

  it('appends made while a transaction is queued go in it; none is committed twice', async () => {
    const first = audit.append(event('ses_1'));
    audit.commit();
    const second = audit.append(event('ses_2'));
    audit.commit();
    await Promise.all([first, second]);
    mock.timers.tick(COMMIT_DELAY_MS);
    await audit.flush();
    assert.deepEqual(await committed(), ['ses_1', 'ses_2']);
  });
});
