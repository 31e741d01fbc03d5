import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { byteCandidates, detect, MaskingConfigError, type FindingKind } from './detectors.ts';
import {
  compileMasking,
  DEFAULT_MASKING,
  FULL_MASK,
  hashMask,
  maskBytes,
  maskableFields,
  maskText,
  partialMask,
  type MaskingPlan,
  type MaskStrategy,
} from './strategies.ts';
import { maskingWorkload, NOTHING_TO_FIND, runMaskingWorkload } from './workload.ts';

const SALT = 'a test salt of 32 bytes, or so..';
const HS256 = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
const DBR = 'dbr_q2B9xLr0m8KsT4vWz1YcN7pA5dF3gH6jE0uIoP9lQ2r';
const DBR_SAK = 'dbr_sak_q2B9xLr0m8KsT4vWz1YcN7pA5dF3gH6jE0uIoP9lQ2r';
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq2B9xLr0m8KsT4vWz1YcN7pA5dF3gH6jE0uIoP9lQ2r==\n-----END RSA PRIVATE KEY-----';

const masked = (text: string, plan: MaskingPlan = DEFAULT_MASKING): string | null => maskText(text, plan).text;

describe('partial', () => {
  const cases: readonly (readonly [string, string])[] = [
    ['john.doe@example.com', 'j*******@*******.com'],
    ['a@b.co', 'a@*.co'],
    ['Zoë@bücher.example', 'Z**@******.example'],
    ['ops@mail.example.co.uk', 'o**@***************.uk'],
    ['4111 1111 1111 1111', '**** **** **** 1111'],
    ['5555-5555-5555-4444', '****-****-****-4444'],
    ['378282246310005', '***********0005'],
    ['123-45-6789', '***-**-6789'],
    ['123 45 6789', '*** ** 6789'],
    ['+1 213 373 4253', '+* *** *** **53'],
    ['(213) 373-4253', '(***) ***-**53'],
    ['DE89 3704 0044 0532 0130 00', 'DE** **** **** **** **30 00'],
    ['DE89370400440532013000', 'DE****************3000'],
    ['192.168.1.10', '192.*.*.*'],
    ['2001:db8::1', '2001:****'],
    ['::1', '****'],
    [HS256, 'eyJ****'],
    ['AKIAIOSFODNN7EXAMPLE', 'AKIA****'],
    ['ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', 'ghp_****'],
    ['xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx', 'xoxb-****'],
    ['sk_live_AbCdEfGhIjKlMnOpQrStUvWx', 'sk_live_****'],
    ['sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', 'sk-ant-****'],
    ['sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl', 'sk-****'],
    [DBR, 'dbr_****'],
    [DBR_SAK, 'dbr_sak_****'],
    [PEM, '-----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----'],
    ['-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg', '-----BEGIN PRIVATE KEY-----****'],
  ];
  for (const [value, want] of cases) {
    it(`${JSON.stringify(value).slice(0, 60)} -> ${JSON.stringify(want).slice(0, 60)}`, () => {
      assert.equal(masked(value), want);
    });
  }
  it('custom kinds: letters and digits masked, the last four kept from 12 on', () => {
    assert.equal(partialMask('EMP-123456', 'custom:emp'), '***-******');
    assert.equal(partialMask('ACCT-0012-3456-7890', 'custom:acct'), '****-****-****-7890');
  });
  it('in context, the rest of the text is untouched', () => {
    assert.equal(masked('Mail john.doe@example.com or call +1 213 373 4253.'), 'Mail j*******@*******.com or call +* *** *** **53.');
  });
});

describe('full', () => {
  const plan = compileMasking({ strategies: { email: 'full', card: 'full', 'api-key': 'full' } });
  it('a fixed-length mask, whatever the length of the value', () => {
    assert.equal(masked('john.doe@example.com', plan), FULL_MASK);
    assert.equal(masked('a@b.co', plan), FULL_MASK);
    assert.equal(masked('card 378282246310005 and 4111111111111111', plan), `card ${FULL_MASK} and ${FULL_MASK}`);
  });
  it('other kinds keep their default', () => {
    assert.equal(masked('123-45-6789', plan), '***-**-6789');
  });
});

