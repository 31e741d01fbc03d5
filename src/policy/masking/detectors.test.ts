import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { CREDENTIAL_PREFIX } from '../../identity/credentials.ts';
import { SERVICE_ACCOUNT_KEY_PREFIX } from '../../identity/accounts.ts';
import { REFRESH_TOKEN_PREFIX, SESSION_TOKEN_PREFIX } from '../../identity/gateway-sessions.ts';
import {
  byteCandidates,
  cardNetwork,
  compileDetection,
  DEFAULT_DETECTION,
  detect,
  detectWhole,
  findApiKeys,
  findCards,
  findEmails,
  findIbans,
  findIpAddresses,
  findJwts,
  findPhones,
  findPrivateKeys,
  findSsns,
  KIND_RANK,
  luhnValid,
  PHONE_LIBRARY_BUDGET,
  MaskingConfigError,
  resolveOverlaps,
  textCandidates,
  type BuiltinKind,
  type DetectionPlan,
  type Span,
} from './detectors.ts';
import { NOTHING_TO_FIND } from './workload.ts';

/** The values `plan` finds in `text`, as `kind:value`. */
const found = (text: string, plan: DetectionPlan = DEFAULT_DETECTION): string[] =>
  detect(text, plan).map((s) => `${s.kind}:${text.slice(s.start, s.end)}`);

const onlyPlans = new Map<BuiltinKind, DetectionPlan>(KIND_RANK.map((k) => [k, compileDetection({ kinds: [k] })]));
const only = (kind: BuiltinKind): DetectionPlan => onlyPlans.get(kind)!;

/** Each text holds exactly the one value given, of `kind` (every detector enabled). */
function positives(kind: BuiltinKind, cases: readonly (readonly [text: string, value: string])[]): void {
  describe(`${kind}: found`, () => {
    for (const [text, value] of cases) {
      it(JSON.stringify(text).slice(0, 100), () => assert.deepEqual(found(text), [`${kind}:${value}`]));
    }
  });
}

/** `kind`'s detector alone finds nothing in any of these texts. */
function negatives(kind: BuiltinKind, texts: readonly string[]): void {
  describe(`${kind}: not found`, () => {
    for (const text of texts) {
      it(JSON.stringify(text).slice(0, 100), () => assert.deepEqual(found(text, only(kind)), []));
    }
  });
}

/** A number of `length` digits that starts with `prefix` and passes Luhn. */
function withLuhn(prefix: string, length: number): string {
  const body = (prefix + '73914286053'.repeat(2)).slice(0, length - 1);
  for (let d = 0; d <= 9; d++) if (luhnValid(body + d)) return body + d;
  throw new Error('unreachable');
}
const breakLuhn = (n: string): string => n.slice(0, -1) + String((Number(n.at(-1)) + 1) % 10);

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const HS256 = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
const token = (bytes = 32): string => randomBytes(bytes).toString('base64url');
const ALNUM = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789';
const alnum = (n: number): string => ALNUM.repeat(Math.ceil(n / ALNUM.length)).slice(0, n);

// ---------------------------------------------------------------------------------------------

positives('email', [
  ['john.doe@example.com', 'john.doe@example.com'],
  ['Contact: John <john.doe+news@mail.example.co.uk>.', 'john.doe+news@mail.example.co.uk'],
  ['Key (email)=(a_b-c%d@sub-domain.example.org) already exists', 'a_b-c%d@sub-domain.example.org'],
  ['"email":"ANNA@EXAMPLE.COM"', 'ANNA@EXAMPLE.COM'],
  ['mailto:x@y.io?subject=hi', 'x@y.io'],
  ['zoë.müller@bücher.example', 'zoë.müller@bücher.example'],
  ['user@xn--bcher-kva.xn--p1ai', 'user@xn--bcher-kva.xn--p1ai'],
  ['https://admin:hunter2@db.internal.example.net/x', 'hunter2@db.internal.example.net'],
  ['...john@example.com', 'john@example.com'],
]);
negatives('email', [
  '@mention in a tweet',
  'foo@bar',
  'user@localhost',
  'a@b.c',
  'price@10.00',
  'icon@2x.png',
  'lodash@4.17.21',
  '@scope/pkg@1.2.3',
  'john@@example.com',
  'john@-example.com',
  'john@example.com2',
  'x@y.z1',
  'no at sign here.com',
]);
describe('email: edges', () => {
  it('two addresses side by side are two spans', () => {
    assert.deepEqual(found('a@b.com,c@d.org'), ['email:a@b.com', 'email:c@d.org']);
  });
  it('a local part that runs into the previous address stops at it', () => {
    assert.deepEqual(found('a@b.com.x@c.com'), ['email:a@b.com', 'email:x@c.com']);
  });
  it('findEmails alone agrees', () => assert.equal(findEmails('write to ops@example.com').length, 1));
});

// ---------------------------------------------------------------------------------------------

