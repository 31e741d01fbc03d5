// Round trips (encode -> frame -> decode) for every message, encoder checks, and
// property tests feeding malformed input to the framer and decoders.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { bytes } from './byte-builder.ts';
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
import {
  encodeBackend,
  encodeFrontend,
  encodePassword,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeStartup,
  errorResponse,
  noticeResponse,
  readyForQuery,
} from './encode.ts';
import { Framer, FramingError, type Frame } from './framer.ts';
import type { BackendMessage, ErrorField, FrontendMessage, StartupRequest } from './messages.ts';

const RUNS = 150;

/** fc.record makes null-prototype objects; decoded messages are plain ones. */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

// ---------------------------------------------------------------- arbitraries

const str = fc.oneof(fc.string({ maxLength: 24 }), fc.string({ unit: 'grapheme', maxLength: 12 })).map((s) => s.replaceAll('\0', ''));
const nonEmpty = str.filter((s) => s.length > 0);
const buf = fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));
const nullable = fc.option(buf, { nil: null });
const fmt = fc.constantFrom(0, 1);
const int16 = fc.integer({ min: -32768, max: 32767 });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const uint32 = fc.integer({ min: 0, max: 0xffffffff });
const target = fc.constantFrom('S' as const, 'P' as const);
const secretKey = fc.uint8Array({ minLength: 4, maxLength: 256 }).map((a) => Buffer.from(a));
/** Zero, one, or one format per item, as Bind and FunctionCall require. */
const withFormats = (items: fc.Arbitrary<(Buffer | null)[]>) =>
  items.chain((values) =>
    fc
      .oneof(
        fc.constant([] as number[]),
        fc.array(fmt, { minLength: 1, maxLength: 1 }),
        fc.array(fmt, { minLength: values.length, maxLength: values.length }),
      )
      .map((formats) => ({ values, formats })),
  );

const startupArb: fc.Arbitrary<StartupRequest> = fc.oneof(
  fc.constant({ type: 'SSLRequest' as const }),
  fc.constant({ type: 'GSSENCRequest' as const }),
  rec({ type: fc.constant('CancelRequest' as const), processId: int32, secretKey }),
  fc
    .record({
      minor: fc.integer({ min: 0, max: 0xffff }),
      pairs: fc.uniqueArray(fc.tuple(nonEmpty, str), { selector: ([k]) => k, maxLength: 6 }),
    })
    .map(({ minor, pairs }) => {
      const params: Record<string, string> = Object.create(null);
      for (const [k, v] of pairs) params[k] = v;
      return { type: 'StartupMessage' as const, protocolVersion: (3 << 16) | minor, params };
    }),
);

const frontendArb: fc.Arbitrary<FrontendMessage> = fc.oneof(
  rec({ type: fc.constant('Query' as const), sql: str }),
  rec({ type: fc.constant('Parse' as const), name: str, sql: str, paramTypes: fc.array(uint32, { maxLength: 8 }) }),
  fc
    .record({
      portal: str,
      statement: str,
      p: withFormats(fc.array(nullable, { maxLength: 6 })),
      resultFormats: fc.array(fmt, { maxLength: 6 }),
    })
    .map(({ portal, statement, p, resultFormats }) => ({
      type: 'Bind' as const,
      portal,
      statement,
      paramFormats: p.formats,
      params: p.values,
      resultFormats,
    })),
  rec({ type: fc.constant('Describe' as const), target, name: str }),
  rec({ type: fc.constant('Execute' as const), portal: str, maxRows: int32 }),
  rec({ type: fc.constant('Close' as const), target, name: str }),
  fc.constant({ type: 'Sync' as const }),
  fc.constant({ type: 'Flush' as const }),
  fc.constant({ type: 'Terminate' as const }),
  rec({ type: fc.constant('CopyData' as const), data: buf }),
  fc.constant({ type: 'CopyDone' as const }),
  rec({ type: fc.constant('CopyFail' as const), message: str }),
  fc
    .record({ functionOid: uint32, a: withFormats(fc.array(nullable, { maxLength: 6 })), resultFormat: fmt })
    .map(({ functionOid, a, resultFormat }) => ({
      type: 'FunctionCall' as const,
      functionOid,
      argFormats: a.formats,
      args: a.values,
      resultFormat,
    })),
  rec({ type: fc.constant('PasswordMessage' as const), data: buf }),
);