describe('hash', () => {
  const plan = compileMasking({ strategies: { email: 'hash', card: 'hash', phone: 'hash', iban: 'hash', ssn: 'hash' }, salt: SALT });
  it('renders h: and 16 hex digits', () => {
    assert.match(masked('john@example.com', plan)!, /^h:[0-9a-f]{16}$/);
  });
  it('is deterministic, and the same value however written hashes the same', () => {
    const h = masked('4111111111111111', plan);
    assert.equal(masked('4111 1111 1111 1111', plan), h);
    assert.equal(masked('4111-1111-1111-1111', plan), h);
    assert.equal(masked('John@Example.COM', plan), masked('john@example.com', plan));
    assert.equal(masked('DE89 3704 0044 0532 0130 00', plan), masked('DE89370400440532013000', plan));
    assert.equal(masked('123-45-6789', plan), masked('123 45 6789', plan));
    assert.equal(masked('213-373-4253', plan), masked('(213) 373-4253', plan));
  });
  it('different values, different hashes; another salt, other hashes', () => {
    assert.notEqual(masked('john@example.com', plan), masked('jane@example.com', plan));
    const other = compileMasking({ strategies: { email: 'hash' }, salt: new TextEncoder().encode('another salt, also long enough') });
    assert.notEqual(masked('john@example.com', plan), masked('john@example.com', other));
  });
  it('is HMAC-SHA-256 of the normalised value', async () => {
    const { createHmac } = await import('node:crypto');
    const want = createHmac('sha256', SALT).update('4111111111111111').digest('hex').slice(0, 16);
    assert.equal(hashMask('4111 1111 1111 1111', 'card', new TextEncoder().encode(SALT)), `h:${want}`);
  });
});

describe('null', () => {
  const plan = compileMasking({ strategies: { ssn: 'null' } });
  it('a value with a finding masked to null becomes null', () => {
    assert.deepEqual(maskText('ssn 123-45-6789 and a@b.co', plan), { text: null, changed: true, findings: ['ssn', 'email'] });
  });
  it('a value without such a finding is masked as usual', () => {
    assert.deepEqual(maskText('a@b.co', plan), { text: 'a@*.co', changed: true, findings: ['email'] });
  });
});

describe('maskText', () => {
  it('reports every finding in text order', () => {
    const r = maskText('a@b.co 4111111111111111 c@d.org');
    assert.deepEqual(r.findings, ['email', 'card', 'email']);
    assert.equal(r.changed, true);
  });
  it('returns the very same string when there is nothing to find', () => {
    for (const text of NOTHING_TO_FIND) {
      const r = maskText(text);
      assert.ok(r.text === text && !r.changed && r.findings.length === 0, text);
    }
  });
  it('custom kinds default to full, and can be overridden', () => {
    const custom = [{ name: 'emp', pattern: 'EMP-\\d{6}' }];
    assert.equal(masked('EMP-123456', compileMasking({ custom })), FULL_MASK);
    assert.equal(masked('EMP-123456', compileMasking({ custom, strategies: { 'custom:emp': 'partial' } })), '***-******');
  });
  it('detection options pass through', () => {
    assert.equal(masked('06 12 34 56 78', compileMasking({ defaultCountry: 'FR' })), '** ** ** ** 78');
    assert.equal(masked('a@b.co 4111111111111111', compileMasking({ kinds: ['card'] })), 'a@b.co ************1111');
  });
});

describe('compileMasking refuses', () => {
  const refused: readonly (readonly [string, () => unknown, string])[] = [
    ['a strategy for an unknown kind', () => compileMasking({ strategies: { passport: 'full' } as never }), 'strategies.passport'],
    [
      'a strategy for a custom kind not configured',
      () => compileMasking({ strategies: { 'custom:nope': 'full' } }),
      'strategies.custom:nope',
    ],
    ['an unknown strategy', () => compileMasking({ strategies: { email: 'redact' as MaskStrategy } }), 'strategies.email'],
    ['hash without a salt', () => compileMasking({ strategies: { email: 'hash' } }), 'salt'],
    ['hash with a short salt', () => compileMasking({ strategies: { email: 'hash' }, salt: 'short' }), 'salt'],
    ['a bad custom detector', () => compileMasking({ custom: [{ name: 'x', pattern: 'a*' }] }), 'custom[0].pattern'],
  ];
  for (const [title, run, path] of refused) {
    it(title, () => assert.throws(run, (err: unknown) => err instanceof MaskingConfigError && err.path === path));
  }
});

// ---------------------------------------------------------------------------------------------

