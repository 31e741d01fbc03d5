import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  canonicalJson,
  ChainVerifier,
  checkpointProblem,
  GENESIS_HASH,
  keyId,
  recordHash,
  signCheckpoint,
  type StoredRecord,
} from './chain.ts';

/** A chain of `n` records as the store writes them. */
function chain(n: number): StoredRecord[] {
  const out: StoredRecord[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const fields = {
      seq,
      at: 1_700_000_000_000 + seq,
      actor: `u${seq % 3}`,
      action: 'grant.issued',
      subject: `grt_${seq}`,
      outcome: 'success',
      details: { n: seq, tags: ['a', 'b'] },
    };
    const hash = recordHash(fields, prev);
    out.push({ ...fields, prevHash: prev, hash });
    prev = hash;
  }
  return out;
}

function firstBreak(records: readonly StoredRecord[]) {
  const v = new ChainVerifier();
  for (const r of records) if (!v.push(r)) break;
  return v.broken;
}

/** The chain's encoding as first written (docs/audit.md): the reference the faster code must match. */
function referenceCanonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : referenceCanonical(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== 'function')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${referenceCanonical(v)}`).join(',')}}`;
}

describe('the record encoding', () => {
  it('canonicalJson and recordHash give what the documented formula gives, for any record', () => {
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.integer({ min: 1, max: 2 ** 40 }),
          at: fc.integer({ min: 0, max: 2 ** 45 }),
          actor: fc.string(),
          action: fc.string(),
          subject: fc.string({ unit: 'grapheme' }),
          outcome: fc.constantFrom('success', 'failure'),
          details: fc.dictionary(fc.string(), fc.jsonValue()),
        }),
        fc.stringMatching(/^[0-9a-f]{64}$/),
        (record, prev) => {
          assert.equal(canonicalJson(record.details), referenceCanonical(record.details));
          const body = referenceCanonical({ ...record, prev });
          const expected = createHash('sha256').update('drawbridge.audit.record.v1\n').update(body).digest('hex');
          assert.equal(recordHash(record, prev), expected);
        },
      ),
    );
  });
});

describe('canonicalJson of flat objects, the data path details (written at once when their keys are in order)', () => {
  it('gives what the formula gives, whether the keys were added in order or not', () => {
    const member = fc.oneof(
      fc.string(),
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.constant(() => 1),
      fc.constant(Symbol('s')),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string(), member), { maxLength: 8 }), fc.boolean(), fc.boolean(), (entries, inOrder, bare) => {
        const ordered = inOrder ? [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : entries;
        const value: Record<string, unknown> = bare ? Object.create(null) : {};
        for (const [k, v] of ordered) value[k] = v;
        const expected = referenceCanonical(Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v !== 'symbol')));
        assert.equal(canonicalJson(value), expected);
      }),
    );
  });
});

describe('canonicalJson', () => {
  it('one text for one value, whatever the key order, and what JSON.parse gives back', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        assert.equal(canonicalJson(JSON.parse(text)), text);
        assert.equal(canonicalJson(JSON.parse(JSON.stringify(value))), text);
      }),
    );
    assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1, y: undefined } }), '{"a":[true,null,"x"],"b":1,"c":{"z":1}}');
  });

  it('a value and what JSON carries of it have one text, whatever the value holds (dates, boxes, undefined, functions)', () => {
    const anything = fc.anything({
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withSparseArray: true,
      withTypedArray: true,
    });
    fc.assert(
      fc.property(fc.dictionary(fc.string(), anything), (details) => {
        assert.equal(canonicalJson(details), canonicalJson(JSON.parse(JSON.stringify(details))));
      }),
    );
    const odd = {
      when: new Date(0),
      n: Object(1),
      f: () => 1,
      s: Symbol('s'),
      u: undefined,
      inf: -Infinity,
      z: -0,
      own: { toJSON: () => undefined },
    };
    assert.equal(canonicalJson(odd), '{"inf":null,"n":1,"when":"1970-01-01T00:00:00.000Z","z":0}');
  });
});

describe('ChainVerifier', () => {
  it('a chain as written verifies, and its head is the last record', () => {
    const records = chain(20);
    const v = new ChainVerifier();
    for (const r of records) assert.equal(v.push(r), true);
    assert.equal(v.broken, undefined);
    assert.deepEqual(v.head, { seq: 20, hash: records[19]!.hash });
  });

  it('names the record whose field was edited', () => {
    const records = chain(10);
    records[6] = { ...records[6]!, actor: 'mallory' };
    assert.deepEqual(firstBreak(records), {
      seq: 7,
      reason: 'edited',
      message: 'record 7 was changed after it was written: its contents do not match its hash',
    });
    const detail = chain(10);
    detail[2] = { ...detail[2]!, details: { ...detail[2]!.details, n: 99 } };
    assert.equal(firstBreak(detail)?.seq, 3);
  });

  it('names a removed record, two swapped, and a record re-hashed after an edit', () => {
    const removed = chain(10).filter((r) => r.seq !== 5);
    assert.equal(firstBreak(removed)?.reason, 'missing');
    assert.match(firstBreak(removed)!.message, /record 5 is missing/);

    const swapped = chain(10);
    [swapped[3], swapped[4]] = [
      { ...swapped[4]!, seq: 4 },
      { ...swapped[3]!, seq: 5 },
    ];
    assert.equal(firstBreak(swapped)?.seq, 4);

    // Whoever edits and recomputes the record's own hash still breaks the link to the next one.
    const rehashed = chain(10);
    const edited = { ...rehashed[4]!, subject: 'grt_other' };
    rehashed[4] = { ...edited, hash: recordHash(edited, edited.prevHash!) };
    assert.deepEqual(firstBreak(rehashed)?.seq, 6);
  });

  it('a record without a hash (never chained) breaks the chain', () => {
    const records = chain(3);
    records[1] = { ...records[1]!, hash: null };
    assert.equal(firstBreak(records)?.reason, 'unchained');
  });
});

describe('checkpoints', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const trusted = new Map([[keyId(publicKey), publicKey]]);
  const records = chain(10);
  const hashAt = (seq: number) => records[seq - 1]?.hash ?? undefined;

  it('a signed head holds; a cut tail, a replaced record, a forged or foreign signature do not', () => {
    const c = signCheckpoint(privateKey, { seq: 8, hash: records[7]!.hash!, at: 1_700_000_000_000 });
    assert.equal(keyId(privateKey), keyId(publicKey));
    assert.equal(checkpointProblem(c, trusted, hashAt, 10), undefined);
    assert.match(
      checkpointProblem(c, trusted, hashAt, 7)!,
      /the log ends at record 7, .* covers records up to 8: records were cut off the end/,
    );
    assert.match(
      checkpointProblem(c, trusted, () => 'f'.repeat(64), 10)!,
      /record 8 is not the record the checkpoint/,
    );
    assert.match(checkpointProblem({ ...c, seq: 9 }, trusted, hashAt, 10)!, /signature that does not verify/);
    const other = generateKeyPairSync('ed25519').privateKey;
    assert.match(checkpointProblem(signCheckpoint(other, c), trusted, hashAt, 10)!, /not a trusted key/);
  });
});
