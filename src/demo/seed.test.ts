import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { luhnCheckDigit, luhnValid, seedSql } from './seed.ts';

describe('seedSql', () => {
  it('is deterministic and sized by its options', () => {
    assert.equal(seedSql(), seedSql());
    assert.notEqual(seedSql({ seed: 1 }), seedSql({ seed: 2 }));
    const small = seedSql({ customers: 3, payments: 4 });
    assert.equal(small.match(/@example\.(com|org|net)'/g)?.length, 3);
    assert.equal(small.match(/'(paid|refunded|failed)', '\d{4}-/g)?.length, 4);
  });

  it('uses reserved domains, fictional phones, well-formed SSNs and Luhn-valid cards', () => {
    const sql = seedSql();
    for (const [, email] of sql.matchAll(/'([^'\s]+@[^'\s]+)'/g)) {
      assert.match(email ?? '', /^[a-z]+\.[a-z]+\d*@example\.(com|org|net)$/);
    }
    const ssns = [...sql.matchAll(/'(\d{3})-(\d{2})-(\d{4})'/g)];
    assert.equal(ssns.length, 200);
    for (const [, area, group, serial] of ssns) {
      assert.ok(area !== '000' && area !== '666' && !area?.startsWith('9'), `area ${area}`);
      assert.notEqual(group, '00');
      assert.notEqual(serial, '0000');
    }
    const phones = [...sql.matchAll(/'(\+1 \d{3} 555 01\d\d|\(\d{3}\) 555-01\d\d|\+1\d{3}55501\d\d)'/g)];
    assert.equal(phones.length, 200);
    const cards = [...sql.matchAll(/'([\d ]{15,19})', '(paid|refunded|failed)'/g)].map((m) => m[1] ?? '');
    assert.equal(cards.length, 1000);
    assert.ok(cards.some((c) => c.includes(' ')) && cards.some((c) => !c.includes(' ')));
    for (const card of cards) {
      assert.ok(luhnValid(card), card);
      assert.match(card.replace(/ /g, ''), /^(4\d{15}|5[1-5]\d{14}|2(22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}|3[47]\d{13})$/);
    }
  });
});

describe('luhn', () => {
  it('matches known test numbers', () => {
    assert.ok(luhnValid('4111 1111 1111 1111'));
    assert.ok(luhnValid('378282246310005'));
    assert.ok(!luhnValid('4111111111111112'));
    assert.equal(luhnCheckDigit('7992739871'), 3);
  });
});