/** One sensitive value of every built-in kind, in the form the detectors take alone. */
const SENSITIVE: readonly (readonly [FindingKind, string])[] = [
  ['email', 'john.doe@example.com'],
  ['email', 'Zoë@bücher.example'],
  ['card', '4111 1111 1111 1111'],
  ['card', '378282246310005'],
  ['ssn', '123-45-6789'],
  ['phone', '+1 213 373 4253'],
  ['phone', '(213) 373-4253'],
  ['iban', 'DE89 3704 0044 0532 0130 00'],
  ['iban', 'GB82WEST12345698765432'],
  ['ipv4', '192.168.1.10'],
  ['ipv6', '2001:db8::1'],
  ['jwt', HS256],
  ['private-key', PEM],
  ['api-key', 'AKIAIOSFODNN7EXAMPLE'],
  ['api-key', 'ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789'],
  ['drawbridge-token', DBR],
  ['drawbridge-token', DBR_SAK],
];
const PLANS: readonly (readonly [string, MaskingPlan])[] = (['partial', 'full', 'hash'] as const).map((strategy) => [
  strategy,
  compileMasking({
    strategies: Object.fromEntries(SENSITIVE.map(([k]) => [k, strategy])),
    salt: SALT,
  }),
]);
/** Text around a value that cannot join it (no digits, no '@', no key-like characters). */
const filler = fc.string({ unit: fc.constantFrom(...'abcxyzABC ,;!?\n\téß漢'), maxLength: 30 });
const embedded = fc
  .tuple(filler, fc.constantFrom(...SENSITIVE), filler)
  .map(([a, [kind, value], b]) => ({ kind, value, text: `${a} ${value} ${b}` }));

describe('maskText: properties', () => {
  it('never throws, on any string (any code point, lone surrogates included)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 300 }),
          fc.string({ unit: 'binary-ascii', maxLength: 300 }),
          fc.string({ maxLength: 300 }),
        ),
        (t) => {
          for (const [, plan] of PLANS) {
            const r = maskText(t, plan);
            assert.ok(typeof r.text === 'string');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
  it('never throws, on text made of detector-shaped pieces', () => {
    const piece = fc.constantFrom(...SENSITIVE.map(([, v]) => v), ' ', '-', '@', '.', ':', 'x', '0', '+', '\n', '😀', '\ud800');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (parts) => {
        for (const [, plan] of PLANS) maskText(parts.join(''), plan);
      }),
      { numRuns: 300 },
    );
  });
  for (const [strategy, plan] of PLANS) {
    it(`${strategy}: the masked text never contains the value, and names its kind`, () => {
      fc.assert(
        fc.property(embedded, ({ kind, value, text }) => {
          const r = maskText(text, plan);
          assert.ok(r.changed && r.text !== null && !r.text.includes(value), JSON.stringify({ text, out: r.text }));
          assert.deepEqual(r.findings, [kind]);
        }),
        { numRuns: 200 },
      );
    });
    it(`${strategy}: masking masked text changes nothing more`, () => {
      fc.assert(
        fc.property(embedded, ({ text }) => {
          const once = maskText(text, plan).text!;
          const twice = maskText(once, plan);
          assert.ok(twice.text === once && !twice.changed, JSON.stringify({ once, twice: twice.text }));
        }),
        { numRuns: 200 },
      );
    });
  }
  it('text with nothing to find comes back as the same string', () => {
    fc.assert(
      fc.property(filler, (t) => {
        const r = maskText(t);
        assert.ok(r.text === t && !r.changed);
      }),
    );
  });
  it('what detect finds is what maskText reports', () => {
    fc.assert(
      fc.property(embedded, ({ text }) =>
        assert.deepEqual(
          maskText(text).findings,
          detect(text).map((s) => s.kind),
        ),
      ),
      { numRuns: 100 },
    );
  });
});

