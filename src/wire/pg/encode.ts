// Encodes typed PostgreSQL v3 messages (messages.ts) into wire bytes.
//
// Guarantees: one allocation per message (size computed first, then written in
// place). The encoder refuses — with RangeError — anything that would put the
// byte stream out of step or be read back differently: a NUL inside a string, an
// empty name where an empty name ends a list, counts above 65535, lengths above
// 2^31-1, numbers out of their field's range, salts and keys of the wrong size.
// Whatever it emits, decode.ts reads back to an equal message.
// Limits: it does not check protocol semantics (e.g. that format codes are 0/1
// or that a message is legal in the current phase).
// errorResponse / noticeResponse are for refusals rendered by the gateway: they
// replace NUL in the texts with U+FFFD instead of throwing, so the error path
// itself cannot fail on odd input.

import { Buffer } from 'node:buffer';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  SSL_REQUEST_CODE,
  type BackendMessage,
  type ErrorField,
  type FrontendMessage,
  type StartupRequest,
  type TransactionStatus,
} from './messages.ts';

const MAX_INT32 = 0x7fffffff;
const MAX_COUNT = 0xffff;
const MIN_SECRET_KEY_LENGTH = 4;
const MAX_SECRET_KEY_LENGTH = 256;

function invalid(problem: string): never {
  throw new RangeError(`pg encode: ${problem}`);
}

/** Byte length of `s` as a NUL-terminated UTF-8 string. */
function cstrSize(s: string, field: string): number {
  if (s.includes('\0')) invalid(`${field} contains a NUL character`);
  return Buffer.byteLength(s, 'utf8') + 1;
}

function countOf(items: readonly unknown[], field: string): number {
  if (items.length > MAX_COUNT) invalid(`${field} has ${items.length} items, above ${MAX_COUNT}`);
  return items.length;
}

function nullableSize(values: readonly (Buffer | null)[]): number {
  let n = 0;
  for (const v of values) n += 4 + (v === null ? 0 : v.length);
  return n;
}

function checkKey(key: Buffer, field: string): void {
  if (key.length < MIN_SECRET_KEY_LENGTH || key.length > MAX_SECRET_KEY_LENGTH) {
    invalid(`${field} length ${key.length} is outside [${MIN_SECRET_KEY_LENGTH}, ${MAX_SECRET_KEY_LENGTH}]`);
  }
}