const CARDS: readonly (readonly [network: string, number: string])[] = [
  ['visa', '4111111111111111'],
  ['visa', '4012888888881881'],
  ['visa', '4222222222222'],
  ['visa', withLuhn('4', 19)],
  ['mastercard', '5555555555554444'],
  ['mastercard', '5105105105105100'],
  ['mastercard', '2223003122003222'],
  ['mastercard', withLuhn('2720', 16)],
  ['amex', '378282246310005'],
  ['amex', '371449635398431'],
  ['discover', '6011111111111117'],
  ['discover', withLuhn('644', 16)],
  ['discover', withLuhn('65', 19)],
  ['jcb', '3530111333300000'],
  ['jcb', '3566002020360505'],
  ['diners', '36227206271667'],
  ['diners', '30569309025904'],
  ['diners', withLuhn('3095', 16)],
  ['unionpay', '6200000000000005'],
  ['unionpay', withLuhn('62', 19)],
  ['maestro', withLuhn('6759', 16)],
  ['maestro', withLuhn('5018', 13)],
];
positives('card', [
  ...CARDS.map(([, n]) => [`paid with ${n} today`, n] as const),
  ['4111 1111 1111 1111', '4111 1111 1111 1111'],
  ['card: 5555-5555-5555-4444.', '5555-5555-5555-4444'],
  ['3782 822463 10005', '3782 822463 10005'],
  ['{"pan":"6011 1111 1111 1117"}', '6011 1111 1111 1117'],
]);
describe('card: networks', () => {
  for (const [network, n] of CARDS) it(`${n} is ${network}`, () => assert.equal(cardNetwork(n), network));
});
negatives('card', [
  ...CARDS.map(([, n]) => `luhn fails: ${breakLuhn(n)}`),
  withLuhn('1', 16), // no network starts with 1 (millisecond timestamps, snowflake ids)
  withLuhn('7', 16),
  withLuhn('9', 16),
  withLuhn('51', 15), // Mastercard is 16 digits
  withLuhn('4', 17), // Visa is 13, 16 or 19
  withLuhn('34', 16), // Amex is 15
  `4${withLuhn('4', 16)}`, // a longer plain run is not a card inside
  `${withLuhn('4', 16)}0000`,
  `SKU${withLuhn('4', 16)}`, // glued to a word
  `${withLuhn('4', 16)}x`,
  '4111-1111 1111 1111', // mixed separators
  '41 11 11 11 11 11 11 11', // not grouped like a card
  '4111  1111  1111  1111', // double spaces
  '1700000000000', // a timestamp in ms
  '12345678901234567890',
  '1234.56',
  '978-3-16-148410-0',
  '550e8400-e29b-41d4-a716-446655440000',
]);
describe('card: edges', () => {
  it('luhnValid', () => {
    assert.equal(luhnValid('79927398713'), true);
    assert.equal(luhnValid('79927398710'), false);
    assert.equal(luhnValid('0'), false);
    assert.equal(luhnValid('12a4'), false);
  });
  it('two cards in one text', () => assert.equal(findCards('4111111111111111 and 5555555555554444').length, 2));
  it('cards in a run of groups are found on group boundaries', () => {
    assert.deepEqual(found('4111111111111111 5555555555554444'), ['card:4111111111111111', 'card:5555555555554444']);
    assert.deepEqual(found('qty 1 4111 1111 1111 1111'), ['card:4111 1111 1111 1111']);
    assert.deepEqual(found('4111 1111 1111 1111 5555 5555 5555 4444'), ['card:4111 1111 1111 1111', 'card:5555 5555 5555 4444']);
  });
});

// ---------------------------------------------------------------------------------------------

positives('ssn', [
  ['SSN: 123-45-6789', '123-45-6789'],
  ['078-05-1120', '078-05-1120'],
  ['665-12-3456', '665-12-3456'],
  ['899-99-9999', '899-99-9999'],
  ['ssn 123 45 6789 on file', '123 45 6789'],
  ['(001-01-0001)', '001-01-0001'],
]);
negatives('ssn', [
  '000-12-3456', // area 000
  '666-12-3456', // area 666
  '900-12-3456', // 900-999
  '999-99-9999',
  '123-00-4567', // group 00
  '123-45-0000', // serial 0000
  '123456789', // bare nine digits: not detected (decision)
  '123-45 6789', // mixed separators
  '1123-45-6789',
  '123-45-67890',
  '123-45-6789-1',
  'A123-45-6789',
  '2024-01-15',
  '212-555-1234',
  '12-345-6789',
]);
it('ssn: findSsns alone', () => assert.equal(findSsns('a 123-45-6789 b 234-56-7890').length, 2));
it('ssn: a list of dashed SSNs', () => assert.equal(findSsns('123-45-6789 234-56-7890, 345-67-8901').length, 3));

// ---------------------------------------------------------------------------------------------