const errorFieldsArb: fc.Arbitrary<ErrorField[]> = fc.array(
  fc.tuple(
    fc.integer({ min: 1, max: 0x7f }).map((c) => String.fromCharCode(c)),
    str,
  ),
  { maxLength: 8 },
);
const copyBody = { format: fmt, columnFormats: fc.array(fmt, { maxLength: 8 }) };
const tag = <T extends string>(t: T) => fc.constant(t);

const backendArb: fc.Arbitrary<BackendMessage> = fc.oneof(
  fc.constant({ type: 'AuthenticationOk' as const }),
  fc.constant({ type: 'AuthenticationKerberosV5' as const }),
  fc.constant({ type: 'AuthenticationCleartextPassword' as const }),
  rec({ type: tag('AuthenticationMD5Password'), salt: fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a)) }),
  fc.constant({ type: 'AuthenticationGSS' as const }),
  rec({ type: tag('AuthenticationGSSContinue'), data: buf }),
  fc.constant({ type: 'AuthenticationSSPI' as const }),
  rec({ type: tag('AuthenticationSASL'), mechanisms: fc.array(nonEmpty, { minLength: 1, maxLength: 4 }) }),
  rec({ type: tag('AuthenticationSASLContinue'), data: buf }),
  rec({ type: tag('AuthenticationSASLFinal'), data: buf }),
  rec({ type: tag('BackendKeyData'), processId: int32, secretKey }),
  fc.constant({ type: 'BindComplete' as const }),
  fc.constant({ type: 'CloseComplete' as const }),
  rec({ type: tag('CommandComplete'), tag: str }),
  rec({ type: tag('CopyData'), data: buf }),
  fc.constant({ type: 'CopyDone' as const }),
  rec({ type: tag('CopyInResponse'), ...copyBody }),
  rec({ type: tag('CopyOutResponse'), ...copyBody }),
  rec({ type: tag('CopyBothResponse'), ...copyBody }),
  rec({ type: tag('DataRow'), values: fc.array(nullable, { maxLength: 10 }) }),
  fc.constant({ type: 'EmptyQueryResponse' as const }),
  rec({ type: tag('ErrorResponse'), fields: errorFieldsArb }),
  rec({ type: tag('NoticeResponse'), fields: errorFieldsArb }),
  rec({ type: tag('FunctionCallResponse'), value: nullable }),
  rec({ type: tag('NegotiateProtocolVersion'), newestMinor: fc.nat(), unrecognized: fc.array(str, { maxLength: 4 }) }),
  fc.constant({ type: 'NoData' as const }),
  rec({ type: tag('NotificationResponse'), processId: int32, channel: str, payload: str }),
  rec({ type: tag('ParameterDescription'), typeOids: fc.array(uint32, { maxLength: 8 }) }),
  rec({ type: tag('ParameterStatus'), name: str, value: str }),
  fc.constant({ type: 'ParseComplete' as const }),
  fc.constant({ type: 'PortalSuspended' as const }),
  rec({ type: tag('ReadyForQuery'), status: fc.constantFrom('I' as const, 'T' as const, 'E' as const) }),
  rec({
    type: tag('RowDescription'),
    fields: fc.array(
      rec({ name: str, tableOid: uint32, columnAttr: int16, typeOid: uint32, typeSize: int16, typeModifier: int32, format: fmt }),
      { maxLength: 5 },
    ),
  }),
);

// ---------------------------------------------------------------- helpers

/** Frames `raw` with a fresh framer and insists it is exactly one frame. */
function oneFrame(raw: Buffer, startup = false): Frame {
  const frames = new Framer({ maxMessageLength: 1 << 20, startup }).push(raw);
  assert.equal(frames.length, 1);
  const frame = frames[0] as Frame;
  assert.equal(frame.raw.length, raw.length);
  return frame;
}