/** Writes one message into a buffer of exactly its size. */
class Writer {
  readonly buf: Buffer;
  pos: number;
  /** `type` 0 = untyped startup packet. */
  constructor(type: number, bodySize: number) {
    const header = type === 0 ? 4 : 5;
    if (bodySize + 4 > MAX_INT32) invalid(`message of ${bodySize + 4} bytes exceeds the protocol maximum`);
    this.buf = Buffer.allocUnsafe(header + bodySize);
    if (type !== 0) this.buf[0] = type;
    this.buf.writeUInt32BE(bodySize + 4, header - 4);
    this.pos = header;
  }
  u8(v: number): this {
    this.pos = this.buf.writeUInt8(v, this.pos);
    return this;
  }
  i16(v: number): this {
    this.pos = this.buf.writeInt16BE(v, this.pos);
    return this;
  }
  u16(v: number): this {
    this.pos = this.buf.writeUInt16BE(v, this.pos);
    return this;
  }
  i32(v: number): this {
    this.pos = this.buf.writeInt32BE(v, this.pos);
    return this;
  }
  u32(v: number): this {
    this.pos = this.buf.writeUInt32BE(v, this.pos);
    return this;
  }
  /** Only after cstrSize() checked it. */
  cstr(s: string): this {
    this.pos += this.buf.write(s, this.pos, 'utf8');
    this.buf[this.pos++] = 0;
    return this;
  }
  bytes(b: Buffer): this {
    this.pos += b.copy(this.buf, this.pos);
    return this;
  }
  nullable(v: Buffer | null): this {
    if (v === null) return this.i32(-1);
    return this.i32(v.length).bytes(v);
  }
  i16s(vs: readonly number[]): this {
    this.u16(vs.length);
    for (const v of vs) this.i16(v);
    return this;
  }
  done(): Buffer {
    // A size mismatch is a bug here, never the caller's; do not emit a corrupt stream.
    if (this.pos !== this.buf.length) throw new Error(`pg encode: wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

function empty(type: number): Buffer {
  return new Writer(type, 0).done();
}

function char(c: string): number {
  return c.charCodeAt(0);
}

// ---------------------------------------------------------------- startup

export function encodeStartup(m: StartupRequest): Buffer {
  switch (m.type) {
    case 'SSLRequest':
      return new Writer(0, 4).u32(SSL_REQUEST_CODE).done();
    case 'GSSENCRequest':
      return new Writer(0, 4).u32(GSSENC_REQUEST_CODE).done();
    case 'CancelRequest':
      checkKey(m.secretKey, 'CancelRequest secret key');
      return new Writer(0, 8 + m.secretKey.length).u32(CANCEL_REQUEST_CODE).i32(m.processId).bytes(m.secretKey).done();
    case 'StartupMessage': {
      if (m.protocolVersion >>> 16 !== 3) invalid(`protocol version ${m.protocolVersion} is not 3.x`);
      const names = Object.keys(m.params);
      let size = 4 + 1;
      for (const name of names) {
        if (name === '') invalid('StartupMessage parameter name is empty');
        size += cstrSize(name, 'StartupMessage parameter name') + cstrSize(m.params[name] as string, `parameter ${name}`);
      }
      const w = new Writer(0, size).u32(m.protocolVersion);
      for (const name of names) w.cstr(name).cstr(m.params[name] as string);
      return w.u8(0).done();
    }
  }
}

// ---------------------------------------------------------------- frontend

export function encodeFrontend(m: FrontendMessage): Buffer {
  switch (m.type) {
    case 'Query':
      return new Writer(0x51, cstrSize(m.sql, 'Query sql')).cstr(m.sql).done();
    case 'Parse': {
      const n = countOf(m.paramTypes, 'Parse paramTypes');
      const size = cstrSize(m.name, 'Parse name') + cstrSize(m.sql, 'Parse sql') + 2 + 4 * n;
      const w = new Writer(0x50, size).cstr(m.name).cstr(m.sql).u16(n);
      for (const oid of m.paramTypes) w.u32(oid);
      return w.done();
    }
    case 'Bind': {
      countOf(m.paramFormats, 'Bind paramFormats');
      countOf(m.params, 'Bind params');
      countOf(m.resultFormats, 'Bind resultFormats');
      const size =
        cstrSize(m.portal, 'Bind portal') +
        cstrSize(m.statement, 'Bind statement') +
        2 +
        2 * m.paramFormats.length +
        2 +
        nullableSize(m.params) +
        2 +
        2 * m.resultFormats.length;
      const w = new Writer(0x42, size).cstr(m.portal).cstr(m.statement).i16s(m.paramFormats).u16(m.params.length);
      for (const p of m.params) w.nullable(p);
      return w.i16s(m.resultFormats).done();
    }
    case 'Describe':
    case 'Close':
      return new Writer(m.type === 'Describe' ? 0x44 : 0x43, 1 + cstrSize(m.name, `${m.type} name`)).u8(char(m.target)).cstr(m.name).done();
    case 'Execute':
      return new Writer(0x45, cstrSize(m.portal, 'Execute portal') + 4).cstr(m.portal).i32(m.maxRows).done();
    case 'Sync':
      return empty(0x53);
    case 'Flush':
      return empty(0x48);
    case 'Terminate':
      return empty(0x58);
    case 'CopyData':
      return new Writer(0x64, m.data.length).bytes(m.data).done();
    case 'CopyDone':
      return empty(0x63);
    case 'CopyFail':
      return new Writer(0x66, cstrSize(m.message, 'CopyFail message')).cstr(m.message).done();
    case 'FunctionCall': {
      countOf(m.argFormats, 'FunctionCall argFormats');
      countOf(m.args, 'FunctionCall args');
      const size = 4 + 2 + 2 * m.argFormats.length + 2 + nullableSize(m.args) + 2;
      const w = new Writer(0x46, size).u32(m.functionOid).i16s(m.argFormats).u16(m.args.length);
      for (const a of m.args) w.nullable(a);
      return w.i16(m.resultFormat).done();
    }
    case 'PasswordMessage':
      return new Writer(0x70, m.data.length).bytes(m.data).done();
  }
}

/** 'p' answering AuthenticationCleartextPassword / AuthenticationMD5Password. */
export function encodePassword(text: string): Buffer {
  return new Writer(0x70, cstrSize(text, 'password')).cstr(text).done();
}

/** 'p' answering AuthenticationSASL; `data` null is sent as length -1. */
export function encodeSASLInitialResponse(mechanism: string, data: Buffer | null): Buffer {
  if (mechanism === '') invalid('SASL mechanism is empty');
  const size = cstrSize(mechanism, 'SASL mechanism') + 4 + (data === null ? 0 : data.length);
  return new Writer(0x70, size).cstr(mechanism).nullable(data).done();
}

/** 'p' answering AuthenticationSASLContinue. */
export function encodeSASLResponse(data: Buffer): Buffer {
  return new Writer(0x70, data.length).bytes(data).done();
}

// ---------------------------------------------------------------- backend

function auth(code: number, extra: Buffer | null = null): Buffer {
  const w = new Writer(0x52, 4 + (extra === null ? 0 : extra.length)).i32(code);
  if (extra !== null) w.bytes(extra);
  return w.done();
}

function fieldsSize(fields: readonly ErrorField[]): number {
  let size = 1;
  for (const [code, value] of fields) {
    if (code.length !== 1 || char(code) === 0 || char(code) > 0x7f) {
      invalid(`error field code ${JSON.stringify(code)} is not one ASCII character`);
    }
    size += 1 + cstrSize(value, `error field '${code}'`);
  }
  return size;
}

function encodeFields(type: number, fields: readonly ErrorField[]): Buffer {
  const w = new Writer(type, fieldsSize(fields));
  for (const [code, value] of fields) w.u8(char(code)).cstr(value);
  return w.u8(0).done();
}

function copyResponse(type: number, format: number, columnFormats: readonly number[]): Buffer {
  countOf(columnFormats, 'columnFormats');
  return new Writer(type, 1 + 2 + 2 * columnFormats.length).u8(format).i16s(columnFormats).done();
}

export function encodeBackend(m: BackendMessage): Buffer {
  switch (m.type) {
    case 'AuthenticationOk':
      return auth(0);
    case 'AuthenticationKerberosV5':
      return auth(2);
    case 'AuthenticationCleartextPassword':
      return auth(3);
    case 'AuthenticationMD5Password':
      if (m.salt.length !== 4) invalid(`MD5 salt is ${m.salt.length} bytes, not 4`);
      return auth(5, m.salt);
    case 'AuthenticationGSS':
      return auth(7);
    case 'AuthenticationGSSContinue':
      return auth(8, m.data);
    case 'AuthenticationSSPI':
      return auth(9);
    case 'AuthenticationSASL': {
      if (m.mechanisms.length === 0) invalid('SASL mechanism list is empty');
      let size = 4 + 1;
      for (const mech of m.mechanisms) {
        if (mech === '') invalid('SASL mechanism is empty');
        size += cstrSize(mech, 'SASL mechanism');
      }
      const w = new Writer(0x52, size).i32(10);
      for (const mech of m.mechanisms) w.cstr(mech);
      return w.u8(0).done();
    }
    case 'AuthenticationSASLContinue':
      return auth(11, m.data);
    case 'AuthenticationSASLFinal':
      return auth(12, m.data);
    case 'BackendKeyData':
      checkKey(m.secretKey, 'BackendKeyData secret key');
      return new Writer(0x4b, 4 + m.secretKey.length).i32(m.processId).bytes(m.secretKey).done();
    case 'BindComplete':
      return empty(0x32);
    case 'CloseComplete':
      return empty(0x33);
    case 'CommandComplete':
      return new Writer(0x43, cstrSize(m.tag, 'CommandComplete tag')).cstr(m.tag).done();
    case 'CopyData':
      return new Writer(0x64, m.data.length).bytes(m.data).done();
    case 'CopyDone':
      return empty(0x63);
    case 'CopyInResponse':
      return copyResponse(0x47, m.format, m.columnFormats);
    case 'CopyOutResponse':
      return copyResponse(0x48, m.format, m.columnFormats);
    case 'CopyBothResponse':
      return copyResponse(0x57, m.format, m.columnFormats);
    case 'DataRow': {
      const n = countOf(m.values, 'DataRow values');
      const w = new Writer(0x44, 2 + nullableSize(m.values)).u16(n);
      for (const v of m.values) w.nullable(v);
      return w.done();
    }
    case 'EmptyQueryResponse':
      return empty(0x49);
    case 'ErrorResponse':
      return encodeFields(0x45, m.fields);
    case 'NoticeResponse':
      return encodeFields(0x4e, m.fields);
    case 'FunctionCallResponse':
      return new Writer(0x56, 4 + (m.value === null ? 0 : m.value.length)).nullable(m.value).done();
    case 'NegotiateProtocolVersion': {
      let size = 8;
      for (const o of m.unrecognized) size += cstrSize(o, 'unrecognized option');
      const w = new Writer(0x76, size).i32(m.newestMinor).i32(m.unrecognized.length);
      for (const o of m.unrecognized) w.cstr(o);
      return w.done();
    }
    case 'NoData':
      return empty(0x6e);
    case 'NotificationResponse': {
      const size = 4 + cstrSize(m.channel, 'notification channel') + cstrSize(m.payload, 'notification payload');
      return new Writer(0x41, size).i32(m.processId).cstr(m.channel).cstr(m.payload).done();
    }
    case 'ParameterDescription': {
      const n = countOf(m.typeOids, 'ParameterDescription typeOids');
      const w = new Writer(0x74, 2 + 4 * n).u16(n);
      for (const oid of m.typeOids) w.u32(oid);
      return w.done();
    }
    case 'ParameterStatus': {
      const size = cstrSize(m.name, 'ParameterStatus name') + cstrSize(m.value, 'ParameterStatus value');
      return new Writer(0x53, size).cstr(m.name).cstr(m.value).done();
    }
    case 'ParseComplete':
      return empty(0x31);
    case 'PortalSuspended':
      return empty(0x73);
    case 'ReadyForQuery':
      return readyForQuery(m.status);
    case 'RowDescription': {
      countOf(m.fields, 'RowDescription fields');
      let size = 2;
      for (const f of m.fields) size += cstrSize(f.name, 'RowDescription field name') + 18;
      const w = new Writer(0x54, size).u16(m.fields.length);
      for (const f of m.fields) {
        w.cstr(f.name).u32(f.tableOid).i16(f.columnAttr).u32(f.typeOid).i16(f.typeSize).i32(f.typeModifier).i16(f.format);
      }
      return w.done();
    }
  }
}

// ---------------------------------------------------------------- convenience builders

export function readyForQuery(status: TransactionStatus): Buffer {
  if (status !== 'I' && status !== 'T' && status !== 'E') invalid(`transaction status ${JSON.stringify(status)}`);
  return new Writer(0x5a, 1).u8(char(status)).done();
}

export interface ErrorExtra {
  detail?: string;
  hint?: string;
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

function noNul(s: string): string {
  return s.includes('\0') ? s.replaceAll('\0', '\uFFFD') : s;
}

function report(type: number, severity: string, sqlstate: string, message: string, extra?: ErrorExtra): Buffer {
  if (!SQLSTATE.test(sqlstate)) invalid(`SQLSTATE ${JSON.stringify(sqlstate)} is not five characters [0-9A-Z]`);
  const fields: ErrorField[] = [
    ['S', severity],
    ['V', severity],
    ['C', sqlstate],
    ['M', noNul(message)],
  ];
  if (extra?.detail !== undefined) fields.push(['D', noNul(extra.detail)]);
  if (extra?.hint !== undefined) fields.push(['H', noNul(extra.hint)]);
  return encodeFields(type, fields);
}

/** An ErrorResponse with S, V, C, M and optionally D, H. */
export function errorResponse(severity: 'ERROR' | 'FATAL' | 'PANIC', sqlstate: string, message: string, extra?: ErrorExtra): Buffer {
  return report(0x45, severity, sqlstate, message, extra);
}

/** A NoticeResponse with S, V, C, M and optionally D, H. */
export function noticeResponse(
  severity: 'NOTICE' | 'WARNING' | 'INFO' | 'LOG' | 'DEBUG',
  sqlstate: string,
  message: string,
  extra?: ErrorExtra,
): Buffer {
  return report(0x4e, severity, sqlstate, message, extra);
}
