import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { bytes, startupFrame, typedFrame } from './byte-builder.ts';
import {
  ProtocolError,
  decodeBackend,
  decodeFrontend,
  decodePassword,
  decodeSASLInitialResponse,
  decodeSASLResponse,
  decodeStartup,
  errorFieldsToObject,
} from './decode.ts';
import type { BackendMessage, FrontendMessage, StartupRequest } from './messages.ts';

const B = (s: string) => Buffer.from(s);
const nullProto = (o: Record<string, string>) => Object.assign(Object.create(null), o) as Record<string, string>;

function throwsProtocol(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

describe('decodeStartup', () => {
  const cases: [string, Buffer, StartupRequest][] = [
    ['SSLRequest', bytes().int32(80877103).startup(), { type: 'SSLRequest' }],
    ['GSSENCRequest', bytes().int32(80877104).startup(), { type: 'GSSENCRequest' }],
    [
      'CancelRequest (3.0, 4-byte key)',
      bytes().int32(80877102).int32(1234).raw([1, 2, 3, 4]).startup(),
      { type: 'CancelRequest', processId: 1234, secretKey: Buffer.from([1, 2, 3, 4]) },
    ],
    [
      'CancelRequest (3.2, 32-byte key)',
      bytes().int32(80877102).int32(7).raw(Buffer.alloc(32, 9)).startup(),
      { type: 'CancelRequest', processId: 7, secretKey: Buffer.alloc(32, 9) },
    ],
    [
      'StartupMessage',
      bytes()
        .int32(196608)
        .cstring('user')
        .cstring('alice')
        .cstring('database')
        .cstring('shop')
        .cstring('application_name')
        .cstring('')
        .byte(0)
        .startup(),
      {
        type: 'StartupMessage',
        protocolVersion: 3 << 16,
        params: nullProto({ user: 'alice', database: 'shop', application_name: '' }),
      },
    ],
    [
      'StartupMessage 3.2 with __proto__ key',
      bytes()
        .int32((3 << 16) | 2)
        .cstring('__proto__')
        .cstring('x')
        .byte(0)
        .startup(),
      { type: 'StartupMessage', protocolVersion: (3 << 16) | 2, params: nullProto({ ['__proto__']: 'x' }) },
    ],
  ];
  for (const [name, raw, expected] of cases) {
    it(name, () => assert.deepStrictEqual(decodeStartup(startupFrame(raw)), expected));
  }

  it('keeps parameter order', () => {
    const m = decodeStartup(startupFrame(bytes().int32(196608).cstring('z').cstring('1').cstring('a').cstring('2').byte(0).startup()));
    assert.equal(m.type, 'StartupMessage');
    if (m.type === 'StartupMessage') {
      assert.deepEqual(Object.keys(m.params), ['z', 'a']);
      assert.equal(Object.getPrototypeOf(m.params), null);
    }
  });

  const bad: [string, Buffer, RegExp][] = [
    ['SSLRequest with trailing bytes', bytes().int32(80877103).int32(0).startup(), /trailing/],
    ['CancelRequest with short key', bytes().int32(80877102).int32(1).raw([1, 2]).startup(), /secret key length 2/],
    ['CancelRequest with 257-byte key', bytes().int32(80877102).int32(1).raw(Buffer.alloc(257)).startup(), /257/],
    [
      'protocol 2.0',
      bytes()
        .int32(2 << 16)
        .byte(0)
        .startup(),
      /unsupported protocol version 2\.0/,
    ],
    ['missing list terminator', bytes().int32(196608).cstring('user').cstring('a').startup(), /NUL/],
    ['missing value', bytes().int32(196608).cstring('user').startup(), /value is missing its NUL/],
    [
      'duplicate name',
      bytes().int32(196608).cstring('user').cstring('a').cstring('user').cstring('b').byte(0).startup(),
      /duplicate parameter "user"/,
    ],
    ['bytes after terminator', bytes().int32(196608).byte(0).byte(1).startup(), /1 trailing byte/],
    ['invalid UTF-8', bytes().int32(196608).cstring('user').raw([0xff, 0]).byte(0).startup(), /not valid UTF-8/],
    ['truncated version', bytes().raw([0, 3]).startup(), /truncated/],
  ];
  for (const [name, raw, message] of bad) {
    it(`rejects ${name}`, () => throwsProtocol(() => decodeStartup(startupFrame(raw)), message));
  }
  it('rejects a typed frame', () => throwsProtocol(() => decodeStartup(typedFrame(bytes().message('Q'))), /startup packet expected/));
});

describe('decodeFrontend', () => {
  const cases: [string, Buffer, FrontendMessage][] = [
    ['Query', bytes().cstring('select 1 -- é').message('Q'), { type: 'Query', sql: 'select 1 -- é' }],
    [
      'Parse',
      bytes().cstring('s1').cstring('select $1, $2').uint16(2).uint32(23).uint32(0xffffffff).message('P'),
      { type: 'Parse', name: 's1', sql: 'select $1, $2', paramTypes: [23, 0xffffffff] },
    ],
    [
      'Bind',
      bytes()
        .cstring('p')
        .cstring('s')
        .uint16(2)
        .int16(0)
        .int16(1)
        .uint16(2)
        .int32(3)
        .string('abc')
        .int32(-1)
        .uint16(1)
        .int16(1)
        .message('B'),
      { type: 'Bind', portal: 'p', statement: 's', paramFormats: [0, 1], params: [B('abc'), null], resultFormats: [1] },
    ],
    [
      'Bind, empty',
      bytes().cstring('').cstring('').uint16(0).uint16(0).uint16(0).message('B'),
      { type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
    ],
    ['Describe S', bytes().char('S').cstring('s1').message('D'), { type: 'Describe', target: 'S', name: 's1' }],
    ['Describe P', bytes().char('P').cstring('').message('D'), { type: 'Describe', target: 'P', name: '' }],
    ['Execute', bytes().cstring('p').int32(100).message('E'), { type: 'Execute', portal: 'p', maxRows: 100 }],
    ['Close', bytes().char('P').cstring('p1').message('C'), { type: 'Close', target: 'P', name: 'p1' }],
    ['Sync', bytes().message('S'), { type: 'Sync' }],
    ['Flush', bytes().message('H'), { type: 'Flush' }],
    ['Terminate', bytes().message('X'), { type: 'Terminate' }],
    ['CopyData', bytes().raw([1, 0, 2]).message('d'), { type: 'CopyData', data: Buffer.from([1, 0, 2]) }],
    ['CopyDone', bytes().message('c'), { type: 'CopyDone' }],
    ['CopyFail', bytes().cstring('boom').message('f'), { type: 'CopyFail', message: 'boom' }],
    [
      'FunctionCall',
      bytes().uint32(1598).uint16(1).int16(1).uint16(2).int32(2).raw([7, 8]).int32(-1).int16(0).message('F'),
      { type: 'FunctionCall', functionOid: 1598, argFormats: [1], args: [Buffer.from([7, 8]), null], resultFormat: 0 },
    ],
    ['PasswordMessage', bytes().cstring('secret').message('p'), { type: 'PasswordMessage', data: B('secret\0') }],
  ];
  for (const [name, raw, expected] of cases) {
    it(name, () => assert.deepStrictEqual(decodeFrontend(typedFrame(raw)), expected));
  }

  it('returns views into the frame (no copy)', () => {
    const raw = bytes().raw([1, 2, 3]).message('d');
    const m = decodeFrontend(typedFrame(raw));
    assert.equal(m.type === 'CopyData' && m.data.buffer, raw.buffer);
  });

  const bad: [string, Buffer, RegExp][] = [
    ['unknown type', bytes().message('Z'), /unknown frontend message type 'Z'/],
    ['Query without NUL', bytes().string('select').message('Q'), /Query: query string is missing its NUL/],
    ['Query with trailing bytes', bytes().cstring('x').byte(1).message('Q'), /Query: 1 trailing byte/],
    ['Query with invalid UTF-8', bytes().raw([0x73, 0xc3, 0x28, 0]).message('Q'), /not valid UTF-8/],
    ['Query with overlong NUL', bytes().raw([0xc0, 0x80, 0]).message('Q'), /not valid UTF-8/],
    [
      'Parse with count beyond body',
      bytes().cstring('').cstring('x').uint16(3).uint32(1).message('P'),
      /parameter type count 3 exceeds message/,
    ],
    ['Parse truncated count', bytes().cstring('').cstring('x').byte(0).message('P'), /truncated/],
    [
      'Bind parameter length beyond body',
      bytes().cstring('').cstring('').uint16(0).uint16(3).int32(0).int32(0).int32(10).raw([1, 2]).uint16(0).message('B'),
      /Bind: parameter 3 length exceeds message/,
    ],
    [
      'Bind negative length',
      bytes().cstring('').cstring('').uint16(0).uint16(1).int32(-2).uint16(0).message('B'),
      /parameter 1 has negative length -2/,
    ],
    [
      'Bind bad format code',
      bytes().cstring('').cstring('').uint16(1).int16(2).uint16(0).uint16(0).message('B'),
      /parameter format 1 2 is not 0/,
    ],
    [
      'Bind format count mismatch',
      bytes().cstring('').cstring('').uint16(2).int16(0).int16(0).uint16(1).int32(-1).uint16(0).message('B'),
      /2 parameter formats but 1 parameters/,
    ],
    ['Bind huge count', bytes().cstring('').cstring('').uint16(0).uint16(0xffff).message('B'), /parameter count 65535 exceeds message/],
    ['Describe bad target', bytes().char('X').cstring('').message('D'), /Describe: target 'X'/],
    ['Close empty', bytes().message('C'), /Close: target truncated/],
    ['Execute truncated', bytes().cstring('').int16(0).message('E'), /row limit truncated/],
    ['Sync with body', bytes().byte(0).message('S'), /Sync: 1 trailing/],
    ['CopyDone with body', bytes().byte(0).message('c'), /CopyDone/],
    ['FunctionCall missing result format', bytes().uint32(1).uint16(0).uint16(0).message('F'), /result format truncated/],
  ];
  for (const [name, raw, message] of bad) {
    it(`rejects ${name}`, () => throwsProtocol(() => decodeFrontend(typedFrame(raw)), message));
  }
});

describe("'p' message helpers", () => {
  it('decodePassword', () => assert.equal(decodePassword(bytes().cstring('pw').body()), 'pw'));
  it('decodePassword rejects missing NUL and trailing bytes', () => {
    throwsProtocol(() => decodePassword(B('pw')), /NUL/);
    throwsProtocol(() => decodePassword(B('pw\0x')), /trailing/);
  });
  it('decodeSASLInitialResponse', () => {
    assert.deepStrictEqual(decodeSASLInitialResponse(bytes().cstring('SCRAM-SHA-256').int32(3).string('n,,').body()), {
      mechanism: 'SCRAM-SHA-256',
      data: B('n,,'),
    });
    assert.deepStrictEqual(decodeSASLInitialResponse(bytes().cstring('X').int32(-1).body()), {
      mechanism: 'X',
      data: null,
    });
  });
  it('decodeSASLInitialResponse rejects bad lengths', () => {
    throwsProtocol(() => decodeSASLInitialResponse(bytes().cstring('X').int32(5).string('ab').body()), /initial response length exceeds/);
    throwsProtocol(() => decodeSASLInitialResponse(bytes().cstring('X').int32(-5).body()), /negative length/);
    throwsProtocol(() => decodeSASLInitialResponse(bytes().cstring('X').int32(1).string('ab').body()), /trailing/);
    throwsProtocol(() => decodeSASLInitialResponse(bytes().cstring('').int32(-1).body()), /mechanism is empty/);
  });
  it('decodeSASLResponse', () => assert.deepStrictEqual(decodeSASLResponse(B('c=biws')), B('c=biws')));
});

describe('decodeBackend', () => {
  const R = () => bytes();
  const cases: [string, Buffer, BackendMessage][] = [
    ['AuthenticationOk', R().int32(0).message('R'), { type: 'AuthenticationOk' }],
    ['AuthenticationKerberosV5', R().int32(2).message('R'), { type: 'AuthenticationKerberosV5' }],
    ['AuthenticationCleartextPassword', R().int32(3).message('R'), { type: 'AuthenticationCleartextPassword' }],
    [
      'AuthenticationMD5Password',
      R().int32(5).raw([1, 2, 3, 4]).message('R'),
      { type: 'AuthenticationMD5Password', salt: Buffer.from([1, 2, 3, 4]) },
    ],
    ['AuthenticationGSS', R().int32(7).message('R'), { type: 'AuthenticationGSS' }],
    ['AuthenticationGSSContinue', R().int32(8).raw([9, 9]).message('R'), { type: 'AuthenticationGSSContinue', data: Buffer.from([9, 9]) }],
    ['AuthenticationSSPI', R().int32(9).message('R'), { type: 'AuthenticationSSPI' }],
    [
      'AuthenticationSASL',
      R().int32(10).cstring('SCRAM-SHA-256-PLUS').cstring('SCRAM-SHA-256').byte(0).message('R'),
      { type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] },
    ],
    ['AuthenticationSASLContinue', R().int32(11).string('r=abc').message('R'), { type: 'AuthenticationSASLContinue', data: B('r=abc') }],
    ['AuthenticationSASLFinal', R().int32(12).string('v=xyz').message('R'), { type: 'AuthenticationSASLFinal', data: B('v=xyz') }],
    [
      'BackendKeyData',
      R().int32(42).raw([5, 6, 7, 8]).message('K'),
      { type: 'BackendKeyData', processId: 42, secretKey: Buffer.from([5, 6, 7, 8]) },
    ],
    [
      'BackendKeyData 3.2',
      R().int32(42).raw(Buffer.alloc(256, 1)).message('K'),
      { type: 'BackendKeyData', processId: 42, secretKey: Buffer.alloc(256, 1) },
    ],
    ['BindComplete', R().message('2'), { type: 'BindComplete' }],
    ['CloseComplete', R().message('3'), { type: 'CloseComplete' }],
    ['CommandComplete', R().cstring('INSERT 0 1').message('C'), { type: 'CommandComplete', tag: 'INSERT 0 1' }],
    ['CopyData', R().raw([0, 1]).message('d'), { type: 'CopyData', data: Buffer.from([0, 1]) }],
    ['CopyDone', R().message('c'), { type: 'CopyDone' }],
    ['CopyInResponse', R().byte(0).uint16(2).int16(0).int16(0).message('G'), { type: 'CopyInResponse', format: 0, columnFormats: [0, 0] }],
    ['CopyOutResponse', R().byte(1).uint16(1).int16(1).message('H'), { type: 'CopyOutResponse', format: 1, columnFormats: [1] }],
    ['CopyBothResponse', R().byte(0).uint16(0).message('W'), { type: 'CopyBothResponse', format: 0, columnFormats: [] }],
    [
      'DataRow',
      R().uint16(3).int32(1).string('1').int32(-1).int32(0).message('D'),
      { type: 'DataRow', values: [B('1'), null, Buffer.alloc(0)] },
    ],
    ['EmptyQueryResponse', R().message('I'), { type: 'EmptyQueryResponse' }],
    [
      'ErrorResponse',
      R()
        .char('S')
        .cstring('ERROR')
        .char('V')
        .cstring('ERROR')
        .char('C')
        .cstring('42P01')
        .char('M')
        .cstring('relation "x" does not exist')
        .char('P')
        .cstring('15')
        .byte(0)
        .message('E'),
      {
        type: 'ErrorResponse',
        fields: [
          ['S', 'ERROR'],
          ['V', 'ERROR'],
          ['C', '42P01'],
          ['M', 'relation "x" does not exist'],
          ['P', '15'],
        ],
      },
    ],
    [
      'NoticeResponse',
      R().char('S').cstring('NOTICE').char('M').cstring('hi').byte(0).message('N'),
      {
        type: 'NoticeResponse',
        fields: [
          ['S', 'NOTICE'],
          ['M', 'hi'],
        ],
      },
    ],
    ['NoticeResponse, no fields', R().byte(0).message('N'), { type: 'NoticeResponse', fields: [] }],
    ['FunctionCallResponse', R().int32(2).raw([1, 2]).message('V'), { type: 'FunctionCallResponse', value: Buffer.from([1, 2]) }],
    ['FunctionCallResponse NULL', R().int32(-1).message('V'), { type: 'FunctionCallResponse', value: null }],
    [
      'NegotiateProtocolVersion',
      R().int32(0).int32(2).cstring('_pq_.a').cstring('_pq_.b').message('v'),
      { type: 'NegotiateProtocolVersion', newestMinor: 0, unrecognized: ['_pq_.a', '_pq_.b'] },
    ],
    ['NoData', R().message('n'), { type: 'NoData' }],
    [
      'NotificationResponse',
      R().int32(99).cstring('chan').cstring('payload ✓').message('A'),
      { type: 'NotificationResponse', processId: 99, channel: 'chan', payload: 'payload ✓' },
    ],
    ['ParameterDescription', R().uint16(2).uint32(23).uint32(25).message('t'), { type: 'ParameterDescription', typeOids: [23, 25] }],
    [
      'ParameterStatus',
      R().cstring('client_encoding').cstring('UTF8').message('S'),
      { type: 'ParameterStatus', name: 'client_encoding', value: 'UTF8' },
    ],
    ['ParseComplete', R().message('1'), { type: 'ParseComplete' }],
    ['PortalSuspended', R().message('s'), { type: 'PortalSuspended' }],
    ['ReadyForQuery I', R().char('I').message('Z'), { type: 'ReadyForQuery', status: 'I' }],
    ['ReadyForQuery T', R().char('T').message('Z'), { type: 'ReadyForQuery', status: 'T' }],
    ['ReadyForQuery E', R().char('E').message('Z'), { type: 'ReadyForQuery', status: 'E' }],
    [
      'RowDescription',
      R()
        .uint16(2)
        .cstring('id')
        .uint32(16384)
        .int16(1)
        .uint32(23)
        .int16(4)
        .int32(-1)
        .int16(0)
        .cstring('?column?')
        .uint32(0)
        .int16(0)
        .uint32(1043)
        .int16(-1)
        .int32(259)
        .int16(1)
        .message('T'),
      {
        type: 'RowDescription',
        fields: [
          { name: 'id', tableOid: 16384, columnAttr: 1, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 },
          { name: '?column?', tableOid: 0, columnAttr: 0, typeOid: 1043, typeSize: -1, typeModifier: 259, format: 1 },
        ],
      },
    ],
  ];
  for (const [name, raw, expected] of cases) {
    it(name, () => assert.deepStrictEqual(decodeBackend(typedFrame(raw)), expected));
  }

  const bad: [string, Buffer, RegExp][] = [
    ['unknown type', bytes().message('Q'), /unknown backend message type 'Q'/],
    ['unknown type byte', bytes().message('\x01'), /unknown backend message type 0x01/],
    ['unknown auth code', R().int32(6).message('R'), /unknown request code 6/],
    ['AuthenticationOk trailing', R().int32(0).byte(0).message('R'), /trailing/],
    ['MD5 short salt', R().int32(5).raw([1, 2]).message('R'), /salt length exceeds/],
    ['SASL empty list', R().int32(10).byte(0).message('R'), /mechanism list is empty/],
    ['SASL unterminated list', R().int32(10).cstring('A').message('R'), /NUL/],
    ['BackendKeyData short key', R().int32(1).raw([1]).message('K'), /secret key length 1/],
    ['BackendKeyData 257-byte key', R().int32(1).raw(Buffer.alloc(257)).message('K'), /secret key length 257/],
    ['CopyInResponse bad format', R().byte(2).uint16(0).message('G'), /overall format 2/],
    ['CopyOutResponse count beyond body', R().byte(0).uint16(5).int16(0).message('H'), /column format count 5 exceeds/],
    ['DataRow column beyond body', R().uint16(1).int32(100).string('x').message('D'), /DataRow: column 1 length exceeds message/],
    ['DataRow count beyond body', R().uint16(40000).message('D'), /column count 40000 exceeds/],
    ['DataRow negative length', R().uint16(1).int32(-7).message('D'), /negative length -7/],
    ['DataRow trailing', R().uint16(0).byte(1).message('D'), /trailing/],
    ['ErrorResponse unterminated', R().char('S').cstring('ERROR').message('E'), /field code truncated/],
    ['ErrorResponse non-ASCII code', R().byte(0xc3).cstring('x').byte(0).message('E'), /not ASCII/],
    ['ErrorResponse trailing', R().byte(0).byte(0).message('E'), /trailing/],
    ['NegotiateProtocolVersion negative count', R().int32(0).int32(-1).message('v'), /option count -1/],
    ['NegotiateProtocolVersion huge count', R().int32(0).int32(0x7fffffff).cstring('a').message('v'), /exceeds message/],
    ['ReadyForQuery bad status', R().char('X').message('Z'), /transaction status 'X'/],
    ['ReadyForQuery empty', R().message('Z'), /truncated/],
    [
      'RowDescription count beyond body',
      R().uint16(2).cstring('a').uint32(0).int16(0).uint32(0).int16(0).int32(0).int16(0).message('T'),
      /field count 2 exceeds/,
    ],
    [
      'RowDescription truncated field',
      R().uint16(1).cstring('abcdefghijklmnopqrstu').uint32(0).message('T'),
      /field 1 column number truncated/,
    ],
    ['FunctionCallResponse trailing', R().int32(-1).byte(0).message('V'), /trailing/],
    ['ParameterStatus missing value', R().cstring('a').message('S'), /value is missing/],
    ['CommandComplete invalid UTF-8', R().raw([0xed, 0xa0, 0x80, 0]).message('C'), /not valid UTF-8/],
  ];
  for (const [name, raw, message] of bad) {
    it(`rejects ${name}`, () => throwsProtocol(() => decodeBackend(typedFrame(raw)), message));
  }
});

describe('errorFieldsToObject', () => {
  it('names every documented field, ignores unknown codes, keeps the last repeat', () => {
    const codes = 'SVCMDHPpqWstcdnFLR';
    const fields = [...codes].map((c) => [c, `v${c}`] as const);
    assert.deepStrictEqual(errorFieldsToObject([...fields, ['Z', 'unknown'], ['M', 'last']]), {
      severity: 'vS',
      severityNonLocalized: 'vV',
      code: 'vC',
      message: 'last',
      detail: 'vD',
      hint: 'vH',
      position: 'vP',
      internalPosition: 'vp',
      internalQuery: 'vq',
      where: 'vW',
      schema: 'vs',
      table: 'vt',
      column: 'vc',
      dataType: 'vd',
      constraint: 'vn',
      file: 'vF',
      line: 'vL',
      routine: 'vR',
    });
  });
});