positives('phone', [
  ['call (213) 373-4253 now', '(213) 373-4253'],
  ['213-373-4253', '213-373-4253'],
  ['213.373.4253', '213.373.4253'],
  ['+1 213 373 4253', '+1 213 373 4253'],
  ['+12133734253', '+12133734253'],
  ['tel:+44 20 7946 0958;', '+44 20 7946 0958'],
  ['+33 6 12 34 56 78', '+33 6 12 34 56 78'],
  ['+49 30 901820', '+49 30 901820'],
  ['Office: 415 555 2671, ask for Ann', '415 555 2671'],
  ['+1-202-555-0143 ext 12', '+1-202-555-0143 ext 12'],
  ['2024-01-15 415-555-2671', '415-555-2671'], // a date before the number is cut off
  ['12.25.2024 415.555.2671', '415.555.2671'],
  ['3. 415-555-2671', '415-555-2671'],
  ['12345 (213) 373-4253', '(213) 373-4253'],
  ['011 44 20 7946 0958', '011 44 20 7946 0958'], // the US international prefix
  ['+49 (0) 30 901820', '+49 (0) 30 901820'],
]);
negatives('phone', [
  '2133734253', // bare digits: an id more often than a phone (decision)
  'order 12345678',
  'order #2133734253',
  'amount 1234.56',
  'total 1,234,567.89',
  '2024-01-15',
  '2024-01-15 10:22:33',
  '2024-01-15T10:22:33Z',
  '12/25/2024',
  '550e8400-e29b-41d4-a716-446655440000',
  'v1.2.3',
  '192.168.1.1',
  '+1 (123) 456-7890', // no US area code starts with 1
  '123-456-7890',
  '(555) 123-4567', // 555 is not an area code
  '999-999-9999',
  '555-0100', // seven digits, no area code
  '+999 123 456 789', // no such country code
  'ISBN 978-3-16-148410-0',
  'a+12025550143b', // glued to letters
  'pages 211-227 (2003)',
  '06 12 34 56 78', // a French national number, read in the US default
  '4111 1111 1111 1111',
  '1700000000123',
  'ORD-415-555-2671', // part of a hyphenated token
  '415-555-2671-a',
  '213.373.4253.17', // a dotted quad is an address or a version
  '2133734.25', // an amount
  '415 555 2671 415 555 2672', // a run of two numbers without a separator between them: a known miss
]);
describe('phone: default country', () => {
  const fr = compileDetection({ defaultCountry: 'FR' });
  it('a French national number is found when the default country is FR', () => {
    assert.deepEqual(found('appelez le 06 12 34 56 78', fr), ['phone:06 12 34 56 78']);
  });
  it('an international number is found whatever the default', () => {
    assert.deepEqual(found('+1 213 373 4253', fr), ['phone:+1 213 373 4253']);
    assert.equal(findPhones('+44 20 7946 0958', 'DE').length, 1);
  });
  it('two numbers separated by a slash', () => {
    assert.deepEqual(found('415-555-2671/415-555-2672'), ['phone:415-555-2671', 'phone:415-555-2672']);
  });
  it('a run another detector claimed is not read again', () => {
    assert.deepEqual(findPhones('(213) 373-4253', 'US', [{ start: 0, end: 14, kind: 'custom:x' }]), []);
    assert.equal(findPhones('(213) 373-4253', 'US', [{ start: 0, end: 5, kind: 'custom:x' }]).length, 1);
  });
  it('an unknown country is refused', () => {
    assert.throws(() => compileDetection({ defaultCountry: 'XX' }), { name: 'MaskingConfigError', path: 'defaultCountry' } as object);
  });
  it('a long text with phones among noise', () => {
    const text = `${'lorem ipsum 12345 '.repeat(50)}(213) 373-4253 ${'dolor 2024-01-15 '.repeat(50)}+44 20 7946 0958`;
    assert.deepEqual(found(text), ['phone:(213) 373-4253', 'phone:+44 20 7946 0958']);
  });
});

// ---------------------------------------------------------------------------------------------

positives('iban', [
  ['DE89370400440532013000', 'DE89370400440532013000'],
  ['iban: DE89 3704 0044 0532 0130 00.', 'DE89 3704 0044 0532 0130 00'],
  ['GB82WEST12345698765432', 'GB82WEST12345698765432'],
  ['GB82 WEST 1234 5698 7654 32', 'GB82 WEST 1234 5698 7654 32'],
  ['NL91ABNA0417164300', 'NL91ABNA0417164300'],
  ['FR1420041010050500013M02606', 'FR1420041010050500013M02606'],
  ['BE68539007547034', 'BE68539007547034'],
  ['BE68 5390 0754 7034 EURO', 'BE68 5390 0754 7034'],
  ['"iban":"CH9300762011623852957"', 'CH9300762011623852957'],
]);
negatives('iban', [
  'DE89370400440532013001', // checksum
  'DE89 3704 0044 0532 0130 01',
  'de89370400440532013000', // lower case
  'XX89370400440532013000', // no such country
  'DE8937040044053201300', // DE is 22 long
  'NL91ABNA0417164300X',
  'xNL91ABNA0417164300',
  'ABCD1234EFGH5678IJKL',
  'AB12 CDEF GHIJ KLMN',
  'ORDER12345678901234',
]);
it('iban: findIbans alone', () => assert.equal(findIbans('NL91ABNA0417164300 / GB82WEST12345698765432').length, 2));

// ---------------------------------------------------------------------------------------------

positives('ipv4', [
  ['192.168.1.10', '192.168.1.10'],
  ['host 10.0.0.1:5432', '10.0.0.1'],
  ['dns 8.8.8.8.', '8.8.8.8'],
  ['255.255.255.255', '255.255.255.255'],
  ['from=203.0.113.7;', '203.0.113.7'],
  ['10.1.2.0/24', '10.1.2.0'],
]);
negatives('ipv4', [
  '256.1.1.1',
  '1.2.3',
  'v1.2.3.4',
  '1.3.6.1.4.1.311', // an OID
  '01.02.03.04', // leading zeros
  '10.0.0.1a',
  'x10.0.0.1',
  '1234.56',
  '2024.01.15',
]);
positives('ipv6', [
  ['2001:db8::1', '2001:db8::1'],
  ['::1', '::1'],
  ['2001:0db8:85a3:0000:0000:8a2e:0370:7334', '2001:0db8:85a3:0000:0000:8a2e:0370:7334'],
  ['client ::ffff:192.0.2.128 connected', '::ffff:192.0.2.128'],
  ['[2001:db8::1]:443', '2001:db8::1'],
  ['fe80::1.', 'fe80::1'],
]);
negatives('ipv6', [
  '12:30:45',
  'std::vector',
  'dead::beef',
  '00:1A:2B:3C:4D:5E', // a MAC address
  'a:b:c',
  '1:2:3:4:5:6:7:8:9',
  '2001:db8:::1',
  ':::',
  'Foo::Bar::baz1',
]);
it('ip: findIpAddresses returns both kinds', () => {
  assert.deepEqual(
    findIpAddresses('10.0.0.1 and 2001:db8::1').map((s) => s.kind),
    ['ipv4', 'ipv6'],
  );
});

