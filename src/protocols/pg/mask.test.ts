import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileColumnRules } from '../../policy/masking/columns.ts';
import { compileMasking, maskableFields, maskBytes, maskText, type MaskingPlan } from '../../policy/masking/strategies.ts';
import { bytes, typedFrame } from '../../wire/pg/byte-builder.ts';
import { decodeBackend } from '../../wire/pg/decode.ts';
import { framed, MASKED_IN_PLACE, PgMasker } from './mask.ts';

const EMAIL = 'john.doe@example.com';
const CARD = '4111 1111 1111 1111';
const plan = compileMasking();
const sessionMasking = (p: MaskingPlan) => ({
  text: (text: string) => maskText(text, p),
  bytes: (b: Buffer, start: number, end: number, candidates?: number) => maskBytes(b, start, end, p, candidates),
  fields: (b: Buffer, start: number, end: number, out: number[]) => maskableFields(b, start, end, out, p),
  column: () => undefined,
});
const mask = sessionMasking(plan);
const nulling = compileMasking({ strategies: { ssn: 'null' } });

/** RowDescription of (name, type oid) columns, text format. */
function rowDescription(columns: [string, number][]): Buffer {
  const b = bytes().uint16(columns.length);
  for (const [name, oid] of columns) b.cstring(name).uint32(0).int16(0).uint32(oid).int16(-1).int32(-1).int16(0);
  return b.body();
}

/** DataRow of values (null for SQL NULL; a Buffer as raw bytes). */
function dataRow(values: (string | Buffer | null)[]): Buffer {
  const b = bytes().uint16(values.length);
  for (const v of values) {
    if (v === null) b.int32(-1);
    else {
      const raw = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      b.int32(raw.length).raw(raw);
    }
  }
  return b.body();
}

/** What the relay sends for a message: the masker's replacement, or the message (as masked in place). */
function sent(masker: PgMasker, type: number, body: Buffer): Buffer | undefined {
  const out = masker.rewrite(type, body);
  return out === MASKED_IN_PLACE ? framed(type, body) : out;
}

function values(message: Buffer): (string | null)[] {
  const decoded = decodeBackend(typedFrame(message));
  assert.equal(decoded.type, 'DataRow');
  return (decoded as { values: (Buffer | null)[] }).values.map((v) => (v === null ? null : v.toString('utf8')));
}

const TEXT = 25;
const INT8 = 20;
const JSONB = 3802;
const TEXT_ARRAY = 1009;