describe('maskBytes', () => {
  it('masks the UTF-8 bytes of a text as maskText masks the text, and decodes nothing when nothing can be found', () => {
    const piece = fc.constantFrom(...SENSITIVE.map(([, v]) => v), ' ', '-', '@', '.', ':', 'x', '0', '+', '\n', '😀', 'é');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), fc.string({ maxLength: 3 }), (parts, pad) => {
        const text = parts.join('');
        const bytes = Buffer.from(`${pad}${text}${pad}`);
        const start = Buffer.byteLength(pad);
        for (const [, plan] of PLANS) {
          const copy = Buffer.from(bytes);
          const end = start + Buffer.byteLength(text);
          const fromBytes = maskBytes(copy, start, end, plan);
          const fromText = maskText(text, plan);
          if (fromBytes === undefined) assert.ok(!fromText.changed && fromText.findings.length === 0, text);
          else if ('written' in fromBytes) {
            // Written over the bytes: what maskText makes, where the value lay, and nothing around it touched.
            assert.deepEqual(fromBytes.findings, fromText.findings);
            assert.equal(copy.toString('utf8', start, end), fromText.text, text);
            assert.ok(copy.subarray(0, start).equals(bytes.subarray(0, start)) && copy.subarray(end).equals(bytes.subarray(end)));
          } else {
            assert.deepEqual(fromBytes, fromText);
            assert.ok(copy.equals(bytes), 'bytes untouched when the mask is a new text');
          }
        }
      }),
      { numRuns: 500 },
    );
    assert.equal(maskBytes(Buffer.from('x'.repeat(90)), 0, 90), undefined);
  });

  it('masks a value that is one email or one card, read on its bytes, as maskText masks it', () => {
    const local = fc.string({ unit: fc.constantFrom(...'aZ09._%+-'), minLength: 1, maxLength: 12 });
    const label = fc.string({ unit: fc.constantFrom(...'aZq09-'), minLength: 1, maxLength: 8 });
    const email = fc
      .tuple(local, fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('com', 'org', 'uk', 'png', 'xn--p1ai', 'c0m'))
      .map(([l, labels, tld]) => `${l}@${[...labels, tld].join('.')}`);
    const card = fc.oneof(
      fc.constantFrom('4111111111111111', '4200182634425967', '378282246310005', '6011111111111117', '4222222222222', '4111111111111112'),
      fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 13, maxLength: 19 }).map((d) => `4${d.slice(1)}`),
    );
    const plans = [...PLANS, ['default', DEFAULT_MASKING] as const, ['null', compileMasking({ strategies: { email: 'null', card: 'null' } })] as const];
    let written = 0;
    fc.assert(
      fc.property(fc.oneof(email, card), fc.string({ maxLength: 3 }), (text, pad) => {
        const bytes = Buffer.from(`${pad}${text}${pad}`);
        const start = Buffer.byteLength(pad);
        const end = start + text.length;
        for (const [, plan] of plans) {
          const copy = Buffer.from(bytes);
          const fromBytes = maskBytes(copy, start, end, plan);
          const fromText = maskText(text, plan);
          if (fromBytes === undefined) assert.ok(!fromText.changed && fromText.findings.length === 0, text);
          else if ('written' in fromBytes) {
            written++;
            assert.deepEqual(fromBytes.findings, fromText.findings, text);
            assert.equal(copy.toString('utf8', start, end), fromText.text, text);
            assert.ok(copy.subarray(0, start).equals(bytes.subarray(0, start)) && copy.subarray(end).equals(bytes.subarray(end)));
          } else assert.deepEqual(fromBytes, fromText);
        }
      }),
      { numRuns: 2000 },
    );
    assert.ok(written > 1000, `${written} written over`);
  });

  it('the fields of a COPY line left out are those where nothing can be found, and each kept one comes with its own candidates', () => {
    const piece = fc.constantFrom(...SENSITIVE.map(([, v]) => v), ...NOTHING_TO_FIND, '\t', ',', '\n', ' ', '-', '@', '.', ':', '0', '+', 'é');
    const custom = compileMasking({ custom: [{ name: 'x', pattern: 'x' }] });
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), fc.string({ maxLength: 3 }), (parts, pad) => {
        const text = parts.join('');
        const line = Buffer.from(`${pad}${text}${pad}`);
        const [from, to] = [Buffer.byteLength(pad), Buffer.byteLength(pad) + Buffer.byteLength(text)];
        // Every field, split by hand.
        const all: [number, number][] = [];
        for (let start = from, i = from; i <= to; i++) {
          if (i < to && line[i] !== 0x09 && line[i] !== 0x2c && line[i] !== 0x0a) continue;
          all.push([start, i]);
          start = i + 1;
        }
        const out: number[] = [];
        const n = maskableFields(line, from, to, out);
        const kept = new Set<string>();
        for (let i = 0; i < n; i++) {
          const [start, end, candidates] = [out[3 * i]!, out[3 * i + 1]!, out[3 * i + 2]!];
          assert.ok(all.some(([s, e]) => s === start && e === end), 'a field as split by hand');
          assert.equal(candidates, byteCandidates(line, start, end), line.toString('utf8', start, end));
          kept.add(`${start}:${end}`);
        }
        for (const [start, end] of all) {
          if (kept.has(`${start}:${end}`)) continue;
          const masked = maskBytes(Buffer.from(line), start, end);
          assert.ok(masked === undefined || masked.findings.length === 0, line.toString('utf8', start, end));
        }
        // Custom detectors may match anything: every field that is not empty is kept.
        assert.equal(maskableFields(line, from, to, out, custom), all.filter(([s, e]) => e > s).length);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('workload', () => {
  const w = maskingWorkload(500);
  it('is deterministic', () => assert.deepEqual(maskingWorkload(500), w));
  it('clean values have nothing to find; sensitive ones all have something', () => {
    assert.deepEqual(runMaskingWorkload(w.clean), { values: 500, changed: 0, findings: 0 });
    const run = runMaskingWorkload(w.sensitive);
    assert.equal(run.changed, 500);
    assert.ok(run.findings >= 500);
  });
});
