import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayError, type GatewayErrorCode } from '../../core/index.ts';
import { decodeBackend, errorFieldsToObject, Framer, type ErrorFields } from '../../wire/pg/index.ts';
import { renderError, renderFatal, sqlstateOf } from './render.ts';

// Every code, with the SQLSTATE a PostgreSQL client should see (`satisfies` keeps the list complete).
const EXPECTED = {
  'auth.failed': '28P01',
  'auth.method-not-allowed': '28000',
  'access.no-grant': '28000',
  'access.unknown-connection': '3D000',
  'protocol.malformed': '08P01',
  'protocol.message-too-large': '08P01',
  'protocol.unsupported': '0A000',
  'target.unavailable': '08001',
  'target.auth-failed': '08001',
  'target.lost': '08006',
  'command.denied': '42501',
  'command.unreadable': '22021',
  'session.terminated': '57P01',
  'audit.unavailable': '58000',
  internal: 'XX000',
} satisfies Record<GatewayErrorCode, string>;
const CODES = Object.keys(EXPECTED) as GatewayErrorCode[];

/** Decodes the bytes as a client would: exactly one ErrorResponse, by field name. */
function decodeError(bytes: Buffer): ErrorFields {
  const frames = new Framer({ maxMessageLength: 1 << 20 }).push(bytes);
  assert.equal(frames.length, 1);
  const message = decodeBackend(frames[0]!);
  assert.equal(message.type, 'ErrorResponse');
  return errorFieldsToObject(message.fields);
}

describe('sqlstateOf', () => {
  for (const code of CODES) {
    it(`${code} → ${EXPECTED[code]}`, () => {
      assert.equal(sqlstateOf(code), EXPECTED[code]);
      assert.match(sqlstateOf(code), /^[0-9A-Z]{5}$/);
    });
  }
});

describe('renderFatal / renderError', () => {
  for (const code of CODES) {
    it(`renders ${code} as an ErrorResponse with SQLSTATE ${EXPECTED[code]}`, () => {
      const error = new GatewayError(code, `message for ${code}`);
      const fatal = decodeError(renderFatal(error));
      assert.equal(fatal.severity, 'FATAL');
      assert.equal(fatal.severityNonLocalized, 'FATAL');
      assert.equal(fatal.code, EXPECTED[code]);
      assert.equal(fatal.message, `message for ${code}`);
      assert.equal(fatal.hint, undefined);

      const plain = decodeError(renderError(error));
      assert.equal(plain.severity, 'ERROR');
      assert.equal(plain.code, EXPECTED[code]);
      assert.equal(plain.message, `message for ${code}`);
    });
  }

  it('carries the hint as the HINT field', () => {
    const fields = decodeError(renderFatal(new GatewayError('auth.failed', 'password authentication failed', { hint: 'mint a new one' })));
    assert.equal(fields.hint, 'mint a new one');
  });

  it('renders any other error as "internal gateway error" XX000, without its message', () => {
    for (const error of [
      new Error('connect ECONNREFUSED 10.0.0.5:5432 password=hunter2'),
      new TypeError('x is undefined'),
      'a string',
      undefined,
    ]) {
      for (const render of [renderFatal, renderError]) {
        const bytes = render(error);
        const fields = decodeError(bytes);
        assert.equal(fields.code, 'XX000');
        assert.equal(fields.message, 'internal gateway error');
        assert.ok(!bytes.toString('latin1').includes('hunter2'));
        assert.ok(!bytes.toString('latin1').includes('ECONNREFUSED'));
        assert.ok(!bytes.toString('latin1').includes('undefined'));
      }
    }
  });

  it('survives a NUL in the message', () => {
    const fields = decodeError(renderError(new GatewayError('command.denied', 'bad\0name')));
    assert.equal(fields.code, '42501');
    assert.ok(fields.message?.startsWith('bad'));
  });
});