describe('PgMasker: rows', () => {
  it('masks text-like columns by content and leaves other types alone', () => {
    const masker = new PgMasker(mask);
    assert.equal(masker.rewrite(0x54, rowDescription([['id', INT8], ['contact', TEXT], ['card', 1043]])), undefined);
    const out = sent(masker, 0x44, dataRow(['4111111111111111', `mail ${EMAIL} now`, CARD]));
    assert.ok(out);
    assert.deepEqual(values(out), ['4111111111111111', 'mail j*******@*******.com now', '**** **** **** 1111']);
  });

  it('sends the very row when nothing is found (no copy)', () => {
    const masker = new PgMasker(mask);
    masker.rewrite(0x54, rowDescription([['status', TEXT], ['n', INT8]]));
    assert.equal(masker.rewrite(0x44, dataRow(['paid', '12'])), undefined);
    assert.equal(masker.rewrite(0x44, dataRow([null, null])), undefined);
  });

  it('masks where the value lies when the mask keeps its length, and makes a new row when it does not', () => {
    const masker = new PgMasker(mask);
    masker.rewrite(0x54, rowDescription([['email', TEXT], ['n', INT8]]));
    const row = dataRow([EMAIL, '12']);
    assert.equal(masker.rewrite(0x44, row), MASKED_IN_PLACE);
    assert.deepEqual(values(framed(0x44, row)), ['j*******@*******.com', '12']);

    const mixed = new PgMasker(sessionMasking(compileMasking({ strategies: { card: 'full', ssn: 'null' } })));
    mixed.rewrite(0x54, rowDescription([['email', TEXT], ['card', TEXT], ['n', INT8], ['ssn', TEXT], ['note', TEXT]]));
    const body = dataRow([EMAIL, `card ${CARD}!`, '7', '123-45-6789', 'é ok']);
    const before = Buffer.from(body);
    const out = mixed.rewrite(0x44, body);
    assert.ok(Buffer.isBuffer(out));
    assert.equal(out.readUInt32BE(1), out.length - 1);
    assert.deepEqual(values(out), ['j*******@*******.com', 'card ****!', '7', null, 'é ok']);
    assert.ok(!body.equals(before), 'the email was masked where it lay before the row was rebuilt');
  });

  it('masks every column as text when no description was seen (fail closed)', () => {
    const masker = new PgMasker(mask);
    assert.deepEqual(values(sent(masker, 0x44, dataRow([EMAIL]))!), ['j*******@*******.com']);
  });

  it('sends SQL NULL for the null strategy, and for binary arrays it cannot read', () => {
    const masker = new PgMasker(sessionMasking(nulling));
    masker.rewrite(0x54, rowDescription([['ssn', TEXT], ['emails', TEXT_ARRAY]]));
    const binaryArray = bytes().int32(1).int32(0).uint32(TEXT).int32(1).int32(1).int32(EMAIL.length).string(EMAIL).body();
    assert.deepEqual(values(sent(masker, 0x44, dataRow(['123-45-6789', binaryArray]))!), [null, null]);
    const textArray = `{${EMAIL},other}`;
    assert.deepEqual(values(sent(masker, 0x44, dataRow(['none', textArray]))!), ['none', '{j*******@*******.com,other}']);
  });

  it('masks jsonb in binary (version byte first) and text alike, keeping valid JSON', () => {
    const masker = new PgMasker(mask);
    masker.rewrite(0x54, rowDescription([['doc', JSONB]]));
    const doc = JSON.stringify({ email: EMAIL, card: CARD, amount: 12.5 });
    const binary = sent(masker, 0x44, dataRow([Buffer.concat([Buffer.from([1]), Buffer.from(doc)])]))!;
    const value = values(binary)[0]!;
    assert.equal(value.charCodeAt(0), 1);
    assert.deepEqual(JSON.parse(value.slice(1)), { email: 'j*******@*******.com', card: '**** **** **** 1111', amount: 12.5 });
    assert.deepEqual(JSON.parse(values(sent(masker, 0x44, dataRow([doc]))!)[0]!).amount, 12.5);
  });

  it('takes column types from the Describe of the portal or statement being executed', () => {
    const masker = new PgMasker(mask);
    masker.describe('Sby-id', rowDescription([['id', INT8], ['email', TEXT]]));
    masker.rewrite(0x54, rowDescription([['x', INT8], ['y', INT8]])); // another statement's rows
    masker.use('', 'by-id');
    assert.deepEqual(values(sent(masker, 0x44, dataRow(['5', EMAIL]))!), ['5', 'j*******@*******.com']);
  });

  it('never throws on malformed rows, and leaves them to the client to refuse', () => {
    const masker = new PgMasker(mask);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (body) => {
        const out = sent(masker, 0x44, Buffer.from(body));
        if (out !== undefined) assert.equal(out.readUInt32BE(1), out.length - 1);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('PgMasker: column rules', () => {
  const rules = compileColumnRules(
    [
      { column: 'order_ref', action: 'never' },
      { column: 'secret_*', action: 'mask' },
      { column: 'dob', action: 'null' },
      { column: 'notes', action: 'mask', strategy: 'partial', connection: 'crm' },
    ],
    plan,
  );
  const on = (connection: string) => new PgMasker({ ...mask, column: (name) => rules(connection, name) });

  it('never, mask (whole value, any content), null (any type); first match wins; per connection', () => {
    const masker = on('crm');
    masker.rewrite(
      0x54,
      rowDescription([['order_ref', TEXT], ['secret_code', TEXT], ['dob', 1082], ['notes', TEXT], ['SECRET_N', INT8], ['doc', JSONB]]),
    );
    const row = dataRow([`ref ${EMAIL}`, 'plain', '1990-01-01', 'call me maybe', '42', '{"a":1}']);
    assert.deepEqual(values(sent(masker, 0x44, row)!), [`ref ${EMAIL}`, '****', null, '**** ** *****', null, '{"a":1}']);
    const elsewhere = on('billing');
    elsewhere.rewrite(0x54, rowDescription([['notes', TEXT]]));
    assert.equal(sent(elsewhere, 0x44, dataRow(['call me maybe'])), undefined);
  });

  it('keeps JSON valid when a rule masks a json column', () => {
    const json = compileColumnRules([{ column: 'doc', action: 'mask' }], plan);
    const masker = new PgMasker({ ...mask, column: (name) => json('crm', name) });
    masker.rewrite(0x54, rowDescription([['doc', JSONB]]));
    const out = values(sent(masker, 0x44, dataRow([Buffer.concat([Buffer.from([1]), Buffer.from('{"a":1}')])]))!)[0]!;
    assert.equal(out.charCodeAt(0), 1);
    assert.equal(JSON.parse(out.slice(1)), '****');
  });

  it('refuses a hash rule without the salt', () => {
    assert.throws(() => compileColumnRules([{ column: 'x', action: 'mask', strategy: 'hash' }], plan), /columns\[0\]\.strategy: hash needs the masking salt/);
  });
});

describe('PgMasker: everything else that carries data', () => {
  const masker = new PgMasker(mask);

  it('ErrorResponse and NoticeResponse: values masked, codes and positions kept', () => {
    const body = bytes()
      .char('S').cstring('ERROR').char('C').cstring('22P02')
      .char('M').cstring(`invalid input syntax for type integer: "${EMAIL}"`)
      .char('D').cstring(`card ${CARD}`).char('P').cstring('8').byte(0)
      .body(); // prettier-ignore
    const out = sent(masker, 0x45, body)!;
    const decoded = decodeBackend(typedFrame(out));
    assert.equal(decoded.type, 'ErrorResponse');
    const fields = Object.fromEntries(decoded.type === 'ErrorResponse' ? decoded.fields : []);
    assert.deepEqual(fields, {
      S: 'ERROR',
      C: '22P02',
      M: 'invalid input syntax for type integer: "j*******@*******.com"',
      D: 'card **** **** **** 1111',
      P: '8',
    });
  });

  it('NotificationResponse payloads and ParameterStatus values', () => {
    const notification = sent(masker, 0x41, bytes().int32(42).cstring('events').cstring(`changed ${EMAIL}`).body())!;
    assert.deepEqual(decodeBackend(typedFrame(notification)), {
      type: 'NotificationResponse',
      processId: 42,
      channel: 'events',
      payload: 'changed j*******@*******.com',
    });
    const status = sent(masker, 0x53, bytes().cstring('application_name').cstring(EMAIL).body())!;
    assert.deepEqual(decodeBackend(typedFrame(status)), { type: 'ParameterStatus', name: 'application_name', value: 'j*******@*******.com' });
  });

  it('CopyData in text and binary COPY', () => {
    const text = new PgMasker(mask);
    text.rewrite(0x48, bytes().byte(0).int16(2).int16(0).int16(0).body());
    const row = sent(text, 0x64, Buffer.from(`1\t${EMAIL}\n`))!;
    assert.equal(row.subarray(5).toString(), '1\tj*******@*******.com\n');

    const binary = new PgMasker(mask);
    binary.rewrite(0x48, bytes().byte(1).int16(2).int16(1).int16(1).body());
    const fixedHeader = Buffer.concat([Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]), bytes().int32(0).int32(0).body()]);
    const first = Buffer.concat([fixedHeader, bytes().int16(2).int32(8).raw(Buffer.alloc(8, 7)).int32(EMAIL.length).string(EMAIL).body()]);
    const out = sent(binary, 0x64, first)!;
    const masked = out.subarray(5);
    assert.ok(masked.subarray(0, 19).equals(fixedHeader));
    assert.ok(!masked.includes(EMAIL));
    assert.ok(masked.includes('j*******@*******.com'));
    assert.ok(masked.subarray(19 + 2 + 4, 19 + 2 + 4 + 8).equals(Buffer.alloc(8, 7)), 'the binary int8 stays as it was');
    assert.equal(sent(binary, 0x64, bytes().int16(-1).body()), undefined, 'the trailer');
  });
});

describe('PgMasker: COPY rows field by field', () => {
  it('reads each field on its own, so neighbouring numbers are not one phone number', () => {
    const masker = new PgMasker(mask);
    masker.rewrite(0x48, bytes().byte(0).int16(3).int16(0).int16(0).int16(0).body());
    assert.equal(sent(masker, 0x64, Buffer.from('100000\t150000.00\t415\n')), undefined);
    const row = sent(masker, 0x64, Buffer.from(`7,${EMAIL},${CARD}\n`))!;
    assert.equal(row.subarray(5).toString(), '7,j*******@*******.com,**** **** **** 1111\n');
  });
});
