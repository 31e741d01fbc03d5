import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from './duration.ts';

describe('parseDuration', () => {
  const valid: [string, number][] = [
    ['90s', 90_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['7d', 604_800_000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['1d2h3m4s5ms', 93_784_005],
    [' 15m ', 900_000],
  ];
  for (const [text, ms] of valid) {
    it(`${JSON.stringify(text)} is ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  }

  const invalid = ['', ' ', '15', '15x', 'm', '1h 30m', '0s', '0m0s', '-5m', '1.5h', 'h1', '15m!', '15mm', '1H'];
  for (const text of invalid) {
    it(`${JSON.stringify(text)} is refused with a RangeError that quotes it`, () => {
      assert.throws(
        () => parseDuration(text),
        (error: unknown) => {
          assert.ok(error instanceof RangeError);
          assert.ok(error.message.includes(JSON.stringify(text)), error.message);
          assert.match(error.message, /examples: 90s, 15m, 1h30m, 7d/);
          return true;
        },
      );
    });
  }
});

describe('parseDuration, out of range', () => {
  it('refuses a duration no expiry time can hold', () => {
    assert.throws(() => parseDuration('300000000d'), RangeError);
    assert.throws(() => parseDuration(`${'9'.repeat(400)}s`), RangeError);
  });

  it('every accepted duration is a positive safe integer', () => {
    for (const text of ['1ms', '7d', '365d', '100000d']) {
      const ms = parseDuration(text);
      assert.ok(Number.isSafeInteger(ms) && ms > 0, text);
    }
  });
});
