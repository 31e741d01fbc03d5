import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_ACCESS_POLICY, type PostgresConnection } from '../../core/index.ts';
import { CancelKeys, type CancelTarget } from './cancel-keys.ts';

const connection: PostgresConnection = {
  name: 'shop',
  type: 'postgres',
  host: '127.0.0.1',
  port: 5432,
  database: 'shop',
  user: 'app',
  password: undefined,
  tls: 'disable',
  ca: undefined,
  access: DEFAULT_ACCESS_POLICY,
};

const target = (processId: number): CancelTarget => ({ connection, key: { processId, secretKey: Buffer.from([9, 9, 9, 9]) } });

describe('CancelKeys', () => {
  it('hands out its own key and finds the target by it', () => {
    const keys = new CancelKeys();
    const t = target(4242);
    const key = keys.register(t);
    assert.ok(Number.isInteger(key.processId) && key.processId >= 1 && key.processId < 2 ** 31 - 1);
    assert.equal(key.secretKey.length, 4);
    assert.notEqual(key.processId, 4242, 'the target process id is not handed out (with overwhelming probability)');
    assert.equal(keys.find(key.processId, key.secretKey), t);
    assert.equal(keys.find(key.processId, Buffer.from(key.secretKey)), t);
  });

  it('a forged secret, a secret of another length or an unknown process id finds nothing', () => {
    const keys = new CancelKeys();
    const key = keys.register(target(1));
    const forged = Buffer.from(key.secretKey);
    forged[3]! ^= 0xff;
    assert.equal(keys.find(key.processId, forged), undefined);
    assert.equal(keys.find(key.processId, key.secretKey.subarray(0, 3)), undefined);
    assert.equal(keys.find(key.processId, Buffer.concat([key.secretKey, Buffer.alloc(28)])), undefined);
    assert.equal(keys.find(key.processId, Buffer.alloc(0)), undefined);
    assert.equal(keys.find(key.processId + 1, key.secretKey), undefined);
  });

  it('the target key of the session does not cancel it', () => {
    const keys = new CancelKeys();
    const t = target(77);
    keys.register(t);
    assert.equal(keys.find(77, t.key.secretKey), undefined);
  });

  it('release() forgets the key', () => {
    const keys = new CancelKeys();
    const t = target(1);
    const key = keys.register(t);
    keys.release(key.processId);
    assert.equal(keys.find(key.processId, key.secretKey), undefined);
    keys.release(key.processId); // releasing twice is harmless
  });

  it('process ids are unique among live sessions', () => {
    const keys = new CancelKeys();
    const registered = Array.from({ length: 2000 }, (_, i) => ({ t: target(i), key: keys.register(target(i)) }));
    assert.equal(new Set(registered.map((r) => r.key.processId)).size, registered.length);
    for (const { key } of registered.slice(0, 50)) assert.ok(keys.find(key.processId, key.secretKey));
  });
});