// ---------------------------------------------------------------------------------------------

const NONE_JWT = `${b64url({ alg: 'none' })}.${b64url({ sub: '1' })}.`;
const JWE = `${b64url({ alg: 'dir', enc: 'A256GCM' })}..${token(12)}.${token(40)}.${token(16)}`;
positives('jwt', [
  [HS256, HS256],
  [`Authorization: Bearer ${HS256}`, HS256],
  [`{"id_token":"${HS256}"}`, HS256],
  [NONE_JWT, NONE_JWT],
  [JWE, JWE],
  [`${HS256}.`, HS256],
]);
negatives('jwt', [
  `${b64url({ foo: 'bar' })}.${b64url({ sub: '1' })}.${token()}`, // no "alg"
  `${b64url({ alg: 5 })}.${b64url({ sub: '1' })}.${token()}`,
  `${b64url(['alg'])}.${b64url({ sub: '1' })}.${token()}`,
  'eyJhbGciOiJIUzI1NiJ9', // a header alone
  `eyJub3QganNvbg.${b64url({})}.${token()}`, // header is not JSON
  'aGVsbG8gd29ybGQ.aGk.aGk', // base64url, but not a JWT header
  `x${HS256}`,
  `${HS256.replace('.', '!')}`,
  Buffer.from('{"alg":"HS256"} but in plain base64, no dots').toString('base64'),
]);
it('jwt: findJwts alone', () => assert.equal(findJwts(`${HS256} ${NONE_JWT}`).length, 2));

// ---------------------------------------------------------------------------------------------

const PEM_BODY = `MIIEowIBAAKCAQEA${token(48)}\n${token(48)}==`;
const pem = (label: string): string => `-----BEGIN ${label}-----\n${PEM_BODY}\n-----END ${label}-----`;
positives('private-key', [
  ...[
    'RSA PRIVATE KEY',
    'EC PRIVATE KEY',
    'PRIVATE KEY',
    'ENCRYPTED PRIVATE KEY',
    'OPENSSH PRIVATE KEY',
    'DSA PRIVATE KEY',
    'PGP PRIVATE KEY BLOCK',
  ].map((label) => [`key:\n${pem(label)}\nend`, pem(label)] as const),
  ['-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC', '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC'],
]);
negatives('private-key', [
  pem('PUBLIC KEY'),
  pem('CERTIFICATE'),
  pem('RSA PUBLIC KEY'),
  '-----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----', // already masked
  'BEGIN PRIVATE KEY',
  '-----BEGIN private key-----\nabc\n-----END private key-----',
]);
it('private-key: two blocks are two spans', () => {
  assert.equal(findPrivateKeys(`${pem('RSA PRIVATE KEY')}\n${pem('EC PRIVATE KEY')}`).length, 2);
});
it('private-key: a block wins over the keys its base64 may hold', () => {
  const text = `-----BEGIN PRIVATE KEY-----\nAKIAIOSFODNN7EXAMPLE\n-----END PRIVATE KEY-----`;
  assert.deepEqual(found(text), [`private-key:${text}`]);
});

// ---------------------------------------------------------------------------------------------

const API_KEYS: readonly string[] = [
  'AKIAIOSFODNN7EXAMPLE',
  'ASIAY34FZKBOKMUTVV7A',
  `ghp_${alnum(36)}`,
  `gho_${alnum(36)}`,
  `ghu_${alnum(36)}`,
  `ghs_${alnum(36)}`,
  `ghr_${alnum(36)}`,
  `github_pat_11ABCDEFG0${alnum(12)}_${alnum(59)}`,
  'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
  'xoxp-123456789012-123456789012-1234567890123-0123456789abcdef0123456789abcdef',
  'xoxa-2-123456789012-1234567890123-abcdef',
  'xoxr-123456789012-abcdefABCDEF0123',
  'xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef',
  `sk_live_${alnum(24)}`,
  `rk_live_${alnum(24)}`,
  `sk_test_${alnum(24)}`,
  `pk_live_${alnum(24)}`,
  `AIza${alnum(35)}`,
  `sk-${alnum(48)}`,
  `sk-proj-${alnum(40)}_${alnum(40)}`,
  `sk-ant-api03-${token(70)}AA`,
];
positives('api-key', [...API_KEYS.map((k) => [`key=${k}`, k] as const), [`export GITHUB_TOKEN="${API_KEYS[2]}"`, API_KEYS[2]!]]);
negatives('api-key', [
  'AKIA1234',
  'akiaiosfodnn7example',
  'AKIAIOSFODNN7EXAMPL', // 19
  'XAKIAIOSFODNN7EXAMPLE',
  'ghp_short',
  `ghp_${alnum(35)}`,
  'xoxb-short',
  `pk_test_${alnum(24)}`, // publishable test keys are not secret
  `sk_live_${alnum(10)}`,
  `AIza${alnum(34)}`,
  'sk-learn-tutorials-for-beginners-2024',
  'sk-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'task-0123456789abcdefABCDEF',
]);
positives('drawbridge-token', [
  ...[CREDENTIAL_PREFIX, SERVICE_ACCOUNT_KEY_PREFIX, SESSION_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX].map((prefix) => {
    const t = `${prefix}${token()}`;
    return [`PGPASSWORD=${t} psql`, t] as const;
  }),
  [`dbr_${'_'.repeat(43)}`, `dbr_${'_'.repeat(43)}`],
]);
negatives('drawbridge-token', [`dbr_${token().slice(1)}`, `dbr_${token()}x`, `mydbr_${token()}`, `dbr_sak_${token().slice(2)}`, 'dbr_']);
it('api keys: kinds', () => {
  assert.deepEqual(
    findApiKeys(`${API_KEYS[0]} dbr_${token()}`).map((s) => s.kind),
    ['api-key', 'drawbridge-token'],
  );
});