/** Runs `fn`, allowing only the codec's own errors. */
function onlyCodecErrors(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProtocolError || e instanceof FramingError) return;
    throw e;
  }
}

/** Every message type must appear in the generated samples. */
function coversAll<T extends { type: string }>(arb: fc.Arbitrary<T>, count: number): void {
  const seen = new Set(fc.sample(arb, { numRuns: 2000, seed: 1 }).map((m) => m.type));
  assert.equal(seen.size, count, [...seen].join(','));
}

// ---------------------------------------------------------------- round trips

describe('round trip', () => {
  it('arbitraries cover every message type', () => {
    coversAll(startupArb, 4);
    coversAll(frontendArb, 14);
    coversAll(backendArb, 33);
  });

  it('startup requests', () => {
    fc.assert(
      fc.property(startupArb, (m) => assert.deepStrictEqual(decodeStartup(oneFrame(encodeStartup(m), true)), m)),
      { numRuns: RUNS },
    );
  });

  it('frontend messages', () => {
    fc.assert(
      fc.property(frontendArb, (m) => assert.deepStrictEqual(decodeFrontend(oneFrame(encodeFrontend(m))), m)),
      { numRuns: RUNS * 3 },
    );
  });

  it('backend messages', () => {
    fc.assert(
      fc.property(backendArb, (m) => assert.deepStrictEqual(decodeBackend(oneFrame(encodeBackend(m))), m)),
      { numRuns: RUNS * 4 },
    );
  });

  it("'p' variants", () => {
    fc.assert(
      fc.property(str, nonEmpty, nullable, buf, (password, mechanism, initial, response) => {
        const p = decodeFrontend(oneFrame(encodePassword(password)));
        assert.equal(p.type, 'PasswordMessage');
        assert.equal(decodePassword((p as { data: Buffer }).data), password);
        const i = decodeFrontend(oneFrame(encodeSASLInitialResponse(mechanism, initial)));
        assert.deepStrictEqual(decodeSASLInitialResponse((i as { data: Buffer }).data), { mechanism, data: initial });
        const r = decodeFrontend(oneFrame(encodeSASLResponse(response)));
        assert.deepStrictEqual(decodeSASLResponse((r as { data: Buffer }).data), response);
      }),
      { numRuns: RUNS },
    );
  });

  it('a stream of encoded messages frames back to the same messages, split anywhere', () => {
    fc.assert(
      fc.property(fc.array(backendArb, { maxLength: 6 }), fc.nat(), (msgs, cut) => {
        const all = Buffer.concat(msgs.map(encodeBackend));
        const at = cut % (all.length + 1);
        const framer = new Framer({ maxMessageLength: 1 << 20 });
        const frames = [...framer.push(all.subarray(0, at)), ...framer.push(all.subarray(at))];
        assert.deepStrictEqual(frames.map(decodeBackend), msgs);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------- encoder

describe('encoder', () => {
  it('writes the bytes the protocol documents', () => {
    assert.deepEqual(encodeFrontend({ type: 'Query', sql: 'select 1' }), bytes().cstring('select 1').message('Q'));
    assert.deepEqual(
      encodeFrontend({ type: 'Bind', portal: '', statement: 's', paramFormats: [1], params: [null, Buffer.from('x')], resultFormats: [] }),
      bytes().cstring('').cstring('s').uint16(1).int16(1).uint16(2).int32(-1).int32(1).string('x').uint16(0).message('B'),
    );
    assert.deepEqual(encodeStartup({ type: 'SSLRequest' }), Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    assert.deepEqual(
      encodeStartup({ type: 'StartupMessage', protocolVersion: 196608, params: { user: 'u' } }),
      bytes().int32(196608).cstring('user').cstring('u').byte(0).startup(),
    );
    assert.deepEqual(
      encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc')),
      bytes().cstring('SCRAM-SHA-256').int32(11).string('n,,n=,r=abc').message('p'),
    );
    assert.deepEqual(encodePassword('pw'), bytes().cstring('pw').message('p'));
  });

  it('errorResponse writes S, V, C, M, D, H', () => {
    const raw = errorResponse('FATAL', '28000', 'access denied', { detail: 'no grant', hint: 'ask' });
    assert.deepEqual(
      raw,
      bytes()
        .char('S')
        .cstring('FATAL')
        .char('V')
        .cstring('FATAL')
        .char('C')
        .cstring('28000')
        .char('M')
        .cstring('access denied')
        .char('D')
        .cstring('no grant')
        .char('H')
        .cstring('ask')
        .byte(0)
        .message('E'),
    );
    const m = decodeBackend(oneFrame(raw));
    assert.equal(m.type, 'ErrorResponse');
    assert.deepEqual(errorFieldsToObject((m as { fields: ErrorField[] }).fields), {
      severity: 'FATAL',
      severityNonLocalized: 'FATAL',
      code: '28000',
      message: 'access denied',
      detail: 'no grant',
      hint: 'ask',
    });
  });

  it('noticeResponse and readyForQuery', () => {
    const n = decodeBackend(oneFrame(noticeResponse('WARNING', '01000', 'careful')));
    assert.deepStrictEqual(n, {
      type: 'NoticeResponse',
      fields: [
        ['S', 'WARNING'],
        ['V', 'WARNING'],
        ['C', '01000'],
        ['M', 'careful'],
      ],
    });
    assert.deepEqual(readyForQuery('T'), Buffer.from([0x5a, 0, 0, 0, 5, 0x54]));
  });

  it('error builders replace NUL rather than corrupt the stream, and check the SQLSTATE', () => {
    const m = decodeBackend(oneFrame(errorResponse('ERROR', '42501', 'a\0b', { hint: '\0' })));
    assert.deepEqual(errorFieldsToObject((m as { fields: ErrorField[] }).fields).message, 'a\uFFFDb');
    assert.throws(() => errorResponse('ERROR', '4250', 'x'), RangeError);
    assert.throws(() => errorResponse('ERROR', '42501\0', 'x'), RangeError);
  });

  it('refuses messages that would desynchronise the stream', () => {
    const refused: (() => unknown)[] = [
      () => encodeFrontend({ type: 'Query', sql: 'select 1\0; drop table t' }),
      () => encodeFrontend({ type: 'Parse', name: 'a\0', sql: '', paramTypes: [] }),
      () => encodeFrontend({ type: 'Parse', name: '', sql: '', paramTypes: new Array(65536).fill(0) }),
      () => encodeFrontend({ type: 'Execute', portal: '', maxRows: 2 ** 31 }),
      () => encodeBackend({ type: 'DataRow', values: new Array(65536).fill(null) }),
      () => encodeBackend({ type: 'AuthenticationSASL', mechanisms: ['A', ''] }),
      () => encodeBackend({ type: 'AuthenticationSASL', mechanisms: [] }),
      () => encodeBackend({ type: 'AuthenticationMD5Password', salt: Buffer.alloc(3) }),
      () => encodeBackend({ type: 'BackendKeyData', processId: 1, secretKey: Buffer.alloc(257) }),
      () => encodeBackend({ type: 'ErrorResponse', fields: [['', 'x']] }),
      () => encodeBackend({ type: 'ErrorResponse', fields: [['MM', 'x']] }),
      () => encodeBackend({ type: 'ErrorResponse', fields: [['\0', 'x']] }),
      () => encodeBackend({ type: 'ParameterDescription', typeOids: [-1] }),
      () => encodeStartup({ type: 'StartupMessage', protocolVersion: 2 << 16, params: {} }),
      () => encodeStartup({ type: 'StartupMessage', protocolVersion: 3 << 16, params: { '': 'x' } }),
      () => encodeStartup({ type: 'CancelRequest', processId: 1, secretKey: Buffer.alloc(2) }),
      () => encodeSASLInitialResponse('', null),
      () => encodePassword('a\0b'),
      () => readyForQuery('X' as 'I'),
    ];
    refused.forEach((fn, i) => assert.throws(fn, RangeError, `case ${i}`));
  });
});

// ---------------------------------------------------------------- malformed input

/** Flip, truncate, extend or splice bytes of a valid message. */
const mutation = fc.oneof(
  rec({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  rec({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  rec({ kind: fc.constant('insert' as const), at: fc.nat(), data: fc.uint8Array({ minLength: 1, maxLength: 6 }) }),
  rec({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 6 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(raw: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(raw);
  for (const m of muts) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    if (m.kind === 'flip' && at < b.length) b[at] = m.value;
    else if (m.kind === 'truncate') b = b.subarray(0, at);
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.data, b.subarray(at)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
  }
  return b;
}

/** Decodes a (mutated) message body under its own type byte, bypassing the framer's length. */
function asFrame(raw: Buffer, startup: boolean): Frame {
  const h = startup ? 4 : 5;
  return { type: startup ? 0 : (raw[0] ?? 0), body: raw.subarray(Math.min(h, raw.length)), raw };
}

function decodeAll(frames: Frame[], side: 'frontend' | 'backend'): void {
  for (const f of frames) {
    onlyCodecErrors(() => {
      if (f.type === 0) decodeStartup(f);
      else if (side === 'backend') decodeBackend(f);
      else {
        const m = decodeFrontend(f);
        if (m.type === 'PasswordMessage') {
          onlyCodecErrors(() => decodePassword(m.data));
          onlyCodecErrors(() => decodeSASLInitialResponse(m.data));
          decodeSASLResponse(m.data);
        }
      }
    });
  }
}

describe('malformed input', () => {
  const streamBytes = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));
  // Headers biased towards plausible lengths so random streams get past the framer.
  const plausible = fc
    .array(fc.tuple(fc.constantFrom(...'QPBDECSHXdcfFpRK23GWIENVvnAtS1sZT'), fc.uint8Array({ maxLength: 30 })), { maxLength: 6 })
    .map((ms) => Buffer.concat(ms.map(([t, b]) => bytes().raw(b).message(t))));

  it('random bytes through framer and decoders raise only codec errors', () => {
    fc.assert(
      fc.property(fc.oneof(streamBytes, plausible), fc.boolean(), fc.nat(), (data, startup, cut) => {
        for (const side of ['frontend', 'backend'] as const) {
          const framer = new Framer({ maxMessageLength: 1000, startup: startup && side === 'frontend' });
          const at = cut % (data.length + 1);
          onlyCodecErrors(() => decodeAll(framer.push(data.subarray(0, at)), side));
          onlyCodecErrors(() => decodeAll(framer.push(data.subarray(at)), side));
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('mutated valid messages raise only codec errors', () => {
    const encoded = fc.oneof(
      frontendArb.map((m) => ({ raw: encodeFrontend(m), side: 'frontend' as const, startup: false })),
      backendArb.map((m) => ({ raw: encodeBackend(m), side: 'backend' as const, startup: false })),
      startupArb.map((m) => ({ raw: encodeStartup(m), side: 'frontend' as const, startup: true })),
    );
    fc.assert(
      fc.property(encoded, fc.array(mutation, { minLength: 1, maxLength: 3 }), ({ raw, side, startup }, muts) => {
        const bad = mutate(raw, muts);
        // Straight to the decoder, whatever the length field says…
        decodeAll([asFrame(bad, startup)], side);
        // …and through the framer, as the proxy would.
        const framer = new Framer({ maxMessageLength: 1 << 16, startup });
        onlyCodecErrors(() => decodeAll(framer.push(bad), side));
      }),
      { numRuns: RUNS * 4 },
    );
  });

  it("random bodies for the 'p' helpers raise only ProtocolError", () => {
    fc.assert(
      fc.property(streamBytes, (body) => {
        onlyCodecErrors(() => decodePassword(body));
        onlyCodecErrors(() => decodeSASLInitialResponse(body));
      }),
      { numRuns: RUNS },
    );
  });
});