// ---------------------------------------------------------------------------------------------

describe('custom detectors', () => {
  it('finds matches as custom:<name>', () => {
    const plan = compileDetection({ custom: [{ name: 'employee-id', pattern: 'EMP-\\d{6}' }] });
    assert.deepEqual(found('by EMP-123456 and EMP-654321', plan), ['custom:employee-id:EMP-123456', 'custom:employee-id:EMP-654321']);
  });
  it('flags apply', () => {
    const plan = compileDetection({ custom: [{ name: 'ticket', pattern: 'tkt-[a-z]{4}', flags: 'i' }] });
    assert.deepEqual(found('TKT-ABCD', plan), ['custom:ticket:TKT-ABCD']);
  });
  it('the luhn validator keeps only Luhn-valid matches', () => {
    const plan = compileDetection({ kinds: [], custom: [{ name: 'account', pattern: '\\b\\d{10}\\b', validator: 'luhn' }] });
    assert.deepEqual(found('0000000018 0000000019 79927398713', plan), ['custom:account:0000000018']);
  });
  it('the iban validator', () => {
    const plan = compileDetection({
      kinds: [],
      custom: [{ name: 'acct', pattern: '[a-z]{2}\\d{2}[a-z0-9]{10,30}', flags: 'i', validator: 'iban' }],
    });
    assert.deepEqual(found('acct:nl91abna0417164300', plan), ['custom:acct:nl91abna0417164300']);
    assert.deepEqual(found('acct:nl91abna0417164301', plan), []);
  });
  it('custom detectors run on letters-only text (no pre-filter)', () => {
    const plan = compileDetection({ custom: [{ name: 'codename', pattern: 'Operation [A-Z][a-z]+' }] });
    assert.deepEqual(found('Operation Sunrise', plan), ['custom:codename:Operation Sunrise']);
  });
  const refused: readonly (readonly [string, object, string])[] = [
    ['empty', { name: 'x', pattern: '' }, 'custom[0].pattern'],
    ['a*', { name: 'x', pattern: 'a*' }, 'custom[0].pattern'],
    ['x?', { name: 'x', pattern: 'x?' }, 'custom[0].pattern'],
    ['(?:)', { name: 'x', pattern: '(?:)' }, 'custom[0].pattern'],
    ['\\b', { name: 'x', pattern: '\\b' }, 'custom[0].pattern'],
    ['^', { name: 'x', pattern: '^' }, 'custom[0].pattern'],
    ['a|', { name: 'x', pattern: 'a|' }, 'custom[0].pattern'],
    ['(?=a)', { name: 'x', pattern: '(?=a)' }, 'custom[0].pattern'],
    ['invalid regex', { name: 'x', pattern: '(' }, 'custom[0].pattern'],
    ['flag g', { name: 'x', pattern: 'a', flags: 'g' }, 'custom[0].flags'],
    ['flag y', { name: 'x', pattern: 'a', flags: 'y' }, 'custom[0].flags'],
    ['flag twice', { name: 'x', pattern: 'a', flags: 'ii' }, 'custom[0].flags'],
    ['bad name', { name: 'has space', pattern: 'a' }, 'custom[0].name'],
    ['validator', { name: 'x', pattern: 'a', validator: 'rot13' }, 'custom[0].validator'],
    ['too long', { name: 'x', pattern: 'a'.repeat(3000) }, 'custom[0].pattern'],
  ];
  for (const [title, config, path] of refused) {
    it(`refuses ${title}`, () => {
      assert.throws(
        () => compileDetection({ custom: [config as never] }),
        (err: unknown) => err instanceof MaskingConfigError && err.path === path,
      );
    });
  }
  it('refuses a name used twice', () => {
    assert.throws(
      () =>
        compileDetection({
          custom: [
            { name: 'a', pattern: 'x' },
            { name: 'a', pattern: 'y' },
          ],
        }),
      (err: unknown) => err instanceof MaskingConfigError && err.path === 'custom[1].name',
    );
  });
  it('refuses an unknown built-in kind', () => {
    assert.throws(
      () => compileDetection({ kinds: ['email', 'passport' as BuiltinKind] }),
      (err: unknown) => err instanceof MaskingConfigError && err.path === 'kinds[1]',
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('detect: combining', () => {
  it('finds several kinds in one text, in order', () => {
    const text = `Ann <ann@example.com>, card 4111 1111 1111 1111, ssn 123-45-6789, tel +1 213 373 4253, ip 10.0.0.7, key AKIAIOSFODNN7EXAMPLE`;
    assert.deepEqual(
      detect(text).map((s) => s.kind),
      ['email', 'card', 'ssn', 'phone', 'ipv4', 'api-key'],
    );
  });
  it('a longer span wins over one it overlaps', () => {
    const plan = compileDetection({ custom: [{ name: 'pair', pattern: '\\d{4} \\d{4}' }] });
    assert.deepEqual(found('4111 1111 1111 1111', plan), ['card:4111 1111 1111 1111']);
    const longer = compileDetection({ custom: [{ name: 'cardline', pattern: 'card=[\\d ]+' }] });
    assert.deepEqual(found('card=4111 1111 1111 1111', longer), ['custom:cardline:card=4111 1111 1111 1111']);
  });
  it('on equal length the more specific kind wins', () => {
    const plan = compileDetection({ custom: [{ name: 'anything', pattern: '\\S+@\\S+' }] });
    assert.deepEqual(found('a@example.com', plan), ['email:a@example.com']);
    const spans: Span[] = [
      { start: 0, end: 10, kind: 'phone' },
      { start: 0, end: 10, kind: 'card' },
    ];
    assert.deepEqual(resolveOverlaps(spans), [{ start: 0, end: 10, kind: 'card' }]);
  });
  it('resolveOverlaps keeps disjoint spans and sorts them', () => {
    const spans: Span[] = [
      { start: 10, end: 12, kind: 'ipv4' },
      { start: 0, end: 4, kind: 'email' },
      { start: 2, end: 6, kind: 'email' },
      { start: 4, end: 10, kind: 'ssn' },
    ];
    assert.deepEqual(resolveOverlaps(spans), [
      { start: 0, end: 4, kind: 'email' },
      { start: 4, end: 10, kind: 'ssn' },
      { start: 10, end: 12, kind: 'ipv4' },
    ]);
  });
  it('kinds limits the detectors that run', () => {
    const plan = compileDetection({ kinds: ['email'] });
    assert.deepEqual(found('a@example.com 4111111111111111', plan), ['email:a@example.com']);
    assert.deepEqual(found('a@example.com', compileDetection({ kinds: [] })), []);
  });
  it('a plan is frozen', () => {
    assert.ok(Object.isFrozen(DEFAULT_DETECTION));
  });
});

describe('detect: nothing to find', () => {
  for (const text of NOTHING_TO_FIND) it(JSON.stringify(text), () => assert.deepEqual(found(text), []));
});

describe('detect: properties', () => {
  const interesting = fc.constantFrom(
    '4111',
    '1111',
    ' ',
    '-',
    '@',
    '.',
    ':',
    '::',
    'eyJ',
    'a',
    'Z',
    '0',
    '9',
    '+',
    '(',
    ')',
    '/',
    '_',
    '-----BEGIN ',
    'PRIVATE KEY-----',
    '-----END ',
    'dbr_',
    'ghp_',
    'sk-',
    'AKIA',
    'DE89',
    'com',
    'x',
    '\n',
    'é',
    '😀',
  );
  const soup = fc.array(interesting, { maxLength: 40 }).map((parts) => parts.join(''));
  const wellFormed = (text: string, spans: readonly Span[]): void => {
    let last = 0;
    for (const s of spans) {
      assert.ok(s.start >= last && s.start < s.end && s.end <= text.length, JSON.stringify({ text, spans }));
      last = s.end;
    }
  };
  it('spans are in bounds, non-empty, sorted and disjoint (any string)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (t) => wellFormed(t, detect(t))),
      { numRuns: 500 },
    );
  });
  it('spans are in bounds, non-empty, sorted and disjoint (detector-shaped soup)', () => {
    fc.assert(
      fc.property(soup, (t) => wellFormed(t, detect(t))),
      { numRuns: 1000 },
    );
  });
  it('detect is deterministic', () => {
    fc.assert(
      fc.property(soup, (t) => assert.deepEqual(detect(t), detect(t))),
      { numRuns: 200 },
    );
  });
  it('a value glued to letters on both sides is not found', () => {
    const values = ['4111111111111111', '123-45-6789', '10.0.0.1', 'AKIAIOSFODNN7EXAMPLE', 'DE89370400440532013000', '+12133734253'];
    fc.assert(
      fc.property(fc.constantFrom(...values), fc.constantFrom('a', 'Z', 'q'), (v, l) => assert.deepEqual(found(`${l}${v}${l}`), [])),
    );
  });
});

describe('detect: hostile text', () => {
  // No timings are asserted: a quadratic path would show as a test that does not finish.
  const big: readonly (readonly [string, string, number])[] = [
    ['many @', 'a@'.repeat(25_000), 0],
    ['many emails', 'x@example.com '.repeat(5_000), 5_000],
    ['many cards', '4111111111111111 '.repeat(5_000), 5_000],
    ['a long base64 run after eyJ', `eyJ${'a'.repeat(50_000)}`, 0],
    ['many BEGIN lines', '-----BEGIN RSA PRIVATE KEY-----'.repeat(2_000), 1],
    ['colons', ':'.repeat(50_000), 0],
    ['a long run of digits', '7'.repeat(50_000), 0],
    ['a long local part', `${'a'.repeat(50_000)}@example.com`, 1],
    ['many IBAN starts', 'DE89 '.repeat(10_000), 0],
  ];
  for (const [title, text, count] of big) {
    it(title, () => assert.equal(detect(text).length, count));
  }
  it('a very long local part keeps its last 256 characters in the span', () => {
    const [s] = detect(`${'a'.repeat(1000)}@example.com`);
    assert.equal(s!.end - s!.start, 256 + '@example.com'.length);
  });
  it(`past ${PHONE_LIBRARY_BUDGET} library reads, phone-shaped runs are masked unread (fail closed)`, () => {
    const decoys = Array.from({ length: PHONE_LIBRARY_BUDGET + 5 }, () => '(555) 123-4567').join(', ');
    assert.equal(detect(decoys).length, 5);
    const phones = Array.from({ length: PHONE_LIBRARY_BUDGET + 5 }, () => '(213) 373-4253').join(', ');
    assert.equal(detect(phones).length, PHONE_LIBRARY_BUDGET + 5);
  });
  it('overlap resolution with a span over thousands of others', () => {
    const plan = compileDetection({ custom: [{ name: 'all', pattern: '[\\s\\S]+' }] });
    const text = 'x@example.com '.repeat(5_000);
    assert.deepEqual(detect(text, plan), [{ start: 0, end: text.length, kind: 'custom:all' }]);
  });
});

describe('detect: plain numbers and timestamps skip the detectors', () => {
  // The shortcut must never hide a finding: every detector, run on its own, finds nothing either.
  const everyDetector = (text: string): Span[] => [
    ...findEmails(text),
    ...findCards(text),
    ...findSsns(text),
    ...findPhones(text),
    ...findIbans(text),
    ...findIpAddresses(text),
    ...findJwts(text),
    ...findPrivateKeys(text),
    ...findApiKeys(text),
  ];
  const plain = fc.oneof(
    fc.integer({ min: -999_999_999_999, max: 999_999_999_999 }).map(String),
    fc.tuple(fc.integer({ min: 0, max: 999_999_999_999 }), fc.integer({ min: 0, max: 999_999 })).map(([a, b]) => `${a}.${b}`),
    fc.date({ min: new Date('1900-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }).map((d) => d.toISOString()),
    fc.date({ min: new Date('1900-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }).map((d) => d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '+00')),
    fc.date({ min: new Date('1900-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
  );

  it('finds nothing in them, as each detector alone would not', () => {
    fc.assert(
      fc.property(plain, (text) => {
        assert.deepEqual(detect(text), []);
        assert.deepEqual(everyDetector(text), [], text);
      }),
      { numRuns: 3000 },
    );
  });

  it('still finds what is more than a plain number', () => {
    assert.equal(detect('4111111111111111')[0]?.kind, 'card');
    assert.equal(detect('+14155552671')[0]?.kind, 'phone');
    assert.equal(detect('192.168.1.10')[0]?.kind, 'ipv4');
    assert.equal(detect('2024-06-06 19:20:47+00 user@example.com').at(-1)?.kind, 'email');
  });

  it('leaves custom detectors to run on them', () => {
    const plan = compileDetection({ custom: [{ name: 'account', pattern: '\\b\\d{8}\\b' }] });
    assert.equal(detect('12345678', plan)[0]?.kind, 'custom:account');
  });
});

describe('pre-filters: never a finding less', () => {
  // Texts made of pieces of every kind of finding and of what the pre-filters count.
  const PIECES = [
    '4111 1111 1111 1111', '4111111111111111', 'john@example.com', '123-45-6789', '123 45 6789', '+1 415 555 2671',
    '(213) 373-4253', '415\u2010555\u20102671', '415\u00a0555\u00a02671', 'DE89 3704 0044 0532 0130 00', 'DE89370400440532013000', '10.0.0.1', '2001:db8::1', '::1',
    'eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.c2ln', '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----',
    'AKIAIOSFODNN7EXAMPLE', `ghp_${'a1B2'.repeat(9)}`, 'sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t', ' ', '-', '.', ':', '@', '_', '\t',
    '(', ')', '+', '/', '\u00a0', '\u2010', 'x', 'Q', 'é', '€', '😀', '0', '7', '42', '2024-01-15', '10:22:33',
  ];
  const text = fc.array(fc.constantFrom(...PIECES), { maxLength: 12 }).map((p) => p.join(''));
  /** Every detector's bit: what detect runs with no pre-filter at all. */
  const EVERY = ~0;

  it('detect finds with its pre-filters what it finds running every detector', () => {
    fc.assert(fc.property(text, (t) => assert.deepEqual(detect(t), detect(t, DEFAULT_DETECTION, EVERY))), { numRuns: 3000 });
  });

  it('plain numbers and timestamps are told apart alike in bytes and in characters', () => {
    const nearPlain = fc
      .array(fc.constantFrom('0', '7', '42', '2024', '123456', '-', '.', ':', '+', ' ', 'T', 'Z', '05', '1234567890123'), { maxLength: 14 })
      .map((p) => p.join(''));
    const stamps = fc
      .tuple(
        fc.date({ min: new Date('1900-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }),
        fc.constantFrom('Z', '+05:30', '-0800', '+00', '', '123Z', '1234+01'),
        fc.nat(40),
      )
      .map(([d, zone, cut]) => d.toISOString().replace(/Z$/, zone).slice(0, 32 - cut));
    fc.assert(
      fc.property(fc.oneof(nearPlain, stamps), (t) => {
        assert.equal(byteCandidates(Buffer.from(t), 0, t.length), textCandidates(t), t);
      }),
      { numRuns: 5000 },
    );
    assert.equal(textCandidates('2024-01-15 10:22:33.123456+05:30'), 0);
    assert.equal(byteCandidates(Buffer.from('2024-01-15 10:22:33.123456+05:30'), 0, 32), 0);
    assert.notEqual(byteCandidates(Buffer.from('2024-01-15 10:22:33.1234567'), 0, 27), 0);
  });

  it('the bytes of a text pass every pre-filter that its characters pass', () => {
    fc.assert(
      fc.property(text, fc.string({ maxLength: 4 }), (t, pad) => {
        const padded = Buffer.from(`${pad}${t}${pad}`);
        const start = Buffer.byteLength(pad);
        const bits = byteCandidates(padded, start, start + Buffer.byteLength(t));
        const chars = textCandidates(t);
        assert.equal(bits & chars, chars, t);
        assert.deepEqual(detect(t, DEFAULT_DETECTION, bits), detect(t));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('whole values on their bytes (detectWhole)', () => {
  /** Pieces of emails around every boundary the byte reading has: label and TLD lengths, xn--, file extensions, '@' and '.' anywhere. */
  const label = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'aZq09-'), minLength: 0, maxLength: 6 }),
    fc.constantFrom('a'.repeat(62), 'b'.repeat(63), 'c'.repeat(64), `a${'-'.repeat(61)}z`, 'x-', '-x', '0', 'é', '_'),
  );
  const tld = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'aZqX'), minLength: 0, maxLength: 5 }),
    fc.constantFrom('com', 'png', 'JPEG', 'Json', 'ts', 'c', 'co1', 'c-m', 'xn--p1ai', 'XN--80AKHBYKNJ4F', 'xn--', 'xn---', `xn--${'a'.repeat(59)}`, `xn--${'a'.repeat(60)}`, 'm'.repeat(63), 'm'.repeat(64), 'é', ''),
  );
  const local = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'aZ09._%+-'), minLength: 0, maxLength: 8 }),
    fc.constantFrom('a'.repeat(256), 'a'.repeat(257), '.a', 'a/b', 'ü', 'a b', 'a@b'),
  );
  const email = fc
    .tuple(local, fc.array(label, { minLength: 0, maxLength: 3 }), tld, fc.constantFrom('', '', '', ' ', '.', '@', '-', 'é', 'x@y.com'))
    .map(([l, labels, t, tail]) => `${l}@${[...labels, t].join('.')}${tail}`);
  const digits = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 11, maxLength: 21 }),
    fc
      .tuple(
        fc.constantFrom('4', '34', '37', '51', '55', '2221', '2720', '6011', '644', '65', '622126', '622925', '3528', '3589', '300', '305', '3095', '36', '38', '39', '62', '5018', '6759', '6763', '6764', '1'),
        fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 8, maxLength: 16 }),
        fc.nat(9),
      )
      .map(([p, rest, d]) => `${p}${rest}`.slice(0, 18) + String(d)),
    fc.constantFrom('4111111111111111', '4111111111111112', '378282246310005', '6011111111111117', '5555555555554444', '4222222222222'),
  );
  const plans: readonly DetectionPlan[] = [DEFAULT_DETECTION, only('email'), only('card'), compileDetection({ kinds: ['card', 'phone'] })];

  it('says what detect finds, or nothing at all', () => {
    let told = 0;
    fc.assert(
      fc.property(fc.oneof(email, digits), fc.constantFrom(...plans), fc.string({ maxLength: 3 }), (text, plan, pad) => {
        const bytes = Buffer.from(`${pad}${text}${pad}`);
        const start = Buffer.byteLength(pad);
        const end = start + Buffer.byteLength(text);
        const whole = detectWhole(bytes, start, end, plan, byteCandidates(bytes, start, end));
        if (whole === undefined) return;
        told++;
        assert.deepEqual(detect(text, plan), whole === null ? [] : [{ start: 0, end: text.length, kind: whole }], text);
      }),
      { numRuns: 5000 },
    );
    assert.ok(told > 1000, `told ${told} of 5000`);
  });

  it('takes the two shapes for what they are', () => {
    const whole = (text: string, plan = DEFAULT_DETECTION) => {
      const b = Buffer.from(text);
      return detectWhole(b, 0, b.length, plan, byteCandidates(b, 0, b.length));
    };
    assert.equal(whole('user1000000@example.com'), 'email');
    assert.equal(whole('a.b+c@mail.example.co.uk'), 'email');
    assert.equal(whole('x@xn--p1ai.xn--p1ai'), 'email');
    assert.equal(whole('4200182634425967'), 'card');
    assert.equal(whole('4200182634425968'), null);
    assert.equal(whole('icon@2x.png'), undefined);
    assert.equal(whole('write to ops@example.com'), undefined);
    assert.equal(whole('ü@example.com'), undefined);
    assert.equal(whole('4111 1111 1111 1111'), undefined);
    assert.equal(whole('user@example.com', compileDetection({ custom: [{ name: 'x', pattern: 'x' }] })), undefined);
  });

  it('reads card networks as the IIN table says', () => {
    // cardNetwork as first written, on strings: the table the byte reading must keep to.
    const inRange = (d: string, len: number, lo: number, hi: number): boolean => Number(d.slice(0, len)) >= lo && Number(d.slice(0, len)) <= hi;
    const asWritten = (d: string): string | undefined => {
      const n = d.length;
      if (d[0] === '4' && (n === 13 || n === 16 || n === 19)) return 'visa';
      if (n === 16 && (inRange(d, 2, 51, 55) || inRange(d, 4, 2221, 2720))) return 'mastercard';
      if (n === 15 && (d.startsWith('34') || d.startsWith('37'))) return 'amex';
      if (n >= 16 && (d.startsWith('6011') || inRange(d, 3, 644, 649) || d.startsWith('65') || inRange(d, 6, 622126, 622925))) return 'discover';
      if (n >= 16 && inRange(d, 4, 3528, 3589)) return 'jcb';
      if (n >= 14 && (inRange(d, 3, 300, 305) || d.startsWith('3095') || d.startsWith('36') || d.startsWith('38') || d.startsWith('39'))) return 'diners';
      if (n >= 16 && d.startsWith('62')) return 'unionpay';
      if (n >= 13 && /^(?:5018|5020|5038|5893|6304|6759|676[1-3])/.test(d)) return 'maestro';
      return undefined;
    };
    fc.assert(fc.property(digits, (d) => assert.equal(cardNetwork(d), asWritten(d), d)), { numRuns: 5000 });
  });
});
